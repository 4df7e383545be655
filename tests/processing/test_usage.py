"""The usage stage: provider shapes → inclusive canonical counts, estimation, raw handling."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext
from otel_llm.processing.tokenizer import (
    HEURISTIC,
    MAX_EXACT_CHARS,
    TokenEstimator,
    encoding_for_model,
    heuristic_tokens,
)
from otel_llm.processing.usage import canonical_usage, derive_usage
from otel_llm.serialize import to_json

IN = "gen_ai.usage.input_tokens"
OUT = "gen_ai.usage.output_tokens"
CR = "gen_ai.usage.cache_read.input_tokens"
CC = "gen_ai.usage.cache_creation.input_tokens"
RS = "gen_ai.usage.reasoning.output_tokens"
RAW = "otel_llm.usage.raw"
ESTIMATED = "otel_llm.usage.estimated"
USAGE_KEYS = (IN, OUT, CR, CC, RS)


def record(**attributes: Any) -> SpanRecord:
    return SpanRecord(
        trace_id=1, span_id=2, name="x", start_time=0, end_time=1, attributes=dict(attributes)
    )


def with_raw(usage: object, **attributes: Any) -> SpanRecord:
    return record(**{RAW: to_json(usage)}, **attributes)


def counts(rec: SpanRecord) -> dict[str, int]:
    return {k: v for k, v in rec.attributes.items() if k in USAGE_KEYS}


def derived(usage: object, **attributes: Any) -> tuple[SpanRecord, StageContext]:
    rec = with_raw(usage, **attributes)
    ctx = StageContext()
    derive_usage(rec, ctx)
    return rec, ctx


# -- one table row per provider shape --------------------------------------------------
SHAPES: list[tuple[str, dict[str, Any], dict[str, int], bool]] = [
    # (name, usage, expected canonical counts, raw kept)
    (
        "openai chat, details with zeros",
        {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 128,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        {IN: 1200, OUT: 300, CR: 1024, RS: 128},
        False,
    ),
    (
        "openai chat, plain",
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        {IN: 10, OUT: 5},
        False,
    ),
    (
        "openai chat, zero cache is not exported",
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        {IN: 10, OUT: 5},
        False,
    ),
    (
        "openai chat, cache writes",
        {
            "prompt_tokens": 100,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 50},
        },
        {IN: 100, OUT: 5, CR: 30, CC: 50},
        False,
    ),
    (
        "openai chat, audio tokens keep the raw value",
        {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "prompt_tokens_details": {"audio_tokens": 80},
        },
        {IN: 100, OUT: 50},
        True,
    ),
    (
        "openai embeddings",
        {"prompt_tokens": 8, "total_tokens": 8},
        {IN: 8},
        False,
    ),
    (
        "deepseek cache hits",
        {
            "prompt_tokens": 100,
            "completion_tokens": 10,
            "prompt_cache_hit_tokens": 64,
            "prompt_cache_miss_tokens": 36,
        },
        {IN: 100, OUT: 10, CR: 64},
        False,
    ),
    (
        "openai responses",
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "total_tokens": 150,
            "input_tokens_details": {"cached_tokens": 40},
            "output_tokens_details": {"reasoning_tokens": 10},
        },
        {IN: 100, OUT: 50, CR: 40, RS: 10},
        False,
    ),
    (
        "anthropic: input excludes cache",
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
        },
        {IN: 130, OUT: 5, CR: 100, CC: 20},
        False,
    ),
    (
        "anthropic, unused cache keys are null",
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": None,
            "cache_creation_input_tokens": None,
            "service_tier": "standard",
        },
        {IN: 10, OUT: 5},
        False,
    ),
    (
        "anthropic, cache-write tiers keep the raw value",
        {
            "input_tokens": 3,
            "output_tokens": 7,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 2000,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 2000},
        },
        {IN: 2003, OUT: 7, CC: 2000},
        True,
    ),
    (
        "gemini: thoughts are outside candidates",
        {
            "prompt_token_count": 100,
            "candidates_token_count": 20,
            "thoughts_token_count": 30,
            "cached_content_token_count": 60,
            "total_token_count": 150,
            "prompt_tokens_details": [{"modality": "TEXT", "token_count": 100}],
        },
        {IN: 100, OUT: 50, CR: 60, RS: 30},
        False,
    ),
    (
        "gemini wrapped in usage_metadata, with tool-use prompt",
        {
            "usage_metadata": {
                "prompt_token_count": 100,
                "tool_use_prompt_token_count": 5,
                "candidates_token_count": 20,
                "total_token_count": 125,
            }
        },
        {IN: 105, OUT: 20},
        False,
    ),
    (
        "gemini REST camelCase, image input keeps the raw value",
        {
            "usageMetadata": {
                "promptTokenCount": 300,
                "candidatesTokenCount": 10,
                "thoughtsTokenCount": 5,
                "totalTokenCount": 315,
                "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 42},
                    {"modality": "IMAGE", "tokenCount": 258},
                ],
            }
        },
        {IN: 300, OUT: 15, RS: 5},
        True,
    ),
    (
        "wrapped usage with a sibling cost keeps the raw value",
        {"usage": {"prompt_tokens": 10, "completion_tokens": 5}, "cost": 0.002, "id": "gen-1"},
        {IN: 10, OUT: 5},
        True,
    ),
    (
        "langchain usage_metadata",
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "total_tokens": 150,
            "input_token_details": {"cache_read": 40, "cache_creation": 10, "audio": 0},
            "output_token_details": {"reasoning": 20, "audio": 0},
        },
        {IN: 100, OUT: 50, CR: 40, CC: 10, RS: 20},
        False,
    ),
    (
        "langfuse input/output/total",
        {"input": 10, "output": 5, "total": 15},
        {IN: 10, OUT: 5},
        False,
    ),
    (
        "langfuse usage_details: exclusive buckets",
        {
            "input": 60,
            "output": 40,
            "total": 150,
            "input_cached_tokens": 40,
            "output_reasoning_tokens": 10,
        },
        {IN: 100, OUT: 50, CR: 40, RS: 10},
        False,
    ),
    (
        "langfuse usage_details with audio keeps the raw value",
        {"input": 10, "input_audio_tokens": 5, "output": 1, "total": 16},
        {IN: 15, OUT: 1},
        True,
    ),
    (
        "langfuse v2 with costs keeps the raw value",
        {"input": 10, "output": 5, "unit": "TOKENS", "input_cost": 0.1, "output_cost": 0.2},
        {IN: 10, OUT: 5},
        True,
    ),
    (
        "langfuse total fills the missing side",
        {"input": 10, "total": 15},
        {IN: 10, OUT: 5},
        False,
    ),
    (
        "langfuse v2 camelCase",
        {"promptTokens": 7, "completionTokens": 3, "totalTokens": 10},
        {IN: 7, OUT: 3},
        False,
    ),
    (
        "canonical dict",
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "cache_read_tokens": 40,
            "cache_write_tokens": 5,
            "reasoning_tokens": 10,
        },
        {IN: 100, OUT: 50, CR: 40, CC: 5, RS: 10},
        False,
    ),
    (
        "semconv-keyed dict",
        {IN: 7, OUT: 3, CR: 2},
        {IN: 7, OUT: 3, CR: 2},
        False,
    ),
    (
        "bedrock converse: input excludes cache",
        {
            "inputTokens": 10,
            "outputTokens": 5,
            "totalTokens": 135,
            "cacheReadInputTokens": 100,
            "cacheWriteInputTokens": 20,
        },
        {IN: 130, OUT: 5, CR: 100, CC: 20},
        False,
    ),
    (
        "vercel ai sdk: inclusive",
        {"inputTokens": 100, "outputTokens": 50, "cachedInputTokens": 40, "reasoningTokens": 10},
        {IN: 100, OUT: 50, CR: 40, RS: 10},
        False,
    ),
]


@pytest.mark.parametrize(
    ("usage", "expected", "raw_kept"),
    [pytest.param(u, e, k, id=name) for name, u, e, k in SHAPES],
)
def test_provider_shapes(usage: dict[str, Any], expected: dict[str, int], raw_kept: bool) -> None:
    rec, ctx = derived(usage)
    assert counts(rec) == expected
    assert all(type(v) is int for v in counts(rec).values())
    assert (RAW in rec.attributes) is raw_kept
    assert ESTIMATED not in rec.attributes
    assert not ctx.counters


@pytest.mark.parametrize(("usage", "expected"), [(u, e) for _, u, e, _ in SHAPES])
def test_canonical_usage_helper(usage: dict[str, Any], expected: dict[str, int]) -> None:
    assert canonical_usage(usage) == expected
    assert canonical_usage(orjson.dumps(usage).decode()) == expected


@pytest.mark.parametrize(("usage", "expected", "raw_kept"), [s[1:] for s in SHAPES])
def test_idempotent(usage: dict[str, Any], expected: dict[str, int], raw_kept: bool) -> None:
    rec, ctx = derived(usage)
    first = dict(rec.attributes)
    derive_usage(rec, ctx)
    assert rec.attributes == first


# -- objects, serialized the way instrumentation does ---------------------------------
def test_openai_completion_usage_object() -> None:
    from openai.types import CompletionUsage
    from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails

    usage = CompletionUsage(
        prompt_tokens=1200,
        completion_tokens=300,
        total_tokens=1500,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=1024, audio_tokens=0),
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=128,
            audio_tokens=0,
            accepted_prediction_tokens=0,
            rejected_prediction_tokens=0,
        ),
    )
    rec, _ = derived(usage)
    assert counts(rec) == {IN: 1200, OUT: 300, CR: 1024, RS: 128}
    assert RAW not in rec.attributes


def test_openai_responses_usage_object() -> None:
    from openai.types.responses import ResponseUsage
    from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

    usage = ResponseUsage(
        input_tokens=500,
        output_tokens=90,
        total_tokens=590,
        input_tokens_details=InputTokensDetails(cached_tokens=256, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=64),
    )
    rec, _ = derived(usage)
    assert counts(rec) == {IN: 500, OUT: 90, CR: 256, RS: 64}


def test_langchain_message_usage_metadata() -> None:
    from langchain_core.messages import AIMessage

    message = AIMessage(
        content="hi",
        usage_metadata={
            "input_tokens": 100,
            "output_tokens": 50,
            "total_tokens": 150,
            "input_token_details": {"cache_read": 40},
            "output_token_details": {"reasoning": 20},
        },
    )
    rec, _ = derived(message.usage_metadata)
    assert counts(rec) == {IN: 100, OUT: 50, CR: 40, RS: 20}


class _AnthropicLikeUsage(BaseModel):
    """The Anthropic SDK's ``Usage`` fields (the package is not a test dependency)."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    service_tier: str | None = None


