"""Per-token price plans, and the user's ``pricing=`` table that overrides genai-prices.

Why a module of its own: the cost stage runs once per span on the worker thread,
so everything that can be decided once — reading and validating the user's table,
turning a model's prices into "which usage counts, at what price per token, into
which bucket" — is decided here, at configure time or on a model's first span.
What is left per span is a few exact integer operations
(:meth:`PricePlan.compute`), the arithmetic genai-prices does in ``Decimal``, so
our totals equal its ``calc_price`` exactly.

The ``pricing=`` table (a mapping, or a ``.json`` / ``.toml`` file of the same shape)::

    {"my-model": {"input_per_mtok": 2.0, "output_per_mtok": 8.0,
                  "cache_read_per_mtok": 0.5, "cache_write_per_mtok": 2.5},
     "re:ft:gpt-4o-mini:.*": {"input_per_mtok": 0.3, "output_per_mtok": 1.2}}

Prices are USD per million tokens. A key is an exact model name (compared
case-insensitively), or, when it starts with ``re:``, a Python regular expression
that must match the *whole* model name (``re.fullmatch``; add ``(?i)`` for
case-insensitive). Exact names win over regexes; regexes are tried in table
order. ``input_per_mtok`` and ``output_per_mtok`` are required (write 0 for a
model that has no output), so a missing field never silently prices a span at 0;
without ``cache_read_per_mtok`` / ``cache_write_per_mtok`` cached tokens are billed
at the input price, as genai-prices does for models without a cache price.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import orjson

from otel_llm.errors import ConfigError

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice, TieredPrices
    from genai_prices.units import UnitDef, UnitRegistry

__all__ = [
    "Costs",
    "GenaiUnits",
    "PricePart",
    "PricePlan",
    "UsageCounts",
    "UserPricing",
    "load_pricing",
    "plan_from_genai",
]

# Positions in a UsageCounts tuple (all counts INCLUSIVE, as in semconv).
_INPUT, _OUTPUT, _CACHE_READ, _CACHE_WRITE, _REASONING = range(5)

UsageCounts = tuple[int | Fraction, int | Fraction, int | Fraction, int | Fraction, int | Fraction]
"""input, output, cache_read, cache_write, reasoning token counts; absent = 0.
Counts are ints; a non-integral count (an estimate) is an exact Fraction."""

# Where a part's cost is reported (the Costs fields); OTHER: per-request fees and such.
_IN, _OUT, _READ, _WRITE, _OTHER = range(5)

_SETTING: Final = "pricing"
_REGEX_PREFIX: Final = "re:"
_REQUIRED: Final = ("input_per_mtok", "output_per_mtok")
_FIELDS: Final = (*_REQUIRED, "cache_read_per_mtok", "cache_write_per_mtok")


@dataclass(frozen=True, slots=True)
class PricePart:
    """One priced unit: a leaf count (a signed sum of usage counts) times a price."""

    bucket: int
    terms: tuple[tuple[int, int], ...]
    """(usage position, +1/-1): e.g. input minus separately priced cache reads."""
    price: Decimal
    """USD per ``per`` units (e.g. per million tokens)."""
    per: int = 1_000_000
    tiers: tuple[tuple[int, Decimal], ...] = ()
    """(input-token threshold, price), highest threshold first: once a request's
    input tokens exceed a threshold, that price applies to all of its units."""
    fixed_count: int | None = None
    """Set for per-request fees: the count is this, whatever the usage."""


class Costs(NamedTuple):
    """A span's cost in USD. A part is None when the plan does not price it apart
    (e.g. cache reads billed as input); the parts are disjoint and, with any
    per-request fee, sum to the total."""

    total: float
    input: float | None
    output: float | None
    cache_read: float | None
    cache_creation: float | None


class PricePlan:
    """A model's resolved prices: what the cost stage evaluates per span.

    Prices become integer numerators over one common denominator, so a span's
    cost is an exact integer and each float we report is the correctly rounded
    value of the exact sum — the same float as ``float()`` of genai-prices'
    exact ``Decimal`` result, at a fraction of the cost.
    """

    __slots__ = ("_named", "_rates", "apart", "denominator", "parts")

    def __init__(self, parts: tuple[PricePart, ...]) -> None:
        self.parts = parts
        # A part with no usage terms and no fixed count is always 0 for us (web searches...).
        live = [part for part in parts if part.terms or part.fixed_count is not None]
        self.apart = frozenset(part.bucket for part in live)
        self._named = tuple(bucket in self.apart for bucket in (_IN, _OUT, _READ, _WRITE))
        rates = [
            [Fraction(price) / part.per for price in (part.price, *(p for _, p in part.tiers))]
            for part in live
        ]
        self.denominator = math.lcm(1, *(rate.denominator for row in rates for rate in row))
        scale = self.denominator
        self._rates = tuple(
            (
                part.bucket,
                part.terms,
                int(row[0] * scale),
                tuple(
                    (start, int(rate * scale))
                    for (start, _), rate in zip(part.tiers, row[1:], strict=True)
                ),
                part.fixed_count,
            )
            for part, row in zip(live, rates, strict=True)
        )

    def compute(self, usage: UsageCounts) -> Costs | None:
        """The cost of ``usage`` in USD; None when a leaf count would be negative.

        As genai-prices: ``price * count / per`` per unit, with threshold tiers
        chosen by the request's total input tokens.
        """
        buckets: list[int | Fraction] = [0, 0, 0, 0, 0]
        total_input = usage[_INPUT]
        for bucket, terms, rate, tiers, fixed_count in self._rates:
            if fixed_count is None:
                count: int | Fraction = 0
                for position, sign in terms:
                    count += sign * usage[position]
                if count <= 0:
                    if count < 0:
                        return None
                    continue
            else:
                count = fixed_count
            for start, tier_rate in tiers:
                if total_input > start:
                    rate = tier_rate
                    break
            buckets[bucket] += rate * count
        scale = self.denominator
        into, out, read, write, other = buckets
        named_in, named_out, named_read, named_write = self._named
        return Costs(
            float((into + out + read + write + other) / scale),
            float(into / scale) if named_in else None,
            float(out / scale) if named_out else None,
            float(read / scale) if named_read else None,
            float(write / scale) if named_write else None,
        )


@dataclass(frozen=True, slots=True)
class UserPricing:
    """The validated ``pricing=`` table: exact names first, then regexes in order."""

    exact: Mapping[str, PricePlan]
    patterns: tuple[tuple[re.Pattern[str], PricePlan], ...]
    version: str
    """``pricing:<hash>`` of the table, so a cost says which table priced it."""

    def lookup(self, model: str) -> PricePlan | None:
        """The plan for ``model``, or None when the table does not price it."""
        plan = self.exact.get(model.lower())
        if plan is not None:
            return plan
        for pattern, candidate in self.patterns:
            if pattern.fullmatch(model):
                return candidate
        return None


def load_pricing(pricing: Mapping[str, Any] | str | Path | None) -> UserPricing:
    """Read and validate a ``pricing=`` value (configure time only: it may read a file).

    Raises:
        ConfigError: the file is missing, unreadable or not JSON/TOML, or an entry
            is malformed; the message names the entry key and the rule.
    """
    if pricing is None:
        return UserPricing({}, (), "pricing:none")
    source = str(pricing) if isinstance(pricing, (str, Path)) else None
    if source is not None:
        table = _read_file(Path(source))
    elif isinstance(pricing, Mapping):
        table = pricing
    else:
        raise _error("must be a mapping or a path to a .json/.toml file", None)
    if not isinstance(table, Mapping):
        raise _error("must map model names to price tables", source)
    return _compile_table(table, source)


def _error(rule: str, source: str | None, key: str | None = None) -> ConfigError:
    return ConfigError(_SETTING, rule if key is None else f"entry {key!r}: {rule}", source=source)


def _read_file(path: Path) -> object:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise _error("file name must end in .json or .toml", str(path))
    try:
        data = path.read_bytes()
        if suffix == ".json":
            return orjson.loads(data)
        return _toml_loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise _error("cannot read the file: it does not exist", str(path)) from None
    except OSError as exc:
        raise _error(f"cannot read the file ({type(exc).__name__})", str(path)) from None
    except ValueError as exc:  # JSONDecodeError, TOMLDecodeError, UnicodeDecodeError
        raise _error(f"not valid {suffix[1:].upper()}: {exc}", str(path)) from None


def _toml_loads(text: str) -> object:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 only
        try:
            import tomli as tomllib
        except ImportError:
            raise _error("reading .toml on Python 3.10 needs the 'tomli' package", None) from None
    return tomllib.loads(text)


def _compile_table(table: Mapping[Any, Any], source: str | None) -> UserPricing:
    exact: dict[str, PricePlan] = {}
    patterns: list[tuple[re.Pattern[str], PricePlan]] = []
    canonical: list[tuple[str, dict[str, str]]] = []
    for key, entry in table.items():
        if not isinstance(key, str) or not key.strip():
            raise _error("model keys must be non-empty strings", source)
        prices = _entry_prices(key, entry, source)
        canonical.append((key, {name: str(value) for name, value in prices.items()}))
        if key.startswith(_REGEX_PREFIX):
            patterns.append((_compile_regex(key, source), _user_plan(prices)))
        elif key.lower() in exact:
            raise _error("the model is listed twice (names ignore case)", source, key)
        else:
            exact[key.lower()] = _user_plan(prices)
    digest = hashlib.sha256(orjson.dumps(canonical)).hexdigest()[:12]
    return UserPricing(exact, tuple(patterns), f"pricing:{digest}")


def _compile_regex(key: str, source: str | None) -> re.Pattern[str]:
    expression = key[len(_REGEX_PREFIX) :]
    if not expression:
        raise _error("empty regular expression", source, key)
    try:
        return re.compile(expression)
    except re.error as exc:
        raise _error(f"invalid regular expression ({exc})", source, key) from None


def _entry_prices(key: str, entry: object, source: str | None) -> dict[str, Decimal]:
    if not isinstance(entry, Mapping):
        raise _error("must be a table of USD prices per million tokens", source, key)
    unknown = sorted(str(name) for name in entry if name not in _FIELDS)
    if unknown:
        allowed = ", ".join(_FIELDS)
        raise _error(
            f"unknown price field(s) {', '.join(unknown)} (allowed: {allowed})", source, key
        )
    missing = [name for name in _REQUIRED if name not in entry]
    if missing:
        raise _error(f"{' and '.join(missing)} required (0 for a free direction)", source, key)
    return {name: _price(key, name, value, source) for name, value in entry.items()}


def _price(key: str, name: str, value: object, source: str | None) -> Decimal:
    """A finite, non-negative number, as the exact Decimal of what the user wrote."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise _error(f"{name} must be a number, got {type(value).__name__}", source, key)
    price = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not price.is_finite() or price < 0:
        raise _error(f"{name} must be a finite, non-negative number", source, key)
    return price


