"""The usage stage: whatever usage shape a user hands us → canonical token counts.

``usage=`` takes OpenAI, Anthropic, Gemini, Bedrock, Vercel AI, LangChain and
Langfuse shapes, as objects or dicts; instrumentation only serializes them (to
``otel_llm.usage.raw``), because parsing on the application thread would cost the
app time for something the worker can do. Here each shape becomes the semconv
v1.41 counts, which are INCLUSIVE: input includes cache reads and writes, output
includes reasoning. Providers disagree on that, and getting it wrong double-counts
or loses tokens in every cost; ``usage_shapes`` holds the per-provider rules.

Rules:
- ``gen_ai.usage.*`` attributes already on the span (another instrumentation, the
  normalize stage) win; parsed values only fill what is missing.
- Values are coerced to non-negative ints; negatives, fractions, junk and
  sub-buckets larger than their parent are clamped and counted (``usage.invalid``).
  A zero cache or reasoning bucket from a provider is not written: it adds bytes to
  every span and nothing to cost.
- ``otel_llm.usage.raw`` is removed once parsed if it adds nothing: every non-zero
  count it holds is now an attribute, unchanged. It stays when it carries more
  (audio tokens, cache-write tiers, modality splits, Langfuse costs), held invalid
  values, or disagrees with attributes that won, so no information is lost;
  unrecognized shapes keep it too.
- A generation with content and no usage gets an estimate (see ``tokenizer``),
  flagged ``otel_llm.usage.estimated=True``, unless ``ctx.estimate_usage`` is False.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_llm import semconv
from otel_llm.diagnostics import log_once
from otel_llm.processing.normalize import generation_messages
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext
from otel_llm.processing.tokenizer import HEURISTIC, TokenEstimator
from otel_llm.processing.usage_shapes import ParsedUsage, parse_usage, token_count

__all__ = ["canonical_usage", "derive_usage"]

_INPUT = semconv.GEN_AI_USAGE_INPUT_TOKENS
_OUTPUT = semconv.GEN_AI_USAGE_OUTPUT_TOKENS
_CACHE_READ = semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
_CACHE_CREATION = semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
_REASONING = semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
_KEYS = (_INPUT, _OUTPUT, _CACHE_READ, _CACHE_CREATION, _REASONING)
"""Canonical keys, in the order of ``ParsedUsage.counts``."""
_GENERATION_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_ESTIMATOR_KEY = "otel_llm.usage.estimator"  # ctx.extras: the processor's lazy tokenizers
_ESTIMATE_ENCODING_EXTRA = "usage.estimate_encoding"  # record.extras: vocabulary used


def derive_usage(record: SpanRecord, ctx: StageContext) -> None:
    """Set canonical ``gen_ai.usage.*`` counts from ``otel_llm.usage.raw`` or an estimate."""
    attrs = record.attributes
    raw = attrs.get(semconv.USAGE_RAW)
    parsed = None
    if raw is not None:
        parsed = parse_usage(raw)
        if parsed is None:
            ctx.count("usage.unrecognized")
    given = _has_canonical(attrs)
    if parsed is not None or given:
        state = parsed or ParsedUsage()
        raw_lossy = state.invalid or state.extra  # before merging flags other values
        final = _merge(attrs, state, given)
        if state.invalid:
            ctx.count("usage.invalid")
        if parsed is not None and not raw_lossy and _agrees(parsed.counts, final):
            del attrs[semconv.USAGE_RAW]
        if final[0] is not None or final[1] is not None:
            return
    if ctx.estimate_usage and _is_generation(attrs):
        _estimate(record, ctx)


def canonical_usage(usage: object) -> dict[str, int] | None:
    """Canonical inclusive ``gen_ai.usage.*`` counts of one usage value, or None.

    ``usage`` is a mapping in any supported provider shape, or its JSON text.
    """
    parsed = parse_usage(usage)
    if parsed is None:
        return None
    final = _clamp(parsed.counts, parsed)
    return {key: n for key, n in zip(_KEYS, final, strict=True) if n is not None}


# -- merging ------------------------------------------------------------------------
def _has_canonical(attrs: Mapping[str, Any]) -> bool:
    return (
        _INPUT in attrs
        or _OUTPUT in attrs
        or _CACHE_READ in attrs
        or _CACHE_CREATION in attrs
        or _REASONING in attrs
    )


def _merge(attrs: dict[str, Any], p: ParsedUsage, given: bool) -> tuple[int | None, ...]:
    """Existing attributes win, parsed counts fill the rest; writes the validated result."""
    merged = p.counts
    if given:
        merged = tuple(_existing(attrs, key, p, n) for key, n in zip(_KEYS, merged, strict=True))
    final = _clamp(merged, p)
    given_in, given_out, cache_read, cache_creation, reasoning = final
    if given_in is not None:
        attrs[_INPUT] = given_in
    if given_out is not None:
        attrs[_OUTPUT] = given_out
    if cache_read is not None:
        attrs[_CACHE_READ] = cache_read
    if cache_creation is not None:
        attrs[_CACHE_CREATION] = cache_creation
    if reasoning is not None:
        attrs[_REASONING] = reasoning
    return final


def _existing(attrs: dict[str, Any], key: str, p: ParsedUsage, fallback: int | None) -> int | None:
    value = attrs.get(key)
    if value is None:
        attrs.pop(key, None)  # present but None: not an attribute value OTel allows
        return fallback
    n = token_count(value, p)
    if n is None:
        del attrs[key]  # junk another instrumentation left: not a count
        return fallback
    return n


def _clamp(values: tuple[int | None, ...], p: ParsedUsage) -> tuple[int | None, ...]:
    """Clamp sub-buckets to their parent: cache ≤ input, reasoning ≤ output."""
    given_in, given_out, cache_read, cache_creation, reasoning = values
    if given_in is not None:
        if cache_read is not None and cache_read > given_in:
            cache_read, p.invalid = given_in, True
        room = given_in - (cache_read or 0)
        if cache_creation is not None and cache_creation > room:
            cache_creation, p.invalid = room, True
    if given_out is not None and reasoning is not None and reasoning > given_out:
        reasoning, p.invalid = given_out, True
    return given_in, given_out, cache_read, cache_creation, reasoning


def _agrees(parsed: tuple[int | None, ...], final: tuple[int | None, ...]) -> bool:
    """True when every count parsed is the final one (raw then says nothing more)."""
    return parsed == final or all(a is None or a == b for a, b in zip(parsed, final, strict=True))


# -- estimation -----------------------------------------------------------------------
def _is_generation(attrs: Mapping[str, Any]) -> bool:
    if attrs.get(semconv.OBSERVATION_TYPE) == "generation":
        return True
    return attrs.get(semconv.GEN_AI_OPERATION_NAME) in _GENERATION_OPERATIONS


def _estimate(record: SpanRecord, ctx: StageContext) -> None:
    attrs = record.attributes
    view = generation_messages(attrs, ctx)  # the messages, even when normalize skipped them
    messages = view.get(semconv.GEN_AI_INPUT_MESSAGES)
    inputs: tuple[object, ...]
    if messages is not None:
        inputs = (view.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS), messages)
    else:
        inputs = (attrs.get(semconv.OBSERVATION_INPUT),)
    output = view.get(semconv.GEN_AI_OUTPUT_MESSAGES)
    if output is None:
        output = attrs.get(semconv.OBSERVATION_OUTPUT)
    if output is None and all(v is None for v in inputs):
        return
    model = attrs.get(semconv.GEN_AI_RESPONSE_MODEL) or attrs.get(semconv.GEN_AI_REQUEST_MODEL)
    estimator = ctx.extras.get(_ESTIMATOR_KEY)
    if not isinstance(estimator, TokenEstimator):
        estimator = ctx.extras[_ESTIMATOR_KEY] = TokenEstimator()
    try:
        estimate = estimator.estimate(inputs, output, model if isinstance(model, str) else None)
    except Exception as exc:  # a bug of ours must not drop the span
        ctx.count("usage.estimate_failed")
        log_once("usage", f"estimate.{type(exc).__name__}", "token estimation failed")
        return
    if estimate.input_tokens is not None:
        attrs[_INPUT] = estimate.input_tokens
    if estimate.output_tokens is not None:
        attrs[_OUTPUT] = estimate.output_tokens
    attrs[semconv.USAGE_ESTIMATED] = True
    record.extras[_ESTIMATE_ENCODING_EXTRA] = estimate.encoding
    ctx.count("usage.estimated")
    if estimate.encoding == HEURISTIC:
        ctx.count("usage.estimated_heuristic")
