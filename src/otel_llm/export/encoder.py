"""SpanRecords straight to OTLP ``ExportTraceServiceRequest`` bytes, without proto objects.

Same output as the stock ``encode_spans(spans).SerializeToString()`` for the same spans
(byte for byte on valid data; a test pins it), grouped by resource then scope in order
of first appearance, several times faster: resource and scope blocks are cached by
identity, attribute keys (with the bytes before a number) and whole short ``(key, value)``
attributes by value, each span is built bottom-up from ``bytes`` chunks joined once, and
the request is joined once from the spans (no intermediate copy of a large body).
This module assembles requests, resource and scope blocks; ``_span_wire.py`` encodes
each span, ``_protowire.py`` the wire primitives and attribute lists.

A destination sends its own view of shared records without copying them: ``attributes``
(its dialect's, one mapping per record) and ``resource_for`` (its resource per record
resource) replace what the records hold.

Total for any record: a value protobuf cannot carry is replaced or dropped and counted
in :func:`encoder_counts`, never raised. Each message first takes a fast path that never
counts; anything odd there raises and the careful path redoes that message, counting.
Where we differ from stock on such values (stock logs and drops the whole attribute):

* lone surrogates in any string → U+FFFD (``string_replaced``);
* an int outside int64 → its decimal string (``int_overflow_stringified``);
* a top-level ``None`` value → attribute dropped (``none_dropped``; stock sends an empty
  value); ``None`` inside a sequence or mapping → empty ``AnyValue``, like stock;
* a value of another type → dropped at top level, empty ``AnyValue`` when nested
  (``unsupported_value``); a non-str key → dropped (``invalid_key_dropped``);
* nesting deeper than 32 → empty ``AnyValue`` (``depth_exceeded``);
* a span, event, link, scope or resource field of the wrong type or out of range →
  coerced: ids and times masked to their width, counts clamped, else zero/empty
  (``field_repaired``); a raising ``scope_rename`` keeps the name (``scope_rename_failed``).

Like stock: span ``flags`` carry only the has-/is-remote parent bits (not the W3C trace
flags), link ``trace_state`` is not sent, the status message only with ``ERROR``. Unlike
``encode_spans(record_to_readable(r))``, the record's ``dropped_*`` counts are sent (the
rebuilt ``ReadableSpan`` loses them; stock sends them for a live SDK span).

Thread-safe: the module caches are plain dicts (bounded, cleared when full); concurrent
callers at worst compute an entry twice. Resource and scope blocks, cached by identity
with the object kept alive, assume those objects are not mutated (the SDK freezes them),
so a bad value in a resource or scope is counted the first time it is encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_llm.export._protowire import (
    count,
    counts,
    encode_attributes,
    get,
    tag,
    text,
    varint,
    varint_size,
)
from otel_llm.export._span_wire import CHILD, OWN, encode_span
from otel_llm.processing.record import SpanRecord

__all__ = ["DEFAULT_MAX_BYTES", "encode", "encode_batches", "encoder_counts"]

DEFAULT_MAX_BYTES = 3_000_000

# Scope {1 name, 2 version, 3 attributes}; Resource {1 attributes}; *Spans {1 resource/
# scope, 2 children (CHILD, from _span_wire: a span's own tag), 3 schema_url}.
_RES_ATTR = _SCOPE_NAME = _CHILD_HEAD = tag(1, 2)
_SCOPE_VERSION = tag(2, 2)
_SCOPE_ATTR, _SCHEMA = tag(3, 2), tag(3, 2)
_EMPTY_SCOPE = _CHILD_HEAD + b"\x00"

_RESOURCES: dict[int, tuple[object, bytes, bytes]] = {}  # id -> (resource, block, schema)
_SCOPES: dict[tuple[int, str | None], tuple[object, bytes, bytes]] = {}


def encoder_counts() -> dict[str, int]:
    """Snapshot of values replaced or dropped by the encoder since process start, by reason."""
    return counts()


def encode(
    records: Sequence[SpanRecord],
    *,
    resource: Resource | None = None,
    scope_rename: Callable[[str], str] | None = None,
    attributes: Sequence[Mapping[str, Any]] | None = None,
    resource_for: Callable[[Resource], Resource] | None = None,
) -> bytes:
    """Encode ``records`` as one serialized OTLP ``ExportTraceServiceRequest``.

    Args:
        records: Spans to send; not modified. Grouped by resource (equal resources
            merge, as in stock) then scope, in order of first appearance.
        resource: Used instead of every record's resource (a destination's own).
        scope_rename: Maps each scope name to the name to send (called once per
            distinct scope per call); equal renamed scopes merge.
        attributes: Sent instead of each record's own attributes, one mapping per
            record in order (a destination's dialect), so no record is copied for it.
        resource_for: Maps a record's resource to the one to send (called once per
            distinct resource object per call); ignored when ``resource`` is given.

    Returns:
        The request bytes; ``b""`` (a valid empty request) for no records. Never raises
        for a bad value in a record: see :func:`encoder_counts`.

    Raises:
        ValueError: ``attributes`` is not as long as ``records``.
    """
    prep = _Prepared(records, resource, scope_rename, attributes, resource_for)
    return prep.assemble(range(len(prep.spans)))


def encode_batches(
    records: Sequence[SpanRecord],
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    resource: Resource | None = None,
    scope_rename: Callable[[str], str] | None = None,
    attributes: Sequence[Mapping[str, Any]] | None = None,
    resource_for: Callable[[Resource], Resource] | None = None,
) -> list[bytes]:
    """Like :func:`encode`, split into requests of at most ``max_bytes`` bytes each.

    Records stay in order: each request holds the next run of records, each record is
    in exactly one request. A record too big to fit even alone gets a request of its own,
    returned although longer than ``max_bytes`` (the caller decides; counted as
    ``oversize_request``). No records give ``[]``.

    Raises:
        ValueError: ``max_bytes`` is below 1, or ``attributes`` is not as long as
            ``records``.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    prep = _Prepared(records, resource, scope_rename, attributes, resource_for)
    prefix = 1 + varint_size(max_bytes)  # a tag and the longest length of a part that fits
    batches: list[list[int]] = []
    seen: set[tuple[int, int]] = set()  # (resource, -1) and (resource, scope) in the batch
    size = 0  # an upper bound of the last batch's request size
    for i, chunk in enumerate(prep.spans):
        keys = ((prep.res_keys[i], -1), (prep.res_keys[i], prep.scope_keys[i]))
        cost = len(chunk) + sum(prep.group_size(k) + prefix for k in keys if k not in seen)
        if not batches or size + cost > max_bytes:
            batches.append([])
            seen.clear()
            size = 0
            cost = len(chunk) + sum(prep.group_size(k) + prefix for k in keys)
        batches[-1].append(i)
        seen.update(keys)
        size += cost
    out = [prep.assemble(b) for b in batches]
    for request in out:
        if len(request) > max_bytes:
            count("oversize_request")
    return out


