"""Helpers that act on the current span and trace (the one active in this context)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace as trace_api

from otel_llm import runtime, semconv
from otel_llm.context import trace_attributes
from otel_llm.diagnostics import count, guard, handled, log_once
from otel_llm.instrument.observation import UNSET, update_span
from otel_llm.scores import DATA_TYPES, Score, infer_data_type
from otel_llm.serialize import to_attribute

__all__ = [
    "get_current_observation_id",
    "get_current_trace_id",
    "mark_entry",
    "score",
    "update_current_observation",
    "update_current_trace",
]


def get_current_trace_id() -> str | None:
    """The current trace id as 32 lowercase hex digits, or None outside a span."""
    ctx = trace_api.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


def get_current_observation_id() -> str | None:
    """The current span id as 16 lowercase hex digits, or None outside a span."""
    ctx = trace_api.get_current_span().get_span_context()
    return f"{ctx.span_id:016x}" if ctx.is_valid else None


def update_current_observation(**fields: Any) -> None:
    """``Observation.update(**fields)`` on the current span (no-op outside one)."""
    try:  # what guard() does, without its calls on every update
        span = trace_api.get_current_span()
        if not span.is_recording():
            count("ignored.no_current_span")
            return
        update_span(span, runtime.current().max_content_chars, fields)
    except Exception as exc:
        handled("update_current_observation", exc)


def update_current_trace(
    name: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    release: str | None = None,
    version: str | None = None,
    input: Any = UNSET,
    output: Any = UNSET,
) -> None:
    """Set trace-level fields on the current span and on spans started later in the trace."""
    with guard("update_current_trace"):
        span = trace_api.get_current_span()
        if not span.is_recording():
            count("ignored.no_current_span")
            return
        attrs = trace_attributes(
            trace_name=name,
            user_id=user_id,
            session_id=session_id,
            release=release,
            version=version,
            tags=tuple(str(t) for t in tags) if tags else (),
            metadata=metadata,
        )
        limit = runtime.current().max_content_chars
        if input is not UNSET:
            attrs[semconv.TRACE_INPUT] = to_attribute(input, max_chars=limit)
        if output is not UNSET:
            attrs[semconv.TRACE_OUTPUT] = to_attribute(output, max_chars=limit)
        span.set_attributes(attrs)
        processor = runtime.current().processor
        if processor is not None:
            later = {k: v for k, v in attrs.items() if k not in _SPAN_ONLY}
            processor.update_trace(span.get_span_context().trace_id, later)


_SPAN_ONLY = frozenset({semconv.TRACE_INPUT, semconv.TRACE_OUTPUT})


def mark_entry() -> None:
    """Make the current span its trace's entry (``gen_ai.is_entry``), overriding the default."""
    with guard("mark_entry"):
        span = trace_api.get_current_span()
        if not span.is_recording():
            count("ignored.no_current_span")
            return
        span.set_attribute(semconv.GEN_AI_IS_ENTRY, True)
        processor = runtime.current().processor
        if processor is not None:
            ctx = span.get_span_context()
            processor.note_explicit_entry(ctx.trace_id, ctx.span_id)


def score(
    name: str,
    value: float | str | bool,
    *,
    trace_id: str | None = None,
    observation_id: str | None = None,
    data_type: str | None = None,
    comment: str | None = None,
) -> None:
    """Record a score for a trace (default: the current one) or one of its observations.

    ``data_type`` (NUMERIC, BOOLEAN, CATEGORICAL) is inferred from ``value`` when
    not given. Scores reach every destination that stores them.
    """
    with guard("score"):
        made = _make_score(name, value, trace_id, observation_id, data_type, comment)
        if made is None:
            return
        processor = runtime.current().processor
        if processor is None:
            count("dropped.score_not_configured")
            log_once("score", "unconfigured", "score() before configure(): dropped")
            return
        processor.submit_score(made)


def _reject(why: str) -> None:
    count("invalid_value.score")
    log_once("score", why, f"score dropped: {why}")


def _make_score(
    name: object,
    value: object,
    trace_id: object,
    observation_id: object,
    data_type: object,
    comment: object,
) -> Score | None:
    if trace_id is None:
        trace_id = get_current_trace_id()
        if observation_id is None:
            observation_id = get_current_observation_id()
    if not isinstance(name, str) or not name:
        _reject("name must be a non-empty string")
        return None
    if trace_id is None:
        _reject("no trace_id given and no current trace")
        return None
    inferred = infer_data_type(value)
    if inferred is None:
        _reject("value must be a finite number, a bool or a string")
        return None
    kind: str = inferred
    if data_type is not None:
        kind = str(data_type).upper()
        if kind not in DATA_TYPES:
            _reject(f"data_type must be one of {', '.join(DATA_TYPES)}")
            return None
        compatible = kind == inferred or (kind == "BOOLEAN" and value in (0, 1))
        if kind == "NUMERIC" and inferred == "BOOLEAN":
            compatible = True
        if not compatible:
            _reject(f"value does not fit data_type {kind}")
            return None
    if kind == "BOOLEAN":
        value = 1.0 if value else 0.0
    elif kind == "NUMERIC":
        value = float(value)  # type: ignore[arg-type]
    return Score(
        name=name,
        value=value,  # type: ignore[arg-type]
        data_type=kind,  # type: ignore[arg-type]
        trace_id=str(trace_id).lower().replace("-", ""),
        observation_id=str(observation_id) if observation_id else None,
        comment=str(comment) if comment is not None else None,
    )