def _user_plan(prices: Mapping[str, Decimal]) -> PricePlan:
    """Same decomposition as genai-prices: separately priced cache tokens leave input."""
    read = prices.get("cache_read_per_mtok")
    write = prices.get("cache_write_per_mtok")
    input_terms = [(_INPUT, 1)]
    parts: list[PricePart] = []
    if read is not None:
        input_terms.append((_CACHE_READ, -1))
        parts.append(PricePart(_READ, ((_CACHE_READ, 1),), read))
    if write is not None:
        input_terms.append((_CACHE_WRITE, -1))
        parts.append(PricePart(_WRITE, ((_CACHE_WRITE, 1),), write))
    parts.insert(0, PricePart(_IN, tuple(input_terms), prices["input_per_mtok"]))
    parts.insert(1, PricePart(_OUT, ((_OUTPUT, 1),), prices["output_per_mtok"]))
    return PricePlan(tuple(parts))


# --- genai-prices prices as plans --------------------------------------------------
_GENAI_USAGE_KEYS: Final = {
    "input_tokens": _INPUT,
    "output_tokens": _OUTPUT,
    "cache_read_tokens": _CACHE_READ,
    "cache_write_tokens": _CACHE_WRITE,
    "output_reasoning_tokens": _REASONING,
}
"""genai-prices usage keys our canonical counts fill (its counts are inclusive too)."""
_REQUESTS: Final = "requests"


