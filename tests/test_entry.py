"""gen_ai.is_entry: true on the outermost LLM-related span of each trace, absent elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

import otel_llm
from otel_llm.processing.entry import EntryTracker
from tests.mappings import NoCopyMapping


def _entries(memory: otel_llm.InMemory) -> list[str]:
    return sorted(s.name for s in memory.spans if s.attributes.get("gen_ai.is_entry") is True)


def _assert_marker_only_true_or_absent(spans: list[ReadableSpan]) -> None:
    for span in spans:
        assert span.attributes.get("gen_ai.is_entry", True) is True


def test_outermost_observation_is_the_entry(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    with otel_llm.start_observation("agent", as_type="agent"):
        with otel_llm.start_generation("llm"), otel_llm.start_observation("tool", as_type="tool"):
            pass
    pipeline.flush()
    assert _entries(memory) == ["agent"]
    _assert_marker_only_true_or_absent(memory.spans)


def test_upstream_http_server_span_is_never_the_entry(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    web = pipeline.tracer_provider.get_tracer("opentelemetry.instrumentation.fastapi")
    with web.start_as_current_span("GET /chat", attributes={"http.method": "GET"}):
        with web.start_as_current_span("middleware"):
            with otel_llm.start_generation("llm"):
                pass
        with otel_llm.start_generation("second-llm"):
            pass
    pipeline.flush()
    assert _entries(memory) == ["llm"]  # exactly one per trace


def test_third_party_genai_span_counts(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    lib = pipeline.tracer_provider.get_tracer("some.client.lib")
    with lib.start_as_current_span("GET /"):
        with lib.start_as_current_span("chat gpt-4o", attributes={"gen_ai.operation.name": "chat"}):
            with otel_llm.start_observation("inside"):
                pass
    pipeline.flush()
    assert _entries(memory) == ["chat gpt-4o"]


def test_span_that_becomes_llm_related_after_start(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    lib = pipeline.tracer_provider.get_tracer("late.lib")
    with lib.start_as_current_span("late") as span:
        span.set_attribute("gen_ai.request.model", "m")
    pipeline.flush()
    assert _entries(memory) == ["late"]


def test_each_trace_has_its_own_entry(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    for i in range(3):
        with otel_llm.start_observation(f"root-{i}"), otel_llm.start_observation(f"child-{i}"):
            pass
    pipeline.flush()
    assert _entries(memory) == ["root-0", "root-1", "root-2"]


def test_entry_true_overrides(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    with otel_llm.start_observation("outer"):
        with otel_llm.start_observation("chosen", entry=True):
            pass
    pipeline.flush()
    assert _entries(memory) == ["chosen"]


def test_mark_entry_overrides(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    @otel_llm.observe()
    def handler() -> None:
        otel_llm.mark_entry()

    @otel_llm.observe()
    def outer() -> None:
        handler()

    outer()
    otel_llm.mark_entry()  # outside any span: ignored
    pipeline.flush()
    assert _entries(memory) == ["handler"]


def test_observe_entry_flag(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    @otel_llm.observe(entry=True)
    def inner() -> None:
        pass

    with otel_llm.start_observation("outer"):
        inner()
    pipeline.flush()
    assert _entries(memory) == ["inner"]


def test_spans_of_llm_instrumentation_scopes_count_from_their_start(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    web = pipeline.tracer_provider.get_tracer("opentelemetry.instrumentation.fastapi")
    sdk = pipeline.tracer_provider.get_tracer("langfuse-sdk")
    with web.start_as_current_span("POST /chat"):
        with sdk.start_as_current_span("agent") as agent:  # its attributes come later
            with otel_llm.start_generation("llm"):
                pass
            agent.set_attribute("langfuse.observation.type", "agent")
    pipeline.flush()
    assert _entries(memory) == ["agent"]


def test_no_marker_without_llm_spans(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    plain = pipeline.tracer_provider.get_tracer("db")
    with plain.start_as_current_span("query"):
        pass
    pipeline.flush()
    assert _entries(memory) == []


def test_is_entry_attribute_given_at_start_is_explicit(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    lib = pipeline.tracer_provider.get_tracer("some.lib")
    with otel_llm.start_observation("outer", as_type="agent"):
        with lib.start_as_current_span("chosen", attributes={"gen_ai.is_entry": True}):
            pass
    pipeline.flush()
    assert _entries(memory) == ["chosen"]


@pytest.mark.parametrize(
    "wrap",
    [dict, MappingProxyType, lambda d: MappingProxyType(NoCopyMapping(d)), NoCopyMapping],
    ids=["dict", "proxy", "proxy-without-copy", "mapping"],
)
def test_tracker_reads_any_attribute_mapping(wrap: Callable[[dict[str, Any]], Any]) -> None:
    def span(span_id: int, attributes: dict[str, Any], parent: SpanContext | None) -> Any:
        return SimpleNamespace(
            context=SpanContext(7, span_id, is_remote=False),
            parent=parent,
            attributes=wrap(attributes),
            instrumentation_scope=None,
        )

    tracker = EntryTracker()
    root = span(1, {"http.method": "GET"}, None)
    llm = span(2, {"gen_ai.operation.name": "chat"}, root.context)
    chosen = span(3, {"otel_llm.observation.type": "span", "gen_ai.is_entry": True}, llm.context)
    for s in (root, llm, chosen):
        tracker.on_start(s)
    assert [tracker.on_end(s) for s in (chosen, llm, root)] == [False, False, False]
    tracker = EntryTracker()
    for s in (root, llm):
        tracker.on_start(s)
    assert [tracker.on_end(s) for s in (llm, root)] == [True, False]