@dataclasses.dataclass
class _GeminiMetadata:
    prompt_token_count: int
    candidates_token_count: int
    thoughts_token_count: int | None = None


@dataclasses.dataclass
class _GeminiResponse:
    usage_metadata: _GeminiMetadata
    text: str = "hello"


def test_pydantic_and_dataclass_objects() -> None:
    anthropic, _ = derived(_AnthropicLikeUsage(input_tokens=3, output_tokens=4))
    assert counts(anthropic) == {IN: 3, OUT: 4}
    cached = _AnthropicLikeUsage(input_tokens=3, output_tokens=4, cache_read_input_tokens=90)
    assert counts(derived(cached)[0]) == {IN: 93, OUT: 4, CR: 90}
    gemini, _ = derived(_GeminiResponse(_GeminiMetadata(10, 2, thoughts_token_count=5)))
    assert counts(gemini) == {IN: 10, OUT: 7, RS: 5}


# -- existing attributes, bad values ---------------------------------------------------
def test_existing_canonical_attributes_win_and_parsed_fill_the_rest() -> None:
    rec, _ = derived({"prompt_tokens": 120, "completion_tokens": 30}, **{IN: 100, CR: 10})
    assert counts(rec) == {IN: 100, OUT: 30, CR: 10}
    assert RAW in rec.attributes  # it disagrees with what won: keep the user's value