class GenaiUnits:
    """genai-prices' unit registry, and which units our five counts cannot settle.

    genai-prices infers an unreported unit's count as 0 unless a reported, more
    specific unit (or a pair that joins into it) says otherwise, in which case it
    raises. A plan is compiled only when every priced unit is one of ours or
    provably 0 (``ambiguous`` is empty for the bundled registry).
    """

    __slots__ = ("ambiguous", "registry", "units")

    def __init__(self, registry: UnitRegistry) -> None:
        self.registry = registry
        self.units: tuple[UnitDef, ...] = tuple(registry.units.values())
        ours = [unit for unit in self.units if unit.usage_key in _GENAI_USAGE_KEYS]
        self.ambiguous = frozenset(
            unit.usage_key
            for unit in self.units
            if unit.usage_key not in _GENAI_USAGE_KEYS
            and unit.usage_key != _REQUESTS
            and _inferable_from(unit, ours)
        )


def _within(ancestor: UnitDef, unit: UnitDef) -> bool:
    return ancestor.dimensions.items() <= unit.dimensions.items()


def _inferable_from(unit: UnitDef, ours: list[UnitDef]) -> bool:
    if any(_within(unit, other) for other in ours):
        return True
    for left in ours:
        for right in ours:
            joined = {**left.dimensions, **right.dimensions}
            nested = _within(left, right) or _within(right, left)
            if left.is_compatible_with(right) and not nested and joined == unit.dimensions:
                return True
    return False


