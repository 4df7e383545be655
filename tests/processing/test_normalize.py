"""normalize: foreign dialects → canonical v1.41 attributes; schema-valid messages; total.

Attribute sets mirror what the libraries emit (Langfuse SDK probe output from
reference/langfuse-sdk.md §1.3, OpenLLMetry's and OpenInference's attribute
constants). Every message attribute produced is validated against the semconv
v1.41 JSON schemas, and part by part against the specific part definition (the
schemas' GenericPart alone would accept almost anything).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_llm.processing.normalize import normalize
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext

# A copy of shared/reference/semconv-v1.41's official GenAI JSON schemas.
_SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data" / "semconv-v1.41"
_SCHEMA_FILES = {
    "gen_ai.input.messages": "gen-ai-input-messages.json",
    "gen_ai.output.messages": "gen-ai-output-messages.json",
    "gen_ai.system_instructions": "gen-ai-system-instructions.json",
}
_PART_DEFS = {
    "text": "TextPart",
    "tool_call": "ToolCallRequestPart",
    "tool_call_response": "ToolCallResponsePart",
    "blob": "BlobPart",
    "uri": "UriPart",
    "file": "FilePart",
    "reasoning": "ReasoningPart",
    "server_tool_call": "ServerToolCallPart",
    "server_tool_call_response": "ServerToolCallResponsePart",
}
_MESSAGE_KEYS = tuple(_SCHEMA_FILES)


def _load_validators() -> tuple[dict[str, Draft202012Validator], dict[str, Draft202012Validator]]:
    schemas = {k: json.loads((_SCHEMA_DIR / f).read_text()) for k, f in _SCHEMA_FILES.items()}
    whole = {k: Draft202012Validator(s) for k, s in schemas.items()}
    defs = schemas["gen_ai.input.messages"]["$defs"]
    parts = {
        kind: Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": defs})
        for kind, name in _PART_DEFS.items()
    }
    return whole, parts


_VALIDATORS, _PART_VALIDATORS = _load_validators()
needs_schemas = pytest.mark.skipif(
    not _VALIDATORS, reason=f"semconv v1.41 schemas not found in {_SCHEMA_DIR}"
)


def _record(
    attributes: Mapping[str, Any],
    events: tuple[Event, ...] = (),
    scope: InstrumentationScope | None = None,
) -> SpanRecord:
    return SpanRecord(
        trace_id=1,
        span_id=2,
        name="x",
        start_time=0,
        end_time=1,
        attributes=dict(attributes),
        events=events,
        scope=scope,
    )


def _run(
    attributes: Mapping[str, Any], events: tuple[Event, ...] = ()
) -> tuple[dict[str, Any], SpanRecord, StageContext]:
    record = _record(attributes, events)
    ctx = StageContext()
    normalize(record, ctx)
    _assert_schema_valid(record.attributes)
    assert not [k for k in ctx.counters if k.startswith("normalize.error")]
    return record.attributes, record, ctx


def _assert_schema_valid(attributes: Mapping[str, Any]) -> None:
    for key in _MESSAGE_KEYS:
        if key not in attributes or not _VALIDATORS:
            continue
        value = json.loads(attributes[key])
        _VALIDATORS[key].validate(value)
        parts = (
            value
            if key == "gen_ai.system_instructions"
            else [p for message in value for p in message["parts"]]
        )
        for part in parts:
            validator = _PART_VALIDATORS.get(part["type"])
            if validator is not None:
                validator.validate(part)


def _messages(attributes: Mapping[str, Any], key: str) -> Any:
    return json.loads(attributes[key])


def _text(content: str) -> dict[str, str]:
    return {"type": "text", "content": content}


# --- Langfuse SDK -------------------------------------------------------------------------

_LANGFUSE_V5_GENERATION = {
    # what langfuse 5.0.4 writes for @observe(as_type="generation") inside
    # propagate_attributes(...) (reference/langfuse-sdk.md §1.3), plus a chat input
    "user.id": "u1",
    "session.id": "s1",
    "langfuse.trace.metadata.m": '"x"',
    "langfuse.trace.metadata.n": "5",
    "langfuse.version": "v9",
    "langfuse.trace.tags": ("t1",),
    "langfuse.trace.name": "tn",
    "langfuse.observation.input": json.dumps(
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "q"},
        ]
    ),
    "langfuse.environment": "staging",
    "langfuse.release": "r1",
    "langfuse.observation.model.name": "gpt-4o",
    "langfuse.observation.usage_details": '{"input": 10, "output": 5}',
    "langfuse.observation.cost_details": '{"total": 0.01}',
    "langfuse.observation.completion_start_time": '"2025-01-01T00:00:00Z"',
    "langfuse.observation.model.parameters": '{"temperature": 0.2, "max_tokens": 64}',
    "langfuse.observation.metadata.a": '"str"',
    "langfuse.observation.metadata.b": "3",
    "langfuse.observation.metadata.c": '{"d":1}',
    "langfuse.observation.type": "generation",
    "langfuse.observation.output": '{"role": "assistant", "content": "answer"}',
    "langfuse.observation.prompt.name": "qa",
    "langfuse.observation.prompt.version": 3,
    "langfuse.internal.is_app_root": True,
}


@needs_schemas
def test_langfuse_v5_generation_becomes_canonical() -> None:
    attrs, _, ctx = _run(_LANGFUSE_V5_GENERATION)
    assert attrs["otel_llm.observation.type"] == "generation"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert json.loads(attrs["otel_llm.observation.model_parameters"]) == {
        "temperature": 0.2,
        "max_tokens": 64,
    }
    assert json.loads(attrs["otel_llm.usage.raw"]) == {"input": 10, "output": 5}
    assert json.loads(attrs["otel_llm.cost.raw"]) == {"total": 0.01}
    assert attrs["otel_llm.observation.completion_start_time"] == "2025-01-01T00:00:00.000000Z"
    assert json.loads(attrs["otel_llm.observation.metadata"]) == {"a": "str", "b": 3, "c": {"d": 1}}
    assert json.loads(attrs["otel_llm.trace.metadata"]) == {"m": "x", "n": 5}
    assert attrs["otel_llm.trace.tags"] == ("t1",)
    assert attrs["otel_llm.trace.name"] == "tn"
    assert attrs["otel_llm.environment"] == "staging"
    assert attrs["otel_llm.release"] == "r1"
    assert attrs["otel_llm.version"] == "v9"
    assert attrs["otel_llm.prompt.name"] == "qa"
    assert attrs["otel_llm.prompt.version"] == 3
    assert (
        attrs["otel_llm.observation.input"] == _LANGFUSE_V5_GENERATION["langfuse.observation.input"]
    )
    assert _messages(attrs, "gen_ai.system_instructions") == [_text("You are terse.")]
    assert _messages(attrs, "gen_ai.input.messages") == [{"role": "user", "parts": [_text("q")]}]
    assert _messages(attrs, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [_text("answer")], "finish_reason": "stop"}
    ]
    # translated langfuse.* keys are gone; ones we do not translate stay
    assert [k for k in attrs if k.startswith("langfuse.")] == ["langfuse.internal.is_app_root"]
    assert attrs["user.id"] == "u1" and attrs["session.id"] == "s1"
    assert not ctx.counters


def test_langfuse_v4_shapes_and_compatibility_keys() -> None:
    attrs, _, ctx = _run(
        {
            "langfuse.observation.type": "agent",
            "langfuse.observation.input": "plain question",  # str passed through unquoted
            "langfuse.observation.metadata.source": "web",  # v4: raw str
            "langfuse.observation.metadata.count": 2,  # v4: raw int
            "langfuse.observation.level": "warn",
            "langfuse.observation.status_message": "slow tool",
            "langfuse.user.id": "legacy-user",
            "langfuse.session.id": "legacy-session",
            "langfuse.tags": "a, b ,c",
            "langfuse.metadata": '{"team": "search"}',
            "langfuse.prompt.name": "p",
            "langfuse.prompt.version": "7",
        }
    )
    assert attrs["otel_llm.observation.type"] == "agent"
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["otel_llm.observation.input"] == "plain question"
    assert json.loads(attrs["otel_llm.observation.metadata"]) == {"source": "web", "count": 2}
    assert attrs["otel_llm.observation.level"] == "WARNING"
    assert attrs["otel_llm.observation.status_message"] == "slow tool"
    assert attrs["user.id"] == "legacy-user"
    assert attrs["session.id"] == "legacy-session"
    assert attrs["otel_llm.trace.tags"] == ("a", "b", "c")
    assert json.loads(attrs["otel_llm.trace.metadata"]) == {"team": "search"}
    assert attrs["otel_llm.prompt.name"] == "p"
    assert attrs["otel_llm.prompt.version"] == 7
    assert "gen_ai.input.messages" not in attrs  # not a generation
    assert not [k for k in attrs if k.startswith("langfuse.")]
    assert not ctx.counters


def test_langfuse_tags_as_json_string_and_single_metadata_json() -> None:
    attrs, _, _ = _run(
        {
            "langfuse.trace.tags": '["x", "y"]',
            "langfuse.observation.metadata": '{"k": [1, 2]}',
            "langfuse.trace.input": '{"q": 1}',
            "langfuse.trace.output": "done",
        }
    )
    assert attrs["otel_llm.trace.tags"] == ("x", "y")
    assert json.loads(attrs["otel_llm.observation.metadata"]) == {"k": [1, 2]}
    assert attrs["otel_llm.trace.input"] == '{"q": 1}'
    assert attrs["otel_llm.trace.output"] == "done"


@pytest.mark.parametrize(
    ("as_type", "operation"),
    [
        ("span", "span"),
        ("generation", "chat"),
        ("embedding", "embeddings"),
        ("tool", "execute_tool"),
        ("retriever", "retrieval"),
        ("chain", "chain"),
        ("evaluator", "evaluate"),
        ("guardrail", "guardrail"),
        ("event", "event"),
        ("AGENT", "invoke_agent"),
    ],
)
def test_langfuse_observation_types(as_type: str, operation: str) -> None:
    attrs, _, _ = _run({"langfuse.observation.type": as_type})
    assert attrs["otel_llm.observation.type"] == as_type.lower()
    assert attrs["gen_ai.operation.name"] == operation


def test_canonical_keys_win_and_foreign_content_is_not_duplicated() -> None:
    attrs, _, _ = _run(
        {
            "otel_llm.observation.type": "generation",
            "gen_ai.operation.name": "text_completion",
            "otel_llm.observation.input": "ours",
            "gen_ai.request.model": "claude-3-5-haiku",
            "otel_llm.observation.metadata": '{"k": "ours", "only_ours": 1}',
            "langfuse.observation.type": "span",
            "langfuse.observation.input": "theirs",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.metadata.k": "theirs",
            "langfuse.observation.metadata.only_theirs": "t",
        }
    )
    assert attrs["otel_llm.observation.type"] == "generation"
    assert attrs["gen_ai.operation.name"] == "text_completion"
    assert attrs["otel_llm.observation.input"] == "ours"
    assert attrs["gen_ai.request.model"] == "claude-3-5-haiku"
    assert json.loads(attrs["otel_llm.observation.metadata"]) == {
        "k": "ours",
        "only_ours": 1,
        "only_theirs": "t",
    }
    assert "theirs" not in attrs.values()
    assert not [k for k in attrs if k.startswith("langfuse.")]


def test_langfuse_malformed_values_are_counted_and_kept() -> None:
    bad = {
        "langfuse.observation.type": "banana",
        "langfuse.observation.level": "LOUD",
        "langfuse.observation.usage_details": "not json",
        "langfuse.observation.cost_details": "[1, 2]",
        "langfuse.observation.completion_start_time": "yesterday",
        "langfuse.observation.prompt.version": "v1",
        "langfuse.observation.model.parameters": "{",
        "langfuse.trace.tags": 5,
    }
    attrs, _, ctx = _run(bad)
    assert ctx.counters["normalize.invalid.langfuse"] == len(bad)
    for key, value in bad.items():
        assert attrs[key] == value
    assert "otel_llm.observation.type" not in attrs


# --- OpenLLMetry / Traceloop -------------------------------------------------------------

_TRACELOOP_OPENAI_CHAT = {
    # opentelemetry-instrumentation-openai (OpenLLMetry), chat completion with a tool round trip
    "llm.request.type": "chat",
    "gen_ai.system": "OpenAI",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.request.temperature": 0.0,
    "llm.is_streaming": False,
    "gen_ai.openai.api_base": "https://api.openai.com/v1/",
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "You are a weather bot.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": "Weather in Paris?",
    "gen_ai.prompt.2.role": "assistant",
    "gen_ai.prompt.2.tool_calls.0.id": "call_1",
    "gen_ai.prompt.2.tool_calls.0.name": "get_weather",
    "gen_ai.prompt.2.tool_calls.0.arguments": '{"city": "Paris"}',
    "gen_ai.prompt.3.role": "tool",
    "gen_ai.prompt.3.content": "18C, sunny",
    "gen_ai.prompt.3.tool_call_id": "call_1",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-123",
    "llm.usage.total_tokens": 60,
    "gen_ai.usage.prompt_tokens": 50,
    "gen_ai.usage.completion_tokens": 10,
    "gen_ai.completion.0.finish_reason": "stop",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": "It is 18C and sunny in Paris.",
    "traceloop.workflow.name": "weather_agent",
    "traceloop.association.properties.user_id": "user-7",
    "traceloop.association.properties.session_id": "sess-7",
}


@needs_schemas
def test_traceloop_chat_becomes_canonical() -> None:
    attrs, _, ctx = _run(_TRACELOOP_OPENAI_CHAT)
    assert attrs["otel_llm.observation.type"] == "generation"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.usage.input_tokens"] == 50
    assert attrs["gen_ai.usage.output_tokens"] == 10
    assert attrs["otel_llm.trace.name"] == "weather_agent"
    assert attrs["user.id"] == "user-7" and attrs["session.id"] == "sess-7"
    assert _messages(attrs, "gen_ai.system_instructions") == [_text("You are a weather bot.")]
    assert _messages(attrs, "gen_ai.input.messages") == [
        {"role": "user", "parts": [_text("Weather in Paris?")]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18C, sunny"}],
        },
    ]
    assert _messages(attrs, "gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [_text("It is 18C and sunny in Paris.")],
            "finish_reason": "stop",
        }
    ]
    assert not [k for k in attrs if k.startswith(("gen_ai.prompt.", "gen_ai.completion."))]
    assert attrs["gen_ai.system"] == "OpenAI"  # non-content foreign keys stay
    assert not ctx.counters


@needs_schemas
def test_traceloop_anthropic_blocks_tool_use_and_cache_counts() -> None:
    attrs, _, _ = _run(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-sonnet-4-20250514",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": json.dumps(
                [
                    {"type": "text", "text": "What is in this image?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
                    },
                ]
            ),
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.finish_reason": "tool_use",
            "gen_ai.completion.0.tool_calls.0.id": "toolu_1",
            "gen_ai.completion.0.tool_calls.0.name": "zoom",
            "gen_ai.completion.0.tool_calls.0.arguments": '{"x": 1}',
            "gen_ai.usage.prompt_tokens": 1200,
            "gen_ai.usage.completion_tokens": 30,
            "gen_ai.usage.cache_read_input_tokens": 1000,
            "gen_ai.usage.cache_creation_input_tokens": 100,
        }
    )
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 100
    assert _messages(attrs, "gen_ai.input.messages") == [
        {
            "role": "user",
            "parts": [
                _text("What is in this image?"),
                {
                    "type": "blob",
                    "modality": "image",
                    "mime_type": "image/png",
                    "content": "iVBORw0K",
                },
            ],
        }
    ]
    [output] = _messages(attrs, "gen_ai.output.messages")
    assert output["finish_reason"] == "tool_call"
    assert output["parts"] == [
        {"type": "tool_call", "id": "toolu_1", "name": "zoom", "arguments": {"x": 1}}
    ]


@pytest.mark.parametrize(
    ("kind", "as_type"),
    [("workflow", "chain"), ("task", "span"), ("agent", "agent"), ("tool", "tool")],
)
def test_traceloop_decorator_spans(kind: str, as_type: str) -> None:
    attrs, _, _ = _run(
        {
            "traceloop.span.kind": kind,
            "traceloop.entity.name": "joke",
            "traceloop.entity.input": '{"args": [], "kwargs": {"topic": "cats"}}',
            "traceloop.entity.output": '"a joke"',
        }
    )
    assert attrs["otel_llm.observation.type"] == as_type
    assert attrs["otel_llm.observation.input"] == '{"args": [], "kwargs": {"topic": "cats"}}'
    assert attrs["otel_llm.observation.output"] == '"a joke"'
    assert "traceloop.entity.input" not in attrs and "traceloop.entity.output" not in attrs
    assert attrs["traceloop.span.kind"] == kind


def test_traceloop_legacy_completions_prompt() -> None:
    attrs, _, _ = _run(
        {
            "llm.request.type": "completion",
            "gen_ai.prompt.0.user": "Say hi",
            "gen_ai.completion.0.content": "hi",
            "gen_ai.completion.0.finish_reason": "length",
        }
    )
    assert attrs["gen_ai.operation.name"] == "text_completion"
    assert _messages(attrs, "gen_ai.input.messages") == [
        {"role": "user", "parts": [_text("Say hi")]}
    ]
    assert _messages(attrs, "gen_ai.output.messages")[0]["finish_reason"] == "length"


def test_bare_gen_ai_prompt_and_completion() -> None:
    attrs, _, _ = _run(
        {
            "gen_ai.prompt": '[{"role": "user", "content": "ping"}]',
            "gen_ai.completion": "pong",
        }
    )
    assert _messages(attrs, "gen_ai.input.messages") == [{"role": "user", "parts": [_text("ping")]}]
    assert _messages(attrs, "gen_ai.output.messages")[0]["parts"] == [_text("pong")]
    assert "gen_ai.prompt" not in attrs and "gen_ai.completion" not in attrs


def test_traceloop_odd_values_degrade_gracefully() -> None:
    attrs, _, ctx = _run(
        {
            "gen_ai.prompt.0.role": 5,  # no role: the default (user) applies
            "gen_ai.prompt.0.content": "hi",
            "gen_ai.prompt.x.content": "no index: not an OpenLLMetry message key",
            "gen_ai.completion.0.tool_calls.0.name": 42,  # a tool call needs a string name
            "gen_ai.usage.prompt_tokens": "many",
        }
    )
    assert _messages(attrs, "gen_ai.input.messages") == [{"role": "user", "parts": [_text("hi")]}]
    assert attrs["gen_ai.prompt.x.content"] == "no index: not an OpenLLMetry message key"
    assert _messages(attrs, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [], "finish_reason": "stop"}
    ]
    assert attrs["gen_ai.usage.prompt_tokens"] == "many"
    assert "gen_ai.usage.input_tokens" not in attrs
    assert ctx.counters["normalize.invalid.semconv"] == 1


# --- OpenInference -----------------------------------------------------------------------

_OPENINFERENCE_LLM = {
    # openinference-instrumentation-openai, chat completion that calls a tool
    "openinference.span.kind": "LLM",
    "input.value": json.dumps(
        {"messages": [{"role": "user", "content": "Weather?"}], "model": "gpt-4o"}
    ),
    "input.mime_type": "application/json",
    "output.value": json.dumps({"id": "chatcmpl-1", "choices": []}),
    "output.mime_type": "application/json",
    "llm.invocation_parameters": '{"model": "gpt-4o", "temperature": 0.3, "stop": ["\\n"]}',
    "llm.model_name": "gpt-4o-2024-08-06",
    "llm.provider": "azure",
    "llm.system": "openai",
    "llm.input_messages.0.message.role": "system",
    "llm.input_messages.0.message.content": "Be brief.",
    "llm.input_messages.1.message.role": "user",
    "llm.input_messages.1.message.contents.0.message_content.type": "text",
    "llm.input_messages.1.message.contents.0.message_content.text": "What is this?",
    "llm.input_messages.1.message.contents.1.message_content.type": "image",
    "llm.input_messages.1.message.contents.1.message_content.image.image.url": (
        "https://example.com/cat.png"
    ),
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_9",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"q": "cat"}',
    "llm.token_count.prompt": 120,
    "llm.token_count.completion": 15,
    "llm.token_count.total": 135,
    "llm.token_count.prompt_details.cache_read": 64,
    "llm.token_count.completion_details.reasoning": 5,
    "session.id": "s-1",
    "user.id": "u-1",
    "metadata": '{"experiment": "b"}',
    "tag.tags": ("beta", "eu"),
}


@needs_schemas
def test_openinference_llm_becomes_canonical() -> None:
    attrs, _, ctx = _run(_OPENINFERENCE_LLM)
    assert attrs["otel_llm.observation.type"] == "generation"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "gpt-4o"  # from the invocation parameters
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"  # llm.model_name
    assert attrs["gen_ai.provider.name"] == "azure.ai.openai"
    assert attrs["gen_ai.request.temperature"] == 0.3
    assert attrs["gen_ai.request.stop_sequences"] == ("\n",)
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 15
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 64
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 5
    assert attrs["otel_llm.observation.input"] == _OPENINFERENCE_LLM["input.value"]
    assert json.loads(attrs["otel_llm.observation.metadata"]) == {"experiment": "b"}
    assert attrs["otel_llm.trace.tags"] == ("beta", "eu")
    assert _messages(attrs, "gen_ai.system_instructions") == [_text("Be brief.")]
    assert _messages(attrs, "gen_ai.input.messages") == [
        {
            "role": "user",
            "parts": [
                _text("What is this?"),
                {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
            ],
        }
    ]
    assert _messages(attrs, "gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": {"q": "cat"}}
            ],
            "finish_reason": "tool_call",
        }
    ]
    gone = (
        "input.value",
        "output.value",
        "metadata",
        "llm.input_messages.",
        "llm.output_messages.",
    )
    assert not [k for k in attrs if k.startswith(gone)]
    assert attrs["llm.token_count.prompt"] == 120  # non-content foreign keys stay
    assert not ctx.counters


@pytest.mark.parametrize(
    ("kind", "as_type"),
    [
        ("CHAIN", "chain"),
        ("TOOL", "tool"),
        ("RETRIEVER", "retriever"),
        ("EMBEDDING", "embedding"),
        ("AGENT", "agent"),
        ("RERANKER", "span"),
        ("GUARDRAIL", "guardrail"),
        ("EVALUATOR", "evaluator"),
        ("UNKNOWN", None),
    ],
)
def test_openinference_span_kinds(kind: str, as_type: str | None) -> None:
    attrs, _, _ = _run(
        {
            "openinference.span.kind": kind,
            "input.value": "question",
            "input.mime_type": "text/plain",
            "tool.name": "search",
        }
    )
    assert attrs.get("otel_llm.observation.type") == as_type
    assert attrs["otel_llm.observation.input"] == "question"
    assert ("gen_ai.tool.name" in attrs) == (as_type == "tool")


def test_bare_metadata_key_is_only_openinference_metadata_on_openinference_spans() -> None:
    attrs, _, _ = _run({"metadata": '{"a": 1}', "input.value": "x"})
    assert attrs["metadata"] == '{"a": 1}'
    assert "otel_llm.observation.metadata" not in attrs


def test_openinference_embedding_model() -> None:
    attrs, _, _ = _run(
        {"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small"}
    )
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.request.model"] == "text-embedding-3-small"
    assert attrs["gen_ai.provider.name"] == "openai"


# --- older semconv ------------------------------------------------------------------------


@needs_schemas
def test_message_events_become_attributes_and_are_dropped() -> None:
    events = (
        Event("gen_ai.system.message", {"gen_ai.system": "openai", "content": "Be kind."}),
        Event("gen_ai.user.message", {"gen_ai.event.content": '{"content": "Hello"}'}),
        Event(
            "gen_ai.assistant.message",
            {
                "gen_ai.event.content": json.dumps(
                    {
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "clock", "arguments": "{}"},
                            }
                        ],
                    }
                )
            },
        ),
        Event("gen_ai.tool.message", {"content": "12:00", "id": "c1"}),
        Event("exception", {"exception.type": "Timeout"}),
        Event(
            "gen_ai.choice",
            {
                "body": json.dumps(
                    {"index": 1, "finish_reason": "length", "message": {"content": "b"}}
                )
            },
        ),
        Event(
            "gen_ai.choice",
            {
                "index": 0,
                "finish_reason": "stop",
                "message": '{"role": "assistant", "content": "a"}',
            },
        ),
    )
    attrs, record, ctx = _run(
        {"gen_ai.system": "az.ai.inference", "gen_ai.operation.name": "chat"}, events
    )
    assert [e.name for e in record.events] == ["exception"]
    assert attrs["gen_ai.provider.name"] == "azure.ai.inference"
    assert attrs["otel_llm.observation.type"] == "generation"
    assert _messages(attrs, "gen_ai.system_instructions") == [_text("Be kind.")]
    assert _messages(attrs, "gen_ai.input.messages") == [
        {"role": "user", "parts": [_text("Hello")]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "clock", "arguments": {}}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "c1", "response": "12:00"}],
        },
    ]
    assert _messages(attrs, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [_text("a")], "finish_reason": "stop"},
        {"role": "assistant", "parts": [_text("b")], "finish_reason": "length"},
    ]
    assert not ctx.counters


def test_semantic_kernel_content_events() -> None:
    events = (
        Event("gen_ai.content.prompt", {"gen_ai.prompt": '[{"role": "user", "content": "q"}]'}),
        Event(
            "gen_ai.content.completion",
            {"gen_ai.completion": '[{"role": "assistant", "content": "a"}]'},
        ),
    )
    attrs, record, _ = _run({}, events)
    assert record.events == ()
    assert _messages(attrs, "gen_ai.input.messages") == [{"role": "user", "parts": [_text("q")]}]
    assert _messages(attrs, "gen_ai.output.messages")[0]["parts"] == [_text("a")]


def test_unreadable_event_is_counted_and_kept() -> None:
    events = (Event("gen_ai.user.message", {"gen_ai.event.content": 7}),)
    attrs, record, ctx = _run({}, events)
    assert [e.name for e in record.events] == ["gen_ai.user.message"]
    assert ctx.counters["normalize.invalid.semconv"] == 1
    assert "gen_ai.input.messages" not in attrs


@pytest.mark.parametrize(
    ("system", "provider"),
    [
        ("openai", "openai"),
        ("OpenAI", "openai"),
        ("az.ai.openai", "azure.ai.openai"),
        ("azure_openai", "azure.ai.openai"),
        ("az.ai.inference", "azure.ai.inference"),
        ("mistralai", "mistral_ai"),
        ("gemini", "gcp.gemini"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("gcp.gen_ai", "gcp.gen_ai"),
        ("aws.bedrock", "aws.bedrock"),
        ("watsonx", "ibm.watsonx.ai"),
        ("xai", "x_ai"),
        ("ollama", "ollama"),
        ("Langchain", None),
    ],
)
def test_gen_ai_system_becomes_provider_name(system: str, provider: str | None) -> None:
    attrs, _, _ = _run({"gen_ai.system": system})
    assert attrs.get("gen_ai.provider.name") == provider
    assert attrs["gen_ai.system"] == system


def test_usage_aliases_and_existing_canonical_counts() -> None:
    attrs, _, ctx = _run(
        {
            "gen_ai.usage.prompt_tokens": 11,
            "gen_ai.usage.completion_tokens": "4",
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.usage.reasoning_tokens": -1,
        }
    )
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert "gen_ai.usage.reasoning.output_tokens" not in attrs
    assert ctx.counters["normalize.invalid.semconv"] == 1


# --- our own generations, provider inference -------------------------------------------


def _generation(input_value: object, output_value: object, **extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {"otel_llm.observation.type": "generation", **extra}
    for key, value in (("input", input_value), ("output", output_value)):
        if value is not None:
            text = value if isinstance(value, str) else json.dumps(value)
            attrs[f"otel_llm.observation.{key}"] = text
    return attrs


@needs_schemas
def test_our_generation_gets_messages() -> None:
    chat = [
        {"role": "system", "content": "Rules."},
        {"role": "developer", "content": [{"type": "text", "text": "More rules."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
            ],
        },
        {"role": "system", "content": "Mid-conversation note."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "not json"}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "result"},
    ]
    output = {"role": "assistant", "content": "Done.", "refusal": None}
    attrs, _, _ = _run(_generation(chat, output, **{"gen_ai.request.model": "o3-mini"}))
    assert _messages(attrs, "gen_ai.system_instructions") == [_text("Rules."), _text("More rules.")]
    messages = _messages(attrs, "gen_ai.input.messages")
    assert [m["role"] for m in messages] == ["user", "system", "assistant", "tool"]
    assert messages[0]["parts"][1:] == [
        {"type": "blob", "modality": "image", "mime_type": "image/jpeg", "content": "/9j/4AAQ"},
        {"type": "blob", "modality": "audio", "mime_type": "audio/wav", "content": "UklGR"},
    ]
    assert messages[2]["parts"][0]["arguments"] == "not json"
    assert _messages(attrs, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [_text("Done.")], "finish_reason": "stop"}
    ]
    assert attrs["gen_ai.provider.name"] == "openai"


@needs_schemas
@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "plain text",
            [{"role": "assistant", "parts": [_text("plain text")], "finish_reason": "stop"}],
        ),
        (
            {
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "x",
                                    "type": "function",
                                    "function": {"name": "g", "arguments": '{"a": 1}'},
                                }
                            ],
                        },
                    },
                ]
            },
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "tool_call", "id": "x", "name": "g", "arguments": {"a": 1}}],
                    "finish_reason": "tool_call",
                }
            ],
        ),
        (
            {
                "type": "message",
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "text", "text": "ok"},
                ],
                "stop_reason": "end_turn",
            },
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "reasoning", "content": "hmm"}, _text("ok")],
                    "finish_reason": "stop",
                }
            ],
        ),
        ({"answer": 42}, None),
    ],
)
def test_our_generation_output_shapes(output: object, expected: object) -> None:
    attrs, _, _ = _run(_generation(None, output))
    if expected is None:
        assert "gen_ai.output.messages" not in attrs
    else:
        assert _messages(attrs, "gen_ai.output.messages") == expected


def test_our_generation_input_shapes() -> None:
    attrs, _, _ = _run(_generation("Summarize this.", None))
    assert _messages(attrs, "gen_ai.input.messages") == [
        {"role": "user", "parts": [_text("Summarize this.")]}
    ]
    attrs, _, _ = _run(
        _generation({"messages": [{"role": "user", "content": "hi"}], "tools": []}, None)
    )
    assert _messages(attrs, "gen_ai.input.messages") == [{"role": "user", "parts": [_text("hi")]}]
    attrs, _, _ = _run(_generation({"query": "not a chat"}, None))
    assert "gen_ai.input.messages" not in attrs
    attrs, _, _ = _run(_generation([{"role": "user", "content": "a"}, "not a message"], None))
    assert "gen_ai.input.messages" not in attrs


def test_existing_system_instructions_keep_system_messages_in_the_history() -> None:
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    attrs, _, _ = _run(
        _generation(
            chat, None, **{"gen_ai.system_instructions": '[{"type":"text","content":"given"}]'}
        )
    )
    assert attrs["gen_ai.system_instructions"] == '[{"type":"text","content":"given"}]'
    assert [m["role"] for m in _messages(attrs, "gen_ai.input.messages")] == ["system", "user"]


@needs_schemas
def test_gemini_and_langchain_message_shapes() -> None:
    chat = [
        {"type": "system", "content": "Obey."},  # LangChain message dicts
        {
            "role": "user",
            "parts": [  # Gemini contents
                {"text": "Transcribe"},
                {"inline_data": {"mime_type": "audio/mp3", "data": "SUQz"}},
                {"file_data": {"mime_type": "video/mp4", "file_uri": "gs://b/v.mp4"}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"text": "Thinking…", "thought": True},
                {"function_call": {"name": "lookup", "args": {"q": "x"}}},
            ],
        },
        {
            "role": "user",
            "parts": [{"function_response": {"name": "lookup", "response": {"r": 1}}}],
        },
        {
            "type": "ai",
            "content": "",
            "tool_calls": [{"name": "calc", "args": {"a": 2}, "id": "lc1", "type": "tool_call"}],
        },
    ]
    attrs, _, _ = _run(_generation(chat, None))
    assert _messages(attrs, "gen_ai.system_instructions") == [_text("Obey.")]
    user, model, response, ai = _messages(attrs, "gen_ai.input.messages")
    assert user["parts"] == [
        _text("Transcribe"),
        {"type": "blob", "modality": "audio", "mime_type": "audio/mp3", "content": "SUQz"},
        {"type": "uri", "modality": "video", "mime_type": "video/mp4", "uri": "gs://b/v.mp4"},
    ]
    assert model["role"] == "assistant"
    assert model["parts"] == [
        {"type": "reasoning", "content": "Thinking…"},
        {"type": "tool_call", "id": None, "name": "lookup", "arguments": {"q": "x"}},
    ]
    assert response["parts"] == [{"type": "tool_call_response", "id": None, "response": {"r": 1}}]
    assert ai["parts"] == [
        {"type": "tool_call", "id": "lc1", "name": "calc", "arguments": {"a": 2}}
    ]


def test_foreign_content_is_cut_and_cleaned_like_ours() -> None:
    record = _record({"input.value": "x" * 500 + "\ud800", "output.value": "fine"})
    ctx = StageContext(max_content_chars=100)
    normalize(record, ctx)
    value = record.attributes["otel_llm.observation.input"]
    assert len(value) < 200 and "\ud800" not in value and "truncated" in value
    assert record.attributes["otel_llm.observation.output"] == "fine"


def test_huge_messages_stay_valid_json_under_the_content_limit() -> None:
    chat = [{"role": "user", "content": "y" * 50_000}]
    record = _record(_generation(chat, None))
    normalize(record, StageContext(max_content_chars=10_000))
    value = record.attributes["gen_ai.input.messages"]
    assert len(value) < 12_000
    assert json.loads(value)[0]["role"] == "user"


def test_newer_unindexed_gen_ai_prompt_keys_are_not_openllmetry() -> None:
    attrs, _, ctx = _run({"gen_ai.prompt.name": "qa", "gen_ai.prompt.version": "2"})
    assert attrs == {"gen_ai.prompt.name": "qa", "gen_ai.prompt.version": "2"}
    assert not ctx.counters


def test_only_generations_get_messages() -> None:
    attrs = _generation([{"role": "user", "content": "hi"}], "out")
    attrs["otel_llm.observation.type"] = "span"
    result, _, _ = _run(attrs)
    assert result == attrs


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o-mini", "openai"),
        ("o1-preview", "openai"),
        ("o4-mini", "openai"),
        ("text-embedding-3-large", "openai"),
        ("claude-3-7-sonnet-latest", "anthropic"),
        ("gemini-2.0-flash", "gcp.gen_ai"),
        ("mistral-large-latest", "mistral_ai"),
        ("command-r-plus", "cohere"),
        ("grok-3", "x_ai"),
        ("amazon.nova-pro-v1:0", "aws.bedrock"),
        ("us.anthropic.claude-3-5-sonnet-20240620-v1:0", "aws.bedrock"),
        ("mistral-small:24b", None),  # an Ollama tag: served locally, not by Mistral
        ("openrouter/anthropic/claude-3.5-sonnet", None),
        ("gpt-oss-120b", None),
        ("openai/gpt-4o", None),
        ("llama-3.1-70b", None),
        ("claude-3-5-sonnet@20240620", None),
        ("", None),
    ],
)
def test_provider_inferred_only_from_unambiguous_model_names(
    model: str, provider: str | None
) -> None:
    attrs, _, _ = _run({"gen_ai.request.model": model})
    assert attrs.get("gen_ai.provider.name") == provider


def test_provider_inference_never_overrides() -> None:
    attrs, _, _ = _run(
        {"gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "azure.ai.openai"}
    )
    assert attrs["gen_ai.provider.name"] == "azure.ai.openai"


def test_span_without_foreign_keys_is_untouched() -> None:
    plain = {"http.method": "GET", "http.route": "/chat", "otel_llm.observation.type": "tool"}
    events = (Event("exception", {"exception.type": "E"}),)
    attrs, record, ctx = _run(plain, events)
    assert attrs == plain
    assert record.events == events
    assert not ctx.counters


@pytest.mark.parametrize(
    ("operation", "as_type"),
    [
        ("chat", "generation"),
        ("embeddings", "embedding"),
        ("execute_tool", "tool"),
        ("invoke_agent", "agent"),
        ("retrieval", "retriever"),
        ("custom", None),
    ],
)
def test_operation_name_gives_our_type(operation: str, as_type: str | None) -> None:
    attrs, _, _ = _run({"gen_ai.operation.name": operation})
    assert attrs.get("otel_llm.observation.type") == as_type


# --- idempotence, hostile input -------------------------------------------------------------

_DIALECT_CASES: list[Callable[[], SpanRecord]] = [
    lambda: _record(_LANGFUSE_V5_GENERATION),
    lambda: _record(_TRACELOOP_OPENAI_CHAT),
    lambda: _record(_OPENINFERENCE_LLM),
    lambda: _record(
        {"gen_ai.system": "openai"},
        (
            Event("gen_ai.user.message", {"content": "hi"}),
            Event("gen_ai.choice", {"finish_reason": "stop", "message": '{"content": "yo"}'}),
        ),
    ),
    lambda: _record(
        _generation([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "o")
    ),
]


def _snapshot(record: SpanRecord) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    events = [(e.name, dict(e.attributes or {})) for e in record.events]
    return copy.deepcopy(record.attributes), events


@pytest.mark.parametrize("make", _DIALECT_CASES)
def test_normalize_is_idempotent(make: Callable[[], SpanRecord]) -> None:
    record = make()
    ctx = StageContext()
    normalize(record, ctx)
    first = _snapshot(record)
    normalize(record, ctx)
    assert _snapshot(record) == first


_FOREIGN_KEY_POOL = [
    *_LANGFUSE_V5_GENERATION,
    *_TRACELOOP_OPENAI_CHAT,
    *_OPENINFERENCE_LLM,
    "langfuse.observation.metadata",
    "langfuse.trace.metadata",
    "langfuse.metadata",
    "langfuse.tags",
    "langfuse.user.id",
    "langfuse.prompt.version",
    "langfuse.observation.level",
    "langfuse.observation.status_message",
    "traceloop.span.kind",
    "traceloop.entity.input",
    "traceloop.prompt.version",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.usage.reasoning_tokens",
    "llm.finish_reason",
    "otel_llm.observation.type",
    "otel_llm.observation.input",
    "otel_llm.observation.output",
    "otel_llm.observation.metadata",
    "gen_ai.operation.name",
    "gen_ai.system_instructions",
]
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_BLOCK_KEYS = [
    "type",
    "text",
    "content",
    "image_url",
    "input_audio",
    "source",
    "data",
    "url",
    "file",
    "inline_data",
    "file_data",
    "function_call",
    "function_response",
    "thought",
    "thinking",
    "input",
    "args",
    "arguments",
    "name",
    "id",
    "tool_use_id",
    "modality",
    "mime_type",
]
_BLOCK_WORDS = [
    "text",
    "image_url",
    "image",
    "tool_use",
    "tool_result",
    "thinking",
    "file",
    "blob",
    "uri",
    "input_audio",
    "document",
    "tool_call",
    "base64",
    "url",
    "data:image/png;base64,AAAA",
    "data:x",
]
_blockish = st.dictionaries(
    st.sampled_from(_BLOCK_KEYS),
    st.sampled_from(_BLOCK_WORDS)
    | _json_values
    | st.dictionaries(st.sampled_from(_BLOCK_KEYS), st.sampled_from(_BLOCK_WORDS) | _json_values),
    max_size=5,
)
_MESSAGE_KEYS_POOL = [
    "role",
    "type",
    "content",
    "parts",
    "tool_calls",
    "function_call",
    "tool_call_id",
    "name",
    "finish_reason",
    "stop_reason",
    "choices",
    "message",
    "messages",
]
_messageish = st.lists(
    st.dictionaries(
        st.sampled_from(_MESSAGE_KEYS_POOL),
        st.sampled_from(["system", "user", "assistant", "tool", "human", "ai", "model", "x"])
        | _json_values
        | st.lists(_blockish, max_size=3)
        | _blockish,
        max_size=5,
    ),
    max_size=3,
)
_scalar = (
    st.text(max_size=12)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.booleans()
)
_values = (
    _scalar
    | st.lists(st.text(max_size=6), max_size=3).map(tuple)
    | _json_values.map(lambda v: json.dumps(v, allow_nan=True))
    | _messageish.map(json.dumps)
    | st.sampled_from(["", "[", "{", '"', "null", "[]", "{}", "\ud800", "1e999", "9" * 5000])
    | st.none()
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    | st.sampled_from(["generation", "GENERATION", "LLM", "TOOL", "chat", "workflow", "span"])
)
_indexed_keys = st.builds(
    lambda prefix, index, field: f"{prefix}{index}.{field}",
    st.sampled_from(
        ["gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.", "llm.output_messages."]
    ),
    st.sampled_from(["0", "1", "12", "x", "", "٣", "9" * 40]),
    st.sampled_from(
        [
            "role",
            "content",
            "tool_calls.0.name",
            "tool_calls.0.arguments",
            "tool_calls.x.id",
            "message.role",
            "message.content",
            "message.contents.0.message_content.type",
            "message.contents.0.message_content.text",
            "message.tool_calls.0.tool_call.function.name",
            "finish_reason",
            "user",
            "",
        ]
    ),
)
_keys = (
    st.sampled_from(_FOREIGN_KEY_POOL)
    | _indexed_keys
    | st.builds(
        lambda p, s: p + s,
        st.sampled_from(
            [
                "langfuse.observation.metadata.",
                "langfuse.trace.metadata.",
                "langfuse.metadata.",
                "traceloop.association.properties.",
            ]
        ),
        st.text(max_size=5),
    )
)
_event_values = (
    st.text(max_size=10)
    | st.integers(-5, 5)
    | _messageish.map(json.dumps)
    | _json_values.map(json.dumps)
)
_events = st.lists(
    st.builds(
        Event,
        st.sampled_from(
            [
                "gen_ai.system.message",
                "gen_ai.user.message",
                "gen_ai.assistant.message",
                "gen_ai.tool.message",
                "gen_ai.choice",
                "gen_ai.content.prompt",
                "gen_ai.content.completion",
                "other",
            ]
        ),
        st.dictionaries(
            st.sampled_from(
                [
                    "content",
                    "role",
                    "tool_calls",
                    "id",
                    "index",
                    "finish_reason",
                    "message",
                    "body",
                    "gen_ai.event.content",
                    "gen_ai.prompt",
                    "gen_ai.completion",
                ]
            ),
            _event_values,
            max_size=4,
        ),
    ),
    max_size=4,
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attributes=st.dictionaries(_keys, _values, max_size=12), events=_events)
def test_hostile_foreign_values_never_raise(
    attributes: dict[str, Any], events: list[Event]
) -> None:
    record = _record(attributes, tuple(events))
    ctx = StageContext()
    normalize(record, ctx)  # strict mode (tests/conftest.py): a bug of ours would raise here
    assert not [k for k in ctx.counters if k.startswith("normalize.error")]
    for key in _MESSAGE_KEYS:
        if key in record.attributes and key not in attributes:
            _assert_schema_valid({key: record.attributes[key]})
    first = _snapshot(record)
    normalize(record, ctx)
    assert _snapshot(record) == first


_content_text = (
    _messageish.map(json.dumps)
    | _blockish.map(lambda b: json.dumps({"messages": [b]}))
    | st.lists(_blockish, max_size=3).map(json.dumps)
    | _json_values.map(json.dumps)
    | st.text(max_size=10)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    input_text=_content_text,
    output_text=_content_text,
    as_type=st.sampled_from(["langfuse.observation.type", "otel_llm.observation.type"]),
)
def test_hostile_generation_content_never_raises(
    input_text: str, output_text: str, as_type: str
) -> None:
    prefix = "langfuse.observation." if as_type.startswith("langfuse") else "otel_llm.observation."
    attributes = {
        as_type: "generation",
        prefix + "input": input_text,
        prefix + "output": output_text,
    }
    record = _record(attributes)
    ctx = StageContext()
    normalize(record, ctx)  # strict mode: a bug of ours would raise here
    assert not [k for k in ctx.counters if k.startswith("normalize.error")]
    _assert_schema_valid(record.attributes)
    first = _snapshot(record)
    normalize(record, ctx)
    assert _snapshot(record) == first
