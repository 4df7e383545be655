"""@observe on functions, methods, coroutines, generators and async generators."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import otel_llm
from otel_llm.instrument import observe as observe_module
from otel_llm.instrument.observe import _Options


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


# -- the fast paths: they must agree with the general ones ------------------------------
_KINDS = inspect.Parameter


@st.composite
def _signatures(draw: st.DrawFn) -> inspect.Signature:
    """Any valid signature over a few names, self/cls included, every parameter kind."""
    names = draw(st.lists(st.sampled_from(["self", "cls", "a", "b", "c", "d", "kw"]), unique=True))
    groups: list[list[inspect.Parameter]] = [[], [], [], [], []]
    slots = (
        _KINDS.POSITIONAL_ONLY,
        _KINDS.POSITIONAL_OR_KEYWORD,
        _KINDS.VAR_POSITIONAL,
        _KINDS.KEYWORD_ONLY,
        _KINDS.VAR_KEYWORD,
    )
    plain = draw(st.booleans())  # half of them: the kinds the fast path handles
    for name in names:
        index = draw(st.sampled_from([1, 3, 4] if plain else [0, 1, 2, 3, 4]))
        if index in (2, 4) and groups[index]:
            index = 1  # one *args and one **kwargs at most
        groups[index].append(inspect.Parameter(name, slots[index]))
    return inspect.Signature([p for group in groups for p in group])


@st.composite
def _calls(draw: st.DrawFn) -> tuple[inspect.Signature, tuple[int, ...], dict[str, int]]:
    """A signature and a call: mostly one it accepts, sometimes any (errors included)."""
    signature = draw(_signatures())
    if draw(st.booleans()):
        params = list(signature.parameters.values())
        positional = [
            p for p in params if p.kind in (_KINDS.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        n = draw(st.integers(0, len(positional) + 2))
        by_name = [
            p.name for p in params[n:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        pool = by_name + (["other"] if draw(st.booleans()) else [])
        names = draw(st.lists(st.sampled_from(pool), unique=True)) if pool else []
        args = tuple(range(n))
        kwargs = {name: i for i, name in enumerate(names)}
    else:
        args = tuple(draw(st.lists(st.integers(), max_size=5)))
        kwargs = draw(
            st.dictionaries(
                st.sampled_from(["self", "cls", "a", "b", "c", "d", "kw", "other"]), st.integers()
            )
        )
    return signature, args, kwargs


@given(call=_calls())
@settings(max_examples=500, deadline=None)
def test_fast_binding_matches_bind_partial(
    call: tuple[inspect.Signature, tuple[int, ...], dict[str, int]],
) -> None:
    signature, args, kwargs = call

    def func(*args: object, **kwargs: object) -> None:
        return None

    func.__signature__ = signature  # type: ignore[attr-defined]
    options = _Options(func, None, "span", None, None, False)
    fast = options.bound_input(args, dict(kwargs))
    slow = options.bound_input_slow(args, dict(kwargs))
    assert list(fast.items()) == list(slow.items())  # same keys, same order


def test_plain_signatures_take_the_fast_path() -> None:
    def chat(self: object, messages: list[str], *, model: str = "m", **extra: object) -> None:
        return None

    options = _Options(chat, None, "generation", None, None, False)
    assert options.plan is not None
    assert options.plan.bind((1, ["hi"]), {"model": "x", "seed": 3}) == {
        "messages": ["hi"],
        "model": "x",
        "seed": 3,
    }
    assert options.plan.bind((1, ["hi"]), {"messages": []}) is None  # given twice: slow path

    def variadic(*args: object) -> None:
        return None

    assert _Options(variadic, None, "span", None, None, False).plan is None


def test_decorator_sets_what_start_observation_sets(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    seen: dict[str, list[tuple[str, object]]] = {}

    @otel_llm.observe(as_type="generation", entry=True)
    def chat(messages: list[dict[str, str]], temperature: float = 0.0) -> str:
        seen["observe"] = list(trace.get_current_span().attributes.items())  # type: ignore[attr-defined]
        return "ok"

    chat([{"role": "user", "content": "hi"}], temperature=0.5)
    with otel_llm.start_observation(
        "chat",
        as_type="generation",
        entry=True,
        input={"messages": [{"role": "user", "content": "hi"}], "temperature": 0.5},
    ) as obs:
        seen["start_observation"] = list(obs.span.attributes.items())  # type: ignore[attr-defined]
    assert seen["observe"] == seen["start_observation"]


def test_unknown_type_is_counted_on_every_call(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    @otel_llm.observe(as_type="nonsense")
    def f() -> None:
        return None

    f()
    f()
    pipeline.flush()
    assert [s.attributes["otel_llm.observation.type"] for s in memory.spans] == ["span", "span"]
    assert pipeline.stats()["invalid_values"]["as_type"] == 2


def test_failed_start_runs_the_function_untraced(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal")

    monkeypatch.setenv("OTEL_LLM_STRICT", "0")
    monkeypatch.setattr(observe_module, "open_observation", broken)  # inside _Options.start

    @otel_llm.observe()
    def f(x: int) -> int:
        if x < 0:
            raise ValueError("user error")
        return x

    assert f(2) == 2
    with pytest.raises(ValueError) as info:
        f(-1)
    assert info.value.__context__ is None  # the internal error is not chained onto the user's
    pipeline.flush()
    assert memory.spans == []
    assert pipeline.stats()["internal_errors"]["observe.start"] == 2
