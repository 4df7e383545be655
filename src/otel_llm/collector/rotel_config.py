"""The rotel processor's settings, read from environment variables once.

rotel passes no arguments to a Python processor, so everything comes from the
agent's environment:

================================  ====================================================
``OTEL_LLM_MASKING``              ``on`` (default: built-in scrubbers and secret-key
                                  rules), ``off``, a JSON object of masking options, or
                                  the path of a ``.json``/``.toml`` file holding one
``OTEL_LLM_MASK_FUNCTION``        ``package.module:function``: a ``mask(data) -> data``
                                  function applied to every content value (optional)
``OTEL_LLM_PRICING``              path of a ``.json``/``.toml`` price table, or a JSON
                                  object (extra/overriding prices; genai-prices is
                                  always there underneath)
``OTEL_LLM_MEDIA``                ``on`` (default), ``off``, or a JSON object / file of
                                  media options (``min_bytes``, ``max_bytes``…)
``OTEL_LLM_CAPTURE_CONTENT``      ``true`` (default) / ``false``: false removes content
                                  after usage and cost were derived from it
``OTEL_LLM_ESTIMATE_USAGE``       ``true`` (default) / ``false``
``OTEL_LLM_MAX_CONTENT_CHARS``    longest content value kept (default 1,000,000)
``OTEL_LLM_ROTEL_REVERSE_ARRAYS`` ``true`` (default) / ``false``: write arrays
                                  pre-reversed, cancelling the agent's reversal
``OTEL_LLM_ROTEL_STATS_FILE``     a path: the processor's counters are written there,
                                  as JSON, after every batch
================================  ====================================================

A bad value never stops rotel: the problem is logged and kept in ``stats()``, and
the setting falls back to a safe value. For masking, "safe" means closed: if the
masking settings cannot be used, the default scrubbers apply and content is removed
from every span (as with ``OTEL_LLM_CAPTURE_CONTENT=false``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from otel_llm.errors import ConfigError
from otel_llm.processing.cost import compile_prices
from otel_llm.processing.masker import OTHER
from otel_llm.processing.masking import compile_masker
from otel_llm.processing.media import compile_media_options
from otel_llm.processing.stage import StageContext
from otel_llm.settings import SETTINGS, resolve

__all__ = ["ENV_VARS", "RotelConfig", "config_from_env"]

ENV_VARS = (
    "OTEL_LLM_MASKING",
    "OTEL_LLM_MASK_FUNCTION",
    "OTEL_LLM_PRICING",
    "OTEL_LLM_MEDIA",
    "OTEL_LLM_CAPTURE_CONTENT",
    "OTEL_LLM_ESTIMATE_USAGE",
    "OTEL_LLM_MAX_CONTENT_CHARS",
    "OTEL_LLM_ROTEL_REVERSE_ARRAYS",
    "OTEL_LLM_ROTEL_STATS_FILE",
)
"""Every variable the rotel processor reads (plus the standard
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, after ``OTEL_LLM_CAPTURE_CONTENT``)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass
class RotelConfig:
    """Compiled settings: the stages' shared context and the processor's own switches."""

    context: StageContext
    reverse_arrays: bool = True
    stats_file: Path | None = None
    problems: list[str] = field(default_factory=list)
    """Every bad setting, as ``ConfigError`` text (names the setting, never a secret)."""
    masking_fallback: bool = False
    """True when the masking settings were unusable: content is removed from every span."""

    @property
    def protects(self) -> bool:
        """False when masking can change nothing (then a failure leaves a span as it was)."""
        ctx = self.context
        return not (ctx.capture_content and ctx.masker is not None and ctx.masker.inert)

    def sensitive(self, key: str) -> bool:
        """True when masking covers the attribute ``key`` (content, secret key, free text)."""
        masker = self.context.masker
        return masker is not None and masker.kind(key) != OTHER