def test_existing_attributes_alone_are_validated() -> None:
    rec = record(**{IN: "12", OUT: 4.0, CR: -3, RS: 9})
    ctx = StageContext()
    derive_usage(rec, ctx)
    assert counts(rec) == {IN: 12, OUT: 4, CR: 0, RS: 4}
    assert ctx.counters["usage.invalid"] == 1


def test_junk_existing_attribute_is_removed_and_filled_from_raw() -> None:
    rec, ctx = derived({"prompt_tokens": 5, "completion_tokens": 1}, **{IN: "many"})
    assert counts(rec) == {IN: 5, OUT: 1}
    assert ctx.counters["usage.invalid"] == 1


@pytest.mark.parametrize(
    ("usage", "expected", "invalid"),
    [
        ({"prompt_tokens": -5, "completion_tokens": 3}, {IN: 0, OUT: 3}, True),
        ({"prompt_tokens": "10", "completion_tokens": " 7 "}, {IN: 10, OUT: 7}, False),
        ({"prompt_tokens": 10.6, "completion_tokens": 2.0}, {IN: 11, OUT: 2}, True),
        ({"prompt_tokens": "1e3", "completion_tokens": None}, {IN: 1000}, False),
        ({"prompt_tokens": True, "completion_tokens": [1]}, {}, True),
        ({"prompt_tokens": float("nan"), "completion_tokens": 4}, {OUT: 4}, True),
        ({"prompt_tokens": 2**80, "completion_tokens": 1}, {IN: 2**53 - 1, OUT: 1}, True),
        (
            {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 50}},
            {IN: 10, CR: 10},
            True,
        ),
        (
            {"input": 1, "output": 2, "input_cached_tokens": -4, "output_reasoning_tokens": "x"},
            {IN: 1, OUT: 2},
            True,
        ),
        (
            {"completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 9}},
            {OUT: 5, RS: 5},
            True,
        ),
        ({"prompt_tokens_details": "oops", "prompt_tokens": 3}, {IN: 3}, True),
    ],
)
def test_bad_values_are_coerced_clamped_and_counted(
    usage: dict[str, Any], expected: dict[str, int], invalid: bool
) -> None:
    rec = record(**{RAW: to_json(usage)})  # 2**80 and NaN become strings
    ctx = StageContext()
    derive_usage(rec, ctx)
    assert counts(rec) == expected
    assert all(type(v) is int and v >= 0 for v in counts(rec).values())
    assert ctx.counters["usage.invalid" if expected else "usage.unrecognized"] == invalid
    assert (RAW in rec.attributes) is invalid  # a clamped value disagrees with its raw


