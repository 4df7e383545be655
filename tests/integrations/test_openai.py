"""instrument_openai(): the real ``openai`` client against a real fake server on loopback."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pydantic
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import otel_llm
from otel_llm import diagnostics
from otel_llm.integrations import _openai_streams
from otel_llm.integrations import openai as integration
from otel_llm.integrations.openai import instrument_openai, uninstrument_openai
from tests.fake_llm_server import REPLY_TEXT, TOOL_CALLS, FakeLLMServer

SCHEMAS = Path("/work/shared/reference/semconv-v1.41")
USER = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]


# -- fixtures and helpers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def instrumented(server: FakeLLMServer) -> Iterator[None]:
    server.clear()
    instrument_openai()
    yield
    uninstrument_openai()


@pytest.fixture
def client(server: FakeLLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0) as c:
        yield c


def async_client(server: FakeLLMServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0)


def spans(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> list[ReadableSpan]:
    assert pipeline.flush()
    return [s for s in memory.spans if s.name.startswith(("chat", "embeddings"))]


def one_span(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> ReadableSpan:
    found = spans(pipeline, memory)
    assert len(found) == 1, [s.name for s in found]
    return found[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def content(span: ReadableSpan, key: str) -> Any:
    """An input/output attribute: JSON, or a plain string as given."""
    value = attrs(span)[f"otel_llm.observation.{key}"]
    try:
        return json.loads(value)
    except ValueError:
        return value


def usage(span: ReadableSpan) -> tuple[int, int] | None:
    """(input, output) tokens the provider reported; None when there were none.

    Canonical counts when the usage stage ran (estimates excluded), else the raw usage.
    """
    a = attrs(span)
    if a.get("otel_llm.usage.estimated"):
        return None
    if "gen_ai.usage.input_tokens" in a:
        return a["gen_ai.usage.input_tokens"], a.get("gen_ai.usage.output_tokens", 0)
    if "otel_llm.usage.raw" not in a:
        return None
    raw = json.loads(a["otel_llm.usage.raw"])
    return (
        raw.get("prompt_tokens", raw.get("input_tokens")),
        raw.get("completion_tokens", raw.get("output_tokens", 0)),
    )


def no_internal_errors() -> None:
    bad = {k: v for k, v in diagnostics.counts().items() if k.startswith("internal_error")}
    assert not bad
    assert "invalid_value.update" not in diagnostics.counts()  # nothing updated after end()


def assert_ok_chat(span: ReadableSpan, server: FakeLLMServer, model: str) -> None:
    a = attrs(span)
    assert span.name == f"chat {model}"
    assert span.status.status_code is StatusCode.UNSET
    assert a["otel_llm.observation.type"] == "generation"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == server.port
    assert a["gen_ai.request.model"] == model
    assert a["gen_ai.response.model"] == server.response_model(model)
    assert a["gen_ai.response.id"].startswith("chatcmpl-fake")


# -- chat completions -----------------------------------------------------------------------------
def test_chat_sync(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    server: FakeLLMServer,
    client: openai.OpenAI,
) -> None:
    result = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=50,
        stop=["\n\n"],
        seed=7,
        frequency_penalty=0.1,
        presence_penalty=0.2,
    )
    assert result.choices[0].message.content == REPLY_TEXT
    span = one_span(pipeline, memory)
    assert_ok_chat(span, server, "gpt-4o-mini")
    a = attrs(span)
    assert a["gen_ai.request.temperature"] == 0.3
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.stop_sequences"] == ("\n\n",)
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.request.frequency_penalty"] == 0.1
    assert a["gen_ai.request.presence_penalty"] == 0.2
    assert a["gen_ai.request.stream"] is False
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.response.id"] == result.id
    assert content(span, "input") == USER
    assert content(span, "output") == {"role": "assistant", "content": REPLY_TEXT}
    assert usage(span) == (result.usage.prompt_tokens, result.usage.completion_tokens)  # type: ignore[union-attr]
    assert "gen_ai.response.time_to_first_chunk" not in a
    no_internal_errors()


def test_chat_async_with_several_choices(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, server: FakeLLMServer
) -> None:
    async def main() -> Any:
        async with async_client(server) as client:
            return await client.chat.completions.create(model="gpt-4o", messages=USER, n=2)

    result = asyncio.run(main())
    assert len(result.choices) == 2
    span = one_span(pipeline, memory)
    assert_ok_chat(span, server, "gpt-4o")
    assert attrs(span)["gen_ai.request.choice.count"] == 2
    assert attrs(span)["gen_ai.response.finish_reasons"] == ("stop", "stop")
    assert content(span, "output") == [{"role": "assistant", "content": REPLY_TEXT}] * 2
    no_internal_errors()


def test_wrapped_method_keeps_its_signature(client: openai.OpenAI) -> None:
    assert "messages" in inspect.signature(client.chat.completions.create).parameters
    assert openai.resources.chat.completions.Completions.create.__name__ == "create"


# -- streaming ------------------------------------------------------------------------------------
@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_fully_consumed(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    server: FakeLLMServer,
    client: openai.OpenAI,
    include_usage: bool,
) -> None:
    request: dict[str, Any] = {"model": "gpt-4o-mini", "messages": USER, "stream": True}
    if include_usage:
        request["stream_options"] = {"include_usage": True}
    stream = client.chat.completions.create(**request)
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200  # attribute passthrough
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    after_last_chunk = time.time_ns()
    assert text == REPLY_TEXT

    # We never change the request: the server got exactly what the user passed.
    assert server.last_request().json == request

    span = one_span(pipeline, memory)
    assert_ok_chat(span, server, "gpt-4o-mini")
    a = attrs(span)
    assert a["gen_ai.request.stream"] is True
    assert content(span, "output") == {"role": "assistant", "content": REPLY_TEXT}
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    ttft = a["gen_ai.response.time_to_first_chunk"]
    assert 0 < ttft <= (span.end_time - span.start_time) / 1e9  # type: ignore[operator]
    assert a["otel_llm.observation.completion_start_time"].endswith("Z")
    assert span.end_time is not None and span.end_time <= after_last_chunk  # ended at exhaustion
    if include_usage:
        assert usage(span) == (6, len(REPLY_TEXT.split()))
    else:
        assert usage(span) is None
    assert "otel_llm.observation.auto_ended" not in a
    no_internal_errors()


def test_stream_span_covers_the_whole_stream(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    before = time.time_ns()
    with client.chat.completions.create(model="slow", messages=USER, stream=True) as stream:
        chunks = list(stream)
        last_chunk = time.time_ns()
    span = one_span(pipeline, memory)
    assert len(chunks) > 5
    assert span.start_time is not None and span.end_time is not None
    assert before <= span.start_time and span.end_time <= last_chunk
    first = attrs(span)["gen_ai.response.time_to_first_chunk"]
    assert first < (span.end_time - span.start_time) / 1e9


def test_async_stream_fully_consumed(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, server: FakeLLMServer
) -> None:
    async def main() -> str:
        async with async_client(server) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=USER,
                stream=True,
                stream_options={"include_usage": True},
            )
            assert isinstance(stream, openai.AsyncStream)
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return "".join(parts)

    assert asyncio.run(main()) == REPLY_TEXT
    span = one_span(pipeline, memory)
    assert_ok_chat(span, server, "gpt-4o-mini")
    assert content(span, "output") == {"role": "assistant", "content": REPLY_TEXT}
    assert usage(span) == (6, len(REPLY_TEXT.split()))
    assert attrs(span)["gen_ai.response.time_to_first_chunk"] > 0
    no_internal_errors()


def test_stream_early_break_ends_the_span_once_with_partial_output(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    taken = []
    for chunk in stream:
        taken.append(chunk.choices[0].delta.content or "")
        if len(taken) == 3:
            break
    after_break = time.time_ns()
    del stream, chunk
    gc.collect()
    span = one_span(pipeline, memory)
    a = attrs(span)
    assert content(span, "output") == {"role": "assistant", "content": "".join(taken)}
    assert "".join(taken) == "Hello! I"
    assert "gen_ai.response.finish_reasons" not in a  # never reached
    assert a["otel_llm.observation.auto_ended"] is True
    assert span.end_time is not None and span.end_time <= after_break  # at the last chunk taken
    assert a["gen_ai.response.time_to_first_chunk"] > 0
    gc.collect()
    assert len(spans(pipeline, memory)) == 1
    no_internal_errors()


@pytest.mark.parametrize("how", ["close", "with"])
def test_stream_closed_early_ends_the_span_at_once(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI, how: str
) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    if how == "close":
        next(stream)
        next(stream)
        stream.close()
        stream.close()  # idempotent
    else:
        with stream as s:
            assert s is stream
            for i, _ in enumerate(s):
                if i == 1:
                    break
    span = one_span(pipeline, memory)  # while `stream` is still referenced
    assert content(span, "output") == {"role": "assistant", "content": "Hello!"}
    assert "otel_llm.observation.auto_ended" not in attrs(span)
    assert stream.response.is_closed
    del stream
    gc.collect()
    assert len(spans(pipeline, memory)) == 1
    no_internal_errors()


def test_stream_never_iterated_is_ended_when_dropped(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    del stream
    gc.collect()
    span = one_span(pipeline, memory)
    assert attrs(span)["otel_llm.observation.auto_ended"] is True
    assert "otel_llm.observation.output" not in attrs(span)
    no_internal_errors()


def test_async_stream_early_break(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, server: FakeLLMServer
) -> None:
    async def main() -> None:
        async with async_client(server) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=USER, stream=True
            )
            async with stream:
                async for _ in stream:
                    break
            other = await client.chat.completions.create(
                model="gpt-4o-mini", messages=USER, stream=True
            )
            await other.__anext__()
            await other.aclose()

    asyncio.run(main())
    found = spans(pipeline, memory)
    assert len(found) == 2
    for span in found:
        assert content(span, "output") == {"role": "assistant", "content": None}  # role chunk
        assert span.end_time is not None
    no_internal_errors()


@pytest.mark.parametrize(
    ("model", "error"),
    [("break-mid-stream", openai.APIConnectionError), ("error-mid-stream", openai.APIError)],
)
def test_stream_exception_mid_stream(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    client: openai.OpenAI,
    model: str,
    error: type[Exception],
) -> None:
    stream = client.chat.completions.create(model=model, messages=USER, stream=True)
    taken = []
    with pytest.raises(error) as raised:
        for chunk in stream:
            taken.append(chunk.choices[0].delta.content or "")
    span = one_span(pipeline, memory)
    a = attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert a["error.type"] == f"openai.{type(raised.value).__name__}"
    assert a["otel_llm.observation.level"] == "ERROR"
    assert content(span, "output") == {"role": "assistant", "content": "".join(taken)}
    assert "".join(taken) == "Hello! I am"
    assert any(e.name == "exception" for e in span.events)
    del stream
    gc.collect()
    assert len(spans(pipeline, memory)) == 1
    no_internal_errors()


def test_stream_helper_is_traced_once(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    with client.chat.completions.stream(model="gpt-4o-mini", messages=USER) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == REPLY_TEXT
    span = one_span(pipeline, memory)
    assert content(span, "output") == {"role": "assistant", "content": REPLY_TEXT}


# -- tools ----------------------------------------------------------------------------------------
def _expected_tool_calls() -> list[dict[str, Any]]:
    return [
        {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
        for cid, name, args in TOOL_CALLS
    ]


def _assert_tool_definitions(span: ReadableSpan) -> None:
    definitions = json.loads(attrs(span)["gen_ai.tool.definitions"])
    schema = json.loads((SCHEMAS / "gen-ai-tool-definitions.json").read_text())
    jsonschema.validate(definitions, schema)
    assert definitions == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": TOOLS[0]["function"]["parameters"],  # type: ignore[index]
        },
        {
            "type": "function",
            "name": "get_time",
            "parameters": {"type": "object", "properties": {}},
        },
    ]


def test_tool_calls_plain(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    client.chat.completions.create(model="tool", messages=USER, tools=TOOLS)  # type: ignore[arg-type]
    span = one_span(pipeline, memory)
    _assert_tool_definitions(span)
    assert attrs(span)["gen_ai.response.finish_reasons"] == ("tool_calls",)
    output = content(span, "output")
    assert output == {"role": "assistant", "content": None, "tool_calls": _expected_tool_calls()}


def test_tool_call_deltas_are_aggregated(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    server: FakeLLMServer,
    client: openai.OpenAI,
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=USER,
        tools=TOOLS,
        stream=True,
        extra_headers={"x-fake-behaviour": "tool"},
    )  # type: ignore[call-overload]
    deltas = sum(len(c.choices[0].delta.tool_calls or ()) for c in stream if c.choices)
    assert deltas > len(TOOL_CALLS)  # arguments really arrived in pieces
    assert server.last_request().json["tools"] == TOOLS
    span = one_span(pipeline, memory)
    _assert_tool_definitions(span)
    assert attrs(span)["gen_ai.response.finish_reasons"] == ("tool_calls",)
    output = content(span, "output")
    assert output == {"role": "assistant", "content": None, "tool_calls": _expected_tool_calls()}
    no_internal_errors()


# -- embeddings -----------------------------------------------------------------------------------
def test_embeddings(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    server: FakeLLMServer,
    client: openai.OpenAI,
) -> None:
    result = client.embeddings.create(
        model="text-embedding-3-small", input=["first text", "second one here"]
    )
    assert len(result.data) == 2
    span = one_span(pipeline, memory)
    a = attrs(span)
    assert span.name == "embeddings text-embedding-3-small"
    assert a["otel_llm.observation.type"] == "embedding"
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "text-embedding-3-small"
    assert a["gen_ai.response.model"] == server.response_model("text-embedding-3-small")
    assert a["gen_ai.embeddings.dimension.count"] == 8
    assert content(span, "input") == ["first text", "second one here"]
    assert content(span, "output") == {"embeddings": 2, "dimensions": 8}
    assert usage(span) == (5, 0)
    assert "gen_ai.request.stream" not in a
    no_internal_errors()


def test_async_embeddings_with_parameters(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, server: FakeLLMServer
) -> None:
    async def main() -> None:
        async with async_client(server) as client:
            await client.embeddings.create(
                model="text-embedding-3-large", input="hello", dimensions=4, encoding_format="float"
            )

    asyncio.run(main())
    span = one_span(pipeline, memory)
    a = attrs(span)
    assert a["gen_ai.embeddings.dimension.count"] == 4
    assert a["gen_ai.request.encoding_formats"] == ("float",)
    assert content(span, "input") == "hello"


# -- responses API --------------------------------------------------------------------------------
def test_responses_plain(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    server: FakeLLMServer,
    client: openai.OpenAI,
) -> None:
    result = client.responses.create(
        model="gpt-4.1",
        input="Say hello",
        instructions="Be brief.",
        max_output_tokens=64,
        temperature=0.5,
    )
    assert result.output_text == REPLY_TEXT
    span = one_span(pipeline, memory)
    a = attrs(span)
    assert span.name == "chat gpt-4.1"
    assert a["otel_llm.observation.type"] == "generation"
    assert a["gen_ai.response.id"] == result.id
    assert a["gen_ai.response.model"] == server.response_model("gpt-4.1")
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert content(span, "input") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert content(span, "output") == {"role": "assistant", "content": REPLY_TEXT}
    assert usage(span) == (result.usage.input_tokens, result.usage.output_tokens)  # type: ignore[union-attr]
    no_internal_errors()


def test_responses_tool_calls_and_conversation(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    client.responses.create(
        model="tool",
        input=[{"role": "user", "content": "weather?"}],
        tools=tools,  # type: ignore[arg-type]
        conversation="conv_123",
    )
    span = one_span(pipeline, memory)
    a = attrs(span)
    assert a["gen_ai.conversation.id"] == "conv_123"
    assert json.loads(a["gen_ai.tool.definitions"]) == tools
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    output = content(span, "output")
    assert output["tool_calls"] == _expected_tool_calls()
    assert content(span, "input") == [{"role": "user", "content": "weather?"}]


def test_responses_stream(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    server: FakeLLMServer,
    client: openai.OpenAI,
) -> None:
    stream = client.responses.create(model="gpt-4.1", input="Say hello", stream=True)
    events = [e.type for e in stream]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert server.last_request().json == {"model": "gpt-4.1", "input": "Say hello", "stream": True}
    span = one_span(pipeline, memory)
    a = attrs(span)
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.id"].startswith("resp_fake")
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.response.time_to_first_chunk"] > 0
    assert content(span, "output") == {"role": "assistant", "content": REPLY_TEXT}
    assert usage(span) == (2, len(REPLY_TEXT.split()))
    no_internal_errors()


def test_responses_async_stream_early_break(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, server: FakeLLMServer
) -> None:
    async def main() -> None:
        async with async_client(server) as client:
            stream = await client.responses.create(model="gpt-4.1", input="Say hi", stream=True)
            async for event in stream:
                if event.type == "response.output_text.delta" and event.delta.strip() == "I":
                    break
            await stream.close()

    asyncio.run(main())
    span = one_span(pipeline, memory)
    assert content(span, "output") == {"role": "assistant", "content": "Hello! I"}
    assert attrs(span)["gen_ai.response.id"].startswith("resp_fake")
    assert "gen_ai.response.finish_reasons" not in attrs(span)
    assert usage(span) is None
    no_internal_errors()


def test_structured_output_parse(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    class Answer(pydantic.BaseModel):
        answer: str

    parsed = client.chat.completions.parse(model="gpt-4o", messages=USER, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(answer=REPLY_TEXT)
    span = one_span(pipeline, memory)
    assert json.loads(content(span, "output")["content"]) == {"answer": REPLY_TEXT}


# -- raw responses --------------------------------------------------------------------------------
def test_with_raw_response(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    assert raw.headers["x-request-id"].startswith("req_fake")
    completion = raw.parse()
    assert completion.choices[0].message.content == REPLY_TEXT
    span = one_span(pipeline, memory)
    assert attrs(span)["gen_ai.response.id"] == completion.id
    assert content(span, "output") == {"role": "assistant", "content": REPLY_TEXT}
    assert usage(span) == (6, len(REPLY_TEXT.split()))
    no_internal_errors()


def test_with_raw_response_stream_and_streaming_response(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="raw-stream", messages=USER, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse()) == REPLY_TEXT
    with client.embeddings.with_streaming_response.create(
        model="text-embedding-3-small", input="hi"
    ) as response:
        assert response.parse().data[0].embedding
    found = {s.name: s for s in spans(pipeline, memory)}
    assert set(found) == {"chat raw-stream", "embeddings text-embedding-3-small"}
    for span in found.values():  # traced; bodies we did not read stay unread
        assert span.status.status_code is StatusCode.UNSET
        assert "otel_llm.observation.output" not in attrs(span)
    no_internal_errors()


def test_async_with_raw_response(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, server: FakeLLMServer
) -> None:
    async def main() -> None:
        async with async_client(server) as client:
            raw = await client.responses.with_raw_response.create(model="gpt-4.1", input="hi")
            assert raw.parse().output_text == REPLY_TEXT

    asyncio.run(main())
    span = one_span(pipeline, memory)
    assert content(span, "output") == {"role": "assistant", "content": REPLY_TEXT}


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("error-429", openai.RateLimitError, 429),
        ("error-500", openai.InternalServerError, 500),
        ("error-400", openai.BadRequestError, 400),
    ],
)
def test_api_errors_are_recorded_and_reraised_unchanged(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    server: FakeLLMServer,
    model: str,
    error: type[openai.APIStatusError],
    status: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A spy under our wrapper sees the exception the SDK raised; the app must get that object.
    uninstrument_openai()
    cls = openai.resources.chat.completions.Completions
    original = cls.create
    raised_by_sdk: list[BaseException] = []

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except BaseException as exc:
            raised_by_sdk.append(exc)
            raise

    monkeypatch.setattr(cls, "create", spy)
    instrument_openai()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0)
    with pytest.raises(error) as caught:
        client.chat.completions.create(model=model, messages=USER)
    assert caught.value is raised_by_sdk[0]
    assert caught.value.status_code == status
    span = one_span(pipeline, memory)
    a = attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert error.__name__ in (span.status.description or "")
    assert a["error.type"] == f"openai.{error.__name__}"
    assert a["http.response.status_code"] == status
    assert a["otel_llm.observation.level"] == "ERROR"
    assert [e.name for e in span.events] == ["exception"]
    no_internal_errors()


def test_async_api_error(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, server: FakeLLMServer
) -> None:
    async def main() -> None:
        async with async_client(server) as client:
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(model="error-429", messages=USER, stream=True)

    asyncio.run(main())
    span = one_span(pipeline, memory)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "openai.RateLimitError"


def test_retries_stay_inside_one_span(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, server: FakeLLMServer
) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="test", max_retries=2)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="error-429", messages=USER)
    assert len(server.requests_to("/chat/completions")) == 3
    assert one_span(pipeline, memory).status.status_code is StatusCode.ERROR


# -- providers ------------------------------------------------------------------------------------
def test_azure_client(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, server: FakeLLMServer
) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=server.url, api_version="2024-10-21", api_key="azure-key", max_retries=0
    )
    client.chat.completions.create(model="my-gpt4o-deployment", messages=USER)
    request = server.last_request()
    assert request.deployment == "my-gpt4o-deployment"
    assert request.query == {"api-version": ["2024-10-21"]}
    span = one_span(pipeline, memory)
    a = attrs(span)
    assert a["gen_ai.provider.name"] == "azure.ai.openai"
    assert a["gen_ai.request.model"] == "my-gpt4o-deployment"
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == server.port


@pytest.mark.parametrize(
    ("base_url", "provider", "address", "port"),
    [
        ("https://api.openai.com/v1", "openai", "api.openai.com", 443),
        (
            "https://my-res.openai.azure.com/openai/v1",
            "azure.ai.openai",
            "my-res.openai.azure.com",
            443,
        ),
        ("http://localhost:8000/v1", "openai", "localhost", 8000),
        ("http://vllm.internal/v1", "openai", "vllm.internal", 80),
    ],
)
def test_provider_from_base_url(base_url: str, provider: str, address: str, port: int) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="test")
    assert integration._endpoint_attributes(client) == {
        "gen_ai.provider.name": provider,
        "server.address": address,
        "server.port": port,
    }


# -- lifecycle ------------------------------------------------------------------------------------
def _current_methods() -> dict[tuple[type, str], Any]:
    found = {}
    for target in integration._TARGETS:
        cls = integration._resolve(target)
        if cls is not None and target.method in cls.__dict__:
            found[(cls, target.method)] = cls.__dict__[target.method]
    return found


def test_instrument_twice_gives_one_span_per_call(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    before = _current_methods()
    instrument_openai()
    instrument_openai()
    assert _current_methods() == before  # nothing re-wrapped
    client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True).close()
    assert len(spans(pipeline, memory)) == 2


def test_uninstrument_restores_the_originals(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    server: FakeLLMServer,
    client: openai.OpenAI,
) -> None:
    wrapped = _current_methods()
    uninstrument_openai()
    originals = _current_methods()
    assert len(originals) >= 8  # chat, embeddings, responses: create (+ parse), sync and async
    for key, original in originals.items():
        assert wrapped[key] is not original
        assert wrapped[key].__otel_llm_original__ is original
        assert not hasattr(original, "__otel_llm_original__")
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    assert type(stream) is openai.Stream
    list(stream)
    client.embeddings.create(model="text-embedding-3-small", input="x")
    client.responses.create(model="gpt-4.1", input="x")
    assert spans(pipeline, memory) == []
    uninstrument_openai()  # twice is fine
    instrument_openai()
    client.responses.create(model="gpt-4.1", input="x")
    assert len(spans(pipeline, memory)) == 1


def test_raw_response_wrapper_cached_before_uninstrument_stops_tracing(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    raw_api = client.chat.completions.with_raw_response  # binds the wrapped method now
    uninstrument_openai()
    raw_api.create(model="gpt-4o-mini", messages=USER).parse()
    assert spans(pipeline, memory) == []


# -- concurrency and context ----------------------------------------------------------------------
def test_concurrent_async_requests_keep_their_parents(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, server: FakeLLMServer
) -> None:
    async def one(client: openai.AsyncOpenAI, i: int) -> tuple[str, str, str]:
        messages = [{"role": "user", "content": f"question {i}"}]
        with otel_llm.start_observation(f"request-{i}") as parent:
            if i % 2:
                stream = await client.chat.completions.create(
                    model="slow", messages=messages, stream=True
                )
                async for _ in stream:
                    await asyncio.sleep(0)
            else:
                await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        return f"question {i}", parent.trace_id, parent.id

    async def main() -> list[tuple[str, str, str]]:
        async with async_client(server) as client:
            return await asyncio.gather(*(one(client, i) for i in range(50)))

    expected = asyncio.run(main())
    by_question = {}
    for span in spans(pipeline, memory):
        question = content(span, "input")[0]["content"]
        assert span.parent is not None
        by_question[question] = (
            f"{span.context.trace_id:032x}",  # type: ignore[union-attr]
            f"{span.parent.span_id:016x}",
        )
        assert content(span, "output") == {"role": "assistant", "content": REPLY_TEXT}
    assert len(by_question) == 50
    assert len({trace for _, trace, _ in expected}) == 50
    for question, trace_id, parent_id in expected:
        assert by_question[question] == (trace_id, parent_id)
    no_internal_errors()


def test_http_call_runs_inside_the_generation_span(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, client: openai.OpenAI
) -> None:
    seen: list[str | None] = []

    def hook(request: Any) -> None:
        seen.append(otel_llm.get_current_observation_id())

    client._client.event_hooks["request"].append(hook)
    client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    span = one_span(pipeline, memory)
    assert seen == [f"{span.context.span_id:016x}"]  # type: ignore[union-attr]
    assert otel_llm.get_current_observation_id() is None


# -- never break the app --------------------------------------------------------------------------
def test_internal_failures_never_reach_the_app(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    client: openai.OpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_LLM_STRICT")

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bookkeeping bug")

    monkeypatch.setattr(_openai_streams, "chat_outcome", boom)
    monkeypatch.setitem(integration._OUTCOMES, "chat", boom)
    result = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert result.choices[0].message.content == REPLY_TEXT

    monkeypatch.setattr(_openai_streams.ChatStreamAccumulator, "add", boom)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == REPLY_TEXT

    monkeypatch.setattr(integration, "_parameters", boom)
    result = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert result.choices[0].message.content == REPLY_TEXT

    counts = diagnostics.counts()
    assert counts["internal_error.openai.response"] == 1
    assert counts["internal_error.openai.stream"] == 1
    assert counts["internal_error.openai.request"] == 1
    assert len(spans(pipeline, memory)) == 2  # both traced calls still ended and exported


def test_iterators_given_as_input_are_not_consumed(
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    server: FakeLLMServer,
    client: openai.OpenAI,
) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=iter(USER))  # type: ignore[arg-type]
    assert server.last_request().json["messages"] == USER
    span = one_span(pipeline, memory)
    assert "otel_llm.observation.input" not in attrs(span)


def test_importing_otel_llm_does_not_import_openai() -> None:
    code = (
        "import sys, otel_llm, otel_llm.integrations.openai\n"
        "assert 'openai' not in sys.modules, 'openai imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_openai_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['openai'] = None\n"
        "from otel_llm.integrations.openai import instrument_openai\n"
        "try:\n"
        "    instrument_openai()\n"
        "except ImportError as exc:\n"
        "    assert 'otel-llm[openai]' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
