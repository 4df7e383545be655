"""The cost stage: price × usage, with where the price came from.

Why: a cost the user can act on needs provenance and must never be a guess. So
a provider-reported cost (``cost=``) wins; then the user's ``pricing=`` table; then
the genai-prices data bundled with the installed package. A model nobody prices
gets ``otel_llm.cost.unpriced=True`` and no ``gen_ai.usage.cost`` at all — a
confident 0 would hide spend. An agent's run (``semconv.AGGREGATE_OPERATIONS``) is not
priced from its usage, which sums calls priced on their own spans; a cost reported on
it is kept.

The model names genai-prices lists are answered from ``price_table`` (genai-prices'
own answers, precomputed for the installed version), so most apps never import
genai-prices at all; any other name is looked up in genai-prices itself.

genai-prices stays offline: we read its bundled ``genai_prices.data`` through a
``DataSnapshot`` of our own (``from_auto_update=False``) and never call
``calc_price``/``get_snapshot``, ``UpdatePrices`` or anything in
``genai_prices.update_prices`` — the only code in the package that opens a
connection. Prices therefore change only when the package is upgraded, and
``otel_llm.cost.price_version`` names that version.

Each model lookup is memoized in the :class:`PriceBook` as price plans, so per
span only the arithmetic is left. Written: ``gen_ai.usage.cost``,
``otel_llm.cost.{input,output,cache_read,cache_creation}`` (disjoint parts; a
per-request fee is in the total only), ``otel_llm.cost.{currency,source,
price_version}``, or ``otel_llm.cost.unpriced``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, cast

import orjson

from otel_llm import semconv
from otel_llm.diagnostics import log_once
from otel_llm.processing.price_table import (
    Active,
    EntrySpec,
    PriceTable,
    active_from_spec,
    condition_spec,
    load_table,
    plan_from_spec,
    plan_spec,
)
from otel_llm.processing.pricing import (
    GenaiUnits,
    PricePlan,
    UsageCounts,
    UserPricing,
    load_pricing,
    plan_from_genai,
)
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext

if TYPE_CHECKING:
    from genai_prices.types import (
        ModelInfo,
        ModelPrice,
        Provider,
        StartDateConstraint,
        TimeOfDateConstraint,
    )

    _Condition = StartDateConstraint | TimeOfDateConstraint

__all__ = [
    "GenaiPrices",
    "PriceBook",
    "Priced",
    "compile_prices",
    "derive_cost",
    "genai_provider_id",
]

_COST_INPUT: Final = "otel_llm.cost.input"
_COST_OUTPUT: Final = "otel_llm.cost.output"
_COST_CACHE_READ: Final = "otel_llm.cost.cache_read"
_COST_CACHE_CREATION: Final = "otel_llm.cost.cache_creation"
_COST_CURRENCY: Final = "otel_llm.cost.currency"
_COST_SOURCE: Final = "otel_llm.cost.source"
_COST_PRICE_VERSION: Final = "otel_llm.cost.price_version"
_DEFAULT_BOOK: Final = "otel_llm.cost.default_price_book"
"""``ctx.extras`` key of the genai-prices-only book used when ``ctx.prices`` is None."""

_MEMO_SIZE: Final = 4096
_MAX_COUNT: Final = 2**63
"""Counts at or above this (beyond an OTLP int64) are invalid, not priced."""
_NO_USAGE: Final = (None,) * 5
_INPUT: Final = semconv.GEN_AI_USAGE_INPUT_TOKENS
_OUTPUT: Final = semconv.GEN_AI_USAGE_OUTPUT_TOKENS
_CACHE_READ: Final = semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
_CACHE_WRITE: Final = semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
_REASONING: Final = semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
_PROVIDER_IDS: Final = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
}
"""semconv ``gen_ai.provider.name`` (and older ``gen_ai.system``) values whose
genai-prices id differs. Others (``openai``, ``anthropic``, ``groq``, ``deepseek``,
``cohere``, ``perplexity``...) are its ids already; it also matches aliases itself
(``vertex_ai``, ``xai``, ``litellm`` with ``openai/gpt-4o``...)."""

_Failure = Literal["unpriced", "invalid_usage", "price_error"]


class Priced(NamedTuple):
    """A span's cost in USD. A part is None when it is not priced on its own."""

    total: float
    input: float | None
    output: float | None
    cache_read: float | None
    cache_creation: float | None
    source: str
    price_version: str