@pytest.mark.parametrize(
    "raw",
    [
        to_json({"foo": 1}),
        to_json({"total": 10}),
        to_json({"input": 3, "unit": "CHARACTERS"}),
        to_json([1, 2]),
        to_json(42),
        "not json",
        to_json({"usage": {"nothing": 1}}),
    ],
)
def test_unknown_shapes_are_counted_and_kept(raw: str) -> None:
    rec = record(**{RAW: raw, "otel_llm.observation.type": "span"})
    ctx = StageContext()
    derive_usage(rec, ctx)
    assert counts(rec) == {}
    assert rec.attributes[RAW] == raw
    assert ctx.counters["usage.unrecognized"] == 1


def test_spans_without_usage_are_left_alone() -> None:
    attributes = {"http.method": "GET", "otel_llm.observation.type": "span"}
    rec = record(**attributes)
    ctx = StageContext()
    derive_usage(rec, ctx)
    assert rec.attributes == attributes
    assert not ctx.counters


# -- estimation -----------------------------------------------------------------------
def _messages(role: str, text: str, **extra: Any) -> str:
    return to_json([{"role": role, "parts": [{"type": "text", "content": text}], **extra}])


def generation(**attributes: Any) -> SpanRecord:
    base = {"otel_llm.observation.type": "generation", "gen_ai.request.model": "gpt-4o"}
    return record(**base, **attributes)


def test_generation_without_usage_is_estimated_and_flagged() -> None:
    pytest.importorskip("splintr")
    rec = generation(
        **{
            "gen_ai.input.messages": _messages("user", "Hello, world!"),
            "gen_ai.output.messages": _messages("assistant", "Hello, world!", finish_reason="stop"),
        }
    )
    ctx = StageContext()
    derive_usage(rec, ctx)
    # o200k: "user" = 1, "Hello, world!" = 4; +3 per message, +3 to prime the reply.
    assert counts(rec) == {IN: 1 + 4 + 3 + 3, OUT: 1 + 4}
    assert rec.attributes[ESTIMATED] is True
    assert rec.extras["usage.estimate_encoding"] == "o200k_base"
    assert ctx.counters["usage.estimated"] == 1
    derive_usage(rec, ctx)  # idempotent: now it has usage
    assert counts(rec) == {IN: 11, OUT: 5}
    assert ctx.counters["usage.estimated"] == 1


def test_plain_text_input_and_operation_name() -> None:
    pytest.importorskip("splintr")
    rec = record(
        **{
            "gen_ai.operation.name": "text_completion",
            "gen_ai.request.model": "gpt-3.5-turbo-instruct",
            "otel_llm.observation.input": "Hello, world!",
            "otel_llm.observation.output": "",
        }
    )
    derive_usage(rec, StageContext())
    assert counts(rec) == {IN: 4, OUT: 0}
    assert rec.extras["usage.estimate_encoding"] == "cl100k_base"


