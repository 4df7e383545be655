"""Langfuse SDK (v3 and later) span attributes → canonical ones.

Why: people move from the Langfuse SDK to otel-llm gradually, and libraries built
on it keep writing ``langfuse.*`` keys onto spans that reach our processor. Read
into our own keys, those spans get the same usage, cost, masking and routing as
ours, and the Langfuse dialect writes the ``langfuse.*`` keys back for the
Langfuse destination — so every translated ``langfuse.*`` key is removed here.

Value shapes follow what the SDK writes (``reference/langfuse-sdk.md`` §1):
input/output are raw strings or JSON, metadata is either one JSON value or one
key per top-level field (JSON-encoded from v5 on, raw strings before),
``completion_start_time`` is a double-quoted JSON string, tags a string array,
the prompt version an int. Keys the server reads for compatibility
(``langfuse.user.id``, ``langfuse.session.id``, ``langfuse.tags``,
``langfuse.metadata``, ``langfuse.prompt.*``) are read too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from otel_llm import semconv
from otel_llm.instrument.fields import model_parameter_attributes
from otel_llm.processing.normalize_common import (
    Families,
    invalid,
    move_content,
    set_type,
    text_value,
    token_count,
    translate_metadata,
    translate_tags,
)
from otel_llm.processing.normalize_parts import parse_json
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext

__all__ = ["langfuse"]

_TEXT: Final = {
    "langfuse.trace.name": semconv.TRACE_NAME,
    "langfuse.environment": semconv.ENVIRONMENT,
    "langfuse.release": semconv.RELEASE,
    "langfuse.version": semconv.VERSION,
    "langfuse.user.id": semconv.USER_ID,
    "langfuse.session.id": semconv.SESSION_ID,
    "langfuse.observation.status_message": semconv.OBSERVATION_STATUS_MESSAGE,
    "langfuse.observation.model.name": semconv.GEN_AI_REQUEST_MODEL,
    "langfuse.observation.prompt.name": semconv.PROMPT_NAME,
    "langfuse.prompt.name": semconv.PROMPT_NAME,
}
_CONTENT: Final = {
    "langfuse.observation.input": semconv.OBSERVATION_INPUT,
    "langfuse.observation.output": semconv.OBSERVATION_OUTPUT,
    "langfuse.trace.input": semconv.TRACE_INPUT,
    "langfuse.trace.output": semconv.TRACE_OUTPUT,
}
_JSON_OBJECTS: Final = {
    "langfuse.observation.usage_details": semconv.USAGE_RAW,  # parsed by the usage stage
    "langfuse.observation.cost_details": semconv.COST_RAW,  # parsed by the cost stage
}
_TYPE: Final = "langfuse.observation.type"
_LEVEL: Final = "langfuse.observation.level"
_PROMPT_VERSIONS: Final = ("langfuse.observation.prompt.version", "langfuse.prompt.version")
_TAGS: Final = ("langfuse.trace.tags", "langfuse.tags")
_COMPLETION_START: Final = "langfuse.observation.completion_start_time"
_PARAMETERS: Final = "langfuse.observation.model.parameters"
_OBSERVATION_METADATA: Final = "langfuse.observation.metadata"
_TRACE_METADATA: Final = ("langfuse.trace.metadata", "langfuse.metadata")

_LEVELS: Final = {
    "DEBUG": "DEBUG",
    "TRACE": "DEBUG",
    "VERBOSE": "DEBUG",
    "DEFAULT": "DEFAULT",
    "INFO": "DEFAULT",
    "WARNING": "WARNING",
    "WARN": "WARNING",
    "ERROR": "ERROR",
    "FATAL": "ERROR",
    "CRITICAL": "ERROR",
}
"""Level spellings the Langfuse server accepts → our four levels."""


def langfuse(record: SpanRecord, ctx: StageContext, families: Families) -> None:
    """Translate every ``langfuse.*`` key of ``record`` the server would read."""
    if not families.langfuse:
        return
    attributes = record.attributes
    _observation_type(attributes, ctx)
    for theirs, ours in _TEXT.items():
        if theirs in attributes:
            _move(attributes, ctx, theirs, ours, text_value(attributes[theirs]))
    for theirs, ours in _CONTENT.items():
        move_content(attributes, ctx, theirs, ours, "langfuse")
    for theirs, ours in _JSON_OBJECTS.items():
        if theirs in attributes:
            value = attributes[theirs]
            is_object = isinstance(value, str) and isinstance(parse_json(value), dict)
            _move(attributes, ctx, theirs, ours, value if is_object else None)
    if _LEVEL in attributes:
        level = attributes[_LEVEL]
        _move(attributes, ctx, _LEVEL, semconv.OBSERVATION_LEVEL, _level(level))
    for key in _PROMPT_VERSIONS:
        if key in attributes:
            _move(attributes, ctx, key, semconv.PROMPT_VERSION, token_count(attributes[key]))
    translate_tags(attributes, ctx, _TAGS, "langfuse", remove=True)
    if _COMPLETION_START in attributes:
        start = _iso_utc(attributes[_COMPLETION_START])
        _move(attributes, ctx, _COMPLETION_START, semconv.OBSERVATION_COMPLETION_START_TIME, start)
    _parameters(attributes, ctx)
    _metadata(attributes, ctx, families.langfuse)


def _move(
    attributes: dict[str, Any], ctx: StageContext, theirs: str, ours: str, value: object
) -> None:
    """Set ``ours`` (if absent) and drop ``theirs``; a None value is counted instead."""
    if value is None:
        invalid(ctx, "langfuse", theirs.removeprefix("langfuse."))
        return
    attributes.setdefault(ours, value)
    del attributes[theirs]


def _observation_type(attributes: dict[str, Any], ctx: StageContext) -> None:
    if _TYPE not in attributes:
        return
    value = attributes[_TYPE]
    as_type = value.lower() if isinstance(value, str) else ""
    if as_type not in semconv.AS_TYPES:
        invalid(ctx, "langfuse", "observation.type")
        return
    set_type(attributes, as_type)
    del attributes[_TYPE]


def _level(value: object) -> str | None:
    return _LEVELS.get(value.strip().upper()) if isinstance(value, str) else None


def _iso_utc(value: object) -> str | None:
    """An ISO timestamp (also double-quoted JSON, as the SDK writes it) as UTC ``…Z``."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text[:1] == '"':
        decoded = parse_json(text)
        if not isinstance(decoded, str):
            return None
        text = decoded.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    utc = moment.astimezone(dt.timezone.utc)
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parameters(attributes: dict[str, Any], ctx: StageContext) -> None:
    if _PARAMETERS not in attributes:
        return
    raw = attributes[_PARAMETERS]
    params = parse_json(raw) if isinstance(raw, str) else None
    if not isinstance(params, dict):
        invalid(ctx, "langfuse", "model.parameters")
        return
    for key, value in model_parameter_attributes(params, ctx.max_content_chars).items():
        attributes.setdefault(key, value)
    del attributes[_PARAMETERS]


def _metadata(attributes: dict[str, Any], ctx: StageContext, keys: list[str]) -> None:
    observation: dict[str, str] = {}
    trace: dict[str, str] = {}
    for key in keys:
        for prefix, target in (
            ("langfuse.observation.metadata.", observation),
            ("langfuse.trace.metadata.", trace),
            ("langfuse.metadata.", trace),
        ):
            if key.startswith(prefix) and key in attributes:
                target[key] = key[len(prefix) :]
                break
    translate_metadata(
        attributes,
        ctx,
        (_OBSERVATION_METADATA,),
        observation,
        semconv.OBSERVATION_METADATA,
        "langfuse",
    )
    translate_metadata(attributes, ctx, _TRACE_METADATA, trace, semconv.TRACE_METADATA, "langfuse")