class _Prepared:
    """Records encoded once: span chunks plus resource/scope group keys and blocks."""

    __slots__ = ("res_blocks", "res_keys", "scope_blocks", "scope_keys", "spans")

    def __init__(
        self,
        records: Sequence[SpanRecord],
        resource: Resource | None,
        rename: Callable[[str], str] | None,
        attributes: Sequence[Mapping[str, Any]] | None = None,
        resource_for: Callable[[Resource], Resource] | None = None,
    ) -> None:
        if attributes is not None and len(attributes) != len(records):
            raise ValueError(f"{len(attributes)} attribute mappings for {len(records)} records")
        self.spans: list[bytes] = []
        self.res_keys: list[int] = []
        self.scope_keys: list[int] = []
        self.res_blocks: list[tuple[bytes, bytes]] = []
        self.scope_blocks: list[tuple[bytes, bytes]] = []
        res_by_id: dict[int, int] = {}
        scope_by_id: dict[int, int] = {}
        res_equal: dict[object, int] = {}
        scope_equal: dict[object, int] = {}
        keep: list[object] = []  # objects behind the ids above stay alive for this call
        if resource is not None:
            resource_for = None
        spans, res_keys, scope_keys = self.spans, self.res_keys, self.scope_keys
        for i, r in enumerate(records):
            try:
                res: object = resource if resource is not None else r.resource
                scope: object = r.scope
            except Exception:
                count("field_repaired")
                res, scope = resource, None
            rk = res_by_id.get(id(res))
            if rk is None:
                keep.append(res)
                mapped = _mapped(res, resource_for)
                rk, is_new = _group(mapped, res_equal, len(self.res_blocks))
                if is_new:
                    self.res_blocks.append(_resource_block(mapped))
                res_by_id[id(res)] = rk
            sk = scope_by_id.get(id(scope))
            if sk is None:
                keep.append(scope)
                renamed, name = _rename(scope, rename)
                sk, is_new = _group(renamed, scope_equal, len(self.scope_blocks))
                if is_new:
                    self.scope_blocks.append(_scope_block(scope, name))
                scope_by_id[id(scope)] = sk
            spans.append(encode_span(r, attributes[i] if attributes is not None else OWN))
            res_keys.append(rk)
            scope_keys.append(sk)

    def group_size(self, key: tuple[int, int]) -> int:
        """Bytes a resource ``(rk, -1)`` or scope ``(rk, sk)`` group adds, but its prefix."""
        block, schema = self.res_blocks[key[0]] if key[1] < 0 else self.scope_blocks[key[1]]
        return len(block) + len(schema)

    def assemble(self, indices: Sequence[int]) -> bytes:
        """The request for the records at ``indices``, grouped as stock groups them.

        One join at the end: group lengths are summed, not measured on joined bodies, so
        a request of hundreds of kilobytes is copied once (each large intermediate copy
        costs fresh pages, which showed up as several µs per span).
        """
        groups: dict[int, dict[int, list[bytes]]] = {}
        spans, rks, sks = self.spans, self.res_keys, self.scope_keys
        for i in indices:
            by_scope = groups.get(rks[i])
            if by_scope is None:
                by_scope = groups[rks[i]] = {}
            chunks = by_scope.get(sks[i])
            if chunks is None:
                chunks = by_scope[sks[i]] = []
            chunks.append(spans[i])
        out: list[bytes] = []
        for rk, by_scope in groups.items():
            block, schema = self.res_blocks[rk]
            head = len(out)
            out += (_CHILD_HEAD, b"", block)  # b"": the length, known after the scopes
            size = len(block) + len(schema)
            for sk, chunks in by_scope.items():
                scope_block, scope_schema = self.scope_blocks[sk]
                n = len(scope_block) + sum(map(len, chunks)) + len(scope_schema)
                length = varint(n)
                out += (CHILD, length, scope_block)
                out += chunks
                out.append(scope_schema)
                size += len(CHILD) + len(length) + n
            out.append(schema)
            out[head + 1] = varint(size)
        return b"".join(out)


