"""propagate_attributes and context carry-over into threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json

import pytest

import otel_llm
from otel_llm.context import ThreadPoolExecutor, wrap


def test_propagated_fields_on_every_span_including_third_party(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    other = pipeline.tracer_provider.get_tracer("some.http.client")
    with otel_llm.propagate_attributes(
        user_id="u1",
        session_id="s1",
        tags=["beta"],
        metadata={"tenant": "acme"},
        trace_name="checkout",
        environment="prod",
        release="r7",
        version="2.0",
    ):
        with otel_llm.start_observation("ours"), other.start_as_current_span("theirs"):
            pass
    pipeline.flush()
    assert len(memory.spans) == 2
    for span in memory.spans:
        a = span.attributes
        assert a["user.id"] == "u1"
        assert a["session.id"] == "s1"
        assert a["otel_llm.trace.tags"] == ("beta",)
        assert json.loads(a["otel_llm.trace.metadata"]) == {"tenant": "acme"}
        assert a["otel_llm.trace.name"] == "checkout"
        assert a["otel_llm.environment"] == "prod"
        assert a["otel_llm.release"] == "r7"
        assert a["otel_llm.version"] == "2.0"


def test_nested_blocks_merge_and_restore(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    with otel_llm.propagate_attributes(user_id="u1", tags=["a"], metadata={"x": 1}):
        with otel_llm.propagate_attributes(session_id="s", tags=["b", "a"], metadata={"y": 2}):
            with otel_llm.start_observation("inner"):
                pass
        with otel_llm.start_observation("after"):
            pass
    with otel_llm.start_observation("outside"):
        pass
    pipeline.flush()
    spans = {s.name: s.attributes for s in memory.spans}
    assert spans["inner"]["otel_llm.trace.tags"] == ("a", "b")
    assert json.loads(spans["inner"]["otel_llm.trace.metadata"]) == {"x": 1, "y": 2}
    assert spans["inner"]["session.id"] == "s"
    assert "session.id" not in spans["after"]
    assert spans["after"]["otel_llm.trace.tags"] == ("a",)
    assert "user.id" not in spans["outside"]


def test_block_stamps_the_current_span_too(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    with (
        otel_llm.start_observation("request"),
        otel_llm.propagate_attributes(user_id="late-user"),
    ):
        pass
    pipeline.flush()
    assert memory.spans[0].attributes["user.id"] == "late-user"


def test_bad_environment_at_runtime_is_counted_not_raised(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    with otel_llm.propagate_attributes(environment="NOT VALID"), otel_llm.start_observation("x"):
        pass
    pipeline.flush()
    assert memory.spans[0].attributes["otel_llm.environment"] == "default"
    from otel_llm.diagnostics import counts

    assert counts()["invalid_value.environment"] == 1


def test_thread_pool_executor_carries_context(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    def work(i: int) -> None:
        with otel_llm.start_observation(f"task-{i}"):
            pass

    with otel_llm.propagate_attributes(user_id="u"), otel_llm.start_observation("parent") as p:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(work, range(4)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as plain:
            plain.submit(wrap(work), 99).result()
    pipeline.flush()
    tasks = [s for s in memory.spans if s.name.startswith("task-")]
    assert len(tasks) == 5
    for t in tasks:
        assert t.parent is not None and f"{t.parent.span_id:016x}" == p.id
        assert t.attributes["user.id"] == "u"


def test_plain_thread_pool_without_wrap_does_not_inherit(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    def work() -> None:
        with otel_llm.start_observation("orphan"):
            pass

    with otel_llm.start_observation("parent"):
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as plain:
            plain.submit(work).result()
    pipeline.flush()
    orphan = next(s for s in memory.spans if s.name == "orphan")
    assert orphan.parent is None  # documented: use otel_llm.context.ThreadPoolExecutor


def test_concurrent_asyncio_requests_never_leak(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe(as_type="generation")
    async def llm(user: str) -> str:
        await asyncio.sleep(0.001)
        return user

    async def request(i: int) -> None:
        with otel_llm.propagate_attributes(user_id=f"user-{i}", session_id=f"s-{i}"):
            with otel_llm.start_observation(f"request-{i}"):
                await asyncio.sleep(0.001 * (i % 5))
                await asyncio.gather(llm(f"user-{i}"), llm(f"user-{i}"))

    async def main() -> None:
        await asyncio.gather(*(request(i) for i in range(50)))

    asyncio.run(main())
    pipeline.flush()
    assert len(memory.spans) == 150
    roots = {s.context.span_id: s for s in memory.spans if s.name.startswith("request-")}
    for span in memory.spans:
        if span.name == "llm":
            root = roots[span.parent.span_id]
            i = root.name.split("-")[1]
            assert span.context.trace_id == root.context.trace_id
            assert span.attributes["user.id"] == f"user-{i}"
            assert span.attributes["otel_llm.observation.output"] == f"user-{i}"


@pytest.mark.parametrize("tags", ["single", ("t1", "t2"), {"only"}])
def test_tag_shapes(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, tags: object) -> None:
    with otel_llm.propagate_attributes(tags=tags), otel_llm.start_observation("x"):  # type: ignore[arg-type]
        pass
    pipeline.flush()
    value = memory.spans[0].attributes["otel_llm.trace.tags"]
    assert isinstance(value, tuple) and all(isinstance(t, str) for t in value)
