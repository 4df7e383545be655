"""@observe on functions, methods, coroutines, generators and async generators."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import otel_llm


def _one(memory: otel_llm.InMemory, name: str) -> ReadableSpan:
    found = [s for s in memory.spans if s.name == name]
    assert len(found) == 1, [s.name for s in memory.spans]
    return found[0]


def test_function_input_output_and_type(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe(as_type="generation")
    def answer(question: str, *, temperature: float = 0.1) -> str:
        return f"A: {question}"

    assert answer("why?", temperature=0.5) == "A: why?"
    pipeline.flush()
    span = _one(memory, "answer")
    assert json.loads(span.attributes["otel_llm.observation.input"]) == {
        "question": "why?",
        "temperature": 0.5,
    }
    assert span.attributes["otel_llm.observation.output"] == "A: why?"
    assert span.attributes["otel_llm.observation.type"] == "generation"
    assert span.attributes["gen_ai.operation.name"] == "chat"


def test_bare_decorator_and_custom_name(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe
    def plain() -> int:
        return 1

    @otel_llm.observe(name="renamed")
    def other() -> int:
        return 2

    assert plain() + other() == 3
    pipeline.flush()
    assert sorted(s.name for s in memory.spans) == ["plain", "renamed"]


def test_methods_do_not_capture_self_or_cls(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    class Agent:
        secret = "not in the span"

        @otel_llm.observe()
        def run(self, task: str) -> str:
            return task

        @classmethod
        @otel_llm.observe()
        def build(cls, size: int) -> int:
            return size

    Agent().run("t1")
    Agent.build(3)
    pipeline.flush()
    assert json.loads(_one(memory, "run").attributes["otel_llm.observation.input"]) == {
        "task": "t1"
    }
    assert json.loads(_one(memory, "build").attributes["otel_llm.observation.input"]) == {"size": 3}


def test_var_args_and_kwargs_are_captured(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe()
    def f(a: int, *rest: int, **options: str) -> None:
        return None

    f(1, 2, 3, mode="x")
    pipeline.flush()
    assert json.loads(_one(memory, "f").attributes["otel_llm.observation.input"]) == {
        "a": 1,
        "rest": [2, 3],
        "mode": "x",
    }


def test_capture_flags_and_capture_content_setting(memory: otel_llm.InMemory) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    p = otel_llm.configure(
        destinations=[memory], tracer_provider=TracerProvider(), capture_content=False
    )

    @otel_llm.observe()
    def hidden(x: str) -> str:
        return x

    @otel_llm.observe(capture_input=True)
    def asks_for_input(x: str) -> str:
        return x

    hidden("secret")
    asks_for_input("visible")
    p.flush()
    assert "otel_llm.observation.input" not in _one(memory, "hidden").attributes
    assert "otel_llm.observation.output" not in _one(memory, "hidden").attributes
    # the pipeline's capture_content=False is a policy: the processor removes content
    assert "otel_llm.observation.input" not in _one(memory, "asks_for_input").attributes


def test_capture_flags_per_decorator(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe(capture_input=False)
    def no_input(x: str) -> str:
        return x

    @otel_llm.observe(capture_output=False)
    def no_output(x: str) -> str:
        return x

    no_input("a")
    no_output("b")
    pipeline.flush()
    assert "otel_llm.observation.input" not in _one(memory, "no_input").attributes
    assert _one(memory, "no_input").attributes["otel_llm.observation.output"] == "a"
    assert _one(memory, "no_output").attributes["otel_llm.observation.input"] == '{"x":"b"}'
    assert "otel_llm.observation.output" not in _one(memory, "no_output").attributes


def test_nesting_builds_a_tree(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    @otel_llm.observe()
    def child() -> None:
        pass

    @otel_llm.observe()
    def parent() -> None:
        child()
        child()

    parent()
    pipeline.flush()
    root = _one(memory, "parent")
    children = [s for s in memory.spans if s.name == "child"]
    assert len(children) == 2
    for c in children:
        assert c.parent is not None and c.parent.span_id == root.context.span_id
        assert c.context.trace_id == root.context.trace_id


class Boom(Exception):
    pass


def test_exception_sets_error_and_reraises_untouched(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    original = Boom("bad input")

    @otel_llm.observe()
    def fails() -> None:
        raise original

    with pytest.raises(Boom) as info:
        fails()
    assert info.value is original
    pipeline.flush()
    span = _one(memory, "fails")
    assert span.status.status_code is StatusCode.ERROR
    assert "bad input" in (span.status.description or "")
    assert span.attributes["error.type"].endswith("Boom")
    assert span.attributes["otel_llm.observation.level"] == "ERROR"
    assert span.attributes["otel_llm.observation.status_message"] == "bad input"
    assert [e.name for e in span.events] == ["exception"]


def test_async_function(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    @otel_llm.observe(as_type="agent")
    async def agent(x: int) -> int:
        await asyncio.sleep(0)
        return await helper(x)

    @otel_llm.observe(as_type="tool")
    async def helper(x: int) -> int:
        return x * 2

    assert asyncio.run(agent(21)) == 42
    pipeline.flush()
    outer, inner = _one(memory, "agent"), _one(memory, "helper")
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert outer.attributes["otel_llm.observation.output"] == "42"
    assert inner.attributes["gen_ai.operation.name"] == "execute_tool"


def test_async_exception(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    @otel_llm.observe()
    async def fails() -> None:
        raise Boom("async")

    with pytest.raises(Boom):
        asyncio.run(fails())
    pipeline.flush()
    assert _one(memory, "fails").status.status_code is StatusCode.ERROR


def test_generator_stays_open_until_consumed(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe()
    def inner_step() -> None:
        pass

    @otel_llm.observe(as_type="generation")
    def stream(n: int) -> Iterator[str]:
        for i in range(n):
            inner_step()
            yield f"t{i} "

    gen = stream(3)
    first = next(gen)
    pipeline.flush()
    assert [s.name for s in memory.spans] == ["inner_step"]  # stream still open
    assert first == "t0 "
    assert list(gen) == ["t1 ", "t2 "]
    pipeline.flush()
    span = _one(memory, "stream")
    assert span.attributes["otel_llm.observation.output"] == "t0 t1 t2 "
    steps = [s for s in memory.spans if s.name == "inner_step"]
    assert len(steps) == 3
    assert all(s.parent is not None and s.parent.span_id == span.context.span_id for s in steps)
    assert span.end_time is not None and all(s.end_time <= span.end_time for s in steps)


def test_generator_non_string_chunks_are_listed(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe()
    def numbers() -> Iterator[int]:
        yield from (1, 2, 3)

    assert sum(numbers()) == 6
    pipeline.flush()
    assert _one(memory, "numbers").attributes["otel_llm.observation.output"] == "[1,2,3]"


def test_generator_early_break_ends_once(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    closed = []

    @otel_llm.observe()
    def stream() -> Iterator[str]:
        try:
            yield from ("a", "b", "c")
        finally:
            closed.append(True)

    for chunk in stream():
        if chunk == "b":
            break
    gc.collect()
    pipeline.flush()
    span = _one(memory, "stream")
    assert span.attributes["otel_llm.observation.output"] == "ab"
    assert closed == [True]  # the user's generator was closed too


def test_generator_close_and_gc_of_unstarted(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe()
    def stream() -> Iterator[str]:
        yield "x"

    gen = stream()
    next(gen)
    gen.close()
    gen.close()
    never = stream()
    del never
    gc.collect()
    pipeline.flush()
    assert [s.name for s in memory.spans] == ["stream", "stream"]
    assert pipeline.stats()["internal_errors"] == {}


def test_generator_exception_mid_stream(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe()
    def stream() -> Iterator[str]:
        yield "partial"
        raise Boom("mid-stream")

    got = []
    with pytest.raises(Boom):
        for chunk in stream():
            got.append(chunk)
    pipeline.flush()
    span = _one(memory, "stream")
    assert got == ["partial"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["otel_llm.observation.output"] == "partial"


def test_generator_send_and_return_value(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe()
    def echo() -> Iterator[str]:
        received = yield "ready"
        yield f"got {received}"
        return None

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("ping") == "got ping"
    with pytest.raises(StopIteration):
        next(gen)
    pipeline.flush()
    assert _one(memory, "echo").attributes["otel_llm.observation.output"] == "readygot ping"


def test_async_generator_full_and_early_aclose(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe()
    async def child() -> None:
        pass

    @otel_llm.observe(as_type="generation")
    async def stream(n: int) -> AsyncIterator[str]:
        for i in range(n):
            await child()
            yield str(i)

    async def consume() -> tuple[list[str], list[str]]:
        full = [c async for c in stream(3)]
        partial = []
        agen = stream(5)
        async for c in agen:
            partial.append(c)
            if c == "1":
                break
        await agen.aclose()
        return full, partial

    full, partial = asyncio.run(consume())
    assert full == ["0", "1", "2"]
    assert partial == ["0", "1"]
    pipeline.flush()
    streams = sorted(
        (s for s in memory.spans if s.name == "stream"),
        key=lambda s: s.attributes["otel_llm.observation.output"],
    )
    assert [s.attributes["otel_llm.observation.output"] for s in streams] == ["01", "012"]
    for s in streams:
        kids = [c for c in memory.spans if c.parent and c.parent.span_id == s.context.span_id]
        assert len(kids) == len(s.attributes["otel_llm.observation.output"])


def test_async_generator_exception(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    @otel_llm.observe()
    async def stream() -> AsyncIterator[str]:
        yield "a"
        raise Boom("x")

    async def consume() -> None:
        async for _ in stream():
            pass

    with pytest.raises(Boom):
        asyncio.run(consume())
    pipeline.flush()
    assert _one(memory, "stream").status.status_code is StatusCode.ERROR


def test_hostile_arguments_never_raise(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic

    @otel_llm.observe()
    def f(a: object, b: object, c: object) -> object:
        return cyclic

    f(cyclic, float("nan"), "x" * 3_000_000)
    pipeline.flush()
    span = _one(memory, "f")
    raw = span.attributes["otel_llm.observation.input"]
    assert len(raw) < 1_100_000
    json.loads(raw)
    assert "truncated" in raw
    assert pipeline.stats()["values_replaced"]["cycle"] >= 1