def _mapped(res: Any, resource_for: Callable[[Resource], Resource] | None) -> Any:
    """The resource to send for ``res``: ``resource_for(res)``, or ``res`` if it raises."""
    if resource_for is None:
        return res
    try:
        return resource_for(res)
    except Exception:
        count("field_repaired")
        return res


def _group(key: object, equal: dict[object, int], next_index: int) -> tuple[int, bool]:
    """Group index of ``key`` (by equality, as stock; else identity) and whether it is new."""
    try:
        index = equal.setdefault(key, next_index)
    except Exception:  # unhashable, or a raising __hash__/__eq__: a group of its own
        index = next_index
    return index, index == next_index


def _rename(scope: Any, rename: Callable[[str], str] | None) -> tuple[object, str | None]:
    """The scope to group by and the name to send (``None``: the scope's own)."""
    if rename is None or scope is None:
        return scope, None
    try:
        name = rename(scope.name)
        if not isinstance(name, str):
            raise TypeError("scope_rename must return a str")
        renamed = InstrumentationScope(name, scope.version, scope.schema_url, scope.attributes)
    except Exception:
        count("scope_rename_failed")
        return scope, None
    return renamed, name


def _resource_block(res: Any) -> tuple[bytes, bytes]:
    """``ResourceSpans.resource`` field and ``schema_url`` field, cached by identity."""
    hit = _RESOURCES.get(id(res))
    if hit is not None and hit[0] is res:
        return hit[1], hit[2]
    attrs, schema_url = get(res, "attributes"), get(res, "schema_url")
    body = b"".join(encode_attributes(attrs, _RES_ATTR))
    block = _CHILD_HEAD + varint(len(body)) + body
    url = text(schema_url)
    schema = _SCHEMA + varint(len(url)) + url if url else b""
    if len(_RESOURCES) >= 256:
        _RESOURCES.clear()
    _RESOURCES[id(res)] = (res, block, schema)
    return block, schema


def _scope_block(scope: Any, name: str | None) -> tuple[bytes, bytes]:
    """``ScopeSpans.scope`` field and ``schema_url`` field, cached by identity and name."""
    if scope is None:
        return _EMPTY_SCOPE, b""
    hit = _SCOPES.get((id(scope), name))
    if hit is not None and hit[0] is scope:
        return hit[1], hit[2]
    parts: list[bytes] = []
    for field, value in (
        (_SCOPE_NAME, get(scope, "name") if name is None else name),
        (_SCOPE_VERSION, get(scope, "version")),
    ):
        b = text(value)
        if b:
            parts += (field, varint(len(b)), b)
    parts += encode_attributes(get(scope, "attributes"), _SCOPE_ATTR)
    body = b"".join(parts)
    block = _CHILD_HEAD + varint(len(body)) + body
    url = text(get(scope, "schema_url"))
    schema = _SCHEMA + varint(len(url)) + url if url else b""
    if len(_SCOPES) >= 256:
        _SCOPES.clear()
    _SCOPES[(id(scope), name)] = (scope, block, schema)
    return block, schema
