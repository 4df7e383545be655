"""Observation: one span with the LLM vocabulary (input, output, model, usage, level, ...).

An ``Observation`` wraps a live OpenTelemetry span. It is a context manager (the
span is current inside the block and ended on exit, exceptions recorded) and can
also be ended explicitly, from any thread, exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode

from otel_llm import runtime, semconv
from otel_llm.diagnostics import guard, handled, log_once
from otel_llm.instrument import fields
from otel_llm.instrument.ids import forced_trace_id, parse_trace_id
from otel_llm.serialize import to_attribute, to_json

__all__ = [
    "UNSET",
    "Observation",
    "open_observation",
    "start_generation",
    "start_observation",
    "update_span",
]


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Tells 'not given' from None (None is a legitimate input or output)."""

_end_lock = threading.Lock()  # makes end() exactly-once across threads


class Observation:
    """A started observation. Use as a context manager, or call :meth:`end`."""

    __slots__ = (
        "__weakref__",
        "_as_type",
        "_ended",
        "_last_activity_ns",
        "_max_chars",
        "_metadata",
        "_span",
        "_tokens",
    )

    def __init__(self, span: trace_api.Span, as_type: str | None, max_chars: int) -> None:
        self._span = span
        self._as_type = as_type  # None: read from the span when first asked (for_current_span)
        self._max_chars = max_chars
        self._ended = False
        self._metadata: dict[str, Any] | None = None
        self._tokens: list[object] | None = None  # context tokens of ``with`` blocks
        self._last_activity_ns = time.time_ns()

    # -- identity ---------------------------------------------------------------------
    @property
    def span(self) -> trace_api.Span:
        """The underlying OpenTelemetry span."""
        return self._span

    @property
    def id(self) -> str:
        """Observation (span) id: 16 lowercase hex digits."""
        return f"{self._span.get_span_context().span_id:016x}"

    @property
    def trace_id(self) -> str:
        """Trace id: 32 lowercase hex digits."""
        return f"{self._span.get_span_context().trace_id:032x}"

    @property
    def as_type(self) -> str:
        as_type = self._as_type
        if as_type is None:
            attributes = getattr(self._span, "attributes", None) or {}
            as_type = self._as_type = str(attributes.get(semconv.OBSERVATION_TYPE, "span"))
        return as_type

    @property
    def ended(self) -> bool:
        return self._ended

    # -- updates ----------------------------------------------------------------------
    def update(
        self,
        *,
        name: str | None = None,
        input: Any = UNSET,
        output: Any = UNSET,
        metadata: Any = None,
        model: str | None = None,
        model_parameters: Mapping[str, Any] | None = None,
        usage: Any = None,
        cost: Any = None,
        completion_start_time: Any = None,
        level: str | None = None,
        status_message: str | None = None,
        prompt: Any = None,
        version: str | None = None,
        **unknown: Any,
    ) -> Observation:
        """Set fields on the observation; values of the wrong type are counted and skipped."""
        try:  # what guard() does, without its two calls per update
            if self._ended:
                fields.invalid("update", "the observation has already ended")
                return self
            base = self._metadata
            if metadata is not None and base is None:
                base = self._existing_metadata()
            # The span's start is only needed for the time to first chunk.
            start = (
                getattr(self._span, "start_time", None)
                if completion_start_time is not None
                else None
            )
            attrs, self._metadata = _field_attributes(
                self._max_chars,
                start if isinstance(start, int) else None,
                base,
                input=input,
                output=output,
                metadata=metadata,
                model=model,
                model_parameters=model_parameters,
                usage=usage,
                cost=cost,
                completion_start_time=completion_start_time,
                level=level,
                status_message=status_message,
                prompt=prompt,
                version=version,
            )
            if unknown:
                for key in unknown:
                    fields.invalid(f"update.{key}", "not a field of update()")
            span = self._span
            if name is not None:
                span.update_name(str(name))
            if attrs:
                span.set_attributes(attrs)
                if semconv.OBSERVATION_LEVEL in attrs:
                    _set_error_status(span, attrs)
            self._last_activity_ns = time.time_ns()
        except Exception as exc:
            handled("observation.update", exc)
        return self

    def _update_output(self, output: Any) -> None:
        """``update(output=output)``, the one field ``@observe`` sets at the end, minus the rest."""
        try:
            if self._ended:
                fields.invalid("update", "the observation has already ended")
                return
            # One attribute: set_attribute skips the SDK's validation pass over a mapping.
            self._span.set_attribute(
                semconv.OBSERVATION_OUTPUT, to_attribute(output, max_chars=self._max_chars)
            )
            self._last_activity_ns = time.time_ns()
        except Exception as exc:
            handled("observation.update", exc)

    def _existing_metadata(self) -> dict[str, Any]:
        """Metadata already on the span (when this wrapper was made for a current span)."""
        attributes = getattr(self._span, "attributes", None) or {}
        raw = attributes.get(semconv.OBSERVATION_METADATA)
        if not isinstance(raw, str):
            return {}
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    @classmethod
    def for_current_span(cls) -> Observation | None:
        """Wrap the current span (any instrumentation's), or None when nothing records."""
        span = trace_api.get_current_span()
        if not span.is_recording():
            return None
        # as_type is read from the span's attributes only if asked for (updates never do).
        return cls(span, None, runtime.current().max_content_chars)

    def record_error(self, exc: BaseException) -> None:
        """Mark the observation failed by ``exc``: ERROR status, error.type, event, level."""
        with guard("observation.error"):
            if self._ended:
                return
            span = self._span
            kind = type(exc)
            error_type = kind.__qualname__
            if kind.__module__ not in ("builtins", "__main__"):
                error_type = f"{kind.__module__}.{error_type}"
            message = str(exc) or kind.__name__
            span.record_exception(exc)
            span.set_attributes(
                {
                    semconv.ERROR_TYPE: error_type,
                    semconv.OBSERVATION_LEVEL: "ERROR",
                    semconv.OBSERVATION_STATUS_MESSAGE: message[: self._max_chars],
                }
            )
            span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {message}"[:1024]))

    def end(self, *, end_time: int | None = None, **fields_: Any) -> None:
        """Apply final ``fields_`` (as in :meth:`update`) and end the span, exactly once."""
        if fields_:
            if len(fields_) == 1 and "output" in fields_:
                self._update_output(fields_["output"])
            else:
                self.update(**fields_)
        with _end_lock:
            if self._ended:
                return
            self._ended = True
        try:
            self._span.end(end_time=end_time)
        except Exception as exc:
            handled("observation.end", exc)

    def _end_idle(self) -> None:
        """End an observation nobody ended, at its last activity (GC / flush)."""
        if not self._ended:
            with guard("observation.auto_end"):
                self._span.set_attribute(semconv.OBSERVATION_AUTO_ENDED, True)
            self.end(end_time=self._last_activity_ns)

    # -- context manager --------------------------------------------------------------
    def __enter__(self) -> Observation:
        ctx = trace_api.set_span_in_context(self._span)
        token = otel_context.attach(ctx)
        if self._tokens is None:
            self._tokens = [token]
        else:
            self._tokens.append(token)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.record_error(exc)
        self.end()
        if self._tokens:
            otel_context.detach(self._tokens.pop())  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Observation(type={self.as_type!r}, id={self.id}, trace_id={self.trace_id})"