@dataclass(frozen=True, slots=True)
class _Entry:
    """What a (provider, model) resolves to, memoized: its plans and their provenance."""

    source: str
    version: str
    plans: tuple[tuple[Active | None, PricePlan], ...] = ()
    """(condition, plan); as in genai-prices, the last active one wins, else the first."""
    broken: bool = False
    """genai-prices rejects its own data for this model: unpriced, never a guess."""

    def plan(self, start_ns: int) -> PricePlan:
        plans = self.plans
        if plans[-1][0] is None:
            return plans[-1][1]
        if start_ns <= 0:
            start_ns = time.time_ns()
        for active, plan in reversed(plans):
            if active is None or active(start_ns):
                return plan
        return plans[0][1]


class GenaiPrices:
    """The genai-prices data bundled with the installed package; never updated online."""

    def __init__(self) -> None:
        import genai_prices
        from genai_prices.data import providers
        from genai_prices.data_units import unit_data
        from genai_prices.units import UnitRegistry

        self.version = f"genai-prices=={genai_prices.__version__}"
        self.providers = providers
        self._units = GenaiUnits(UnitRegistry(unit_data))
        self.reset()

    def reset(self) -> None:
        """A fresh snapshot: its lookup caches grow with every model name seen."""
        from genai_prices.data_snapshot import DataSnapshot

        # Ours, not get_snapshot(): that one may hold prices an UpdatePrices task fetched.
        self._snapshot = DataSnapshot(providers=self.providers, from_auto_update=False)

    def entry(self, provider_id: str | None, model: str) -> _Entry | None:
        variants = self.variants(provider_id, model)
        if variants is None:
            return None
        if variants == "broken":
            return _Entry("genai-prices", self.version, broken=True)
        plans = tuple((None if c is None else _when(c), plan) for c, plan in variants)
        return _Entry("genai-prices", self.version, plans=plans)

    def variants(
        self, provider_id: str | None, model: str
    ) -> list[tuple[_Condition | None, PricePlan]] | Literal["broken"] | None:
        """The model's plans with their conditions; None when genai-prices has no price."""
        found = self._find(provider_id, model)
        if found is None:
            return None
        prices = found[1].prices
        if not isinstance(prices, list):
            conditions: list[tuple[_Condition | None, ModelPrice]] = [(None, prices)]
        else:
            conditions = [(conditional.constraint, conditional.prices) for conditional in prices]
        try:  # data genai-prices itself rejects, or that we cannot decompose
            variants = [(c, plan_from_genai(price, self._units)) for c, price in conditions]
        except ValueError:
            return "broken"
        return variants or "broken"

    def spec(self, provider_id: str | None, model: str) -> EntrySpec | None:
        """:meth:`variants` as a price-table entry; None also when a condition has no spec."""
        variants = self.variants(provider_id, model)
        if variants is None or variants == "broken":
            return variants
        spec: list[Sequence[Any]] = []
        for condition, plan in variants:
            condition_as_spec = None if condition is None else condition_spec(condition)
            if condition is not None and condition_as_spec is None:
                return None
            spec.append([condition_as_spec, plan_spec(plan)])
        return spec

    def _find(self, provider_id: str | None, model: str) -> tuple[Provider, ModelInfo] | None:
        try:
            return self._snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            return None


def _entry_from_spec(spec: EntrySpec, version: str) -> _Entry:
    if spec == "broken":
        return _Entry("genai-prices", version, broken=True)
    plans = tuple(
        (None if condition is None else active_from_spec(condition), plan_from_spec(parts))
        for condition, parts in spec
    )
    return _Entry("genai-prices", version, plans=plans)


def genai_provider_id(provider: str | None) -> str | None:
    """The genai-prices provider id for a semconv provider name (None: any provider).

    A provider genai-prices does not know (a self-hosted server, a private gateway)
    or that does not sell the model leaves it unpriced: matching the name alone
    could price a self-hosted "llama" at some vendor's rate.
    """
    return _PROVIDER_IDS.get(provider, provider) if provider else None