def plan_from_genai(model_price: ModelPrice, units: GenaiUnits) -> PricePlan:
    """The plan whose cost equals ``model_price.calc_price`` for our usage.

    Leaf counts follow genai-prices' decomposition: each priced unit's count minus
    the leaf counts of its priced, more specific units (so cache reads leave input
    only when they have a price of their own, and reasoning leaves output only
    when reasoning has its own price).

    Raises:
        ValueError: genai-prices itself would reject these prices, or they price a
            unit our counts cannot tell apart (none in the bundled data; a test
            checks every bundled model compiles).
    """
    from genai_prices.types import TieredPrices
    from genai_prices.validation import validate_priced_units

    priced: list[tuple[UnitDef, Decimal | TieredPrices]] = []
    for unit in units.units:
        value = model_price.__dict__.get(unit.price_key)
        if value is None:
            continue
        if not _valid_genai_price(value, TieredPrices):
            raise ValueError(f"invalid price value for {unit.price_key}")
        if unit.usage_key in units.ambiguous:
            raise ValueError(f"{unit.usage_key} cannot be derived from our usage counts")
        priced.append((unit, value))
    validate_priced_units([unit for unit, _ in priced], units.registry)
    tokens = sorted(
        (unit for unit, _ in priced if unit.usage_key != _REQUESTS),
        key=lambda unit: (-len(unit.dimensions), unit.usage_key),
    )
    leaves: dict[str, dict[int, int]] = {}
    for unit in tokens:
        terms: dict[int, int] = {}
        if unit.usage_key in _GENAI_USAGE_KEYS:
            terms[_GENAI_USAGE_KEYS[unit.usage_key]] = 1
        for other in tokens:
            if other is not unit and _within(unit, other):
                for position, sign in leaves[other.usage_key].items():
                    terms[position] = terms.get(position, 0) - sign
        leaves[unit.usage_key] = {pos: sign for pos, sign in terms.items() if sign}
    parts = [
        _genai_part(unit, value, leaves.get(unit.usage_key), TieredPrices) for unit, value in priced
    ]
    return PricePlan(tuple(parts))


def _valid_genai_price(value: object, tiered: type[TieredPrices]) -> bool:
    def ok(price: object) -> bool:
        return isinstance(price, Decimal) and price.is_finite() and price >= 0

    if isinstance(value, tiered):
        starts = [tier.start for tier in value.tiers]
        return (
            ok(value.base)
            and all(ok(tier.price) for tier in value.tiers)
            and all(type(start) is int and start >= 0 for start in starts)
            and starts == sorted(starts)
        )
    return ok(value)


def _genai_part(
    unit: UnitDef,
    value: Decimal | TieredPrices,
    leaf: dict[int, int] | None,
    tiered: type[TieredPrices],
) -> PricePart:
    tiers: tuple[tuple[int, Decimal], ...] = ()
    price = value
    if isinstance(value, tiered):
        price = value.base
        tiers = tuple((tier.start, tier.price) for tier in reversed(value.tiers))
    assert isinstance(price, Decimal)
    return PricePart(
        bucket=_bucket(unit),
        terms=tuple(sorted((leaf or {}).items())),
        price=price,
        per=unit.per,
        tiers=tiers,
        fixed_count=1 if unit.usage_key == _REQUESTS else None,
    )


def _bucket(unit: UnitDef) -> int:
    token_type = unit.dimensions.get("token_type")
    if token_type == "cache_read":
        return _READ
    if token_type == "cache_write":
        return _WRITE
    direction = unit.dimensions.get("direction")
    if direction == "input":
        return _IN
    if direction == "output":
        return _OUT
    return _OTHER
