"""The seed-tutorial examples in examples/: run them and check the exact traces they produce."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import StatusCode

import otel_llm
from otel_llm import semconv

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, memory: otel_llm.InMemory, **kwargs: Any) -> dict[str, str]:
    result = load(name).main(destinations=[memory], tracer_provider=TracerProvider(), **kwargs)
    assert isinstance(result, dict)
    return result


def trace_of(memory: otel_llm.InMemory, trace_id: str) -> dict[str, ReadableSpan]:
    """The spans of one trace by name (names are unique within each example's traces)."""
    spans = [s for s in memory.spans if f"{s.context.trace_id:032x}" == trace_id]
    by_name = {s.name: s for s in spans}
    assert len(by_name) == len(spans), [s.name for s in spans]
    return by_name


def assert_tree(spans: Mapping[str, ReadableSpan], parents: Mapping[str, str | None]) -> None:
    """Exactly these spans, each a child of the named parent (None: the trace's root)."""
    assert set(spans) == set(parents)
    for name, parent in parents.items():
        span = spans[name]
        if parent is None:
            assert span.parent is None, name
        else:
            assert span.parent is not None, name
            assert span.parent.span_id == spans[parent].context.span_id, name
            assert span.start_time >= spans[parent].start_time, name
            assert span.end_time <= spans[parent].end_time, name


def assert_single_entry(spans: Mapping[str, ReadableSpan], entry: str) -> None:
    marked = {n: s.attributes.get(semconv.GEN_AI_IS_ENTRY) for n, s in spans.items()}
    assert {n: v for n, v in marked.items() if v is not None} == {entry: True}


def attrs(span: ReadableSpan) -> Mapping[str, Any]:
    assert span.attributes is not None
    return span.attributes


def json_attr(span: ReadableSpan, key: str) -> Any:
    return json.loads(attrs(span)[key])


def iso_ns(text: str) -> int:
    assert text.endswith("Z"), text
    moment = dt.datetime.fromisoformat(text[:-1] + "+00:00")
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


# --- seed 000: stateful client, async stream, tool/retrieval spans, error, score -----------


def test_seed000_stateful_stream(memory: otel_llm.InMemory) -> None:
    ids = run("seed000_stateful_stream", memory)
    assert set(ids) == {"ok", "failed"} and ids["ok"] != ids["failed"]
    assert {f"{s.context.trace_id:032x}" for s in memory.spans} == set(ids.values())
    assert len(memory.spans) == 8

    shape = {
        "gpt_stream": None,
        "vector_search": "gpt_stream",
        "get_weather_tool": "gpt_stream",
        "gpt_stream_call": "gpt_stream",
    }
    for trace_id in ids.values():
        spans = trace_of(memory, trace_id)
        assert_tree(spans, shape)
        assert_single_entry(spans, "gpt_stream")
        for span in spans.values():
            a = attrs(span)
            assert a[semconv.USER_ID] == "user-123"
            assert a[semconv.TRACE_NAME] == "gpt_stream"
            assert a[semconv.ENVIRONMENT] == "default"
        for name in ("gpt_stream", "gpt_stream_call"):
            assert attrs(spans[name])[semconv.OBSERVATION_TYPE] == "span"
        # the seed never ends its traces: the library ends them at flush
        assert attrs(spans["gpt_stream"])[semconv.OBSERVATION_AUTO_ENDED] is True
        call = spans["gpt_stream_call"]
        messages = json_attr(call, semconv.OBSERVATION_INPUT)["messages"]
        assert [m["role"] for m in messages] == ["system", "user"]
        assert "Beijing uses China Standard Time" in messages[0]["content"]
        assert json_attr(spans["get_weather_tool"], semconv.OBSERVATION_INPUT) == {
            "city": "Beijing"
        }
        assert json_attr(spans["get_weather_tool"], semconv.OBSERVATION_OUTPUT)["condition"] == (
            "sunny"
        )
        assert json_attr(spans["vector_search"], semconv.OBSERVATION_OUTPUT) == [
            "Beijing uses China Standard Time (UTC+8).",
            "Beijing is the capital of China.",
        ]
        assert attrs(spans["vector_search"])[semconv.OBSERVATION_TYPE] == "retriever"
        assert attrs(spans["get_weather_tool"])[semconv.OBSERVATION_TYPE] == "tool"
        for name in ("vector_search", "get_weather_tool"):
            assert spans[name].status.status_code is StatusCode.UNSET
            assert semconv.OBSERVATION_LEVEL not in attrs(spans[name])
        # time to first token, from completion_start_time set on the first chunk
        ttfc = attrs(call)[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
        first_chunk = iso_ns(attrs(call)[semconv.OBSERVATION_COMPLETION_START_TIME])
        assert 0 < ttfc * 1e9 <= call.end_time - call.start_time
        assert abs(call.start_time + ttfc * 1e9 - first_chunk) < 2_000

    ok = trace_of(memory, ids["ok"])
    answer = "It is 15:00 in Beijing, sunny and 22°C."
    assert json_attr(ok["gpt_stream_call"], semconv.OBSERVATION_INPUT)["messages"][1] == {
        "role": "user",
        "content": "北京的时间是多少?",
    }
    assert attrs(ok["gpt_stream_call"])[semconv.OBSERVATION_OUTPUT] == answer
    assert attrs(ok["gpt_stream"])[semconv.TRACE_OUTPUT] == answer
    assert json_attr(ok["gpt_stream"], semconv.TRACE_INPUT) == {"question": "北京的时间是多少?"}
    for span in ok.values():
        assert span.status.status_code is StatusCode.UNSET
        assert semconv.OBSERVATION_LEVEL not in attrs(span)

    failed = trace_of(memory, ids["failed"])
    for name in ("gpt_stream_call", "gpt_stream"):
        span = failed[name]
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "upstream model overloaded"
        assert attrs(span)[semconv.OBSERVATION_LEVEL] == "ERROR"
        assert attrs(span)[semconv.OBSERVATION_STATUS_MESSAGE] == "upstream model overloaded"
    error = {"error": "upstream model overloaded"}
    assert json_attr(failed["gpt_stream_call"], semconv.OBSERVATION_OUTPUT) == error
    assert json_attr(failed["gpt_stream"], semconv.TRACE_OUTPUT) == error

    assert [
        (s.name, s.value, s.data_type, s.trace_id, s.observation_id) for s in memory.scores
    ] == [("helpful", 1.0, "NUMERIC", ids["ok"], None)]


# --- seed 001: generation with model parameters, usage, completion start time --------------


def test_seed001_generation(memory: otel_llm.InMemory) -> None:
    ids = run("seed001_generation", memory)
    assert ids == {
        "ok": otel_llm.create_trace_id(seed="request-001"),
        "failed": otel_llm.create_trace_id(seed="request-002"),
    }
    assert {f"{s.context.trace_id:032x}" for s in memory.spans} == set(ids.values())
    assert len(memory.spans) == 4
    assert memory.scores == []

    questions = {"ok": "What is the capital of France?", "failed": "And of Spain?"}
    for key, trace_id in ids.items():
        spans = trace_of(memory, trace_id)
        assert_tree(spans, {"simple-query": None, "openai-generation": "simple-query"})
        assert_single_entry(spans, "simple-query")
        for span in spans.values():
            assert attrs(span)[semconv.TRACE_NAME] == "simple-query"
            assert json_attr(span, semconv.TRACE_METADATA) == {
                "user_id": "user-123",
                "session_id": "sess-abc",
            }
        root, gen = spans["simple-query"], spans["openai-generation"]
        assert attrs(root)[semconv.TRACE_INPUT] == questions[key]
        assert attrs(root)[semconv.OBSERVATION_TYPE] == "span"
        g = attrs(gen)
        assert g[semconv.OBSERVATION_TYPE] == "generation"
        assert g[semconv.GEN_AI_OPERATION_NAME] == "chat"
        assert g[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
        assert g["gen_ai.request.temperature"] == 0.7
        assert g["gen_ai.request.max_tokens"] == 100
        assert json_attr(gen, semconv.OBSERVATION_MODEL_PARAMETERS) == {
            "temperature": 0.7,
            "max_tokens": 100,
        }
        assert json_attr(gen, semconv.OBSERVATION_METADATA) == {"prompt_type": "standard"}
        assert g[semconv.OBSERVATION_INPUT] == questions[key]
        # the seed never calls generation.end(): client.flush() ends it
        assert g[semconv.OBSERVATION_AUTO_ENDED] is True
        assert gen.status.status_code is StatusCode.UNSET

    ok = trace_of(memory, ids["ok"])
    gen = ok["openai-generation"]
    g = attrs(gen)
    assert g[semconv.OBSERVATION_OUTPUT] == "The capital of France is Paris."
    # the usage stage turned the OpenAI-shaped dict into canonical counts
    assert g[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 14
    assert g[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 7
    assert semconv.USAGE_RAW not in g
    # ended at its last update (after the ~2 ms model call), not at flush time
    assert gen.end_time - gen.start_time >= 2_000_000
    # completion_start_time=chat_completion.created: whole epoch seconds
    created_ns = iso_ns(g[semconv.OBSERVATION_COMPLETION_START_TIME])
    assert created_ns % 10**9 == 0
    assert gen.start_time - 10**9 < created_ns <= gen.end_time
    if created_ns >= gen.start_time:
        ttfc = g[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
        assert ttfc == pytest.approx((created_ns - gen.start_time) / 1e9)
    else:  # created (truncated to the second) precedes the span: no negative latency
        assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in g
    for span in ok.values():
        assert span.status.status_code is StatusCode.UNSET
        assert semconv.OBSERVATION_LEVEL not in attrs(span)

    failed = trace_of(memory, ids["failed"])
    root = failed["simple-query"]
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description == "Rate limit reached"
    assert attrs(root)[semconv.OBSERVATION_LEVEL] == "ERROR"
    assert attrs(root)[semconv.OBSERVATION_STATUS_MESSAGE] == "Rate limit reached"
    g = attrs(failed["openai-generation"])
    for key in (semconv.OBSERVATION_OUTPUT, semconv.OBSERVATION_LEVEL):
        assert key not in g
    # no usage was reported: the input was counted offline, and says so
    assert g[semconv.USAGE_ESTIMATED] is True


# --- seed 004: environment, levels, metadata, release/version, session, tags, user, ids ----

MESSAGE_TRACE_ID = hashlib.sha256(b"message-123").digest()[:16].hex()


def test_seed004_features(memory: otel_llm.InMemory) -> None:
    ids = run("seed004_features", memory)
    assert ids["message"] == MESSAGE_TRACE_ID == otel_llm.create_trace_id(seed="message-123")
    assert ids["chat"] != ids["message"]
    assert {f"{s.context.trace_id:032x}" for s in memory.spans} == set(ids.values())
    assert len(memory.spans) == 7

    chat = trace_of(memory, ids["chat"])
    assert_tree(chat, {"chat": None, "fn": "chat", "generate": "chat"})
    assert_single_entry(chat, "chat")
    message = trace_of(memory, ids["message"])
    assert_tree(
        message,
        {"handle-message": None, "chat": "handle-message", "fn": "chat", "generate": "chat"},
    )
    assert_single_entry(message, "handle-message")

    for spans in (chat, message):
        for span in spans.values():
            a = attrs(span)
            assert a[semconv.ENVIRONMENT] == "production", span.name
            assert a[semconv.RELEASE] == "v2.4.0", span.name
            assert a[semconv.VERSION] == "1.0", span.name
            assert a[semconv.USER_ID] == "user-id", span.name
            assert a[semconv.SESSION_ID] == "chat-789abc", span.name
            assert tuple(a[semconv.TRACE_TAGS]) == ("tag-1", "tag-2"), span.name
            assert json_attr(span, semconv.TRACE_METADATA) == {"key": "value"}, span.name
            assert span.status.status_code is StatusCode.UNSET, span.name
            if span.name != "fn":
                assert semconv.OBSERVATION_LEVEL not in a, span.name
        fn = attrs(spans["fn"])
        assert fn[semconv.OBSERVATION_LEVEL] == "WARNING"
        assert fn[semconv.OBSERVATION_STATUS_MESSAGE] == "This is a warning"
        gen = spans["generate"]
        assert attrs(gen)[semconv.OBSERVATION_TYPE] == "generation"
        assert attrs(gen)[semconv.GEN_AI_REQUEST_MODEL] == "fake-model-1"
        assert attrs(gen)["gen_ai.request.temperature"] == 0.2
        assert json_attr(gen, semconv.OBSERVATION_METADATA) == {"attempt": 1}

    assert json_attr(chat["chat"], semconv.OBSERVATION_INPUT) == {
        "question": "  What is Langfuse?  "
    }
    assert json_attr(chat["chat"], semconv.OBSERVATION_OUTPUT) == {
        "answer": "Echo: What is Langfuse?",
        "trace_id": ids["chat"],
    }
    assert attrs(chat["fn"])[semconv.OBSERVATION_OUTPUT] == "What is Langfuse?"
    assert json_attr(message["chat"], semconv.OBSERVATION_OUTPUT)["trace_id"] == MESSAGE_TRACE_ID
    assert attrs(message["handle-message"])[semconv.OBSERVATION_INPUT] == "And OpenTelemetry?"
    assert attrs(message["handle-message"])[semconv.OBSERVATION_OUTPUT] == (
        "Echo: And OpenTelemetry?"
    )


def test_seed004_custom_trace_id_is_stable_across_runs(memory: otel_llm.InMemory) -> None:
    first = run("seed004_features", memory)
    second_memory = otel_llm.InMemory()
    second = run("seed004_features", second_memory)
    assert first["message"] == second["message"] == MESSAGE_TRACE_ID
    assert first["chat"] != second["chat"]  # no seed: a fresh random id each time
    assert {f"{s.context.trace_id:032x}" for s in second_memory.spans} == set(second.values())


def test_seed004_environment_from_langfuse_variable(
    memory: otel_llm.InMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_TRACING_ENVIRONMENT", "staging")
    run("seed004_features", memory, environment=None)
    assert len(memory.spans) == 7
    assert {attrs(s)[semconv.ENVIRONMENT] for s in memory.spans} == {"staging"}

    explicit = otel_llm.InMemory()
    run("seed004_features", explicit)  # configure(environment="production") wins
    assert {attrs(s)[semconv.ENVIRONMENT] for s in explicit.spans} == {"production"}


# --- each example runs as a script and prints its trace trees ------------------------------

_TREE_LINE = re.compile(r"^(?P<indent>(?:│  |   )*)[├└]─ (?P<name>\S+) ")

EXPECTED_TREES = {
    "seed000_stateful_stream": [
        [(0, "gpt_stream"), (1, "vector_search"), (1, "get_weather_tool"), (1, "gpt_stream_call")]
    ]
    * 2,
    "seed001_generation": [[(0, "simple-query"), (1, "openai-generation")]] * 2,
    "seed004_features": [
        [(0, "chat"), (1, "fn"), (1, "generate")],
        [(0, "handle-message"), (1, "chat"), (2, "fn"), (2, "generate")],
    ],
}


def printed_trees(stdout: str) -> dict[str, list[tuple[int, str]]]:
    """Console output → {trace id: [(depth, span name), ...]} in printed order."""
    trees: dict[str, list[tuple[int, str]]] = {}
    current: list[tuple[int, str]] | None = None
    for line in stdout.splitlines():
        header = re.fullmatch(r"trace ([0-9a-f]{32})", line)
        if header:
            current = trees.setdefault(header.group(1), [])
            continue
        match = _TREE_LINE.match(line)
        if match and current is not None:
            current.append((len(match.group("indent")) // 3, match.group("name")))
        else:
            current = None
    return trees


@pytest.mark.parametrize("name", sorted(EXPECTED_TREES))
def test_example_runs_as_a_script(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANGFUSE_"))}
    env["OTEL_LLM_STRICT"] = "1"  # an internal error inside the library fails the script
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=EXAMPLES.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    trees = printed_trees(proc.stdout)
    assert sorted(trees.values()) == sorted(EXPECTED_TREES[name]), proc.stdout
    if name == "seed000_stateful_stream":
        assert (
            "gpt_stream [span]" in proc.stdout and "ERROR: upstream model overloaded" in proc.stdout
        )
        (scored,) = re.findall(
            r"^score helpful=1\.0 \(NUMERIC\) on ([0-9a-f]{32})$", proc.stdout, re.M
        )
        assert scored in trees
        assert trees[scored] == EXPECTED_TREES[name][0]
    elif name == "seed001_generation":
        assert set(trees) == {
            otel_llm.create_trace_id(seed="request-001"),
            otel_llm.create_trace_id(seed="request-002"),
        }
        assert "openai-generation [generation] gpt-4o-mini" in proc.stdout
        assert "ERROR: Rate limit reached" in proc.stdout
        assert "LLM Response: The capital of France is Paris." in proc.stdout
    else:
        assert MESSAGE_TRACE_ID in trees  # the same id in another process
        assert trees[MESSAGE_TRACE_ID][0] == (0, "handle-message")
    assert proc.stdout.count("(entry)") == 2