def _field_attributes(
    limit: int,
    start_ns: int | None,
    metadata_base: dict[str, Any] | None,
    *,
    input: Any = UNSET,
    output: Any = UNSET,
    metadata: Any = None,
    model: Any = None,
    model_parameters: Any = None,
    usage: Any = None,
    cost: Any = None,
    completion_start_time: Any = None,
    level: Any = None,
    status_message: Any = None,
    prompt: Any = None,
    version: Any = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Span attributes for the given fields, and the merged metadata dict (if any)."""
    attrs: dict[str, Any] = {}
    merged = metadata_base
    if input is not UNSET:
        attrs[semconv.OBSERVATION_INPUT] = to_attribute(input, max_chars=limit)
    if output is not UNSET:
        attrs[semconv.OBSERVATION_OUTPUT] = to_attribute(output, max_chars=limit)
    if metadata is not None:
        if type(metadata) is dict or isinstance(metadata, Mapping):
            merged = {**(metadata_base or {}), **metadata}
            attrs[semconv.OBSERVATION_METADATA] = to_json(merged, max_chars=limit)
        else:
            attrs[semconv.OBSERVATION_METADATA] = to_json(metadata, max_chars=limit)
    if model is not None:
        attrs[semconv.GEN_AI_REQUEST_MODEL] = str(model)
    if model_parameters is not None:
        attrs.update(fields.model_parameter_attributes(model_parameters, limit))
    if usage is not None:
        attrs[semconv.USAGE_RAW] = to_json(usage)
    if cost is not None:
        attrs[semconv.COST_RAW] = to_json(cost)
    if completion_start_time is not None:
        ns = fields.completion_start_ns(completion_start_time)
        if ns is not None:
            attrs[semconv.OBSERVATION_COMPLETION_START_TIME] = fields.iso_utc(ns)
            if start_ns is not None and ns >= start_ns:
                attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (ns - start_ns) / 1e9
    if level is not None:
        value = fields.level_value(level)
        if value is not None:
            attrs[semconv.OBSERVATION_LEVEL] = value
    if status_message is not None:
        attrs[semconv.OBSERVATION_STATUS_MESSAGE] = str(status_message)
    if prompt is not None:
        attrs.update(fields.prompt_attributes(prompt))
    if version is not None:
        attrs[semconv.OBSERVATION_VERSION] = str(version)
    return attrs, merged


_STATELESS_FIELDS = frozenset(
    {
        "input",
        "output",
        "model",
        "model_parameters",
        "usage",
        "cost",
        "level",
        "status_message",
        "prompt",
        "version",
    }
)
"""Fields of update() that depend on nothing but their value (not name, metadata, timing)."""


def update_span(span: trace_api.Span, max_chars: int, fields_: dict[str, Any]) -> None:
    """``Observation(span, ...).update(**fields_)`` for a live span no Observation tracks.

    ``update_current_observation`` uses it: when every field is stateless, the attributes
    are set without building the wrapper; anything else goes through ``update``.
    """
    if not fields_.keys() <= _STATELESS_FIELDS:
        Observation(span, None, max_chars).update(**fields_)
        return
    try:
        attrs, _ = _field_attributes(max_chars, None, None, **fields_)
        if attrs:
            span.set_attributes(attrs)
            if semconv.OBSERVATION_LEVEL in attrs:
                _set_error_status(span, attrs)
    except Exception as exc:
        handled("observation.update", exc)


def _set_error_status(span: trace_api.Span, attrs: Mapping[str, Any]) -> None:
    if attrs.get(semconv.OBSERVATION_LEVEL) == "ERROR":
        span.set_status(Status(StatusCode.ERROR, attrs.get(semconv.OBSERVATION_STATUS_MESSAGE)))


def start_observation(
    name: str,
    as_type: str = "span",
    input: Any = UNSET,
    metadata: Any = None,
    model: str | None = None,
    model_parameters: Mapping[str, Any] | None = None,
    usage: Any = None,
    level: str | None = None,
    status_message: str | None = None,
    prompt: Any = None,
    entry: bool = False,
    *,
    trace_id: str | None = None,
    parent: Observation | trace_api.SpanContext | None = None,
    cost: Any = None,
    completion_start_time: Any = None,
    start_time: int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Observation:
    """Start an observation as a child of the current span (or of ``parent``).

    ``trace_id`` (32 hex digits, e.g. from :func:`otel_llm.create_trace_id`) starts
    a new trace with that id. Use the result in a ``with`` block, or call ``end()``.
    """
    rt = runtime.current()
    kind = as_type if as_type in semconv.AS_TYPES else _bad_type(as_type)
    start_ns = start_time if start_time is not None else time.time_ns()
    # Everything known up front goes into start_span: one attribute validation pass,
    # and on_start (entry marking) sees the observation type.
    attrs, metadata_dict = _field_attributes(
        rt.max_content_chars,
        start_ns,
        None,
        input=input,
        metadata=metadata,
        model=model,
        model_parameters=model_parameters,
        usage=usage,
        cost=cost,
        completion_start_time=completion_start_time,
        level=level,
        status_message=status_message,
        prompt=prompt,
    )
    attrs[semconv.OBSERVATION_TYPE] = kind
    attrs[semconv.GEN_AI_OPERATION_NAME] = semconv.OPERATION_BY_TYPE[kind]
    if entry:
        attrs[semconv.GEN_AI_IS_ENTRY] = True
    if attributes:
        attrs.update(attributes)
    ctx = _parent_context(parent, trace_id)
    observation = open_observation(
        rt, name, kind, attrs, start_ns, entry, context=ctx, trace_id=trace_id
    )
    observation._metadata = metadata_dict
    return observation


def open_observation(
    rt: runtime.Runtime,
    name: object,
    kind: str,
    attrs: dict[str, Any],
    start_ns: int,
    entry: bool,
    *,
    context: otel_context.Context | None = None,
    trace_id: str | None = None,
) -> Observation:
    """Start the span of an observation whose attributes are already built (``attrs``).

    The second half of :func:`start_observation`, shared with ``@observe``, which
    builds its few attributes itself.
    """
    forced = parse_trace_id(trace_id) if trace_id is not None else None
    token = forced_trace_id.set(forced) if forced else None
    try:
        span = rt.get_tracer().start_span(
            str(name), context=context, attributes=attrs, start_time=start_ns
        )
    finally:
        if token is not None:
            forced_trace_id.reset(token)
    if semconv.OBSERVATION_LEVEL in attrs:
        _set_error_status(span, attrs)
    observation = Observation(span, kind, rt.max_content_chars)
    if entry:
        processor = rt.processor
        if processor is not None:
            sc = span.get_span_context()
            processor.note_explicit_entry(sc.trace_id, sc.span_id)
    return observation


def start_generation(name: str, model: str | None = None, **kwargs: Any) -> Observation:
    """``start_observation(name, as_type="generation", model=model, ...)``."""
    kwargs.setdefault("as_type", "generation")
    return start_observation(name, model=model, **kwargs)


def _bad_type(as_type: object) -> str:
    log_once("observation", "as_type", f"as_type must be one of {sorted(semconv.AS_TYPES)}")
    fields.invalid("as_type", "unknown observation type; using 'span'")
    return "span"


def _parent_context(
    parent: Observation | trace_api.SpanContext | None, trace_id: str | None
) -> otel_context.Context | None:
    if trace_id is not None:
        # A new trace: start from an empty span context so the id generator is asked.
        return trace_api.set_span_in_context(trace_api.INVALID_SPAN)
    if isinstance(parent, Observation):
        return trace_api.set_span_in_context(parent.span)
    if isinstance(parent, trace_api.SpanContext):
        return trace_api.set_span_in_context(trace_api.NonRecordingSpan(parent))
    return None
