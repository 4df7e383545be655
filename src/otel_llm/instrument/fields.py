"""Observation fields → span attributes, the one place that knows the mapping.

Used on the app thread by every helper (decorator, context managers, stateful
client), so each function is small and total: a value of the wrong type is
counted and skipped with a one-time log line, never raised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from otel_llm import semconv
from otel_llm.diagnostics import count, log_once
from otel_llm.serialize import to_attribute, to_json

__all__ = [
    "MODEL_PARAMETER_KEYS",
    "completion_start_ns",
    "content_attribute",
    "invalid",
    "level_value",
    "model_parameter_attributes",
    "prompt_attributes",
]

MODEL_PARAMETER_KEYS: dict[str, str] = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
    "stop": "gen_ai.request.stop_sequences",
    "stop_sequences": "gen_ai.request.stop_sequences",
}
"""Provider parameter names → semconv v1.41 request attributes."""


def invalid(field: str, why: str) -> None:
    """Count and log (once per field) a value that was skipped."""
    count(f"invalid_value.{field}")
    log_once("observation", f"invalid.{field}", f"{field} ignored: {why}")


def content_attribute(value: object, max_chars: int) -> str:
    return to_attribute(value, max_chars=max_chars)


def model_parameter_attributes(params: object, max_chars: int) -> dict[str, Any]:
    if type(params) is not dict and not isinstance(params, Mapping):
        invalid("model_parameters", "must be a mapping")
        return {}
    attrs: dict[str, Any] = {semconv.OBSERVATION_MODEL_PARAMETERS: to_json(params)}
    keys = MODEL_PARAMETER_KEYS
    for name, value in params.items():
        key = keys.get(name) if type(name) is str or isinstance(name, str) else None
        if key is None or value is None:
            continue
        kind = type(value)
        if kind is float or kind is int:  # the common case: temperature, max_tokens...
            if key != _STOP_SEQUENCES:
                attrs[key] = value
        elif key == _STOP_SEQUENCES:
            if isinstance(value, str):
                attrs[key] = (value,)
            elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                attrs[key] = tuple(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[key] = value
    return attrs


_STOP_SEQUENCES = "gen_ai.request.stop_sequences"


def level_value(level: object) -> str | None:
    if isinstance(level, str) and level.upper() in semconv.LEVELS:
        return level.upper()
    invalid("level", f"must be one of {', '.join(semconv.LEVELS)}")
    return None


def prompt_attributes(prompt: object) -> dict[str, Any]:
    """``{"name", "version"}`` mapping or any object with those attributes."""
    if isinstance(prompt, Mapping):
        name, version = prompt.get("name"), prompt.get("version")
    else:
        name, version = getattr(prompt, "name", None), getattr(prompt, "version", None)
    if getattr(prompt, "is_fallback", False) is True:
        return {}  # a Langfuse fallback prompt is not a managed version
    if not isinstance(name, str) or not name:
        invalid("prompt", "needs a non-empty string name")
        return {}
    attrs: dict[str, Any] = {semconv.PROMPT_NAME: name}
    if isinstance(version, int) and not isinstance(version, bool):
        attrs[semconv.PROMPT_VERSION] = version
    elif version is not None:
        invalid("prompt", "version must be an integer")
    return attrs


def completion_start_ns(value: object) -> int | None:
    """A datetime or epoch seconds (OpenAI's ``created``) as epoch nanoseconds."""
    try:
        ns = _completion_start_ns(value)
    except (OverflowError, ValueError, OSError):
        ns = None  # datetime.min/max, inf, 1e300, 10**400: not a moment we can record
    if ns is None or not 0 < ns < _YEAR_3000_NS:
        invalid("completion_start_time", "must be a datetime or epoch seconds")
        return None
    return ns


_YEAR_3000_NS = 32503680000 * 10**9


def _completion_start_ns(value: object) -> int | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.astimezone()  # naive means local time, as Python does
        return int(value.timestamp() * 1e9)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        seconds = float(value)
        if seconds > 1e14:  # nanoseconds
            seconds /= 1e9
        elif seconds > 1e11:  # milliseconds
            seconds /= 1e3
        return int(seconds * 1e9)
    return None


def iso_utc(ns: int) -> str:
    moment = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
