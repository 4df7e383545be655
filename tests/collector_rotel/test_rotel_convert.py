"""rotel span ⇄ SpanRecord conversion, against stand-ins of rotel's span API."""

from __future__ import annotations

import orjson
import pytest
from opentelemetry.sdk.trace import Event as SdkEvent
from opentelemetry.trace import SpanKind
from opentelemetry.trace.status import StatusCode

from otel_llm import semconv
from otel_llm.collector.rotel_convert import (
    EventMismatch,
    read_span,
    rewrite_arrays,
    strip_sensitive,
    write_span,
)
from tests.collector_rotel.rotel_standins import (
    STANDIN_TYPES,
    Events,
    Resource,
    Span,
    Status,
    attributes,
    event,
    exported,
    make_span,
)


def sensitive(key: str) -> bool:
    return semconv.is_content_key(key) or key in {"api_key", "exception.message"}


def test_read_span_copies_ids_times_kind_status_and_attributes() -> None:
    span = make_span(
        {"gen_ai.request.model": "m", "n": 3, "tags": ["a", "b"]},
        parent_span_id=bytes([0, 0, 0, 0, 0, 0, 0, 9]),
        kind=3,
        status=Status(2, "boom"),
    )
    record, _ = read_span(span, STANDIN_TYPES, sensitive)
    assert record.trace_id == int.from_bytes(bytes(range(1, 17)), "big")
    assert record.span_id_hex == "0102030405060708"
    assert record.parent_span_id == 9
    assert record.kind is SpanKind.CLIENT
    assert record.status_code is StatusCode.ERROR and record.status_description == "boom"
    assert record.start_time == span.start_time_unix_nano
    assert record.end_time == span.end_time_unix_nano
    assert record.attributes == {"gen_ai.request.model": "m", "n": 3, "tags": ("a", "b")}


def test_root_span_and_unset_status() -> None:
    record, _ = read_span(make_span({}, kind=0, status=None), STANDIN_TYPES, sensitive)
    assert record.parent_span_id is None
    assert record.kind is SpanKind.INTERNAL
    assert record.status_code is StatusCode.UNSET and record.status_description is None


def test_unchanged_span_is_left_alone_except_arrays_pre_reversed() -> None:
    span = make_span({"a": "x", "tags": ["1", "2", "3"], "nested": {"k": ["p", "q"]}})
    record, snap = read_span(span, STANDIN_TYPES, sensitive)
    before = list(span.attributes.items)
    assert write_span(span, snap, record, STANDIN_TYPES, reverse_arrays=True) == 0
    assert span.attributes.items[0] is before[0]  # a scalar is not rewritten
    # what leaves the agent (which reverses every array of a list that was read)
    assert exported(span) == {"a": "x", "tags": ["1", "2", "3"], "nested": {"k": ["p", "q"]}}


def test_without_reverse_arrays_nothing_is_rewritten() -> None:
    span = make_span({"tags": ["1", "2"]})
    record, snap = read_span(span, STANDIN_TYPES, sensitive)
    before = list(span.attributes.items)
    assert write_span(span, snap, record, STANDIN_TYPES, reverse_arrays=False) == 0
    assert span.attributes.items == before


def test_changed_removed_and_added_attributes_are_written_in_place() -> None:
    span = make_span({"keep": 1, "change": "old", "drop": "x", "retype": 1, "arr": ["a"]})
    record, snap = read_span(span, STANDIN_TYPES, sensitive)
    attrs = record.attributes
    attrs["change"] = "new"
    del attrs["drop"]
    attrs["retype"] = True
    attrs["arr"] = ("a", "b")
    attrs["added"] = 2.5
    attrs["added_arr"] = ("x", "y")
    changes = write_span(span, snap, record, STANDIN_TYPES, reverse_arrays=True)
    assert changes == 6
    assert [kv.key for kv in span.attributes.items] == [
        "keep",
        "change",
        "retype",
        "arr",
        "added",
        "added_arr",
    ]
    assert exported(span) == {
        "keep": 1,
        "change": "new",
        "retype": True,
        "arr": ["a", "b"],
        "added": 2.5,
        "added_arr": ["x", "y"],
    }


def test_duplicate_keys_collapse_to_the_last_value() -> None:
    span = Span(attributes=attributes({"k": "first"}))
    span.attributes.items.append(attributes({"k": "second"}).items[0])
    record, snap = read_span(span, STANDIN_TYPES, sensitive)
    assert record.attributes == {"k": "second"}
    assert write_span(span, snap, record, STANDIN_TYPES, reverse_arrays=True) == 1
    assert exported(span) == {"k": "second"}
    assert len(span.attributes.items) == 1


