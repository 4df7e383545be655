"""rotel span ⇄ ``SpanRecord``: read a span, let the stages work, write back what changed.

:func:`read_span` copies a rotel span into a :class:`SpanRecord` (attributes, events,
status, ids, times) and keeps a snapshot of what it read. :func:`write_span` compares
the record after the stages with that snapshot and edits the rotel span in place:
changed attributes are replaced, removed ones deleted, new ones appended, events that
a stage dropped are deleted and the status message is rewritten if it changed.
Nothing else on the span is touched (its resource and links are never read).

Values a ``SpanRecord`` cannot hold (a ``KeyValueList``, bytes, nested or mixed
arrays, an empty value) stay on the span untouched, with one exception: under a key
that masking covers (content, secret-looking or free text) such a value is handed to
the stages as JSON text, so masking sees it, and is written back as that text only if
masking changed it.

:func:`strip_sensitive` is the fail-closed path: when a span could not be processed
it removes what masking would have covered, working on the rotel span directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry.sdk.trace import Event
from opentelemetry.trace import SpanKind, TraceFlags
from opentelemetry.trace.status import StatusCode

from otel_llm.collector.rotel_values import (
    AttributeListLike,
    EventListLike,
    RotelTypes,
    SpanLike,
    has_array,
    is_attribute_value,
    json_text,
    make_value,
    read_value,
    same_value,
)
from otel_llm.processing.record import SpanRecord

__all__ = [
    "MESSAGE_EVENT_PREFIX",
    "AttributeSnapshot",
    "EventMismatch",
    "SpanSnapshot",
    "read_attributes",
    "read_span",
    "rewrite_arrays",
    "strip_sensitive",
    "write_attributes",
    "write_span",
]

MESSAGE_EVENT_PREFIX: Final = "gen_ai."
"""Events named ``gen_ai.*`` carry message content in every attribute (as masking treats them)."""

_KINDS: Final = {
    1: SpanKind.INTERNAL,
    2: SpanKind.SERVER,
    3: SpanKind.CLIENT,
    4: SpanKind.PRODUCER,
    5: SpanKind.CONSUMER,
}
"""OTLP ``Span.kind`` (0 = unspecified) → SDK ``SpanKind``."""

Sensitive = Callable[[str], bool]
"""``sensitive(key)``: True when masking covers the attribute ``key``."""


class EventMismatch(Exception):
    """The stages returned events that are not a subsequence of the span's events."""


@dataclass
class AttributeSnapshot:
    """One attribute list as read: per position its key and value, and the record's view."""

    keys: list[str] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    given: dict[str, Any] = field(default_factory=dict)
    """What the stages were given, per key (the last duplicate wins, as in a dict)."""
    as_json: dict[str, str] = field(default_factory=dict)
    """Keys whose structured value was given as JSON text (masked keys only)."""


@dataclass
class _EventRead:
    name: str
    time: int
    snapshot: AttributeSnapshot
    event: Event


@dataclass
class SpanSnapshot:
    """What :func:`read_span` read, for :func:`write_span` to compare against."""

    attributes: AttributeSnapshot
    events: list[_EventRead]
    status_message: str | None


def read_attributes(
    attributes: AttributeListLike, types: RotelTypes, sensitive: Sensitive, *, all_sensitive: bool
) -> AttributeSnapshot:
    snap = AttributeSnapshot()
    for kv in attributes:
        key = kv.key
        value = read_value(kv.value, types)
        snap.keys.append(key)
        snap.values.append(value)
        if is_attribute_value(value):
            snap.given[key] = value
            snap.as_json.pop(key, None)
        elif value is not None and (all_sensitive or sensitive(key)):
            text = json_text(value)
            snap.given[key] = text
            snap.as_json[key] = text
        else:  # structured and not masked: stays on the span untouched
            snap.given.pop(key, None)
            snap.as_json.pop(key, None)
    return snap


def read_span(
    span: SpanLike, types: RotelTypes, sensitive: Sensitive
) -> tuple[SpanRecord, SpanSnapshot]:
    """A record of ``span`` for the stages, and the snapshot :func:`write_span` needs."""
    attributes = read_attributes(span.attributes, types, sensitive, all_sensitive=False)
    events: list[_EventRead] = []
    for event in span.events:
        name = event.name
        snap = read_attributes(
            event.attributes,
            types,
            sensitive,
            all_sensitive=name.startswith(MESSAGE_EVENT_PREFIX),
        )
        time = event.time_unix_nano
        events.append(_EventRead(name, time, snap, Event(name, dict(snap.given), time)))
    status = span.status
    code = status.code if status is not None else 0
    message = (status.message or None) if status is not None else None
    parent = span.parent_span_id
    record = SpanRecord(
        trace_id=int.from_bytes(span.trace_id, "big"),
        span_id=int.from_bytes(span.span_id, "big"),
        name=span.name,
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        attributes=dict(attributes.given),
        parent_span_id=int.from_bytes(parent, "big") if parent else None,
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL),
        trace_flags=(span.flags & 0xFF) or TraceFlags.SAMPLED,
        status_code=StatusCode(code) if code in (0, 1, 2) else StatusCode.UNSET,
        status_description=message,
        events=tuple(e.event for e in events),
    )
    return record, SpanSnapshot(attributes, events, message)


