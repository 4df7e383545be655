"""Langfuse's ``usage_details``, ``cost_details`` and model parameters from our attributes.

One job: turn the canonical usage counts, provided costs and model-parameters JSON of
a span into the numbers and flat mappings the Langfuse server's schema accepts
(exclusive integer usage buckets, finite non-negative costs with a ``total``, model
parameters of strings and numbers only). ``dialect_langfuse.to_langfuse`` calls the
lower-level functions here (``canonical_usage``, ``raw_usage_of``, ``cost_and_total``,
``model_parameters_json``, ``numbers_json``) for every exported span.

The JSON parsing helper (``loads_or_invalid`` and its ``INVALID`` sentinel) and the ``Getter``
type live here too: the dialect imports this module, so this one cannot import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import orjson

from otel_llm import semconv
from otel_llm.serialize import DEFAULT_MAX_CHARS, to_json

__all__ = [
    "COST_PARTS",
    "INVALID",
    "Getter",
    "canonical_usage",
    "cost_and_total",
    "cost_details",
    "loads_or_invalid",
    "model_parameters",
    "model_parameters_json",
    "numbers_json",
    "raw_usage_of",
    "usage_details",
]

# --- ours that semconv.py does not name yet ------------------------------------------
COST_PARTS: Final = {
    "otel_llm.cost.input": "input",
    "otel_llm.cost.output": "output",
    "otel_llm.cost.cache_read": "input_cached_tokens",
    "otel_llm.cost.cache_creation": "input_cache_creation",
}
"""Our cost components → Langfuse cost keys (named like the usage keys they price)."""

_COST_ITEMS: Final = tuple(COST_PARTS.items())
_INF: Final = math.inf
INVALID: Final = object()
Getter = Callable[[str], Any]


def usage_details(attributes: Mapping[str, Any]) -> dict[str, int] | None:
    """Exclusive integer usage buckets, or None when the span has no usage.

    Canonical ``gen_ai.usage.*`` counts are inclusive (input includes cached
    tokens, output includes reasoning); Langfuse's ``usage_details`` wants each
    token in exactly one bucket, with ``total`` their sum. Without canonical
    counts, ``otel_llm.usage.raw`` in OpenAI (``prompt_tokens``…) or Langfuse
    (``input``/``output``/``total``) shape is mapped directly.
    """
    canonical = canonical_usage(attributes.get)
    return canonical if canonical is not None else raw_usage_of(attributes)


def raw_usage_of(attributes: Mapping[str, Any]) -> dict[str, int] | None:
    """Buckets from the provider's raw usage (``otel_llm.usage.raw``) when no canonical
    counts were derived; None when it holds none we can read."""
    raw = attributes.get(semconv.USAGE_RAW)
    parsed = loads_or_invalid(raw) if isinstance(raw, str) else raw
    return _raw_usage(parsed) if isinstance(parsed, Mapping) else None


def canonical_usage(get: Getter) -> dict[str, int] | None:
    """Exclusive buckets from the canonical ``gen_ai.usage.*`` counts; None without any."""
    given_in = get(semconv.GEN_AI_USAGE_INPUT_TOKENS)
    given_out = get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)
    cache_read = get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
    cache_creation = get(semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)
    reasoning = get(semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)
    if (
        cache_read is None
        and cache_creation is None
        and reasoning is None
        and type(given_in) is int
        and type(given_out) is int
        and given_in >= 0
        and given_out >= 0
    ):  # the usual span: what _buckets gives for plain input and output counts
        return {"input": given_in, "output": given_out, "total": given_in + given_out}
    return _buckets(
        _tokens(given_in),
        _tokens(given_out),
        _tokens(cache_read),
        _tokens(cache_creation),
        _tokens(reasoning),
    )


def _buckets(
    given_in: int | None,
    given_out: int | None,
    cache_read: int | None,
    cache_creation: int | None,
    reasoning: int | None,
    total: int | None = None,
) -> dict[str, int] | None:
    usage: dict[str, int] = {}
    if given_in is not None:
        usage["input"] = max(0, given_in - (cache_read or 0) - (cache_creation or 0))
    if given_out is not None:
        usage["output"] = max(0, given_out - (reasoning or 0))
    if cache_read is not None:
        usage["input_cached_tokens"] = cache_read
    if cache_creation is not None:
        usage["input_cache_creation"] = cache_creation
    if reasoning is not None:
        usage["output_reasoning_tokens"] = reasoning
    if not usage:
        return None
    usage["total"] = total if total is not None else sum(usage.values())
    return usage


def _raw_usage(raw: Mapping[str, Any]) -> dict[str, int] | None:
    if "prompt_tokens" in raw or "completion_tokens" in raw:  # OpenAI chat completions
        prompt_details = raw.get("prompt_tokens_details")
        completion_details = raw.get("completion_tokens_details")
        cached = _tokens(_get(prompt_details, "cached_tokens"))
        reasoning = _tokens(_get(completion_details, "reasoning_tokens"))
        return _buckets(
            _tokens(raw.get("prompt_tokens")),
            _tokens(raw.get("completion_tokens")),
            cached or None,
            None,
            reasoning or None,
            _tokens(raw.get("total_tokens")),
        )
    if "input" in raw or "output" in raw:  # Langfuse: already exclusive buckets
        usage = {str(k): n for k, v in raw.items() if (n := _tokens(v)) is not None}
        if "total" not in usage and usage:
            usage["total"] = sum(usage.values())
        return usage or None
    return None


def cost_details(attributes: Mapping[str, Any]) -> dict[str, float] | None:
    """Provided cost as Langfuse ``cost_details`` (USD, with ``total``), or None.

    ``gen_ai.usage.cost`` is the total; ``otel_llm.cost.{input,output,cache_read,
    cache_creation}`` are its parts. Without them, ``otel_llm.cost.raw`` (a
    number, or a mapping with ``total`` and/or parts) is used. Any cost sent
    disables the server's own pricing, so an absent cost is never sent as 0.
    """
    return cost_and_total(attributes.get)[0]


def cost_and_total(get: Getter) -> tuple[dict[str, float] | None, bool]:
    """``cost_details``, and whether ``gen_ai.usage.cost`` held a valid total (then the
    raw provider cost is not needed beside it)."""
    cost: dict[str, float] = {}
    for ours, theirs in _COST_ITEMS:
        part = get(ours)
        if part is not None and (part := _amount(part)) is not None:
            cost[theirs] = part
    total = _amount(get(semconv.GEN_AI_USAGE_COST))
    if total is not None:
        cost["total"] = total
    elif not cost:
        raw = get(semconv.COST_RAW)
        if raw is None:
            return None, False
        parsed = loads_or_invalid(raw) if isinstance(raw, str) else raw
        if isinstance(parsed, Mapping):
            cost = {str(k): n for k, v in parsed.items() if (n := _amount(v)) is not None}
        elif (amount := _amount(parsed)) is not None:
            cost["total"] = amount
    if not cost:
        return None, total is not None
    if "total" not in cost:
        cost["total"] = math.fsum(cost.values())
    return cost, total is not None


def model_parameters(value: object) -> dict[str, str | int | float] | None:
    """Our model-parameters JSON as a flat mapping the server's schema accepts.

    The legacy ingestion path drops the observation for values other than
    strings, numbers, booleans, string lists or string maps; we send strings and
    numbers as they are and everything else as compact JSON text.
    """
    parsed = loads_or_invalid(value) if isinstance(value, str) else value
    if not isinstance(parsed, Mapping):
        return None
    params: dict[str, str | int | float] = {}
    for key, item in parsed.items():
        if item is None:
            continue
        if isinstance(item, str) or (
            isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item)
        ):
            params[str(key)] = item
        else:
            params[str(key)] = to_json(item)
    return params


_PARAMS_JSON: dict[str, str | None] = {}  # short model-parameters text -> LF_MODEL_PARAMETERS
_PARAMS_CACHE_CHARS = 1024
_PARAMS_CACHE_SIZE = 256


def model_parameters_json(value: object) -> str | None:
    """``to_json(model_parameters(value))``, cached for short JSON texts.

    One configuration sends the same parameters text on every call. Whatever a short
    text parses to (finite floats, 64-bit ints, valid strings: what ``orjson.loads``
    yields) serializes without any of ``to_json``'s counted repairs, so a cached result
    is exactly what recomputing gives.
    """
    if type(value) is not str or len(value) > _PARAMS_CACHE_CHARS:
        params = model_parameters(value)
        return None if params is None else to_json(params)
    cached = _PARAMS_JSON.get(value, INVALID)
    if cached is not INVALID:
        return cast("str | None", cached)
    parsed = loads_or_invalid(value)
    result = to_json(model_parameters(parsed)) if isinstance(parsed, Mapping) else None
    if len(_PARAMS_JSON) >= _PARAMS_CACHE_SIZE:
        _PARAMS_JSON.clear()
    _PARAMS_JSON[value] = result
    return result


def numbers_json(value: Mapping[str, int] | Mapping[str, float]) -> str:
    """``to_json`` of flat usage or cost numbers (finite), without its general checks."""
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # an int beyond 64 bits: to_json knows what to do
        return to_json(value)
    return text if len(text) <= DEFAULT_MAX_CHARS else to_json(value)


# --- small total helpers ---------------------------------------------------------------
def loads_or_invalid(text: str) -> Any:
    """The JSON value of ``text``, or :data:`INVALID` (``None`` is a valid value)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return INVALID


def _get(container: object, key: str) -> object:
    return container.get(key) if isinstance(container, Mapping) else None


def _tokens(value: object) -> int | None:
    """A token count: a non-negative int (an integral float is accepted), else None."""
    if type(value) is int:
        return value if value >= 0 else None
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _amount(value: object) -> float | None:
    """A cost: a finite, non-negative number (the server drops anything else), else None."""
    if type(value) is float:
        return value if 0.0 <= value < _INF else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None