class PriceBook:
    """Prices compiled once at configure time, looked up per span (worker thread only).

    The user's table is validated up front; genai-prices' data is loaded on the
    first span it must price. Each (provider, model) resolves once into a memo of
    at most 4096 entries (cleared when full), holding plans, not results.
    """

    def __init__(self, user: UserPricing) -> None:
        self._user = user
        self._table: PriceTable | None = None
        self._table_loaded = False
        self._genai: GenaiPrices | None = None
        self._genai_missing = False
        self._memo: dict[tuple[str | None, str], _Entry | None] = {}

    def price(
        self, provider: str | None, model: str, usage: UsageCounts, start_ns: int
    ) -> Priced | _Failure:
        """The cost of ``usage`` on ``model``, or why there is none."""
        try:
            entry = self._memo[provider, model]
        except KeyError:
            entry = self._resolve(provider, model)
        if entry is None:
            return "unpriced"
        if entry.broken:
            return "price_error"
        costs = entry.plan(start_ns).compute(usage)
        if costs is None:
            return "invalid_usage"
        return Priced(*costs, entry.source, entry.version)

    def _resolve(self, provider: str | None, model: str) -> _Entry | None:
        plan = self._user.lookup(model)
        if plan is not None:
            entry: _Entry | None = _Entry("pricing", self._user.version, plans=((None, plan),))
        else:
            entry = self._genai_entry(provider, model)
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()
            if self._genai is not None:
                self._genai.reset()
        self._memo[provider, model] = entry
        return entry

    def _genai_entry(self, provider: str | None, model: str) -> _Entry | None:
        provider_id = genai_provider_id(provider)
        if not self._table_loaded:
            self._table_loaded = True
            self._table = load_table()
        if self._table is not None:
            spec = self._table.lookup(provider_id, model)
            if spec is not None:
                return _entry_from_spec(spec, f"genai-prices=={self._table.genai_version}")
        if self._genai is None and not self._genai_missing:
            try:
                self._genai = GenaiPrices()
            except Exception as exc:  # not installed, or a data file that fails to load
                self._genai_missing = True
                log_once("cost", "genai_prices", f"genai-prices unusable ({type(exc).__name__})")
        if self._genai is None:
            return None
        try:
            return self._genai.entry(provider_id, model)
        except Exception as exc:
            log_once("cost", "genai_lookup", f"genai-prices lookup failed ({type(exc).__name__})")
            return _Entry("genai-prices", self._genai.version, broken=True)


def compile_prices(pricing: Mapping[str, Any] | str | Path | None) -> PriceBook:
    """Validate ``pricing=`` (a mapping or a .json/.toml path) into a :class:`PriceBook`.

    Raises:
        ConfigError: the table or file is malformed; the message names the entry and rule.
    """
    return PriceBook(load_pricing(pricing))


def _when(condition: _Condition) -> Active:
    """``condition.active`` on a span's start (ns since the epoch), without datetimes.

    Same rules as genai-prices, in UTC: a start date compares calendar days; a
    time-of-day window is ``[start, end)`` and may wrap past midnight.
    """
    spec = condition_spec(condition)
    if spec is not None:
        return active_from_spec(spec)
    # A condition type newer than this code: ask genai-prices itself.
    return lambda start_ns: bool(
        condition.active(datetime.fromtimestamp(start_ns / 1e9, tz=timezone.utc))
    )


# --- the stage ---------------------------------------------------------------------
def derive_cost(record: SpanRecord, ctx: StageContext) -> None:
    """Set ``gen_ai.usage.cost`` and its provenance, or ``otel_llm.cost.unpriced``."""
    attributes = record.attributes
    get = attributes.get
    if (get(semconv.COST_RAW) is not None or get(semconv.GEN_AI_USAGE_COST) is not None) and (
        _reported_cost(attributes, ctx)
    ):
        return
    usage = _usage(attributes)
    if usage is None:
        return
    if get(semconv.GEN_AI_OPERATION_NAME) in semconv.AGGREGATE_OPERATIONS:
        ctx.count("cost.aggregate_not_priced")  # its calls are priced on their own spans
        return
    if isinstance(usage, str):
        _unpriced(attributes, ctx, usage)
        return
    # The response model names the exact snapshot billed; when the price data doesn't
    # know that snapshot (new, or a compatible server's own name), the requested model
    # is what the user chose and usually is priced.
    response = get(semconv.GEN_AI_RESPONSE_MODEL)
    request = get(semconv.GEN_AI_REQUEST_MODEL)
    models = (response, request) if response != request else (response,)
    provider = get(semconv.GEN_AI_PROVIDER_NAME) or get(semconv.GEN_AI_SYSTEM)
    if not isinstance(provider, str) or not provider:
        provider = None
    book = ctx.prices or _default_book(ctx)
    failure: _Failure = "unpriced"  # why the last model tried is not priced
    for model in models:
        if isinstance(model, str) and model:
            result = book.price(provider, model, usage, record.start_time)
            if isinstance(result, str):
                failure = result
                continue
            _write(attributes, result)
            ctx.count("cost.priced")
            return
    _unpriced(attributes, ctx, failure)


def _default_book(ctx: StageContext) -> PriceBook:
    book = ctx.extras.get(_DEFAULT_BOOK)
    if not isinstance(book, PriceBook):
        book = ctx.extras[_DEFAULT_BOOK] = compile_prices(None)
    return book