def write_attributes(
    attributes: AttributeListLike,
    snap: AttributeSnapshot,
    final: Mapping[str, Any],
    types: RotelTypes,
    *,
    reverse_arrays: bool,
) -> int:
    """Edit ``attributes`` in place so it holds ``final``; returns the number of changes.

    Keys the stages never saw keep their value. With ``reverse_arrays`` every array
    left in the list is rewritten pre-reversed, changed or not (see ``rotel_values``).
    """
    replace: dict[int, Any] = {}
    delete: list[int] = []
    changes = 0
    last: dict[str, int] = {}
    for i, key in enumerate(snap.keys):
        last[key] = i
    for i, key in enumerate(snap.keys):
        if last[key] != i:  # a duplicate key (invalid OTLP): the last copy is kept
            delete.append(i)
            changes += 1
            continue
        original = snap.values[i]
        if key not in final:
            if key in snap.given:  # a stage removed it
                delete.append(i)
                changes += 1
            elif reverse_arrays and has_array(original):
                replace[i] = original
            continue
        new = final[key]
        if key in snap.as_json and same_value(new, snap.as_json[key]):
            changed, new = False, original  # masking left the structured value alone
        elif key in snap.given:
            changed = not same_value(new, snap.given[key])
        else:
            changed = True  # a stage set a key whose structured value it never saw
        if changed or (reverse_arrays and has_array(new)):
            replace[i] = new
            changes += changed
    added = [key for key in final if key not in last]
    for i, value in replace.items():
        attributes[i] = types.key_value(
            snap.keys[i], make_value(value, types, reverse_arrays=reverse_arrays)
        )
    for i in sorted(delete, reverse=True):
        del attributes[i]
    for key in added:
        attributes.append(
            types.key_value(key, make_value(final[key], types, reverse_arrays=reverse_arrays))
        )
    return changes + len(added)


def write_span(
    span: SpanLike,
    snapshot: SpanSnapshot,
    record: SpanRecord,
    types: RotelTypes,
    *,
    reverse_arrays: bool,
) -> int:
    """Write what the stages changed on ``record`` back to ``span``; returns the change count.

    Raises EventMismatch when the record's events are not the span's events (some
    possibly dropped or rebuilt, in the same order); the caller then fails closed.
    """
    changes = write_attributes(
        span.attributes,
        snapshot.attributes,
        record.attributes,
        types,
        reverse_arrays=reverse_arrays,
    )
    if snapshot.events:
        changes += _write_events(span.events, snapshot.events, record, types, reverse_arrays)
    if record.status_description != snapshot.status_message:
        status = span.status
        if status is not None:
            status.message = record.status_description or ""
            changes += 1
    return changes


def _write_events(
    events: EventListLike,
    read: list[_EventRead],
    record: SpanRecord,
    types: RotelTypes,
    reverse_arrays: bool,
) -> int:
    kept: dict[int, Any] = {}
    index_of = {id(r.event): i for i, r in enumerate(read)}
    j = 0
    for event in record.events:
        i = index_of.get(id(event))
        if i is None or i < j:  # rebuilt by a stage: the next one with its name and time
            while j < len(read) and not _same_event(read[j], event):
                j += 1
            if j == len(read):
                raise EventMismatch
            i = j
        kept[i] = event
        j = i + 1
    live = list(events)
    if len(live) != len(read):
        raise EventMismatch
    changes = 0
    for i, event in kept.items():
        before = read[i]
        arrays = reverse_arrays and any(map(has_array, before.snapshot.values))
        if event is before.event and not arrays:
            continue
        changes += write_attributes(
            live[i].attributes,
            before.snapshot,
            dict(event.attributes or {}),
            types,
            reverse_arrays=reverse_arrays,
        )
    for i in sorted(set(range(len(read))) - set(kept), reverse=True):
        del events[i]
        changes += 1
    return changes


def _same_event(read: _EventRead, event: Any) -> bool:
    return bool(event.name == read.name and event.timestamp == read.time)


def rewrite_arrays(attributes: AttributeListLike, types: RotelTypes) -> int:
    """Rewrite every array-holding attribute pre-reversed (for a list nothing else edits,
    such as the resource's); returns how many were rewritten."""
    rewritten = 0
    for i, kv in enumerate(list(attributes)):
        value = read_value(kv.value, types)
        if has_array(value):
            attributes[i] = types.key_value(kv.key, make_value(value, types, reverse_arrays=True))
            rewritten += 1
    return rewritten


def strip_sensitive(span: SpanLike, sensitive: Sensitive, marker: str) -> int:
    """Fail closed on the rotel span itself: remove every attribute masking covers,
    every ``gen_ai.*`` message event and masked keys of other events, and replace a
    status message by ``marker``. Reads keys only. Returns the number of removals."""
    removed = _strip_list(span.attributes, sensitive)
    events = span.events
    names = [event.name for event in events]
    for i in sorted(range(len(names)), reverse=True):
        if names[i].startswith(MESSAGE_EVENT_PREFIX):
            del events[i]
            removed += 1
        else:
            removed += _strip_list(events[i].attributes, sensitive)
    status = span.status
    if status is not None and status.message:
        status.message = marker
        removed += 1
    return removed


def _strip_list(attributes: AttributeListLike, sensitive: Sensitive) -> int:
    doomed = [i for i, kv in enumerate(attributes) if sensitive(kv.key)]
    for i in reversed(doomed):
        del attributes[i]
    return len(doomed)