def config_from_env(env: Mapping[str, str] | None = None) -> RotelConfig:
    """Read every setting from ``env`` (default ``os.environ``); never raises ConfigError."""
    environ = os.environ if env is None else env
    problems: list[str] = []

    def attempt(default: Any, build: Callable[[], Any]) -> Any:
        try:
            return build()
        except ConfigError as exc:
            problems.append(str(exc))
            return default

    capture = attempt(False, lambda: resolve("capture_content", None, environ)[0])
    masking_fallback = False
    try:
        masker = compile_masker(
            _mask_function(environ.get("OTEL_LLM_MASK_FUNCTION", "").strip()),
            _options("masking", environ.get("OTEL_LLM_MASKING", ""), "OTEL_LLM_MASKING"),
        )
    except ConfigError as exc:
        problems.append(str(exc))
        masker = compile_masker(None, None)
        masking_fallback = True
        capture = False
    pricing = environ.get("OTEL_LLM_PRICING", "").strip()
    prices = attempt(
        compile_prices(None), lambda: compile_prices(_pricing(pricing) if pricing else None)
    )
    media = attempt(
        compile_media_options(None),
        lambda: compile_media_options(
            _options("media", environ.get("OTEL_LLM_MEDIA", ""), "OTEL_LLM_MEDIA")
        ),
    )
    context = StageContext(
        capture_content=capture,
        estimate_usage=attempt(True, lambda: resolve("estimate_usage", None, environ)[0]),
        max_content_chars=attempt(
            SETTINGS["max_content_chars"].default,
            lambda: resolve("max_content_chars", None, environ)[0],
        ),
        masker=masker,
        prices=prices,
        media=media,
    )
    reverse = attempt(
        True,
        lambda: _flag(environ.get("OTEL_LLM_ROTEL_REVERSE_ARRAYS", ""), True, "reverse_arrays"),
    )
    stats = environ.get("OTEL_LLM_ROTEL_STATS_FILE", "").strip()
    return RotelConfig(
        context=context,
        reverse_arrays=reverse,
        stats_file=Path(stats).expanduser() if stats else None,
        problems=problems,
        masking_fallback=masking_fallback,
    )


def _flag(raw: str, default: bool, name: str) -> bool:
    text = raw.strip().lower()
    if not text:
        return default
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    source = f"environment variable OTEL_LLM_ROTEL_{name.upper()}"
    raise ConfigError(name, f"must be true or false, got {raw!r}", source=source)


def _options(name: str, raw: str, var: str) -> bool | Mapping[str, Any] | None:
    """``on``/``off``, a JSON object, or a .json/.toml file holding one."""
    text = raw.strip()
    source = f"environment variable {var}"
    if not text:
        return None
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    table = _json_object(text, name, source) if text.startswith("{") else _file(text, name)
    if not isinstance(table, Mapping):
        rule = "must be on, off, a JSON object or a file holding one"
        raise ConfigError(name, rule, source=source)
    return table


def _pricing(text: str) -> Mapping[str, Any] | str:
    if text.startswith("{"):
        table = _json_object(text, "pricing", "environment variable OTEL_LLM_PRICING")
        if not isinstance(table, Mapping):
            raise ConfigError("pricing", "must be a JSON object", source="OTEL_LLM_PRICING")
        return table
    return text  # a path: compile_prices reads and checks it


def _json_object(text: str, name: str, source: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(name, f"is not valid JSON ({exc})", source=source) from None


def _file(text: str, name: str) -> Any:
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigError(name, "file name must end in .json or .toml", source=str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        rule = f"cannot read the file ({exc.strerror})"
        raise ConfigError(name, rule, source=str(path)) from None
    if suffix == ".json":
        return _json_object(data.decode("utf-8", "replace"), name, str(path))
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(data.decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, f"is not valid TOML ({exc})", source=str(path)) from None


def _mask_function(spec: str) -> Callable[..., Any] | None:
    """``package.module:function`` → the function (imported once, at load time)."""
    if not spec:
        return None
    source = "environment variable OTEL_LLM_MASK_FUNCTION"
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError("mask", "must be written package.module:function", source=source)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as exc:
        rule = f"cannot import {spec} ({type(exc).__name__})"
        raise ConfigError("mask", rule, source=source) from None
    if not callable(target):
        raise ConfigError("mask", f"{spec} is not a function", source=source)
    return target  # type: ignore[no-any-return]