def _usage(attributes: Mapping[str, Any]) -> UsageCounts | Literal["invalid_usage"] | None:
    """The five canonical counts (absent = 0); None without any; checked for consistency."""
    get = attributes.get
    values = (get(_INPUT), get(_OUTPUT), get(_CACHE_READ), get(_CACHE_WRITE), get(_REASONING))
    if values == _NO_USAGE:
        return None
    counts = [
        value if type(value) is int and 0 <= value < _MAX_COUNT else _count(value)
        for value in values
    ]
    if None in counts:
        return "invalid_usage"
    input_, output, cache_read, cache_write, reasoning = cast("list[int | Fraction]", counts)
    # Inclusive counts: cached tokens are part of input, reasoning part of output.
    if cache_read + cache_write > input_ or reasoning > output:
        return "invalid_usage"
    return (input_, output, cache_read, cache_write, reasoning)


def _count(value: object) -> int | Fraction | None:
    if value is None:
        return 0
    if type(value) is float and 0 <= value < _MAX_COUNT:
        return int(value) if value.is_integer() else Fraction(repr(value))
    return None  # negative, bool, str, ...


def _reported_cost(attributes: dict[str, Any], ctx: StageContext) -> bool:
    """Apply a provider-reported cost (``cost=``, or a cost already on the span)."""
    raw = attributes.get(semconv.COST_RAW)
    if raw is None:
        existing = attributes.get(semconv.GEN_AI_USAGE_COST)
        if _amount(existing) is None:
            return False
        # Set upstream (another instrumentation, or an otel-llm that already priced it).
        attributes.setdefault(_COST_CURRENCY, "USD")
        attributes.setdefault(_COST_SOURCE, "provider")
        ctx.count("cost.priced")
        return True
    parsed = _parse_reported(raw)
    if parsed is None:
        ctx.count("cost.invalid_raw")
        log_once("cost", "invalid_raw", "a cost= value is not a USD amount or a dict of them")
        return False
    priced, complete = parsed
    if complete:
        del attributes[semconv.COST_RAW]  # all of it is in the attributes we write
    _write(attributes, priced)
    ctx.count("cost.priced")
    return True


_REPORTED_PARTS: Final = ("input", "output", "cache_read", "cache_creation")
_REPORTED_KEYS: Final = frozenset({"total", *_REPORTED_PARTS})


def _parse_reported(raw: object) -> tuple[Priced, bool] | None:
    """``cost=`` (JSON): a USD total, or ``{"total"?, "input"?, "output"?, ...}``.

    Without ``total`` every numeric value is a part of it (Langfuse ``cost_details``
    may name others, e.g. ``input_audio``). The flag says whether the attributes we
    write hold all of it, so the raw value can go.
    """
    value = raw
    if isinstance(raw, (str, bytes)):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    total = _amount(value)
    if total is not None:
        return Priced(total, None, None, None, None, "provider", ""), True
    if not isinstance(value, dict):
        return None
    amounts = {
        key: _amount(item)
        for key, item in value.items()
        if key in _REPORTED_KEYS or _is_number(item)  # other non-numbers: notes, kept in raw
    }
    if not amounts or None in amounts.values():
        return None  # a negative, non-finite or non-numeric amount
    total = amounts.get("total")
    if total is None:
        total = math.fsum(amount for amount in amounts.values() if amount is not None)
    parts = [amounts.get(name) for name in _REPORTED_PARTS]
    priced = Priced(total, parts[0], parts[1], parts[2], parts[3], "provider", "")
    return priced, value.keys() <= _REPORTED_KEYS


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _amount(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        amount = float(value)
    except OverflowError:
        return None
    return amount if math.isfinite(amount) and amount >= 0 else None


def _write(attributes: dict[str, Any], priced: Priced) -> None:
    attributes[semconv.GEN_AI_USAGE_COST] = priced.total
    if priced.input is not None:
        attributes[_COST_INPUT] = priced.input
    if priced.output is not None:
        attributes[_COST_OUTPUT] = priced.output
    # Cache parts only when the span reports those tokens: no invented zeros.
    if priced.cache_read is not None and (
        priced.source == "provider" or semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS in attributes
    ):
        attributes[_COST_CACHE_READ] = priced.cache_read
    if priced.cache_creation is not None and (
        priced.source == "provider"
        or semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS in attributes
    ):
        attributes[_COST_CACHE_CREATION] = priced.cache_creation
    attributes[_COST_CURRENCY] = "USD"
    attributes[_COST_SOURCE] = priced.source
    if priced.price_version:
        attributes[_COST_PRICE_VERSION] = priced.price_version


def _unpriced(attributes: dict[str, Any], ctx: StageContext, reason: _Failure) -> None:
    attributes[semconv.COST_UNPRICED] = True
    ctx.count("cost.unpriced")
    if reason != "unpriced":
        ctx.count(f"cost.{reason}")
