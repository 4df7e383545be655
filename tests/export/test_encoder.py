"""The fast OTLP encoder against the stock one: same bytes on valid data, total on the rest."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.trace.status import StatusCode

from otel_llm.export import encoder
from otel_llm.export.encoder import encode, encode_batches, encoder_counts
from otel_llm.processing.record import SpanRecord, record_from_span, record_to_readable
from tests.mappings import NoCopyMapping

INT64 = (-(1 << 63), (1 << 63) - 1)
RES_A = Resource({"service.name": "chat-api", "deployment.environment": "prod"})
RES_A_TWIN = Resource({"service.name": "chat-api", "deployment.environment": "prod"})
RES_B = Resource({"service.name": "worker", "tags": ("x", "y")}, "https://schema/1")
SCOPE_A = InstrumentationScope("otel_llm", "0.1.0")
SCOPE_A_TWIN = InstrumentationScope("otel_llm", "0.1.0")
SCOPE_B = InstrumentationScope("openai.instr", None, "https://schema/2", {"lib": "v"})
SCOPE_C = InstrumentationScope("langchain", "1.0")


def stock(
    records: Sequence[SpanRecord],
    *,
    resource: Resource | None = None,
    scope_rename: Callable[[str], str] | None = None,
) -> bytes:
    """What the stock encoder sends for the same spans."""
    spans = []
    for r in records:
        if scope_rename is not None and r.scope is not None:
            s = r.scope
            scope = InstrumentationScope(
                scope_rename(s.name), s.version, s.schema_url, s.attributes
            )
            r = dataclasses.replace(r, scope=scope)
        spans.append(record_to_readable(r, resource=resource))
    return bytes(encode_spans(spans).SerializeToString())


def parse(data: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(data)  # upb rejects invalid UTF-8 and malformed wire data
    return request


def assert_same(ours: bytes, expected: bytes) -> None:
    assert ours == expected, f"ours:\n{parse(ours)}\nstock:\n{parse(expected)}"


def spans_of(request: ExportTraceServiceRequest) -> Iterator[Any]:
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            yield from ss.spans


def record(i: int = 0, **fields: Any) -> SpanRecord:
    values: dict[str, Any] = {
        "trace_id": (0xABC << 100) + i,
        "span_id": 0x1000 + i,
        "name": f"chat gpt-4o-mini {i}",
        "start_time": 1_700_000_000_000_000_000 + i,
        "end_time": 1_700_000_000_000_900_000 + i,
        "attributes": {},
        "resource": RES_A,
        "scope": SCOPE_A,
    }
    values.update(fields)
    return SpanRecord(**values)


def generation(i: int) -> SpanRecord:
    """A realistic LLM generation span, as the benchmark uses."""
    return record(
        i,
        kind=SpanKind.CLIENT,
        parent_span_id=0x9000 + i,
        status_code=StatusCode.OK,
        attributes={
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.temperature": 0.7,
            "gen_ai.request.max_tokens": 1024,
            "gen_ai.usage.input_tokens": 100 + 37 * i,
            "gen_ai.usage.output_tokens": 20000 + i,
            "gen_ai.input.messages": '[{"role": "user", "content": "' + "q" * 280 + '"}]',
            "gen_ai.output.messages": "answer ✓ " * 16,
            "user.id": f"user-{i % 7}",
            "session.id": f"sess-{i % 3}",
            "langfuse.trace.tags": ("prod", "chat"),
            "deployment.environment": "production",
            "langfuse.observation.level": "DEFAULT",
        },
        events=(Event("gen_ai.choice", {"index": 0}, timestamp=5 + i),) if i % 10 == 0 else (),
    )


# -- same bytes as stock ----------------------------------------------------------------------


def test_realistic_batch_is_byte_identical_to_stock() -> None:
    records = [generation(i) for i in range(64)]
    ours = encode(records)
    assert_same(ours, stock(records))
    assert parse(ours) == parse(stock(records))


def test_groups_by_resource_then_scope_in_order_of_first_appearance() -> None:
    pools = [(RES_B, SCOPE_B), (RES_A, SCOPE_A), (RES_A_TWIN, SCOPE_C), (RES_B, None)]
    records = [
        record(i, resource=pools[i % 4][0], scope=pools[i % 4][1] if i != 5 else SCOPE_A_TWIN)
        for i in range(12)
    ]
    ours = encode(records)
    assert_same(ours, stock(records))
    request = parse(ours)
    assert len(request.resource_spans) == 2  # equal resources merge, as in stock
    assert [len(rs.scope_spans) for rs in request.resource_spans] == [2, 2]


def test_every_span_field() -> None:
    records = [
        record(
            1,
            kind=kind,
            parent_span_id=7 if i % 2 else None,
            parent_is_remote=bool(i % 3),
            trace_state=TraceState([("vendor", "a1"), ("other", "b2")]) if i else TraceState(),
            status_code=code,
            status_description="it failed" if i % 2 else None,
            events=(Event("ev", {"k": [1, 2]}, timestamp=3), Event("", None, timestamp=0)),
            links=(
                Link(SpanContext(5, 6, is_remote=True), {"why": "retry"}),
                Link(SpanContext(0, 0, is_remote=False)),
            ),
            start_time=0 if i == 2 else 10,
            end_time=0 if i == 3 else 20,
            name="" if i == 4 else "n",
        )
        for i, (kind, code) in enumerate((k, c) for k in SpanKind for c in StatusCode)
    ]
    assert_same(encode(records), stock(records))


def test_attribute_values_of_every_type() -> None:
    attributes = {
        "s": "text ✓",
        "empty": "",
        "": "empty key",
        "long": "x" * 20_000,
        "t": True,
        "f": False,
        "zero": 0,
        "small": 127,
        "mid": 128,
        "neg": -1,
        "min": INT64[0],
        "max": INT64[1],
        "pi": 3.14,
        "negzero": -0.0,
        "nan": math.nan,
        "inf": -math.inf,
        "bytes": b"\x00\xff",
        "strs": ("a", "b"),
        "str_list": ["a", ""],
        "ints": (1, -2, INT64[1]),
        "floats": (0.5, math.inf),
        "bools": (True, False),
        "byteses": (b"", b"x"),
        "none_inside": (None, "a"),
        "empty_seq": (),
        "mapping": {"a": 1, "b": [1.5, {"deep": None}], 3: "int key"},
        "one": (1,),
        "one_true": (True,),
    }
    records = [record(i, attributes=attributes) for i in range(3)]  # the second hits caches
    assert_same(encode(records), stock(records))


def test_live_sdk_spans_match_stock_on_the_original_spans() -> None:
    exported: list[ReadableSpan] = []

    class Collect(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            exported.extend(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider(
        resource=Resource.create({"service.name": "svc"}),
        span_limits=SpanLimits(max_span_attributes=4, max_events=1, max_links=1),
    )
    provider.add_span_processor(SimpleSpanProcessor(Collect()))
    tracer = provider.get_tracer("my.lib", "2.0", schema_url="https://schema/3")
    remote = SpanContext(0xAB, 0xCD, is_remote=True, trace_flags=TraceFlags(1))
    with tracer.start_as_current_span(
        "root", context=set_span_in_context(NonRecordingSpan(remote)), links=[Link(remote)] * 2
    ) as root:
        root.set_attributes({f"k{i}": i for i in range(6)})
        root.add_event("one", {"x": ("a", "b")})
        root.add_event("two")
        with tracer.start_as_current_span("child", kind=SpanKind.SERVER) as child:
            child.set_status(StatusCode.ERROR, "bad")
    provider.shutdown()
    records = [record_from_span(s) for s in exported]
    assert records[1].dropped_attributes == 2 and records[1].dropped_events == 1
    assert_same(encode(records), bytes(encode_spans(exported).SerializeToString()))


def test_dropped_counts_are_sent() -> None:
    r = record(
        events=(Event("e", timestamp=1),),
        links=(Link(SpanContext(1, 2, False)),),
        dropped_attributes=3,
        dropped_events=4,
        dropped_links=5,
    )
    (span,) = spans_of(parse(encode([r])))
    assert (span.dropped_attributes_count, span.dropped_events_count) == (3, 4)
    assert span.dropped_links_count == 5
    span.ClearField("dropped_attributes_count")
    span.ClearField("dropped_events_count")
    span.ClearField("dropped_links_count")
    (expected,) = spans_of(parse(stock([r])))  # record_to_readable loses the counts
    assert span == expected


def test_resource_override_replaces_every_resource() -> None:
    apm = Resource({"service.name": "chat-api", "apm.token": "t0k"})
    records = [record(i, resource=(RES_A, RES_B)[i % 2]) for i in range(4)]
    ours = encode(records, resource=apm)
    assert_same(ours, stock(records, resource=apm))
    assert len(parse(ours).resource_spans) == 1
    assert_same(encode(records), stock(records))  # the records keep their own


def test_scope_rename() -> None:
    records = [record(i, scope=(SCOPE_A, SCOPE_C, None)[i % 3]) for i in range(6)]

    def rename(name: str) -> str:
        return "langfuse-sdk" if name == "otel_llm" else name.upper()

    ours = encode(records, scope_rename=rename)
    assert_same(ours, stock(records, scope_rename=rename))
    names = [ss.scope.name for ss in parse(ours).resource_spans[0].scope_spans]
    assert names == ["langfuse-sdk", "LANGCHAIN", ""]
    assert_same(encode(records), stock(records))  # the cache keys on the name used


def test_scopes_renamed_alike_merge() -> None:
    records = [record(0, scope=SCOPE_A), record(1, scope=InstrumentationScope("x", "0.1.0"))]
    ours = encode(records, scope_rename=lambda _: "same")
    assert_same(ours, stock(records, scope_rename=lambda _: "same"))
    assert len(parse(ours).resource_spans[0].scope_spans) == 1


def test_attributes_and_resource_for_replace_the_records_own() -> None:
    records = [record(i, resource=(RES_A, RES_B)[i % 2], attributes={"own": i}) for i in range(6)]
    shaped = [{"shaped": i, "flag": i % 2 == 0} for i in range(6)]
    apm = Resource({"service.name": "apm"})
    mapped = {id(RES_A): apm, id(RES_B): RES_A_TWIN}
    calls: list[Resource] = []

    def resource_for(res: Resource) -> Resource:
        calls.append(res)
        return mapped[id(res)]

    ours = encode(records, attributes=shaped, resource_for=resource_for, scope_rename=str.upper)
    expected = [
        dataclasses.replace(r, attributes=a, resource=mapped[id(r.resource)])
        for r, a in zip(records, shaped, strict=True)
    ]
    assert_same(ours, stock(expected, scope_rename=str.upper))
    assert calls == [RES_A, RES_B]  # once per distinct resource object
    assert [r.attributes for r in records] == [{"own": i} for i in range(6)]  # untouched
    assert encode_batches(records, attributes=shaped, resource_for=resource_for) == [
        encode(expected)
    ]
    # an explicit resource wins over resource_for
    assert_same(
        encode(records, resource=apm, resource_for=resource_for), stock(records, resource=apm)
    )


def test_attributes_must_match_the_records() -> None:
    with pytest.raises(ValueError, match="2 attribute mappings for 1 records"):
        encode([record()], attributes=[{}, {}])


def test_raising_resource_for_keeps_the_resource_and_is_counted() -> None:
    def resource_for(res: Resource) -> Resource:
        raise RuntimeError("no")

    before = encoder_counts()
    assert_same(
        encode([record(), record(1)], resource_for=resource_for), stock([record(), record(1)])
    )
    assert _diff(before) == {"field_repaired": 1}


def test_bools_ints_and_floats_of_one_key_never_share_cached_bytes() -> None:
    # True == 1 == 1.0 and ("a",) hashes like ("a",): a cache keyed on (key, value) alone
    # would send one type's bytes for another.
    values: list[Any] = [True, 1, 1.0, False, 0, 0.0, -0.0, "1", ("1",), (True,), (1,)]
    records = [record(i, attributes={"v": v, "w": v}) for i, v in enumerate(values * 2)]
    assert_same(encode(records), stock(records))
    assert_same(encode(list(reversed(records))), stock(list(reversed(records))))


def test_records_from_spans_with_any_attribute_mapping() -> None:
    class Span(ReadableSpan):
        @property
        def attributes(self) -> Any:
            return self._attributes

    data = {"a": 1, "b": ("x",)}
    context = SpanContext(1, 2, is_remote=False)
    for mapping in (NoCopyMapping(data), dict(data), None):
        span = Span("s", context=context, attributes=mapping, start_time=1, end_time=2)
        r = record_from_span(span)
        assert type(r.attributes) is dict
        assert r.attributes == ({} if mapping is None else data)
        r.attributes["mutated"] = True  # the record's own copy
        assert "mutated" not in data and (mapping is None or "mutated" not in mapping)


def test_empty_input() -> None:
    assert encode([]) == b""
    assert encode_batches([]) == []


# -- property: random valid records, same bytes as stock --------------------------------------

_text = st.text(max_size=12)
_int64 = st.integers(*INT64)
_floats = st.floats(allow_nan=True, allow_infinity=True)
_scalars = st.one_of(_text, st.booleans(), _int64, _floats, st.binary(max_size=8))
_homogeneous = st.one_of(
    *(st.lists(s, max_size=4).map(tuple) for s in (_text, st.booleans(), _int64, _floats)),
    st.lists(st.binary(max_size=4), max_size=3),
)
_nested = st.recursive(
    st.one_of(_scalars, st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=6,
)
_values = st.one_of(_scalars, _homogeneous, _nested.filter(lambda v: v is not None))
_attributes = st.dictionaries(_text, _values, max_size=6)
_ids128 = st.integers(0, (1 << 128) - 1)
_ids64 = st.integers(0, (1 << 64) - 1)
_events = st.lists(
    st.builds(Event, name=_text, attributes=st.none() | _attributes, timestamp=_ids64),
    max_size=2,
)
_links = st.lists(
    st.builds(
        Link,
        context=st.builds(SpanContext, _ids128, _ids64, is_remote=st.booleans()),
        attributes=st.none() | _attributes,
    ),
    max_size=2,
)
_trace_states = st.none() | st.lists(
    st.tuples(st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True), st.sampled_from("xyz1")),
    max_size=3,
    unique_by=lambda kv: kv[0],
).map(TraceState)
_records = st.builds(
    SpanRecord,
    trace_id=_ids128,
    span_id=_ids64,
    name=_text,
    start_time=_ids64,
    end_time=_ids64,
    attributes=_attributes,
    parent_span_id=st.none() | _ids64,
    parent_is_remote=st.booleans(),
    kind=st.sampled_from(SpanKind),
    trace_state=_trace_states,
    status_code=st.sampled_from(StatusCode),
    status_description=st.none() | _text,
    events=_events,
    links=_links,
    resource=st.sampled_from((RES_A, RES_A_TWIN, RES_B, Resource.get_empty())),
    scope=st.sampled_from((SCOPE_A, SCOPE_A_TWIN, SCOPE_B, SCOPE_C, None)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_records, max_size=6))
def test_property_same_bytes_as_stock(records: list[SpanRecord]) -> None:
    before = encoder_counts()
    assert_same(encode(records), stock(records))
    assert encoder_counts() == before  # valid data: nothing replaced, nothing counted


@settings(max_examples=60, deadline=None)
@given(st.lists(_records, max_size=4), st.sampled_from((RES_B, Resource.get_empty())))
def test_property_resource_override_and_rename(
    records: list[SpanRecord], resource: Resource
) -> None:
    rename = str.upper
    ours = encode(records, resource=resource, scope_rename=rename)
    assert_same(ours, stock(records, resource=resource, scope_rename=rename))


# -- batches ----------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 400)), max_size=30),
    st.integers(1, 3000),
)
def test_batches_keep_every_span_once_in_order_and_under_the_limit(
    shape: list[tuple[int, int, int]], max_bytes: int
) -> None:
    resources = (RES_A, RES_B, RES_A_TWIN, Resource.get_empty())
    scopes = (SCOPE_A, SCOPE_B, None)
    records = [
        record(i, resource=resources[r], scope=scopes[s], attributes={"pad": "p" * n})
        for i, (r, s, n) in enumerate(shape)
    ]
    requests = encode_batches(records, max_bytes)
    start = 0
    for request in requests:
        ids = sorted(int.from_bytes(s.span_id, "big") for s in spans_of(parse(request)))
        run = records[start : start + len(ids)]  # the next run of records, each once
        assert ids == [r.span_id for r in run]
        assert len(request) <= max_bytes or len(run) == 1
        assert_same(request, stock(run))  # exactly what stock makes of that run
        start += len(run)
    assert start == len(records)


def test_one_batch_when_everything_fits() -> None:
    records = [generation(i) for i in range(20)]
    assert encode_batches(records) == [encode(records)]


def test_oversize_span_goes_alone_and_is_counted() -> None:
    records = [record(0), record(1, attributes={"big": "x" * 5000}), record(2)]
    before = encoder_counts().get("oversize_request", 0)
    requests = encode_batches(records, max_bytes=1000)
    assert [len(list(spans_of(parse(r)))) for r in requests] == [1, 1, 1]
    assert len(requests[1]) > 1000 >= max(len(requests[0]), len(requests[2]))
    assert encoder_counts()["oversize_request"] == before + 1


def test_batches_pass_resource_and_rename_through() -> None:
    records = [generation(i) for i in range(10)]
    res = Resource({"service.name": "apm"})
    requests = encode_batches(records, 4000, resource=res, scope_rename=str.upper)
    assert len(requests) > 1
    expected = parse(stock(records[:1], resource=res)).resource_spans[0].resource
    for request in requests:
        rs = parse(request).resource_spans
        assert [r.resource for r in rs] == [expected]
        assert {ss.scope.name for r in rs for ss in r.scope_spans} == {"OTEL_LLM"}


def test_max_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        encode_batches([record()], 0)


# -- hostile values: never raise, always parse, counted ----------------------------------------


class Opaque:
    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class BadSequence(Sequence[int]):
    def __getitem__(self, i: Any) -> Any:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[int]:
        raise RuntimeError("boom")


class BadMapping(Mapping[str, Any]):
    def __getitem__(self, k: str) -> Any:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")


def _diff(before: dict[str, int]) -> dict[str, int]:
    after = encoder_counts()
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _attrs_of(data: bytes) -> dict[str, Any]:
    (span,) = spans_of(parse(data))
    return {kv.key: kv.value for kv in span.attributes}


def test_surrogates_are_replaced_everywhere() -> None:
    r = record(
        name="span \ud800",
        attributes={"k\udcff": "v\ud83d", "list": ("ok", "\udfff")},
        events=(Event("ev\ud800", {"a": "\ud800"}, timestamp=1),),
        scope=InstrumentationScope("scope\ud800"),
        resource=Resource({"service.name": "svc\ud800"}),
    )
    before = encoder_counts()
    data = encode([r])
    request = parse(data)  # upb rejects invalid UTF-8: parsing is the check
    (span,) = spans_of(request)
    assert span.name == "span \ufffd"
    attrs = {kv.key: kv.value for kv in span.attributes}
    assert attrs["k\ufffd"].string_value == "v\ufffd"
    assert [v.string_value for v in attrs["list"].array_value.values] == ["ok", "\ufffd"]
    assert span.events[0].name == "ev\ufffd"
    assert request.resource_spans[0].scope_spans[0].scope.name == "scope\ufffd"
    assert _diff(before)["string_replaced"] == 8


def test_ints_beyond_int64_become_strings() -> None:
    huge = 10**5000  # more digits than str() allows: sent in hex
    attributes = {"big": 1 << 64, "low": -(1 << 63) - 1, "nested": [1, 1 << 70], "huge": huge}
    before = encoder_counts()
    attrs = _attrs_of(encode([record(attributes=attributes)]))
    assert attrs["big"].string_value == str(1 << 64)
    assert attrs["low"].string_value == str(-(1 << 63) - 1)
    assert [v.WhichOneof("value") for v in attrs["nested"].array_value.values] == [
        "int_value",
        "string_value",
    ]
    assert attrs["huge"].string_value == hex(huge)
    assert _diff(before) == {"int_overflow_stringified": 4}


def test_unknown_none_and_invalid_keys() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    attributes: dict[Any, Any] = {
        "obj": Opaque(),
        "none": None,
        7: "int key",
        "nested": [Opaque(), "kept"],
        "bad_seq": BadSequence(),
        "bad_map": BadMapping(),
        "cyclic": cyclic,
        "ok": "fine",
    }
    before = encoder_counts()
    attrs = _attrs_of(encode([record(attributes=attributes)]))
    assert set(attrs) == {"nested", "cyclic", "ok"}
    assert [v.WhichOneof("value") for v in attrs["nested"].array_value.values] == [
        None,
        "string_value",
    ]
    depth = 0
    value = attrs["cyclic"]
    while value.WhichOneof("value"):
        value = value.array_value.values[0]
        depth += 1
    assert depth == 32
    assert _diff(before) == {
        "unsupported_value": 4,  # obj, nested[0], bad_seq, bad_map
        "none_dropped": 1,
        "invalid_key_dropped": 1,
        "depth_exceeded": 1,
    }


def test_broken_span_fields_are_repaired() -> None:
    class Raising:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(name)

    r = record(
        trace_id=-1,
        span_id=1 << 70,
        parent_span_id=-5,
        name=None,
        start_time=None,
        end_time=-3,
        kind="server",
        trace_state=42,
        status_code=2,
        dropped_attributes=-1,
        dropped_events=1 << 40,
        events=(Raising(), 5),
        links=Raising(),
        attributes=BadMapping(),
    )

    class NoBool:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth")

    error = record(status_code=StatusCode.ERROR, status_description=NoBool(), trace_state=NoBool())
    before = encoder_counts()
    span, other = spans_of(parse(encode([r, error])))
    assert other.status.code == other.status.STATUS_CODE_ERROR and not other.status.message
    assert span.trace_id == b"\xff" * 16
    assert span.span_id == b"\x00" * 8
    assert span.kind == span.SPAN_KIND_INTERNAL
    assert span.dropped_events_count == (1 << 32) - 1
    assert len(span.events) == 2 and not span.links
    assert _diff(before)["field_repaired"] > 5


def test_whole_records_that_are_not_records() -> None:
    data = encode([None, "x", record()], resource=None)  # type: ignore[list-item]
    assert len(list(spans_of(parse(data)))) == 3


def test_raising_or_bad_scope_rename_keeps_the_name() -> None:
    def rename(name: str) -> str:
        raise RuntimeError(name)

    before = encoder_counts()
    ours = encode([record()], scope_rename=rename)
    assert_same(ours, stock([record()]))
    assert_same(encode([record()], scope_rename=lambda n: 5), stock([record()]))  # type: ignore[arg-type, return-value]
    assert _diff(before) == {"scope_rename_failed": 2}


_hostile = st.recursive(
    st.one_of(
        _scalars,
        st.none(),
        st.text(st.characters(codec=None, categories=["Cs", "Lu"]), max_size=4),
        st.integers().filter(lambda n: not INT64[0] <= n <= INT64[1]) | st.integers(),
        st.builds(Opaque),
        st.builds(BadSequence),
        st.builds(BadMapping),
        st.sets(st.integers(), max_size=2),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(tuple),
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(_text, st.integers(), st.builds(Opaque)), inner, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.one_of(_text, st.text(st.characters(categories=["Cs"]), max_size=2), st.integers()),
            _hostile,
            max_size=5,
        ),
        min_size=1,
        max_size=3,
    ),
    st.text(st.characters(codec=None), max_size=6),
)
def test_property_hostile_values_never_raise_and_parse(
    attribute_sets: list[dict[Any, Any]], name: str
) -> None:
    records = [
        record(i, name=name, attributes=a, events=(Event(name, a, timestamp=1),))
        for i, a in enumerate(attribute_sets)
    ]
    for data in [encode(records), *encode_batches(records, 200)]:
        parse(data)
    assert len(list(spans_of(parse(encode(records))))) == len(records)


def test_counts_are_a_snapshot() -> None:
    snapshot = encoder_counts()
    snapshot["string_replaced"] = -1
    assert encoder_counts().get("string_replaced") != -1


def test_public_names() -> None:
    assert encoder.__all__ == ["DEFAULT_MAX_BYTES", "encode", "encode_batches", "encoder_counts"]
