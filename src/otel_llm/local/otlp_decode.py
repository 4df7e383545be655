"""OTLP trace requests in, ``SpanRecord``s out; and the replies a receiver sends back.

What the stock exporters of every language send: an ``ExportTraceServiceRequest``
as protobuf (HTTP and gRPC) or as OTLP/JSON (HTTP). OTLP/JSON differs from the
protobuf JSON mapping in one way that matters: trace and span ids are hex strings,
not base64. Everything else (lowerCamelCase or original field names, enums as
integers or names, 64-bit integers as numbers or strings) the protobuf parser
accepts as it is.

Each received span becomes a record holding everything the span carried: ids,
parent and its remote bit, kind, times, status, attributes (arrays as tuples,
kvlists as dicts, bytes as bytes), events and links with their dropped-attribute
counts, trace state, resource, scope and the span's dropped counts. A span whose
ids are invalid is rejected on its own (reported as OTLP partial success); a body
that does not parse is rejected whole (:class:`DecodeError`). Empty attribute
values are left out and counted as dropped attributes, as the SDK would.

Fail closed: SDK spans never carry dicts, bytes or nested arrays, and the masking
stage scans text. So under content keys (``semconv.is_content_key``: structured
``gen_ai.input.messages`` from other languages' instrumentations) and in event
attributes, such values become JSON text (bytes: UTF-8 text, else base64), which
masking, normalization and usage read like any SDK span's. Elsewhere they keep
their shape.

Resource and scope attributes go into the SDK's ``Resource`` and
``InstrumentationScope``, which only hold primitives and homogeneous arrays of
them: other values are kept as JSON text (bytes as UTF-8 text, else base64).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as _ProtobufDecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import StatusCode

from otel_llm.processing.record import SpanRecord
from otel_llm.semconv import is_content_key

__all__ = [
    "DecodeError",
    "Decoded",
    "decode_request",
    "encode_reply",
    "encode_status",
    "parse_json",
    "parse_protobuf",
    "records_from_request",
]

_KINDS: Final = {
    PbSpan.SPAN_KIND_INTERNAL: SpanKind.INTERNAL,
    PbSpan.SPAN_KIND_SERVER: SpanKind.SERVER,
    PbSpan.SPAN_KIND_CLIENT: SpanKind.CLIENT,
    PbSpan.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
    PbSpan.SPAN_KIND_CONSUMER: SpanKind.CONSUMER,
}
_STATUS: Final = {1: StatusCode.OK, 2: StatusCode.ERROR}
_REMOTE: Final = 0x100 | 0x200  # CONTEXT_HAS_IS_REMOTE | CONTEXT_IS_REMOTE
_TRACE_FLAGS: Final = 0xFF
_PRIMITIVES: Final = ("string_value", "bool_value", "int_value", "double_value")
_SDK_TYPES: Final = (str, bool, int, float)
_HEX: Final = re.compile(r"(?:[0-9a-fA-F]{2})*")
_MAX_MESSAGE: Final = 300
_CACHE_LIMIT: Final = 256

_resources: dict[bytes, Resource] = {}  # serialized pb resource -> one shared SDK Resource
_scopes: dict[bytes, SdkScope] = {}


class DecodeError(ValueError):
    """The body is not an ``ExportTraceServiceRequest``; the message may be shown to the sender."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """The records of one request, and the spans rejected on their own (with the first reason)."""

    records: list[SpanRecord]
    rejected: int = 0
    reason: str = ""


class _Event(Event):
    """An SDK event that remembers how many attributes its sender dropped."""

    def __init__(self, name: str, attributes: dict[str, Any], timestamp: int, dropped: int) -> None:
        super().__init__(name, attributes, timestamp)
        self._dropped = dropped

    @property
    def dropped_attributes(self) -> int:
        return self._dropped


class _Link(Link):
    """A link that remembers how many attributes its sender dropped."""

    def __init__(self, context: SpanContext, attributes: dict[str, Any], dropped: int) -> None:
        super().__init__(context, attributes)
        self._dropped = dropped

    @property
    def dropped_attributes(self) -> int:
        return self._dropped


# -- parsing ----------------------------------------------------------------------------
def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


def parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse a protobuf body; raises :class:`DecodeError`."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (_ProtobufDecodeError, RecursionError, ValueError) as exc:
        raise DecodeError(
            f"body is not a protobuf ExportTraceServiceRequest: {_short(str(exc)) or 'bad data'}"
        ) from None
    return request


def parse_json(body: bytes) -> ExportTraceServiceRequest:
    """Parse an OTLP/JSON body (hex ids); raises :class:`DecodeError`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"body is not JSON: {_short(str(exc))}") from None
    if not isinstance(data, dict):
        raise DecodeError("body is not an OTLP/JSON ExportTraceServiceRequest (not an object)")
    _ids_to_base64(data)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise DecodeError(
            f"body is not an OTLP/JSON ExportTraceServiceRequest: {_short(str(exc))}"
        ) from None
    return request