def test_structured_values_stay_untouched_unless_masking_covers_their_key() -> None:
    span = make_span(
        {
            "structured": {"a": 1, "tags": ["x", "y"]},
            "mixed": [1, "a"],
            "raw": b"\x01",
            semconv.GEN_AI_INPUT_MESSAGES: [{"role": "user", "content": "hi"}],
            "api_key": {"value": "s3cr3t"},
        }
    )
    record, snap = read_span(span, STANDIN_TYPES, sensitive)
    # the stages see no value a SpanRecord cannot hold, except masked keys, as JSON text
    assert set(record.attributes) == {semconv.GEN_AI_INPUT_MESSAGES, "api_key"}
    messages = record.attributes[semconv.GEN_AI_INPUT_MESSAGES]
    assert orjson.loads(messages) == [{"role": "user", "content": "hi"}]
    # masking changed the secret and left the messages alone
    record.attributes["api_key"] = "[REDACTED:key]"
    assert write_span(span, snap, record, STANDIN_TYPES, reverse_arrays=True) == 1
    out = exported(span)
    assert out["api_key"] == "[REDACTED:key]"
    assert out[semconv.GEN_AI_INPUT_MESSAGES] == [{"role": "user", "content": "hi"}]
    assert out["structured"] == {"a": 1, "tags": ["x", "y"]}
    assert out["mixed"] == [1, "a"] and out["raw"] == b"\x01"


def test_a_masked_structured_content_value_is_written_as_text() -> None:
    span = make_span({semconv.GEN_AI_INPUT_MESSAGES: [{"content": "secret"}]})
    record, snap = read_span(span, STANDIN_TYPES, sensitive)
    record.attributes[semconv.GEN_AI_INPUT_MESSAGES] = '[{"content":"[REDACTED]"}]'
    write_span(span, snap, record, STANDIN_TYPES, reverse_arrays=True)
    assert exported(span) == {semconv.GEN_AI_INPUT_MESSAGES: '[{"content":"[REDACTED]"}]'}


def test_events_masked_dropped_and_kept() -> None:
    span = make_span({})
    span.events = Events(
        [
            event("gen_ai.user.message", {"content": "hi"}, time=1),
            event("exception", {"exception.message": "token abc", "tags": ["1", "2"]}, time=2),
            event("other", {"x": 1}, time=3),
        ]
    )
    record, snap = read_span(span, STANDIN_TYPES, sensitive)
    assert [(e.name, e.timestamp) for e in record.events] == [
        ("gen_ai.user.message", 1),
        ("exception", 2),
        ("other", 3),
    ]
    _, second, third = record.events
    assert dict(second.attributes or {}) == {"exception.message": "token abc", "tags": ("1", "2")}
    # normalize drops the message event; masking rebuilds the exception event
    masked = SdkEvent("exception", {"exception.message": "token [X]", "tags": ("1", "2")}, 2)
    record.events = (masked, third)
    changes = write_span(span, snap, record, STANDIN_TYPES, reverse_arrays=True)
    assert changes == 2
    assert [e.name for e in span.events.items] == ["exception", "other"]
    assert exported(span.events.items[0]) == {"exception.message": "token [X]", "tags": ["1", "2"]}
    assert exported(span.events.items[1]) == {"x": 1}


def test_events_that_are_not_the_spans_events_raise() -> None:
    span = make_span({})
    span.events = Events([event("a", {}, time=1)])
    record, snap = read_span(span, STANDIN_TYPES, sensitive)
    record.events = (SdkEvent("b", {}, 1),)
    with pytest.raises(EventMismatch):
        write_span(span, snap, record, STANDIN_TYPES, reverse_arrays=True)


def test_status_message_is_rewritten_when_changed() -> None:
    span = make_span({}, status=Status(2, "failed for sk-proj-XXXX"))
    record, snap = read_span(span, STANDIN_TYPES, sensitive)
    record.status_description = "failed for [REDACTED]"
    assert write_span(span, snap, record, STANDIN_TYPES, reverse_arrays=True) == 1
    assert span.status is not None and span.status.message == "failed for [REDACTED]"


def test_rewrite_arrays_of_a_list_nothing_else_edits() -> None:
    resource = Resource(attributes({"service.name": "s", "tags": ["a", "b", "c"]}))
    assert rewrite_arrays(resource.attributes, STANDIN_TYPES) == 1
    assert exported(resource) == {"service.name": "s", "tags": ["a", "b", "c"]}


def test_strip_sensitive_removes_what_masking_covers() -> None:
    span = make_span(
        {"keep": 1, semconv.GEN_AI_INPUT_MESSAGES: "secret", "api_key": "k"},
        status=Status(2, "failed with secret"),
    )
    span.events = Events(
        [
            event("gen_ai.choice", {"message": "secret"}),
            event("exception", {"exception.message": "secret", "exception.type": "E"}),
        ]
    )
    removed = strip_sensitive(span, sensitive, "<masked>")
    assert removed == 5
    assert exported(span) == {"keep": 1}
    assert [e.name for e in span.events.items] == ["exception"]
    assert exported(span.events.items[0]) == {"exception.type": "E"}
    assert span.status is not None and span.status.message == "<masked>"
