"""Provider usage shapes → inclusive token counts (the parsing half of the usage stage).

One table-like ``_Shape`` per provider says where each count lives and how its
buckets nest, because the providers disagree: OpenAI (chat and Responses), LangChain
``usage_metadata``, Vercel AI and Gemini include cache reads in input, Anthropic and
Bedrock do not; Gemini keeps thoughts out of ``candidates_token_count``; Langfuse's
buckets are all exclusive. Everything comes out in the semconv sense: input includes
cache reads and writes, output includes reasoning.

Tell-apart rules (first match wins): ``prompt_tokens``/``completion_tokens`` → OpenAI
chat; ``input_tokens``/``output_tokens`` with ``cache_read_input_tokens`` or
``cache_creation_input_tokens`` → Anthropic (its SDK always serializes both keys, null
when unused, so the provider name is not needed), otherwise inclusive (Responses,
LangChain, our canonical dict); Gemini ``*_token_count`` (snake or camel case);
Bedrock ``inputTokens`` with ``cache*InputTokens`` (exclusive), else Vercel AI;
``promptTokens`` (Langfuse v2); ``input``/``output`` → Langfuse. A dict wrapping one
of these under ``usage``/``usage_metadata``/``usageMetadata``/``token_usage``, or
keyed by ``gen_ai.usage.*``, is unwrapped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import orjson

__all__ = ["MAX_TOKENS", "NO_COUNTS", "ParsedUsage", "parse_usage", "token_count"]

MAX_TOKENS = 2**53 - 1
"""Largest count kept: exact in a double, as JSON consumers (the Langfuse server) read it."""
NO_COUNTS: tuple[int | None, ...] = (None,) * 5
_WRAPPERS = ("usage", "usage_metadata", "usageMetadata", "token_usage")
_SEMCONV_PREFIX = "gen_ai.usage."
_MAX_WALK_DEPTH = 8
_Path: TypeAlias = str | tuple[str, str]


_IGNORED = 7  # the slot of counts another slot already covers (e.g. OpenAI text_tokens)
_Index: TypeAlias = Mapping[str, Any]  # key → slot | {sub-key → slot}


@dataclass(frozen=True, slots=True)
class _Shape:
    """Where one provider keeps each count, and how its buckets nest.

    Several paths for one count are aliases (different dialects of the same number);
    the first one found in the value wins.
    """

    input: tuple[_Path, ...]
    output: tuple[_Path, ...]
    total: tuple[_Path, ...] = ()
    cache_read: tuple[_Path, ...] = ()
    cache_creation: tuple[_Path, ...] = ()
    reasoning: tuple[_Path, ...] = ()
    input_extra: tuple[_Path, ...] = ()
    input_excludes_cache: bool = False
    output_excludes_reasoning: bool = False
    redundant: tuple[_Path, ...] = ()
    index: _Index = field(init=False)
    """key → slot, or key → {sub-key → slot} for nested details. Slots: input, output,
    total, cache_read, cache_creation, reasoning, input_extra, ignored."""

    def __post_init__(self) -> None:
        index: dict[str, Any] = {}
        groups = (self.input, self.output, self.total, self.cache_read, self.cache_creation)
        slots = (*groups, self.reasoning, self.input_extra, self.redundant)
        for slot, paths in enumerate(slots):
            for path in paths:
                if isinstance(path, str):
                    index[path] = slot
                else:
                    index.setdefault(path[0], {})[path[1]] = slot
        object.__setattr__(self, "index", index)


_OPENAI = _Shape(
    input=("prompt_tokens",),
    output=("completion_tokens",),
    total=("total_tokens",),
    cache_read=(("prompt_tokens_details", "cached_tokens"), "prompt_cache_hit_tokens"),
    cache_creation=(("prompt_tokens_details", "cache_write_tokens"),),
    reasoning=(("completion_tokens_details", "reasoning_tokens"),),
    redundant=(("prompt_tokens_details", "text_tokens"), "prompt_cache_miss_tokens"),
)
_OPENAI_CAMEL = _Shape(("promptTokens",), ("completionTokens",), ("totalTokens",))  # Langfuse v2
# OpenAI Responses, LangChain usage_metadata and our canonical dict: all inclusive.
_INCLUSIVE = _Shape(
    input=("input_tokens",),
    output=("output_tokens",),
    total=("total_tokens", "total"),
    cache_read=(
        ("input_tokens_details", "cached_tokens"),
        ("input_token_details", "cache_read"),
        "cache_read_tokens",
        "cache_read.input_tokens",
        "cache_read",
    ),
    cache_creation=(
        ("input_tokens_details", "cache_write_tokens"),
        ("input_token_details", "cache_creation"),
        "cache_write_tokens",
        "cache_creation_tokens",
        "cache_creation.input_tokens",
        "cache_write",
        "cache_creation",
    ),
    reasoning=(
        ("output_tokens_details", "reasoning_tokens"),
        ("output_token_details", "reasoning"),
        "reasoning_tokens",
        "output_reasoning_tokens",
        "reasoning.output_tokens",
        "reasoning",
    ),
)
_ANTHROPIC = _Shape(
    input=("input_tokens",),
    output=("output_tokens",),
    cache_read=("cache_read_input_tokens",),
    cache_creation=("cache_creation_input_tokens",),
    input_excludes_cache=True,
)
_BEDROCK = _Shape(
    input=("inputTokens",),
    output=("outputTokens",),
    total=("totalTokens",),
    cache_read=("cacheReadInputTokens",),
    cache_creation=("cacheWriteInputTokens",),
    input_excludes_cache=True,
)
_VERCEL = _Shape(
    input=("inputTokens",),
    output=("outputTokens",),
    total=("totalTokens",),
    cache_read=("cachedInputTokens",),
    reasoning=("reasoningTokens",),
)
_GEMINI = _Shape(
    input=("prompt_token_count",),
    input_extra=("tool_use_prompt_token_count",),
    output=("candidates_token_count",),
    total=("total_token_count",),
    cache_read=("cached_content_token_count",),
    reasoning=("thoughts_token_count",),
    output_excludes_reasoning=True,
)
_GEMINI_CAMEL = _Shape(
    input=("promptTokenCount",),
    input_extra=("toolUsePromptTokenCount",),
    output=("candidatesTokenCount",),
    total=("totalTokenCount",),
    cache_read=("cachedContentTokenCount",),
    reasoning=("thoughtsTokenCount",),
    output_excludes_reasoning=True,
)
# Langfuse exclusive buckets: input/output plus input_*/output_* details.
_LANGFUSE_CACHE_READ = ("input_cached_tokens", "input_cache_read", "input_cached")
_LANGFUSE_CACHE_CREATION = ("input_cache_creation", "input_cache_write")
_LANGFUSE_REASONING = ("output_reasoning_tokens", "output_reasoning")
_LANGFUSE_KNOWN: Mapping[str, frozenset[str] | None] = dict.fromkeys(
    ("input", "output", "total", *_LANGFUSE_CACHE_READ, *_LANGFUSE_CACHE_CREATION)
) | dict.fromkeys(_LANGFUSE_REASONING)


class ParsedUsage:
    """Inclusive counts read from one usage value (None: not given), plus two findings.

    ``invalid``: some value was negative, fractional, junk or too large, and was
    clamped or ignored. ``extra``: the value holds non-zero counts that no canonical
    attribute carries (audio tokens, cache-write tiers, costs...).
    """

    __slots__ = ("counts", "extra", "invalid")

    def __init__(self) -> None:
        self.counts: tuple[int | None, ...] = NO_COUNTS
        """(input, output, cache_read, cache_creation, reasoning); zero sub-buckets are None."""
        self.invalid = False
        self.extra = False


def parse_usage(raw: object) -> ParsedUsage | None:
    """Counts of ``raw`` (a mapping or its JSON text); None for an unknown shape."""
    value: object = raw
    if type(raw) is str or isinstance(raw, (str, bytes)):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    if type(value) is not dict and not isinstance(value, Mapping):
        return None
    parsed = ParsedUsage()
    if not _parse_mapping(value, parsed, 0) or parsed.counts == NO_COUNTS:
        return None  # unknown, or a known shape without a single count (only a total)
    return parsed


def _parse_mapping(d: Mapping[str, Any], p: ParsedUsage, depth: int) -> bool:
    shape = _shape_of(d)
    if shape is not None:
        _read_shape(d, shape, p)
        return True
    if "input" in d or "output" in d:
        return _read_langfuse(d, p)
    if depth == 0:
        for key in _WRAPPERS:
            inner = d.get(key)
            if isinstance(inner, Mapping) and _parse_mapping(inner, p, 1):
                p.extra = p.extra or _has_extra(d, {key: frozenset(inner)})
                return True
        cut = len(_SEMCONV_PREFIX)
        stripped = {k[cut:]: v for k, v in d.items() if k.startswith(_SEMCONV_PREFIX)}
        if stripped:
            return _parse_mapping(stripped, p, 1)
    return False


def _shape_of(d: Mapping[str, Any]) -> _Shape | None:
    if "prompt_tokens" in d or "completion_tokens" in d:
        return _OPENAI
    if "input_tokens" in d or "output_tokens" in d:
        if "cache_read_input_tokens" in d or "cache_creation_input_tokens" in d:
            return _ANTHROPIC
        return _INCLUSIVE
    if "prompt_token_count" in d or "candidates_token_count" in d or "total_token_count" in d:
        return _GEMINI
    if "promptTokenCount" in d or "candidatesTokenCount" in d or "totalTokenCount" in d:
        return _GEMINI_CAMEL
    if "inputTokens" in d or "outputTokens" in d:
        if "cacheReadInputTokens" in d or "cacheWriteInputTokens" in d:
            return _BEDROCK
        return _VERCEL
    if "promptTokens" in d or "completionTokens" in d:
        return _OPENAI_CAMEL
    return None


def _read_shape(d: Mapping[str, Any], shape: _Shape, p: ParsedUsage) -> None:
    """One pass over ``d`` (this runs for every generation): the counts by slot, and
    whether a non-zero count sits where no slot takes it (``p.extra``)."""
    found: list[int | None] = [None] * 8
    index = shape.index
    extra = False
    for key, value in d.items():
        target = index.get(key)
        if target is None:
            if value and not extra and _carries_count(value, 0):
                extra = True
        elif type(target) is int:
            if value is not None and found[target] is None:
                ok = type(value) is int and 0 <= value <= MAX_TOKENS
                found[target] = value if ok else token_count(value, p)
        elif value:  # nested details: target maps their keys to slots
            if type(value) is not dict and not isinstance(value, Mapping):
                p.invalid = True
                continue
            for sub_key, sub_value in value.items():
                slot = target.get(sub_key)
                if slot is None:
                    if sub_value and not extra and _carries_count(sub_value, 1):
                        extra = True
                elif sub_value is not None and found[slot] is None:
                    ok = type(sub_value) is int and 0 <= sub_value <= MAX_TOKENS
                    found[slot] = sub_value if ok else token_count(sub_value, p)
    given_in, given_out, total, cache_read, cache_creation, reasoning, extra_in, _ = found
    if extra_in is not None:
        given_in = _plus(given_in, extra_in)
    if shape.input_excludes_cache:
        given_in = _plus(_plus(given_in, cache_read), cache_creation)
    if shape.output_excludes_reasoning:
        given_out = _plus(given_out, reasoning)
    p.extra = extra
    _set(p, given_in, given_out, total, cache_read, cache_creation, reasoning)


def _read_langfuse(d: Mapping[str, Any], p: ParsedUsage) -> bool:
    unit = d.get("unit")
    if unit is not None and str(unit).upper() != "TOKENS":
        return False  # characters, seconds, images...: not token counts
    given_in = given_out = None
    for key, value in d.items():
        if key.endswith("_cost") or value is None:
            continue
        if key == "input" or key.startswith("input_"):
            given_in = _plus(given_in, token_count(value, p))
        elif key == "output" or key.startswith("output_"):
            given_out = _plus(given_out, token_count(value, p))
    cache_read = _first(d, _LANGFUSE_CACHE_READ, p)
    cache_creation = _first(d, _LANGFUSE_CACHE_CREATION, p)
    reasoning = _first(d, _LANGFUSE_REASONING, p)
    total = token_count(d.get("total"), p)
    _set(p, given_in, given_out, total, cache_read, cache_creation, reasoning)
    p.extra = _has_extra(d, _LANGFUSE_KNOWN)
    return True


def _set(
    p: ParsedUsage,
    given_in: int | None,
    given_out: int | None,
    total: int | None,
    cache_read: int | None,
    cache_creation: int | None,
    reasoning: int | None,
) -> None:
    if total is not None:  # a total alone can fill the side that is missing
        if given_out is None and given_in is not None and total > given_in:
            given_out = total - given_in
        elif given_in is None and given_out is not None and total > given_out:
            given_in = total - given_out
    # A zero sub-bucket says nothing worth exporting.
    p.counts = (given_in, given_out, cache_read or None, cache_creation or None, reasoning or None)


def _first(d: Mapping[str, Any], keys: tuple[str, ...], p: ParsedUsage) -> int | None:
    for key in keys:
        value = d.get(key)
        if value is not None:
            return token_count(value, p)
    return None


def _plus(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a + b, MAX_TOKENS)


def token_count(value: object, p: ParsedUsage) -> int | None:
    """A count as a non-negative int; None when absent or meaningless (flagged)."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    if value is None:
        return None
    number: float | int
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        p.invalid = True
        return None
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                p.invalid = True
                return None
    else:
        number = value
    if isinstance(number, float):
        if not math.isfinite(number):
            p.invalid = True
            return None
        if not number.is_integer():
            p.invalid = True
        number = round(number)
    if number < 0 or number > MAX_TOKENS:
        p.invalid = True
        return 0 if number < 0 else MAX_TOKENS
    return int(number)


def _has_extra(d: Mapping[str, Any], known: Mapping[str, frozenset[str] | None]) -> bool:
    """True when ``d`` holds a non-zero count outside the keys ``known`` consumed."""
    for key, value in d.items():
        if not value:  # None, 0, "", {}: nothing either way
            continue
        if key not in known:
            if _carries_count(value, 0):
                return True
            continue
        sub = known[key]
        if sub is not None and (type(value) is dict or isinstance(value, Mapping)):
            for sub_key, sub_value in value.items():
                if sub_value and sub_key not in sub and _carries_count(sub_value, 1):
                    return True
    return False


def _carries_count(value: object, depth: int) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, Mapping):
        if depth >= _MAX_WALK_DEPTH:
            return True  # too deep to tell: keep the raw value
        if value.get("modality") == "TEXT":
            return False  # Gemini's text split repeats the canonical counts
        return any(_carries_count(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        if depth >= _MAX_WALK_DEPTH:
            return True
        return any(_carries_count(v, depth + 1) for v in value)
    return False