def test_estimation_can_be_switched_off() -> None:
    rec = generation(**{"otel_llm.observation.input": "hello"})
    ctx = StageContext(estimate_usage=False)
    derive_usage(rec, ctx)
    assert counts(rec) == {}
    assert ESTIMATED not in rec.attributes
    assert not ctx.counters


@pytest.mark.parametrize(
    "attributes",
    [
        {"otel_llm.observation.type": "span", "otel_llm.observation.input": "hello"},
        {"otel_llm.observation.type": "generation"},  # no content
        {"otel_llm.observation.type": "generation", "otel_llm.observation.input": "x", OUT: 3},
        {"gen_ai.operation.name": "embeddings", "otel_llm.observation.input": "hello"},
    ],
)
def test_no_estimate_without_a_generation_content_or_with_usage(
    attributes: dict[str, Any],
) -> None:
    rec = record(**attributes)
    derive_usage(rec, StageContext())
    assert ESTIMATED not in rec.attributes
    assert IN not in rec.attributes


def test_reported_usage_is_never_estimated() -> None:
    rec, ctx = derived(
        {"prompt_tokens": 1, "completion_tokens": 1},
        **{"otel_llm.observation.type": "generation", "otel_llm.observation.input": "x" * 99},
    )
    assert counts(rec) == {IN: 1, OUT: 1}
    assert ESTIMATED not in rec.attributes
    assert not ctx.counters