def _field(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _objects(value: Any) -> Iterable[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else ()


def _ids_to_base64(data: dict[str, Any]) -> None:
    """OTLP/JSON ids are hex; the protobuf JSON parser wants base64 for bytes fields."""
    for resource_spans in _objects(_field(data, "resourceSpans", "resource_spans")):
        for scope_spans in _objects(_field(resource_spans, "scopeSpans", "scope_spans")):
            for span in _objects(scope_spans.get("spans")):
                _convert_ids(span, (("traceId", "trace_id"), ("spanId", "span_id")))
                _convert_ids(span, (("parentSpanId", "parent_span_id"),))
                for link in _objects(span.get("links")):
                    _convert_ids(link, (("traceId", "trace_id"), ("spanId", "span_id")))


def _convert_ids(obj: dict[str, Any], names: tuple[tuple[str, str], ...]) -> None:
    for spellings in names:
        for name in spellings:
            value = obj.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not _HEX.fullmatch(value):
                raise DecodeError(f"{name} {str(value)[:40]!r} is not a hex string (OTLP/JSON ids)")
            obj[name] = base64.b64encode(bytes.fromhex(value)).decode("ascii")


def decode_request(body: bytes, *, json: bool) -> Decoded:
    """Parse ``body`` (OTLP/JSON when ``json``, else protobuf) and convert its spans."""
    request = parse_json(body) if json else parse_protobuf(body)
    return records_from_request(request)


# -- conversion -------------------------------------------------------------------------
def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(items: Iterable[KeyValue], *, as_text: bool = False) -> tuple[dict[str, Any], int]:
    """Attributes as a dict, and how many had no value (left out, counted as dropped).

    Structured and bytes values become JSON text under content keys, or everywhere
    when ``as_text`` (event attributes), so that masking sees their strings.
    """
    out: dict[str, Any] = {}
    empty = 0
    for kv in items:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind in _PRIMITIVES:
            out[kv.key] = getattr(value, kind)
        elif kind is None:
            empty += 1
        else:
            decoded = _value(value)
            if not _flat(decoded) and (as_text or is_content_key(kv.key)):
                decoded = _text(decoded)
            out[kv.key] = decoded
    return out, empty


def _flat(value: Any) -> bool:
    """A value SDK spans can carry too: a primitive, or a flat array of primitives."""
    if isinstance(value, tuple):
        return all(isinstance(v, _SDK_TYPES) for v in value)
    return isinstance(value, _SDK_TYPES)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return _bytes_text(value)
    return orjson.dumps(value, default=_json_default).decode()


def _bytes_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")


def _sdk_value(value: Any) -> Any:
    """A value the SDK's ``BoundedAttributes`` keeps as it is (primitive, flat array)."""
    if isinstance(value, _SDK_TYPES):
        return value
    if isinstance(value, tuple) and value and isinstance(value[0], _SDK_TYPES):
        first = type(value[0])
        if all(type(v) is first for v in value):
            return value
    return _text(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return _bytes_text(value)
    raise TypeError


def _sdk_attributes(items: Iterable[KeyValue]) -> dict[str, Any]:
    values, _ = _attributes(items)
    return {k: _sdk_value(v) for k, v in values.items()}


def _resource(pb: PbResource, schema_url: str) -> Resource:
    key = pb.SerializeToString() + b"\0" + schema_url.encode()
    found = _resources.get(key)
    if found is None:
        if len(_resources) >= _CACHE_LIMIT:
            _resources.clear()
        found = _resources[key] = Resource(_sdk_attributes(pb.attributes), schema_url)
    return found


def _scope(pb: InstrumentationScope, schema_url: str) -> SdkScope:
    key = pb.SerializeToString() + b"\0" + schema_url.encode()
    found = _scopes.get(key)
    if found is None:
        if len(_scopes) >= _CACHE_LIMIT:
            _scopes.clear()
        attributes = _sdk_attributes(pb.attributes) or None
        found = _scopes[key] = SdkScope(pb.name, pb.version or None, schema_url, attributes)
    return found


def _trace_state(header: str) -> TraceState | None:
    return TraceState.from_header([header]) if header else None


def _id(raw: bytes, size: int) -> int:
    """The id as an int, or 0 when it has the wrong size (0 is never a valid id)."""
    return int.from_bytes(raw, "big") if len(raw) == size else 0


def records_from_request(request: ExportTraceServiceRequest) -> Decoded:
    """Every span of ``request`` as a record; spans with invalid ids rejected and counted."""
    records: list[SpanRecord] = []
    rejected = 0
    reason = ""
    for resource_spans in request.resource_spans:
        resource = _resource(resource_spans.resource, resource_spans.schema_url)
        for scope_spans in resource_spans.scope_spans:
            scope = _scope(scope_spans.scope, scope_spans.schema_url)
            for span in scope_spans.spans:
                problem = _id_problem(span)
                if problem:
                    rejected += 1
                    reason = reason or f"span {span.name[:80]!r} has {problem}"
                    continue
                records.append(_record(span, resource, scope))
    return Decoded(records, rejected, reason)


def _id_problem(span: PbSpan) -> str:
    if not _id(span.trace_id, 16):
        return "an invalid trace_id (16 bytes, not all zero)"
    if not _id(span.span_id, 8):
        return "an invalid span_id (8 bytes, not all zero)"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "an invalid parent_span_id (8 bytes, or empty)"
    return ""


def _record(span: PbSpan, resource: Resource, scope: SdkScope) -> SpanRecord:
    flags = span.flags
    attributes, empty = _attributes(span.attributes)
    parent = _id(span.parent_span_id, 8)
    start = span.start_time_unix_nano
    status = span.status
    links = tuple(link for link in map(_link, span.links) if link is not None)
    return SpanRecord(
        trace_id=int.from_bytes(span.trace_id, "big"),
        span_id=int.from_bytes(span.span_id, "big"),
        name=span.name,
        start_time=start,
        end_time=span.end_time_unix_nano or start,
        attributes=attributes,
        parent_span_id=parent or None,
        parent_is_remote=bool(parent) and flags & _REMOTE == _REMOTE,
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL),
        # The stock Python and JS exporters leave the W3C byte 0; an exported span was
        # recorded and sampled, so 0 reads as SAMPLED.
        trace_flags=(flags & _TRACE_FLAGS) or TraceFlags.SAMPLED,
        trace_state=_trace_state(span.trace_state),
        status_code=_STATUS.get(status.code, StatusCode.UNSET),
        status_description=status.message or None,
        events=tuple(_event(e) for e in span.events),
        links=links,
        resource=resource,
        scope=scope,
        dropped_attributes=span.dropped_attributes_count + empty,
        dropped_events=span.dropped_events_count,
        dropped_links=span.dropped_links_count + len(span.links) - len(links),
    )


def _event(event: PbSpan.Event) -> Event:
    attributes, empty = _attributes(event.attributes, as_text=True)
    dropped = event.dropped_attributes_count + empty
    return _Event(event.name, attributes, event.time_unix_nano, dropped)


def _link(link: PbSpan.Link) -> Link | None:
    if not (_id(link.trace_id, 16) and _id(link.span_id, 8)):
        return None  # counted in the span's dropped_links
    flags = link.flags
    remote = flags & _REMOTE == _REMOTE
    context = SpanContext(
        int.from_bytes(link.trace_id, "big"),
        int.from_bytes(link.span_id, "big"),
        is_remote=remote,
        trace_flags=TraceFlags((flags & _TRACE_FLAGS) or TraceFlags.SAMPLED),
        trace_state=_trace_state(link.trace_state),
    )
    attributes, empty = _attributes(link.attributes)
    return _Link(context, attributes, link.dropped_attributes_count + empty)


# -- replies ----------------------------------------------------------------------------
def encode_reply(rejected: int = 0, message: str = "", *, json: bool) -> bytes:
    """An ``ExportTraceServiceResponse`` (partial success when spans were rejected)."""
    if json:
        if not rejected and not message:
            return b"{}"
        partial = {"rejectedSpans": str(rejected), "errorMessage": message}
        return orjson.dumps({"partialSuccess": partial})
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    data: bytes = response.SerializeToString()
    return data


def encode_status(code: int, message: str, *, json: bool) -> bytes:
    """A ``google.rpc.Status`` error body, as OTLP/HTTP prescribes for failed requests."""
    if json:
        return orjson.dumps({"code": code, "message": message})
    data: bytes = status_pb2.Status(code=code, message=message).SerializeToString()
    return data
