"""SpanRecord: the one mutable type every processing stage reads and writes.

Since OpenTelemetry SDK 1.37 a span's attributes are frozen when ``end()`` runs,
before any processor sees the span. Rather than reach into private SDK fields,
each finished span becomes a ``SpanRecord`` on the worker thread; stages derive
on the record, the encoder reads it directly, and a plain ``SpanExporter`` gets a
``ReadableSpan`` rebuilt from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

__all__ = [
    "ResourceMerger",
    "SpanRecord",
    "plain_attributes",
    "record_from_span",
    "record_to_readable",
]

_EMPTY_RESOURCE = Resource.get_empty()


@dataclass(slots=True)
class SpanRecord:
    """A finished span as plain, mutable data. Stages change ``attributes`` in place."""

    trace_id: int
    span_id: int
    name: str
    start_time: int
    end_time: int
    attributes: dict[str, Any]
    parent_span_id: int | None = None
    parent_is_remote: bool = False
    kind: SpanKind = SpanKind.INTERNAL
    trace_flags: int = TraceFlags.SAMPLED
    trace_state: TraceState | None = None
    status_code: StatusCode = StatusCode.UNSET
    status_description: str | None = None
    events: Sequence[Event] = ()
    links: Sequence[Link] = ()
    resource: Resource = _EMPTY_RESOURCE
    scope: InstrumentationScope | None = None
    dropped_attributes: int = 0
    dropped_events: int = 0
    dropped_links: int = 0
    extras: dict[str, Any] = field(default_factory=dict)
    """Derived facts that are not attributes (e.g. media payloads for a sink)."""

    @property
    def trace_id_hex(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def span_id_hex(self) -> str:
        return f"{self.span_id:016x}"


def record_from_span(span: ReadableSpan, resource: Resource | None = None) -> SpanRecord:
    """Copy what a finished SDK span holds into a new record (worker thread only).

    Each SDK property is read once and the record is built positionally (in field
    order): this runs for every span.
    """
    ctx = span.context
    parent = span.parent
    status = span.status
    start = span.start_time or 0
    if ctx is not None:
        trace_id, span_id = ctx.trace_id, ctx.span_id
        flags, state = int(ctx.trace_flags), ctx.trace_state
    else:
        trace_id, span_id, flags, state = 0, 0, _SAMPLED, None
    return SpanRecord(
        trace_id,
        span_id,
        span.name,
        start,
        span.end_time or start,
        plain_attributes(span.attributes),
        parent.span_id if parent else None,
        bool(parent.is_remote) if parent else False,
        span.kind,
        flags,
        state,
        status.status_code,
        status.description,
        tuple(span.events),
        tuple(span.links),
        resource if resource is not None else span.resource,
        span.instrumentation_scope,
        span.dropped_attributes,
        span.dropped_events,
        span.dropped_links,
    )


_SAMPLED = int(TraceFlags.SAMPLED)


def plain_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plain dict copy of a span's attributes, read in one call.

    The SDK hands out a read-only proxy of its ``BoundedAttributes``; the proxy's
    ``copy()`` calls the mapping's own (a C-level dict copy), where ``dict(proxy)``
    — or ``in``/``get`` on the proxy — would run the mapping's Python methods per key.
    """
    if not attributes:
        return {}
    try:
        copied = attributes.copy()  # type: ignore[attr-defined]
    except Exception:  # a mapping without copy(): item by item
        copied = None
    return copied if type(copied) is dict else dict(attributes)


def record_to_readable(
    record: SpanRecord,
    attributes: Mapping[str, Any] | None = None,
    resource: Resource | None = None,
) -> ReadableSpan:
    """Rebuild an SDK ``ReadableSpan`` for destinations that speak ``SpanExporter``."""
    flags = TraceFlags(record.trace_flags)
    context = SpanContext(
        record.trace_id,
        record.span_id,
        is_remote=False,
        trace_flags=flags,
        trace_state=record.trace_state,
    )
    parent = None
    if record.parent_span_id is not None:
        parent = SpanContext(
            record.trace_id,
            record.parent_span_id,
            is_remote=record.parent_is_remote,
            trace_flags=flags,
        )
    return ReadableSpan(
        name=record.name,
        context=context,
        parent=parent,
        resource=resource if resource is not None else record.resource,
        attributes=dict(attributes if attributes is not None else record.attributes),
        events=record.events,
        links=record.links,
        kind=record.kind,
        status=Status(
            record.status_code,
            record.status_description if record.status_code is StatusCode.ERROR else None,
        ),
        start_time=record.start_time,
        end_time=record.end_time,
        instrumentation_scope=record.scope,
    )


class ResourceMerger:
    """Merges fixed attributes over span resources, once per distinct resource object.

    Spans of one provider share one ``Resource``, so the merge is cached by identity
    (bounded: a receiver may see many). Single-threaded: the worker that owns it.
    """

    __slots__ = ("_cache", "_overrides")

    def __init__(self, overrides: Mapping[str, Any] | None) -> None:
        self._overrides = Resource(dict(overrides)) if overrides else None
        self._cache: dict[int, tuple[Resource, Resource]] = {}

    @property
    def merges(self) -> bool:
        """False when there is nothing to merge (every resource is returned as it is)."""
        return self._overrides is not None

    def __call__(self, resource: Resource) -> Resource:
        if self._overrides is None:
            return resource
        cached = self._cache.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        merged = resource.merge(self._overrides)
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[id(resource)] = (resource, merged)
        return merged