def test_missing_tokenizer_falls_back_to_the_heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "splintr", None)  # import splintr → ImportError
    text = "héllo wörld, this is a test"
    rec = generation(**{"otel_llm.observation.input": text, "otel_llm.observation.output": "ok"})
    ctx = StageContext()
    derive_usage(rec, ctx)
    assert counts(rec) == {IN: -(-len(text.encode()) // 4), OUT: 1}
    assert rec.attributes[ESTIMATED] is True
    assert rec.extras["usage.estimate_encoding"] == HEURISTIC
    assert ctx.counters["usage.estimated"] == 1
    assert ctx.counters["usage.estimated_heuristic"] == 1


def _failing_loader(name: str) -> Any:
    raise RuntimeError("no vocabulary")


class _CountingLoader:
    def __init__(self) -> None:
        self.loaded: list[str] = []

    def __call__(self, name: str) -> Any:
        self.loaded.append(name)
        return _FakeEncoder()


class _FakeEncoder:
    def encode_ordinary(self, text: str) -> list[int]:
        if "\ud800" in text:
            raise UnicodeEncodeError("utf-8", text, 0, 1, "surrogates not allowed")
        return [0] * len(text.split())


def test_estimator_loads_each_vocabulary_once_and_survives_failures() -> None:
    loader = _CountingLoader()
    estimator = TokenEstimator(loader)
    for model in ("gpt-4o", "gpt-5", "claude-sonnet-4", None, "gpt-4-turbo", "gpt-3.5-turbo"):
        estimator.estimate(["one two three"], "four", model)
    assert loader.loaded == ["o200k_base", "cl100k_base"]
    assert estimator.estimate(["a b \ud800"], None, "gpt-4o").input_tokens == 2  # heuristic
    failing = TokenEstimator(_failing_loader)
    estimate = failing.estimate(["abcdefgh"], "abcd", "gpt-4o")
    assert (estimate.input_tokens, estimate.output_tokens, estimate.encoding) == (2, 1, HEURISTIC)


def test_huge_text_uses_the_heuristic() -> None:
    estimator = TokenEstimator(_CountingLoader(), max_exact_chars=100)
    big = "word " * 100
    estimate = estimator.estimate([big], "small text", "gpt-4o")
    assert estimate.input_tokens == heuristic_tokens(big)
    assert estimate.output_tokens == 2
    assert MAX_EXACT_CHARS == 200_000


def test_message_structure_and_media_are_not_counted_as_text() -> None:
    estimator = TokenEstimator(_CountingLoader())
    messages = to_json(
        [
            {
                "role": "user",
                "parts": [
                    {"type": "text", "content": "what is this"},
                    {"type": "blob", "modality": "image", "content": "QUJD" * 1000},
                    {"type": "uri", "uri": "https://example.com/a.png"},
                ],
            },
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]},
            {"role": "user", "content": [{"type": ["odd"], "text": "hi"}]},
        ]
    )
    system = to_json([{"type": "text", "content": "be brief"}])
    estimate = estimator.estimate([system, messages], None, "gpt-4o")
    # words: "be brief" 2 + ("user" + "what is this") 4 + "user" 1 + ("user" + "hi") 2;
    # 4 messages x 3 + 3.
    assert estimate.input_tokens == 2 + 4 + 1 + 2 + 4 * 3 + 3
    assert estimate.output_tokens is None


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-5-nano", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("openai/gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("ft:gpt-4o-mini:org::id", "o200k_base"),
        ("ft:gpt-3.5-turbo:org::id", "cl100k_base"),
        ("claude-sonnet-4-5", "o200k_base"),
        ("gemini-2.5-pro", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_encoding_for_model(model: str | None, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


def test_heuristic_is_utf8_bytes_over_four_rounded_up() -> None:
    assert [heuristic_tokens(t) for t in ("", "a", "abcd", "abcde", "é", "😀😀")] == [
        0,
        1,
        1,
        2,
        1,
        2,
    ]


# -- properties -----------------------------------------------------------------------
_N = st.integers(min_value=0, max_value=10**9)


@st.composite
def _truth(draw: st.DrawFn) -> dict[str, int]:
    """Inclusive canonical counts that satisfy the semconv nesting."""
    cache_read, cache_creation, reasoning = draw(_N), draw(_N), draw(_N)
    return {
        IN: cache_read + cache_creation + draw(_N),
        OUT: reasoning + draw(_N),
        CR: cache_read,
        CC: cache_creation,
        RS: reasoning,
    }


def _openai(t: dict[str, int]) -> tuple[dict[str, Any], int]:
    total = t[IN] + t[OUT]
    return {
        "prompt_tokens": t[IN],
        "completion_tokens": t[OUT],
        "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": t[CR], "cache_write_tokens": t[CC]},
        "completion_tokens_details": {"reasoning_tokens": t[RS]},
    }, total


def _responses(t: dict[str, int]) -> tuple[dict[str, Any], int]:
    total = t[IN] + t[OUT]
    return {
        "input_tokens": t[IN],
        "output_tokens": t[OUT],
        "total_tokens": total,
        "input_tokens_details": {"cached_tokens": t[CR], "cache_write_tokens": t[CC]},
        "output_tokens_details": {"reasoning_tokens": t[RS]},
    }, total


def _anthropic(t: dict[str, int]) -> tuple[dict[str, Any], int]:
    return {
        "input_tokens": t[IN] - t[CR] - t[CC],
        "output_tokens": t[OUT],
        "cache_read_input_tokens": t[CR],
        "cache_creation_input_tokens": t[CC],
    }, t[IN] + t[OUT]


def _langchain(t: dict[str, int]) -> tuple[dict[str, Any], int]:
    total = t[IN] + t[OUT]
    return {
        "input_tokens": t[IN],
        "output_tokens": t[OUT],
        "total_tokens": total,
        "input_token_details": {"cache_read": t[CR], "cache_creation": t[CC]},
        "output_token_details": {"reasoning": t[RS]},
    }, total


def _langfuse(t: dict[str, int]) -> tuple[dict[str, Any], int]:
    buckets = {
        "input": t[IN] - t[CR] - t[CC],
        "output": t[OUT] - t[RS],
        "input_cached_tokens": t[CR],
        "input_cache_creation": t[CC],
        "output_reasoning_tokens": t[RS],
    }
    total = sum(buckets.values())
    return {**buckets, "total": total}, total


def _bedrock(t: dict[str, int]) -> tuple[dict[str, Any], int]:
    total = t[IN] + t[OUT]
    return {
        "inputTokens": t[IN] - t[CR] - t[CC],
        "outputTokens": t[OUT],
        "totalTokens": total,
        "cacheReadInputTokens": t[CR],
        "cacheWriteInputTokens": t[CC],
    }, total


_RENDERERS: dict[str, Callable[[dict[str, int]], tuple[dict[str, Any], int]]] = {
    "openai": _openai,
    "responses": _responses,
    "anthropic": _anthropic,
    "langchain": _langchain,
    "langfuse": _langfuse,
    "bedrock": _bedrock,
}


def _gemini(t: dict[str, int]) -> tuple[dict[str, Any], int]:
    total = t[IN] + t[OUT]
    return {
        "usage_metadata": {
            "prompt_token_count": t[IN],
            "candidates_token_count": t[OUT] - t[RS],
            "thoughts_token_count": t[RS],
            "cached_content_token_count": t[CR],
            "total_token_count": total,
        }
    }, total


@settings(max_examples=300, deadline=None)
@given(truth=_truth(), shape=st.sampled_from(sorted(_RENDERERS)))
def test_every_shape_round_trips_to_the_same_inclusive_counts(
    truth: dict[str, int], shape: str
) -> None:
    if shape in ("anthropic", "bedrock"):  # no reasoning bucket there
        truth = {**truth, OUT: truth[OUT] - truth[RS], RS: 0}
    usage, total = _RENDERERS[shape](truth)
    rec, ctx = derived(usage)
    expected = {k: v for k, v in truth.items() if v or k in (IN, OUT)}
    assert counts(rec) == expected
    assert rec.attributes[IN] + rec.attributes[OUT] == total
    assert RAW not in rec.attributes
    assert not ctx.counters


@settings(max_examples=200, deadline=None)
@given(truth=_truth())
def test_gemini_round_trips_without_cache_writes(truth: dict[str, int]) -> None:
    truth = {**truth, IN: truth[IN] - truth[CC], CC: 0}
    usage, total = _gemini(truth)
    rec, _ = derived(usage)
    assert counts(rec) == {k: v for k, v in truth.items() if v or k in (IN, OUT)}
    assert rec.attributes[IN] + rec.attributes[OUT] == total


_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["12", "-3", "1e3", "4.5", " 7 "]),
    st.lists(st.integers(), max_size=2),
)
_KEYS = st.sampled_from(
    [
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "input",
        "output",
        "total",
        "input_cached_tokens",
        "output_reasoning_tokens",
        "prompt_token_count",
        "candidates_token_count",
        "thoughts_token_count",
        "cached_content_token_count",
        "inputTokens",
        "cacheReadInputTokens",
        "reasoning_tokens",
        "unit",
    ]
)
_DETAILS = st.sampled_from(
    [
        "prompt_tokens_details",
        "completion_tokens_details",
        "input_tokens_details",
        "output_tokens_details",
        "input_token_details",
        "output_token_details",
    ]
)
_SUBKEYS = st.sampled_from(
    ["cached_tokens", "cache_write_tokens", "reasoning_tokens", "cache_read", "reasoning", "audio"]
)
_USAGE = st.dictionaries(
    st.one_of(_KEYS, _DETAILS),
    st.one_of(_JUNK, st.dictionaries(_SUBKEYS, _JUNK, max_size=3)),
    max_size=8,
)
_EXISTING = st.dictionaries(st.sampled_from(USAGE_KEYS), _JUNK, max_size=3)


