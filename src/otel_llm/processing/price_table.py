"""genai-prices' answers for the model names in its own data, precomputed at build time.

Why: importing genai-prices builds its whole price list as pydantic objects —
~15 MiB of memory and ~28k objects that every full garbage collection walks for
the life of the app — while the answer for a given model is fixed by the installed
package version. This table holds that answer (the price plans our cost stage
would compile from genai-prices, with their date and time-of-day conditions) for
every model id and exact alias genai-prices lists, asked under its provider and
under no provider.

It is generated from genai-prices itself (``make prices``, i.e. ``python -m
otel_llm.processing.price_table_build``), never edited by hand, and a test checks
it against the installed package. It is used only when the installed genai-prices
is the version it was generated from; any other model name, and any other
version, is resolved by genai-prices as before.

Plans are kept as JSON text and parsed only for a model a span names, so the
loaded table is one dict of strings, which the garbage collector does not track.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone
from datetime import time as dt_time
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from otel_llm.processing.pricing import PricePart, PricePlan

__all__ = [
    "FORMAT",
    "TABLE_FILE",
    "Active",
    "ConditionSpec",
    "EntrySpec",
    "PriceTable",
    "active_from_spec",
    "condition_spec",
    "installed_genai_version",
    "load_table",
    "plan_from_spec",
    "plan_spec",
    "table_key",
]

TABLE_FILE: Final = Path(__file__).with_name("genai_prices_table.json")
FORMAT: Final = 1
"""Bumped when the layout changes; a table of another format is not used."""

ConditionSpec = Sequence[Any]
"""``["since_day", days since 1970-01-01]`` or ``["utc_window", begin_us, end_us]``
(microseconds since UTC midnight, ``[begin, end)``, wrapping past midnight when
``end < begin``): genai-prices' start-date and time-of-day constraints."""

Active = Callable[[int], bool]
"""Whether a condition holds for a span that started at this time (ns since the epoch)."""

PartSpec = list[Any]
"""``[bucket, [[position, sign], ...], price, per, [[threshold, price], ...], fixed_count]``
with prices as decimal strings, so they come back as the exact ``Decimal``."""

EntrySpec = Literal["broken"] | list[Sequence[Any]]
"""A model's variants ``[[condition or None, [part, ...]], ...]``, or ``"broken"``
when genai-prices rejects its own data for the model."""

_NS_PER_US: Final = 1_000
_US_PER_DAY: Final = 86_400_000_000
_NS_PER_DAY: Final = 86_400 * 10**9
_EPOCH: Final = date(1970, 1, 1)


def table_key(provider_id: str | None, model: str) -> str:
    """The key of a lookup, as genai-prices sees it: the model name is lowercased."""
    return f"{provider_id or ''}\x00{model.lower()}"


def active_from_spec(spec: ConditionSpec) -> Active:
    """The condition as a test on a span's start time, without datetimes."""
    if spec[0] == "since_day":
        first_day: int = spec[1]
        return lambda start_ns: start_ns // _NS_PER_DAY >= first_day
    begin: int = spec[1]
    end: int = spec[2]
    if end < begin:
        return lambda start_ns: not end <= start_ns // _NS_PER_US % _US_PER_DAY < begin
    return lambda start_ns: begin <= start_ns // _NS_PER_US % _US_PER_DAY < end


def condition_spec(condition: object) -> ConditionSpec | None:
    """A genai-prices constraint as a spec, in UTC as genai-prices reads it; None for a
    constraint type newer than this code."""
    from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

    if isinstance(condition, StartDateConstraint):
        return ["since_day", (condition.start_date - _EPOCH).days]
    if isinstance(condition, TimeOfDateConstraint):
        return ["utc_window", _utc_us(condition.start_time), _utc_us(condition.end_time)]
    return None


def _utc_us(value: dt_time) -> int:
    """Microseconds since UTC midnight; a naive time is UTC (as in genai-prices)."""
    if value.tzinfo is not None:
        value = datetime.combine(_EPOCH, value).astimezone(timezone.utc).time()
    seconds = (value.hour * 60 + value.minute) * 60 + value.second
    return seconds * 1_000_000 + value.microsecond


def plan_spec(plan: PricePlan) -> list[PartSpec]:
    return [
        [
            part.bucket,
            [list(term) for term in part.terms],
            str(part.price),
            part.per,
            [[start, str(price)] for start, price in part.tiers],
            part.fixed_count,
        ]
        for part in plan.parts
    ]


def plan_from_spec(parts: list[PartSpec]) -> PricePlan:
    return PricePlan(
        tuple(
            PricePart(
                bucket=bucket,
                terms=tuple((position, sign) for position, sign in terms),
                price=Decimal(price),
                per=per,
                tiers=tuple((start, Decimal(tier_price)) for start, tier_price in tiers),
                fixed_count=fixed_count,
            )
            for bucket, terms, price, per, tiers, fixed_count in parts
        )
    )


class PriceTable:
    """The loaded table: lookup keys to the JSON text of an :data:`EntrySpec`."""

    __slots__ = ("_entries", "_specs", "genai_version")

    def __init__(self, genai_version: str, entries: dict[str, int], specs: list[str]) -> None:
        self.genai_version = genai_version
        self._entries = entries
        self._specs = specs

    def lookup(self, provider_id: str | None, model: str) -> EntrySpec | None:
        """genai-prices' answer for this lookup, or None when the table does not hold it
        (then genai-prices itself decides: a table miss is not "unpriced")."""
        index = self._entries.get(table_key(provider_id, model))
        if index is None:
            return None
        spec: EntrySpec = orjson.loads(self._specs[index])
        return spec

    def __len__(self) -> int:
        return len(self._entries)


def installed_genai_version() -> str | None:
    """The installed genai-prices version, read from its metadata (no import)."""
    try:
        return metadata.version("genai-prices")
    except metadata.PackageNotFoundError:
        return None


def load_table(path: Path = TABLE_FILE) -> PriceTable | None:
    """The table, if it exists and was generated from the installed genai-prices."""
    try:
        data = orjson.loads(path.read_bytes())
        version = data["genai_prices"]
        if data["format"] != FORMAT or version != installed_genai_version():
            return None
        specs = data["specs"]
        entries = data["entries"]
        if not (isinstance(specs, list) and all(isinstance(s, str) for s in specs)):
            return None
        count = len(specs)
        if not isinstance(entries, dict) or not all(
            type(index) is int and 0 <= index < count for index in entries.values()
        ):
            return None
        return PriceTable(version, entries, specs)
    except (OSError, ValueError, KeyError, TypeError):
        return None
