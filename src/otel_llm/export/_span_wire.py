"""One ``Span`` message as protobuf bytes: the per-span half of the encoder.

Split from ``encoder.py``, which keeps the public API, request assembly and the resource
and scope blocks; this module holds what runs once per exported span (and per event and
link), the hottest code in the library. It is written for speed: module-level constants
read as globals, precomputed tags and ``struct.Struct`` objects, no extra call layers.

Each message first takes a fast path on the raw fields that never counts; anything odd
there raises and the careful path redoes that message on repaired fields, counting. The
differences from the stock encoder (repairs, ``flags``, link ``trace_state``, status
message, ``dropped_*`` counts) are listed in ``encoder.py``'s docstring.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.trace import SpanKind
from opentelemetry.trace.status import StatusCode

from otel_llm.export._protowire import (
    UINT64_MAX,
    VARINT,
    VARINT_TABLE_SIZE,
    count,
    encode_attributes,
    get,
    pack_fixed32,
    tag,
    text,
    uint,
    varint,
)

__all__ = ["CHILD", "OWN", "encode_span"]

_U32 = (1 << 32) - 1
_M64 = UINT64_MAX
_VN = VARINT_TABLE_SIZE

CHILD = tag(2, 2)
"""``*Spans`` field 2, the children: ``ScopeSpans.spans`` and ``ResourceSpans.scope_spans``."""
OWN: Any = object()
"""``encode_span``'s default ``attributes``: send the record's own attributes."""

# Span {1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind, 7 start,
# 8 end, 9 attributes, 10 dropped_attributes, 11 events, 12 dropped_events, 13 links,
# 14 dropped_links, 15 status, 16 flags}.
_IDS = struct.Struct(">BBQQBBQ")  # trace_id (16 bytes) and span_id (8 bytes), with tags
_SP_TRACE_STATE, _SP_NAME, _SP_ATTR = tag(3, 2), tag(5, 2), tag(9, 2)
_SP_PARENT = tag(4, 2) + b"\x08"
_SP_TIMES = struct.Struct("<BQBQ")
_SP_START, _SP_END = 7 << 3 | 1, 8 << 3 | 1
_SP_DROPPED = (tag(10, 0), tag(12, 0), tag(14, 0))
_SP_EVENT, _SP_LINK, _SP_STATUS = tag(11, 2), tag(13, 2), tag(15, 2)
_SP_FLAGS = (tag(16, 5) + pack_fixed32(0x100), tag(16, 5) + pack_fixed32(0x300))
_KIND = {k: tag(6, 0) + varint(k.value + 1) for k in SpanKind}
_ST_MESSAGE, _ST_CODE = tag(2, 2), tag(3, 0)
_STATUS = {
    c: _SP_STATUS + (b"\x02" + _ST_CODE + varint(c.value) if c.value else b"\x00")
    for c in StatusCode
}
# Event {1 time, 2 name, 3 attributes, 4 dropped}; Link {1 trace_id, 2 span_id,
# 4 attributes, 5 dropped, 6 flags}.
_EV_TIME, _EV_NAME, _EV_ATTR, _EV_DROPPED = 1 << 3 | 1, tag(2, 2), tag(3, 2), tag(4, 0)
_LK_ATTR, _LK_DROPPED = tag(4, 2), tag(5, 0)
_LK_FLAGS = (tag(6, 5) + pack_fixed32(0x100), tag(6, 5) + pack_fixed32(0x300))
_FIXED64 = struct.Struct("<BQ")
_NONE = (b"", b"", b"")
_EMPTY: tuple[()] = ()


class _Slow(Exception):
    """A span, event or link field only the careful (counting) path may handle."""


# -- spans, events, links: a fast path on the raw fields, else the same on repaired ones --


def encode_span(r: Any, attributes: Any = OWN) -> bytes:
    """One ``ScopeSpans.spans`` field: tag, length, ``Span`` (never raises).

    ``attributes`` replaces the record's own unless it is ``OWN``.
    """
    try:
        parent = r.parent_span_id
        parts = _span_head(
            r.trace_id,
            r.span_id,
            r.trace_state,
            parent,
            r.name.encode(),
            _KIND[r.kind],
            r.start_time,
            r.end_time,
        )
        attrs = r.attributes if attributes is OWN else attributes
        events, links = r.events, r.links
        drops = (r.dropped_attributes, r.dropped_events, r.dropped_links)
        dropped: Sequence[bytes] = _NONE
        if drops[0] or drops[1] or drops[2]:
            dropped = [_dropped(f, n) for f, n in zip(_SP_DROPPED, drops, strict=True)]
        code, desc = r.status_code, r.status_description
        status = _status(desc.encode()) if code is StatusCode.ERROR and desc else _STATUS[code]
        flags = _SP_FLAGS[1] if parent is not None and r.parent_is_remote else _SP_FLAGS[0]
    except Exception:
        parts, attrs, events, links, dropped, status, flags = _span_safe(r)
        if attributes is not OWN:
            attrs = attributes
    parts += encode_attributes(attrs, _SP_ATTR)
    if dropped[0]:
        parts.append(dropped[0])
    if events is not _EMPTY:  # most spans: () (the SDK's empty tuple), nothing to call
        parts += _each(events, _encode_event)
    if dropped[1]:
        parts.append(dropped[1])
    if links is not _EMPTY:
        parts += _each(links, _encode_link)
    parts += (dropped[2], status, flags)
    body = b"".join(parts)
    n = len(body)
    return CHILD + (VARINT[n] if n < _VN else varint(n)) + body


def _span_head(
    tid: int,
    sid: int,
    state: Any,
    parent: int | None,
    name: bytes,
    kind: bytes,
    start: int,
    end: int,
) -> list[bytes]:
    """Span fields 1-8; raises on out-of-range ids or times (the caller repairs)."""
    parts = [_IDS.pack(0x0A, 16, tid >> 64, tid & _M64, 0x12, 8, sid)]
    if state:
        header = ",".join([f"{k}={v}" for k, v in state.items()]).encode()
        parts += (_SP_TRACE_STATE, varint(len(header)), header)
    if parent is not None:
        parts += (_SP_PARENT, parent.to_bytes(8, "big"))
    if name:
        n = len(name)
        parts += (_SP_NAME, VARINT[n] if n < _VN else varint(n), name)
    parts.append(kind)
    if start and end:
        parts.append(_SP_TIMES.pack(_SP_START, start, _SP_END, end))
    else:
        parts += [_FIXED64.pack(t, v) for t, v in ((_SP_START, start), (_SP_END, end)) if v]
    return parts


def _span_safe(r: Any) -> tuple[list[bytes], Any, Any, Any, Sequence[bytes], bytes, bytes]:
    parent = get(r, "parent_span_id")
    if parent is not None:
        parent = uint(parent, 64)
    state = get(r, "trace_state")
    try:
        state_text = text(",".join([f"{k}={v}" for k, v in state.items()])) if state else b""
    except Exception:
        count("field_repaired")
        state_text = b""
    kind = get(r, "kind")
    try:
        kind_bytes = _KIND[kind]
    except Exception:
        count("field_repaired")
        kind_bytes = _KIND[SpanKind.INTERNAL]
    parts = _span_head(
        uint(get(r, "trace_id"), 128),
        uint(get(r, "span_id"), 64),
        None,
        parent,
        text(get(r, "name")),
        kind_bytes,
        uint(get(r, "start_time"), 64),
        uint(get(r, "end_time"), 64),
    )
    if state_text:
        parts[1:1] = (_SP_TRACE_STATE, varint(len(state_text)), state_text)
    dropped = [
        f + varint(n) if n else b""
        for f, n in zip(
            _SP_DROPPED,
            (
                uint(get(r, a), 32, clamp=True)
                for a in ("dropped_attributes", "dropped_events", "dropped_links")
            ),
            strict=True,
        )
    ]
    code, desc = get(r, "status_code"), get(r, "status_description")
    if not isinstance(code, StatusCode):
        count("field_repaired")
        code = StatusCode.UNSET
    status = _STATUS[code]
    if code is StatusCode.ERROR and isinstance(desc, str) and desc:
        status = _status(text(desc))
    elif desc is not None and not isinstance(desc, str):  # dropped, as stock's Status does
        count("field_repaired")
    try:
        remote = parent is not None and bool(get(r, "parent_is_remote"))
    except Exception:
        count("field_repaired")
        remote = False
    flags = _SP_FLAGS[1] if remote else _SP_FLAGS[0]
    return (
        parts,
        get(r, "attributes"),
        get(r, "events"),
        get(r, "links"),
        dropped,
        status,
        flags,
    )


def _status(message: bytes) -> bytes:
    body = _ST_MESSAGE + varint(len(message)) + message + _ST_CODE + varint(2)
    return _SP_STATUS + varint(len(body)) + body


def _encode_event(ev: Any) -> bytes:
    """One ``Span.events`` field (never raises)."""
    try:
        attrs, ts, name = ev.attributes, ev.timestamp, ev.name.encode()
        parts = [_FIXED64.pack(_EV_TIME, ts)] if ts else []
        dropped = _dropped(_EV_DROPPED, ev.dropped_attributes)
    except Exception:
        attrs, ts, name = (
            get(ev, "attributes"),
            uint(get(ev, "timestamp"), 64),
            text(get(ev, "name")),
        )
        parts = [_FIXED64.pack(_EV_TIME, ts)] if ts else []
        n = uint(get(ev, "dropped_attributes"), 32, clamp=True)
        dropped = _EV_DROPPED + varint(n) if n else b""
    if name:
        parts += (_EV_NAME, varint(len(name)), name)
    parts += encode_attributes(attrs, _EV_ATTR)
    parts.append(dropped)
    body = b"".join(parts)
    return _SP_EVENT + varint(len(body)) + body


def _encode_link(link: Any) -> bytes:
    """One ``Span.links`` field (never raises). Like stock, no ``trace_state``."""
    try:
        ctx, attrs = link.context, link.attributes
        tid = ctx.trace_id
        head = _IDS.pack(0x0A, 16, tid >> 64, tid & _M64, 0x12, 8, ctx.span_id)
        dropped = _dropped(_LK_DROPPED, link.dropped_attributes)
        flags = _LK_FLAGS[1] if ctx.is_remote else _LK_FLAGS[0]
    except Exception:
        ctx, attrs = get(link, "context"), get(link, "attributes")
        tid = uint(get(ctx, "trace_id"), 128)
        head = _IDS.pack(0x0A, 16, tid >> 64, tid & _M64, 0x12, 8, uint(get(ctx, "span_id"), 64))
        n = uint(get(link, "dropped_attributes"), 32, clamp=True)
        dropped = _LK_DROPPED + varint(n) if n else b""
        try:
            flags = _LK_FLAGS[1] if get(ctx, "is_remote") else _LK_FLAGS[0]
        except Exception:
            count("field_repaired")
            flags = _LK_FLAGS[0]
    body = b"".join([head, *encode_attributes(attrs, _LK_ATTR), dropped, flags])
    return _SP_LINK + varint(len(body)) + body


def _each(items: Any, encode_one: Callable[[Any], bytes]) -> list[bytes]:
    try:
        return [encode_one(item) for item in items] if items else []
    except Exception:  # a container that will not iterate; the encoders themselves never raise
        count("field_repaired")
        return []


def _dropped(field: bytes, n: Any) -> bytes:
    if not n:
        return b""
    if type(n) is int and 0 < n <= _U32:
        return field + varint(n)
    raise _Slow
