"""start_observation / start_generation and Observation.update: fields → attributes."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from opentelemetry.trace import StatusCode

import otel_llm
from otel_llm import semconv


def _spans(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> dict[str, object]:
    pipeline.flush()
    return {s.name: s for s in memory.spans}


@pytest.mark.parametrize(
    ("as_type", "operation"),
    sorted(semconv.OPERATION_BY_TYPE.items()),
)
def test_every_type_maps_to_operation_name(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, as_type: str, operation: str
) -> None:
    with otel_llm.start_observation("obs", as_type=as_type):
        pass
    span = _spans(pipeline, memory)["obs"]
    assert span.attributes["otel_llm.observation.type"] == as_type  # type: ignore[attr-defined]
    assert span.attributes["gen_ai.operation.name"] == operation  # type: ignore[attr-defined]


def test_semconv_operation_names_for_llm_types() -> None:
    assert semconv.OPERATION_BY_TYPE["generation"] == "chat"
    assert semconv.OPERATION_BY_TYPE["embedding"] == "embeddings"
    assert semconv.OPERATION_BY_TYPE["agent"] == "invoke_agent"
    assert semconv.OPERATION_BY_TYPE["tool"] == "execute_tool"
    assert semconv.OPERATION_BY_TYPE["retriever"] == "retrieval"


def test_unknown_type_falls_back_to_span_and_is_counted(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    with otel_llm.start_observation("obs", as_type="banana"):
        pass
    span = _spans(pipeline, memory)["obs"]
    assert span.attributes["otel_llm.observation.type"] == "span"  # type: ignore[attr-defined]
    from otel_llm.diagnostics import counts

    assert counts()["invalid_value.as_type"] == 1


def test_generation_fields(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    with otel_llm.start_generation(
        "llm",
        model="gpt-4o-mini",
        model_parameters={"temperature": 0.7, "max_tokens": 100, "stop": ["\n"], "top_p": None},
        input=[{"role": "user", "content": "hi"}],
        prompt={"name": "greeting", "version": 3},
        metadata={"a": 1},
    ) as gen:
        gen.update(
            output="hello",
            usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            cost=0.0012,
            metadata={"b": 2},
        )
    attrs = _spans(pipeline, memory)["llm"].attributes  # type: ignore[attr-defined]
    assert attrs["otel_llm.observation.type"] == "generation"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.temperature"] == 0.7
    assert attrs["gen_ai.request.max_tokens"] == 100
    assert attrs["gen_ai.request.stop_sequences"] == ("\n",)
    assert "gen_ai.request.top_p" not in attrs
    assert json.loads(attrs["otel_llm.observation.model_parameters"])["temperature"] == 0.7
    assert json.loads(attrs["otel_llm.observation.input"]) == [{"role": "user", "content": "hi"}]
    assert attrs["otel_llm.observation.output"] == "hello"
    assert attrs["gen_ai.usage.input_tokens"] == 5  # normalized by the usage stage
    assert attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["gen_ai.usage.cost"] == 0.0012  # provider-reported cost wins
    assert attrs["otel_llm.cost.source"] == "provider"
    assert attrs["otel_llm.prompt.name"] == "greeting"
    assert attrs["otel_llm.prompt.version"] == 3
    assert json.loads(attrs["otel_llm.observation.metadata"]) == {"a": 1, "b": 2}


def test_usage_objects_are_serialized(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    class Usage:
        def __init__(self) -> None:
            self.prompt_tokens = 3
            self.completion_tokens = 4

    with otel_llm.start_generation("llm") as gen:
        gen.update(usage=Usage())
    attrs = _spans(pipeline, memory)["llm"].attributes  # type: ignore[attr-defined]
    assert attrs["gen_ai.usage.input_tokens"] == 3
    assert attrs["gen_ai.usage.output_tokens"] == 4


def test_prompt_object_and_fallback(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    class Prompt:
        name = "p"
        version = 2
        is_fallback = False

    class Fallback(Prompt):
        is_fallback = True

    with otel_llm.start_generation("a", prompt=Prompt()):
        pass
    with otel_llm.start_generation("b", prompt=Fallback()):
        pass
    spans = _spans(pipeline, memory)
    assert spans["a"].attributes["otel_llm.prompt.version"] == 2  # type: ignore[attr-defined]
    assert "otel_llm.prompt.name" not in spans["b"].attributes  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc),
        1704110400,  # epoch seconds, like OpenAI's `created`
        1704110400.0,
        1704110400000,  # milliseconds
    ],
)
def test_completion_start_time_forms(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, value: object
) -> None:
    with otel_llm.start_generation("llm") as gen:
        gen.update(completion_start_time=value)
    attrs = _spans(pipeline, memory)["llm"].attributes  # type: ignore[attr-defined]
    assert attrs["otel_llm.observation.completion_start_time"] == "2024-01-01T12:00:00.000000Z"
    # before the span started: no negative time to first chunk
    assert "gen_ai.response.time_to_first_chunk" not in attrs


def test_time_to_first_chunk(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    with otel_llm.start_generation("llm") as gen:
        first = dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=250)
        gen.update(completion_start_time=first)
    attrs = _spans(pipeline, memory)["llm"].attributes  # type: ignore[attr-defined]
    assert 0.2 < attrs["gen_ai.response.time_to_first_chunk"] < 5


def test_level_error_sets_status(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    with otel_llm.start_observation("a", level="warning", status_message="careful"):
        pass
    with otel_llm.start_observation("b") as obs:
        obs.update(level="ERROR", status_message="broken")
    spans = _spans(pipeline, memory)
    a, b = spans["a"], spans["b"]
    assert a.attributes["otel_llm.observation.level"] == "WARNING"  # type: ignore[attr-defined]
    assert a.attributes["otel_llm.observation.status_message"] == "careful"  # type: ignore[attr-defined]
    assert a.status.status_code is StatusCode.UNSET  # type: ignore[attr-defined]
    assert b.status.status_code is StatusCode.ERROR  # type: ignore[attr-defined]
    assert b.status.description == "broken"  # type: ignore[attr-defined]


def test_wrong_types_to_update_never_raise(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    with otel_llm.start_generation("llm") as gen:
        gen.update(
            level="LOUD",
            model_parameters="hot",
            completion_start_time="yesterday",
            prompt=42,
            no_such_field=1,
            metadata=float("nan"),
            usage=object(),
        )
    attrs = _spans(pipeline, memory)["llm"].attributes  # type: ignore[attr-defined]
    assert "otel_llm.observation.level" not in attrs
    assert "otel_llm.observation.completion_start_time" not in attrs
    from otel_llm.diagnostics import counts

    c = counts()
    for field in ("level", "model_parameters", "completion_start_time", "prompt"):
        assert c[f"invalid_value.{field}"] == 1, field
    assert c["invalid_value.update.no_such_field"] == 1


def test_update_after_end_is_ignored_and_counted(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    obs = otel_llm.start_observation("x")
    obs.end(output="final")
    obs.update(output="late")
    obs.end()
    attrs = _spans(pipeline, memory)["x"].attributes  # type: ignore[attr-defined]
    assert attrs["otel_llm.observation.output"] == "final"
    assert len(memory.spans) == 1
    from otel_llm.diagnostics import counts

    assert counts()["invalid_value.update"] == 1


def test_end_from_other_threads_exactly_once(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    obs = otel_llm.start_observation("shared")
    threads = [threading.Thread(target=obs.end) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pipeline.flush()
    assert [s.name for s in memory.spans] == ["shared"]


def test_trace_id_starts_a_root_with_that_id(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    wanted = otel_llm.create_trace_id(seed="message-123")
    with otel_llm.start_observation("outer"):
        with otel_llm.start_observation("root", trace_id=wanted) as obs:
            assert obs.trace_id == wanted
            assert otel_llm.get_current_trace_id() == wanted
            with otel_llm.start_observation("child"):
                pass
    spans = _spans(pipeline, memory)
    assert f"{spans['root'].context.trace_id:032x}" == wanted  # type: ignore[attr-defined]
    assert spans["root"].parent is None  # type: ignore[attr-defined]
    assert spans["child"].context.trace_id == spans["root"].context.trace_id  # type: ignore[attr-defined]
    assert spans["outer"].context.trace_id != spans["root"].context.trace_id  # type: ignore[attr-defined]


def test_invalid_trace_id_is_ignored(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    with otel_llm.start_observation("root", trace_id="nope") as obs:
        assert len(obs.trace_id) == 32
    assert len(_spans(pipeline, memory)) == 1


def test_create_trace_id() -> None:
    a, b = otel_llm.create_trace_id(), otel_llm.create_trace_id()
    assert a != b and len(a) == 32 and int(a, 16) > 0
    seeded = otel_llm.create_trace_id(seed="run-1")
    assert seeded == otel_llm.create_trace_id(seed="run-1")
    assert seeded != otel_llm.create_trace_id(seed="run-2")
    import hashlib

    assert seeded == hashlib.sha256(b"run-1").digest()[:16].hex()


def test_current_ids(pipeline: otel_llm.Pipeline) -> None:
    assert otel_llm.get_current_trace_id() is None
    assert otel_llm.get_current_observation_id() is None
    with otel_llm.start_observation("x") as obs:
        assert otel_llm.get_current_trace_id() == obs.trace_id
        assert otel_llm.get_current_observation_id() == obs.id
        assert len(obs.id) == 16 and obs.id == obs.id.lower()


def test_update_current_observation_merges_metadata(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe()
    def work() -> None:
        otel_llm.update_current_observation(metadata={"a": 1}, level="WARNING")
        otel_llm.update_current_observation(metadata={"b": 2}, status_message="slow")

    work()
    otel_llm.update_current_observation(output="outside")  # no current span: ignored
    attrs = _spans(pipeline, memory)["work"].attributes  # type: ignore[attr-defined]
    assert json.loads(attrs["otel_llm.observation.metadata"]) == {"a": 1, "b": 2}
    assert attrs["otel_llm.observation.level"] == "WARNING"
    assert attrs["otel_llm.observation.status_message"] == "slow"


def test_parent_argument(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    parent = otel_llm.start_observation("parent")
    child = otel_llm.start_observation("child", parent=parent)
    child.end()
    parent.end()
    spans = _spans(pipeline, memory)
    assert spans["child"].parent.span_id == spans["parent"].context.span_id  # type: ignore[attr-defined]


_UPDATES: list[dict[str, object]] = [
    {"model": "gpt-4o", "model_parameters": {"temperature": 0.2, "stop": ["\n"]}, "usage": {}},
    {"input": None, "output": {"text": "hi"}, "cost": 0.01, "version": "v2"},
    {"level": "ERROR", "status_message": "broken"},
    {"level": "LOUD", "model_parameters": "hot", "prompt": {"name": "p", "version": 3}},
    {"output": "x", "no_such_field": 1},  # unknown: the general path
    {"name": "renamed", "metadata": {"a": 1}, "completion_start_time": 1_700_000_000},
    {},
]


@pytest.mark.parametrize("fields", _UPDATES)
def test_update_current_observation_does_what_update_does(
    pipeline: otel_llm.Pipeline, fields: dict[str, object]
) -> None:
    """update_current_observation skips the wrapper for stateless fields: same result."""
    seen = []
    for how in ("current", "update"):
        with otel_llm.start_generation("llm", start_time=1_600_000_000 * 10**9) as obs:
            if how == "current":
                otel_llm.update_current_observation(**fields)
            else:
                obs.update(**fields)  # type: ignore[arg-type]
            span = obs.span
            attrs = list(span.attributes.items())  # type: ignore[attr-defined]
            seen.append((attrs, span.name, span.status.status_code, span.status.description))  # type: ignore[attr-defined]
    assert seen[0] == seen[1]


def test_end_with_output_does_what_update_then_end_does(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    output = {"answer": [1, 2.5, None], "text": "ok"}
    first = otel_llm.start_observation("first")
    first.end(output=output)
    second = otel_llm.start_observation("second")
    second.update(output=output)
    second.end()
    first.end(output="late")  # ended: ignored and counted, as update() does
    spans = _spans(pipeline, memory)
    key = "otel_llm.observation.output"
    assert spans["first"].attributes[key] == spans["second"].attributes[key]  # type: ignore[attr-defined]
    assert json.loads(spans["first"].attributes[key]) == output  # type: ignore[attr-defined]
    from otel_llm.diagnostics import counts

    assert counts()["invalid_value.update"] == 1


def test_for_current_span_reads_the_type_when_asked(pipeline: otel_llm.Pipeline) -> None:
    with otel_llm.start_generation("llm"):
        current = otel_llm.Observation.for_current_span()
        assert current is not None
        assert current.as_type == "generation"
        assert "type='generation'" in repr(current)
    tracer = pipeline.tracer_provider.get_tracer("other")
    with tracer.start_as_current_span("foreign"):
        foreign = otel_llm.Observation.for_current_span()
        assert foreign is not None and foreign.as_type == "span"