@settings(max_examples=500, deadline=None)
@given(usage=_USAGE, existing=_EXISTING)
def test_any_usage_gives_consistent_non_negative_counts(
    usage: dict[str, Any], existing: dict[str, Any]
) -> None:
    rec = record(**{RAW: to_json(usage)}, **existing)
    ctx = StageContext(estimate_usage=False)
    derive_usage(rec, ctx)
    found = counts(rec)
    assert all(type(v) is int and 0 <= v <= 2**53 - 1 for v in found.values())
    assert set(rec.attributes) - {RAW} <= set(USAGE_KEYS)
    if IN in found:
        assert found.get(CR, 0) + found.get(CC, 0) <= found[IN]
    if OUT in found:
        assert found.get(RS, 0) <= found[OUT]
    after = dict(rec.attributes)
    derive_usage(rec, ctx)
    assert rec.attributes == after


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["role", "type", "content", "parts", "x"]), children)
    ),
    max_leaves=12,
)
_SHARED_ESTIMATOR = TokenEstimator()  # one vocabulary load for all examples


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.text(max_size=200), _JSON.map(to_json)), model=st.none() | st.text())
def test_estimates_are_non_negative_for_any_content(value: str, model: str | None) -> None:
    estimate = _SHARED_ESTIMATOR.estimate([value], value, model)
    assert estimate.input_tokens is not None and estimate.input_tokens >= 0
    assert estimate.output_tokens is not None and estimate.output_tokens >= 0
