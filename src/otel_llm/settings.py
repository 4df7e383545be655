"""One row per setting: its environment variables in order, its default, its parser.

Precedence is always keyword argument > environment (first listed variable wins;
an empty variable counts as unset) > default. A bad value raises ``ConfigError``
naming the setting, where the value came from and the rule it broke; the value
itself is quoted only for settings that can't be secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otel_llm.errors import ConfigError
from otel_llm.validation import ENVIRONMENT_RULE, environment_problem, unit_interval

__all__ = ["SETTINGS", "Setting", "resolve", "resolve_all"]


@dataclass(frozen=True)
class Setting:
    name: str
    env_vars: tuple[str, ...]
    default: Any
    parse: Callable[[Any, str, str], Any]
    """parse(value, setting name, source) -> value; raises ConfigError. Env values are str."""
    doc: str = ""


def _text(value: Any, name: str, source: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a string, got {type(value).__name__}", source=source)
    return value


def _environment(value: Any, name: str, source: str) -> str:
    text = _text(value, name, source)
    assert text is not None
    problem = environment_problem(text)
    if problem:
        raise ConfigError(name, problem, source=source)
    return text


def _unit_interval(value: Any, name: str, source: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(name, f"{value!r} is not a number", source=source) from None
    return unit_interval(value, name, source)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _boolean(value: Any, name: str, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ConfigError(name, f"must be true or false, got {value!r}", source=source)


def _positive_int(value: Any, name: str, source: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(name, f"{value!r} is not an integer", source=source) from None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(name, f"must be a positive integer, got {value!r}", source=source)
    return value


def _spool_dir(value: Any, name: str, source: str) -> Path | bool | None:
    if value is None:
        return None
    if value is False:
        return False
    if isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    if isinstance(value, (str, os.PathLike)) and str(value):
        return Path(value).expanduser()
    raise ConfigError(name, "must be a directory path, or False to disable", source=source)


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("service_name", ("OTEL_SERVICE_NAME",), None, _text, "service.name resource"),
        Setting(
            "environment",
            ("LANGFUSE_TRACING_ENVIRONMENT", "LANGFUSE_ENVIRONMENT"),
            "default",
            _environment,
            ENVIRONMENT_RULE,
        ),
        Setting("release", ("LANGFUSE_RELEASE",), None, _text, "release of the app"),
        Setting("version", ("OTEL_LLM_VERSION",), None, _text, "version of the app"),
        Setting("sample_rate", ("LANGFUSE_SAMPLE_RATE",), 1.0, _unit_interval, "in [0, 1]"),
        Setting(
            "capture_content",
            ("OTEL_LLM_CAPTURE_CONTENT", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"),
            True,
            _boolean,
            "record inputs, outputs and messages",
        ),
        Setting(
            "max_content_chars",
            ("OTEL_LLM_MAX_CONTENT_CHARS",),
            1_000_000,
            _positive_int,
            "longest serialized input/output/metadata value before truncation",
        ),
        Setting(
            "max_queue_size",
            ("OTEL_LLM_MAX_QUEUE_SIZE",),
            16384,
            _positive_int,
            "spans buffered between the app and the worker",
        ),
        Setting(
            "estimate_usage",
            ("OTEL_LLM_ESTIMATE_USAGE",),
            True,
            _boolean,
            "estimate token counts offline when a generation reports none",
        ),
        Setting("spool_dir", ("OTEL_LLM_SPOOL_DIR",), None, _spool_dir, "disk spool folder"),
        Setting(
            "spool_max_bytes",
            ("OTEL_LLM_SPOOL_MAX_BYTES",),
            256 * 2**20,
            _positive_int,
            "size bound of the disk spool",
        ),
    )
}


def resolve(name: str, kwarg: Any, env: Mapping[str, str] | None = None) -> tuple[Any, str]:
    """Return (value, source) for one setting; source is 'argument', 'VAR' or 'default'."""
    setting = SETTINGS[name]
    if kwarg is not None:
        return setting.parse(kwarg, name, f"configure({name}=...)"), "argument"
    environ = os.environ if env is None else env
    for var in setting.env_vars:
        raw = environ.get(var, "")
        if raw.strip():
            return setting.parse(raw.strip(), name, f"environment variable {var}"), var
    return setting.default, "default"


def resolve_all(kwargs: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    return {name: resolve(name, kwargs.get(name)) for name in SETTINGS}
