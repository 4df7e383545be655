"""The stateful Client: the Langfuse v2 tutorial style on OpenTelemetry spans."""

from __future__ import annotations

import gc
import json
import threading

import pytest

import otel_llm


def _by_name(memory: otel_llm.InMemory) -> dict[str, object]:
    return {s.name: s for s in memory.spans}


def test_trace_span_generation_event_tree(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    client = otel_llm.Client()
    trace = client.trace(
        name="gpt_stream",
        user_id="user-123",
        session_id="sess-1",
        input="question",
        metadata={"k": "v"},
        tags=["t"],
    )
    span = trace.span(name="gpt_stream_call", input={"q": 1})
    gen = span.generation(name="llm", model="gpt-4o-mini", model_parameters={"temperature": 0})
    gen.end(output="answer", usage={"input": 3, "output": 1})
    span.end(output="answer")
    trace.event(name="cache-hit", input={"key": "x"})
    trace.update(output="answer")
    trace.end()
    client.flush()
    spans = _by_name(memory)
    assert set(spans) == {"gpt_stream", "gpt_stream_call", "llm", "cache-hit"}
    root = spans["gpt_stream"]
    assert root.parent is None  # type: ignore[attr-defined]
    assert spans["gpt_stream_call"].parent.span_id == root.context.span_id  # type: ignore[attr-defined]
    assert spans["llm"].parent.span_id == spans["gpt_stream_call"].context.span_id  # type: ignore[attr-defined]
    assert spans["cache-hit"].parent.span_id == root.context.span_id  # type: ignore[attr-defined]
    for s in spans.values():
        a = s.attributes  # type: ignore[attr-defined]
        assert a["user.id"] == "user-123"
        assert a["session.id"] == "sess-1"
        assert a["otel_llm.trace.name"] == "gpt_stream"
        assert a["otel_llm.trace.tags"] == ("t",)
    ra = root.attributes  # type: ignore[attr-defined]
    assert ra["otel_llm.trace.input"] == "question"
    assert ra["otel_llm.trace.output"] == "answer"
    assert json.loads(ra["otel_llm.trace.metadata"]) == {"k": "v"}
    assert spans["cache-hit"].attributes["otel_llm.observation.type"] == "event"  # type: ignore[attr-defined]
    assert spans["llm"].attributes["gen_ai.request.model"] == "gpt-4o-mini"  # type: ignore[attr-defined]
    assert ra["gen_ai.is_entry"] is True


def test_unended_generation_is_ended_by_flush(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    client = otel_llm.Client()
    trace = client.trace(name="simple-query", input="q")
    generation = trace.generation(name="openai-generation", model="gpt-4o-mini", input="q")
    generation.update(output="Paris", completion_start_time=1700000000)
    assert client.flush() is True  # the seed never calls generation.end()
    spans = _by_name(memory)
    assert set(spans) == {"simple-query", "openai-generation"}
    gen = spans["openai-generation"]
    assert gen.attributes["otel_llm.observation.output"] == "Paris"  # type: ignore[attr-defined]
    assert gen.attributes["otel_llm.observation.auto_ended"] is True  # type: ignore[attr-defined]
    assert gen.end_time <= spans["simple-query"].end_time  # type: ignore[attr-defined]
    del trace, generation


def test_objects_end_when_garbage_collected(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    def handler() -> str:
        trace = otel_llm.Client().trace(name="request")
        span = trace.span(name="step")
        span.update(output="x")
        return trace.trace_id

    trace_id = handler()
    gc.collect()
    pipeline.flush()
    assert {s.name for s in memory.spans} == {"request", "step"}
    assert {f"{s.context.trace_id:032x}" for s in memory.spans} == {trace_id}


def test_trace_error_level(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    trace = otel_llm.Client().trace(name="failing")
    trace.update(level="ERROR", status_message="upstream 500")
    trace.end()
    pipeline.flush()
    root = memory.spans[0]
    assert root.attributes["otel_llm.observation.level"] == "ERROR"
    assert root.status.description == "upstream 500"


def test_custom_trace_id_and_parent_observation_id(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    wanted = otel_llm.create_trace_id(seed="conversation-9")
    trace = otel_llm.Client().trace(name="t", id=wanted)
    a = trace.span(name="a")
    b = trace.span(name="b", parent_observation_id=a.id, level="WARNING", status_message="w")
    b.end()
    a.end()
    trace.end()
    pipeline.flush()
    spans = _by_name(memory)
    assert trace.trace_id == wanted
    assert all(f"{s.context.trace_id:032x}" == wanted for s in spans.values())  # type: ignore[attr-defined]
    assert spans["b"].parent.span_id == spans["a"].context.span_id  # type: ignore[attr-defined]
    assert spans["b"].attributes["otel_llm.observation.level"] == "WARNING"  # type: ignore[attr-defined]


def test_end_from_another_thread(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    trace = otel_llm.Client().trace(name="t")
    span = trace.span(name="worker-step")
    t = threading.Thread(target=lambda: span.end(output="done"))
    t.start()
    t.join()
    trace.end()
    pipeline.flush()
    assert _by_name(memory)["worker-step"].attributes["otel_llm.observation.output"] == "done"  # type: ignore[attr-defined]


def test_trace_and_observation_scores(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    trace = otel_llm.Client().trace(name="t")
    gen = trace.generation(name="g")
    trace.score(name="helpful", value=1)
    gen.score(name="tone", value="friendly", comment="nice")
    gen.end()
    trace.end()
    pipeline.flush()
    by_name = {s.name: s for s in memory.scores}
    assert by_name["helpful"].trace_id == trace.trace_id
    assert by_name["helpful"].observation_id is None
    assert by_name["helpful"].data_type == "NUMERIC"
    assert by_name["tone"].observation_id == gen.id
    assert by_name["tone"].data_type == "CATEGORICAL"
    assert by_name["tone"].comment == "nice"


def test_flush_leaves_objects_of_other_live_threads_open(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    client = otel_llm.Client()
    holder: list[object] = []
    ready, release = threading.Event(), threading.Event()

    def other() -> None:
        holder.append(client.trace(name="other-thread"))
        ready.set()
        release.wait(5)  # still serving its request while the main thread flushes

    worker = threading.Thread(target=other)
    worker.start()
    ready.wait(5)
    mine = client.trace(name="mine")
    client.flush()
    assert [s.name for s in memory.spans] == ["mine"]
    release.set()
    worker.join()
    client.flush()  # its creator is gone now: nobody else can end it
    assert sorted(s.name for s in memory.spans) == ["mine", "other-thread"]
    del mine


def test_typed_children_and_unknown_arguments_counted(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    trace = otel_llm.Client().trace(name="t")
    tool = trace.span(name="get_weather_tool", as_type="tool", bogus=1)
    retrieval = tool.span(name="vector_search", as_type="retriever")
    retrieval.end()
    tool.end()
    trace.end()
    pipeline.flush()
    spans = _by_name(memory)
    assert spans["get_weather_tool"].attributes["otel_llm.observation.type"] == "tool"  # type: ignore[attr-defined]
    assert spans["vector_search"].attributes["gen_ai.operation.name"] == "retrieval"  # type: ignore[attr-defined]
    from otel_llm.diagnostics import counts

    assert counts()["invalid_value.update.bogus"] == 1


def test_trace_fields_reach_spans_of_other_instrumentation(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    trace = otel_llm.Client().trace(name="t", user_id="u", session_id="s")
    with otel_llm.start_observation("manual", parent=trace.observation):
        pass
    other = pipeline.tracer_provider.get_tracer("http.client")
    from opentelemetry import trace as trace_api

    ctx = trace_api.set_span_in_context(trace.observation.span)
    other.start_span("GET /weather", context=ctx).end()
    trace.end()
    pipeline.flush()
    for name in ("manual", "GET /weather"):
        attrs = _by_name(memory)[name].attributes  # type: ignore[attr-defined]
        assert attrs["user.id"] == "u" and attrs["session.id"] == "s", name
        assert attrs["otel_llm.trace.name"] == "t"


def test_flush_ends_objects_of_finished_tasks(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    import asyncio

    client = otel_llm.Client()
    kept: list[object] = []

    async def handle() -> None:
        t = client.trace(name="request")
        t.span(name="child").end()
        kept.append(t)  # a reference outlives the task (e.g. stored by a framework)

    asyncio.run(handle())
    client.flush()
    assert sorted(s.name for s in memory.spans) == ["child", "request"]


def test_client_with_langfuse_keys_sends_to_langfuse() -> None:
    from tests.otlp_http_server import OTLPHTTPServer

    with OTLPHTTPServer() as server:
        client = otel_llm.Client(public_key="pk-lf-test", secret_key="sk-lf-test", host=server.url)
        trace = client.trace(name="simple-query", user_id="user-123", input="q")
        trace.generation(name="openai-generation", model="gpt-4o-mini").end(output="a")
        trace.end()
        assert client.flush(10.0)
        spans = server.spans("/api/public/otel/v1/traces")
        assert sorted(s.name for s in spans) == ["openai-generation", "simple-query"]
        request = server.requests_to("/api/public/otel/v1/traces")[0]
        assert request.headers["authorization"].startswith("Basic ")
        # a second client with the same keys does not add a second destination
        otel_llm.Client(public_key="pk-lf-test", secret_key="sk-lf-test", host=server.url)
        from otel_llm import runtime

        pipeline = runtime.current().pipeline
        assert pipeline is not None
        assert [d.kind for d in pipeline.destinations] == ["langfuse"]


def test_langfuse_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.otlp_http_server import OTLPHTTPServer

    mp = monkeypatch
    with OTLPHTTPServer() as server:
        mp.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-env")
        mp.setenv("LANGFUSE_SECRET_KEY", "sk-lf-env")
        mp.setenv("LANGFUSE_HOST", server.url)
        from opentelemetry.sdk.trace import TracerProvider

        p = otel_llm.configure(tracer_provider=TracerProvider())
        assert [d.kind for d in p.destinations] == ["langfuse"]
        with otel_llm.start_generation("g", model="m"):
            pass
        assert p.flush(10.0)
        assert [s.name for s in server.spans("/api/public/otel/v1/traces")] == ["g"]
