"""The cost stage: provider cost > pricing= > genai-prices, never a confident 0, offline."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from datetime import time as dt_time
from fractions import Fraction
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, calc_price
from genai_prices.data import providers as genai_providers
from genai_prices.data_snapshot import DataSnapshot, set_custom_snapshot
from genai_prices.data_units import unit_data
from genai_prices.types import ModelPrice, StartDateConstraint, TimeOfDateConstraint
from genai_prices.units import UnitRegistry
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_llm.errors import ConfigError
from otel_llm.processing.cost import PriceBook, _when, compile_prices, derive_cost
from otel_llm.processing.pricing import GenaiUnits, plan_from_genai
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext

COST = "gen_ai.usage.cost"
UNPRICED = "otel_llm.cost.unpriced"
SOURCE = "otel_llm.cost.source"
VERSION = "otel_llm.cost.price_version"
PARTS = ("otel_llm.cost.input", "otel_llm.cost.output")
CACHE_PARTS = ("otel_llm.cost.cache_read", "otel_llm.cost.cache_creation")
GENAI_VERSION = f"genai-prices=={genai_prices.__version__}"

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
WHEN = datetime(2025, 6, 2, 12, 0, tzinfo=timezone.utc)  # on-peak for DeepSeek
WHEN_NS = int(WHEN.timestamp()) * 1_000_000_000

# Our provider names → genai-prices ids, as the stage is documented to map them.
GENAI_ID = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "mistral_ai": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "x_ai": "x-ai",
    "cohere": "cohere",
    "perplexity": "perplexity",
    None: None,
}

REAL_MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3-mini"),
    ("openai", "gpt-4.1"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("gcp.gemini", "gemini-2.0-flash"),
    ("gcp.gemini", "gemini-2.5-pro"),
    ("mistral_ai", "mistral-large-latest"),
    ("deepseek", "deepseek-chat"),
    ("x_ai", "grok-3"),
    ("groq", "llama-3.3-70b-versatile"),
    ("cohere", "command-r-plus"),
    ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("azure.ai.openai", "gpt-4o"),
    ("gcp.vertex_ai", "claude-sonnet-4"),
    ("perplexity", "sonar"),  # a per-request fee on top of tokens
    ("perplexity", "sonar-deep-research"),  # reasoning tokens priced apart
    (None, "gpt-4o"),
    (None, "claude-sonnet-4-20250514"),
]

# (input, output, cache_read, cache_creation, reasoning): inclusive counts.
USAGES = [
    (1_000, 500, 0, 0, 0),
    (12_000, 3_000, 8_000, 2_000, 1_200),
    (250_000, 9_000, 100_000, 50_000, 4_000),  # above Gemini 2.5 Pro's 200k tier
]
USAGE_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
)
GENAI_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_reasoning_tokens",
)


def make_record(
    model: str | None = "gpt-4o",
    provider: str | None = "openai",
    usage: tuple[Any, ...] | None = (1_000, 500, 0, 0, 0),
    start_ns: int = WHEN_NS,
    extra: dict[str, Any] | None = None,
) -> SpanRecord:
    attributes: dict[str, Any] = {"otel_llm.observation.type": "generation", **(extra or {})}
    if model is not None:
        attributes["gen_ai.request.model"] = model
    if provider is not None:
        attributes["gen_ai.provider.name"] = provider
    if usage is not None:
        attributes.update({k: v for k, v in zip(USAGE_KEYS, usage, strict=True) if v is not None})
    return SpanRecord(
        trace_id=1,
        span_id=2,
        name="chat",
        start_time=start_ns,
        end_time=start_ns + 1,
        attributes=attributes,
    )


def genai_reference(
    provider: str | None, model: str, usage: tuple[Any, ...], when: datetime = WHEN
) -> Any:
    values = {k: v for k, v in zip(GENAI_KEYS, usage, strict=True) if v is not None}
    return calc_price(
        Usage(**values), model, provider_id=GENAI_ID[provider], genai_request_timestamp=when
    )


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return compile_prices(None)


def run(record: SpanRecord, prices: PriceBook | None) -> StageContext:
    ctx = StageContext(prices=prices)
    derive_cost(record, ctx)
    return ctx


# --- genai-prices parity -------------------------------------------------------------
@pytest.mark.parametrize("usage", USAGES)
@pytest.mark.parametrize(("provider", "model"), REAL_MODELS)
def test_cost_equals_genai_calc_price(
    book: PriceBook, provider: str | None, model: str, usage: tuple[int, ...]
) -> None:
    record = make_record(model, provider, usage)
    ctx = run(record, book)
    expected = genai_reference(provider, model, usage)
    attrs = record.attributes
    assert attrs[COST] == pytest.approx(float(expected.total_price), rel=0, abs=1e-12)
    assert attrs[SOURCE] == "genai-prices"
    assert attrs[VERSION] == GENAI_VERSION
    assert attrs["otel_llm.cost.currency"] == "USD"
    assert UNPRICED not in attrs
    assert ctx.counters["cost.priced"] == 1
    # The named parts split genai-prices' input/output sums; request fees are in the total only.
    inputs = sum(attrs.get(key, 0.0) for key in ("otel_llm.cost.input", *CACHE_PARTS))
    assert inputs == pytest.approx(float(expected.input_price), rel=1e-12, abs=1e-15)
    assert attrs["otel_llm.cost.output"] == pytest.approx(float(expected.output_price), rel=1e-12)


def test_every_bundled_model_compiles_to_a_plan() -> None:
    units = GenaiUnits(UnitRegistry(unit_data))
    assert not units.ambiguous  # our five counts decide every registered unit
    for provider in genai_providers:
        for model in provider.models:
            prices = model.prices
            variants = [prices] if isinstance(prices, ModelPrice) else [c.prices for c in prices]
            for model_price in variants:
                plan_from_genai(model_price, units)  # raises if we could not reproduce it


def test_sweep_of_all_bundled_models_matches_genai(book: PriceBook) -> None:
    rng = random.Random(7)
    compared = 0
    for provider in genai_providers:
        for model in provider.models:
            for when in (WHEN, datetime(2025, 6, 2, 20, 0, tzinfo=timezone.utc)):
                inp = rng.choice([0, 1, 999, 150_000, 300_000, 2_000_000])
                cache_read = rng.randint(0, inp // 2)
                cache_write = rng.randint(0, (inp - cache_read) // 2)
                out = rng.choice([0, 7, 4_000, 120_000])
                usage = (inp, out, cache_read, cache_write, rng.randint(0, out))
                try:
                    ref = calc_price(
                        Usage(**dict(zip(GENAI_KEYS, usage, strict=True))),
                        model.id,
                        provider_id=provider.id,
                        genai_request_timestamp=when,
                    )
                except LookupError:
                    continue  # the model's id does not match its own rule in this data
                ns = int(when.timestamp()) * 1_000_000_000
                result = book.price(provider.id, model.id, usage, ns)
                assert not isinstance(result, str), (provider.id, model.id, result)
                assert result.total == float(ref.total_price), (provider.id, model.id, usage)
                compared += 1
    assert compared > 3000


def test_time_of_day_prices_follow_the_span_start(book: PriceBook) -> None:
    usage = (10_000, 2_000, 4_000, 0, 0)
    off_peak = datetime(2025, 6, 2, 18, 0, tzinfo=timezone.utc)
    costs = []
    for when in (WHEN, off_peak):
        record = make_record("deepseek-chat", "deepseek", usage, int(when.timestamp()) * 10**9)
        run(record, book)
        expected = genai_reference("deepseek", "deepseek-chat", usage, when)
        assert record.attributes[COST] == float(expected.total_price)
        costs.append(record.attributes[COST])
    assert costs[0] != costs[1]


def _instants_around(model: Any) -> list[datetime]:
    """Every condition boundary of ``model`` (and 1 µs either side), plus a daily grid."""
    days = [datetime(2024, 3, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc)]
    instants = [day + timedelta(minutes=127 * i) for day in days for i in range(12)]
    for conditional in model.prices:
        constraint = conditional.constraint
        if isinstance(constraint, StartDateConstraint):
            edges = [datetime.combine(constraint.start_date, dt_time(), timezone.utc)]
        elif isinstance(constraint, TimeOfDateConstraint):
            times = (constraint.start_time, constraint.end_time)
            edges = [datetime.combine(day.date(), t, timezone.utc) for day in days for t in times]
        else:
            continue
        one = timedelta(microseconds=1)
        instants += [edge + delta for edge in edges for delta in (-one, timedelta(0), one)]
    return instants


def test_conditional_prices_match_genai_at_every_boundary(book: PriceBook) -> None:
    usage = (10_000, 2_000, 4_000, 0, 0)
    checked = 0
    for provider in genai_providers:
        for model in provider.models:
            if not isinstance(model.prices, list) or len(model.prices) < 2:
                continue
            for when in _instants_around(model):
                ref = model.calc_price(
                    Usage(**dict(zip(GENAI_KEYS, usage, strict=True))),
                    provider,
                    genai_request_timestamp=when,
                )
                ns = (when - EPOCH) // timedelta(microseconds=1) * 1_000
                priced = book.price(provider.id, model.id, usage, ns)
                if isinstance(priced, str):
                    continue  # the model's id does not match its own rule
                assert priced.total == float(ref.total_price), (model.id, when)
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (dt_time(22, 0, tzinfo=timezone.utc), dt_time(2, 0, tzinfo=timezone.utc)),  # wraps
        (dt_time(1, 0), dt_time(4, 30)),  # naive: UTC
        (dt_time(9, 0, tzinfo=timezone(timedelta(hours=8))), dt_time(17, 0, tzinfo=timezone.utc)),
    ],
)
def test_time_windows_agree_with_genai(start: dt_time, end: dt_time) -> None:
    constraint = TimeOfDateConstraint(start_time=start, end_time=end)
    active = _when(constraint)
    day = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for minute in range(0, 24 * 60, 7):
        for delta in (timedelta(0), timedelta(microseconds=-1)):
            when = day + timedelta(minutes=minute) + delta
            ns = (when - EPOCH) // timedelta(microseconds=1) * 1_000
            assert active(ns) == constraint.active(when), when


def test_non_integral_usage_is_priced_exactly(book: PriceBook) -> None:
    usage = (1234.5, 321.25, 200.5, 0.0, 0.0)
    record = make_record("gpt-4o", "openai", usage)
    run(record, book)
    expected = genai_reference("openai", "gpt-4o", usage)
    assert record.attributes[COST] == pytest.approx(float(expected.total_price), abs=1e-12)


_SHARED_BOOK = compile_prices(None)  # hypothesis runs many examples per function call


@settings(max_examples=200, deadline=None)
@given(
    model=st.sampled_from(REAL_MODELS),
    inp=st.integers(0, 3_000_000),
    out=st.integers(0, 200_000),
    read_share=st.fractions(0, 1),
    write_share=st.fractions(0, 1),
    reasoning_share=st.fractions(0, 1),
)
def test_property_matches_calc_price(
    model: tuple[str | None, str],
    inp: int,
    out: int,
    read_share: Fraction,
    write_share: Fraction,
    reasoning_share: Fraction,
) -> None:
    cache_read = int(inp * read_share)
    cache_write = int((inp - cache_read) * write_share)
    usage = (inp, out, cache_read, cache_write, int(out * reasoning_share))
    provider, name = model
    record = make_record(name, provider, usage)
    run(record, _SHARED_BOOK)
    expected = genai_reference(provider, name, usage)
    assert record.attributes[COST] == pytest.approx(float(expected.total_price), abs=1e-12)


# --- provider-reported cost wins ------------------------------------------------------
def test_provider_cost_float_wins(book: PriceBook) -> None:
    record = make_record(extra={"otel_llm.cost.raw": "0.0123"})
    ctx = run(record, book)
    attrs = record.attributes
    assert attrs[COST] == 0.0123
    assert attrs[SOURCE] == "provider"
    assert attrs["otel_llm.cost.currency"] == "USD"
    assert VERSION not in attrs
    assert not any(key in attrs for key in PARTS)
    assert "otel_llm.cost.raw" not in attrs
    assert ctx.counters["cost.priced"] == 1


def test_provider_cost_dict_with_breakdown_wins(book: PriceBook) -> None:
    raw = json.dumps({"total": 0.5, "input": 0.2, "output": 0.3})
    record = make_record("unknown-model", extra={"otel_llm.cost.raw": raw})
    run(record, book)
    attrs = record.attributes
    assert (attrs[COST], attrs["otel_llm.cost.input"], attrs["otel_llm.cost.output"]) == (
        0.5,
        0.2,
        0.3,
    )
    assert attrs[SOURCE] == "provider"
    assert UNPRICED not in attrs


def test_provider_cost_dict_without_total_sums_parts(book: PriceBook) -> None:
    raw = '{"input": 0.25, "output": 0.5}'
    record = make_record(usage=None, extra={"otel_llm.cost.raw": raw})
    run(record, book)
    assert record.attributes[COST] == 0.75
    assert "otel_llm.cost.raw" not in record.attributes  # all of it is in attributes now


def test_provider_cost_with_other_parts_keeps_raw(book: PriceBook) -> None:
    # Langfuse cost_details may name any usage type: every number counts in the total.
    raw = '{"input": 0.25, "output": 0.5, "input_audio": 0.125, "note": "batch"}'
    record = make_record(extra={"otel_llm.cost.raw": raw})
    run(record, book)
    attrs = record.attributes
    assert attrs[COST] == 0.875
    assert attrs["otel_llm.cost.input"] == 0.25
    assert attrs["otel_llm.cost.raw"] == raw


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '"0.5"',
        "-1",
        '{"total": -2}',
        '{"total": 1, "input": "x"}',
        '{"input": 1, "extra": -1}',
        '{"note": "x"}',
        "[1]",
        "{}",
    ],
)
def test_invalid_provider_cost_is_counted_and_prices_apply(book: PriceBook, raw: str) -> None:
    record = make_record(extra={"otel_llm.cost.raw": raw})
    ctx = run(record, book)
    assert ctx.counters["cost.invalid_raw"] == 1
    assert record.attributes[SOURCE] == "genai-prices"
    assert record.attributes["otel_llm.cost.raw"] == raw  # kept for the user to see


def test_cost_already_on_the_span_is_kept(book: PriceBook) -> None:
    record = make_record(extra={COST: 9.5})
    run(record, book)
    assert record.attributes[COST] == 9.5
    assert record.attributes[SOURCE] == "provider"


# --- pricing= overrides ----------------------------------------------------------------
def test_pricing_dict_overrides_genai() -> None:
    prices = compile_prices(
        {
            "gpt-4o": {
                "input_per_mtok": 2.0,
                "output_per_mtok": 8.0,
                "cache_read_per_mtok": 0.5,
                "cache_write_per_mtok": 2.5,
            }
        }
    )
    record = make_record(usage=(1_000_000, 1_000_000, 400_000, 100_000, 0))
    run(record, prices)
    attrs = record.attributes
    assert attrs[COST] == pytest.approx(0.5 * 2.0 + 8.0 + 0.4 * 0.5 + 0.1 * 2.5)
    assert attrs["otel_llm.cost.input"] == pytest.approx(1.0)
    assert attrs["otel_llm.cost.cache_read"] == pytest.approx(0.2)
    assert attrs["otel_llm.cost.cache_creation"] == pytest.approx(0.25)
    assert attrs[SOURCE] == "pricing"
    assert attrs[VERSION].startswith("pricing:")


def test_without_cache_price_cached_tokens_bill_as_input() -> None:
    prices = compile_prices({"m": {"input_per_mtok": 1, "output_per_mtok": 0}})
    record = make_record("m", None, (1_000_000, 10, 600_000, 0, 0))
    run(record, prices)
    assert record.attributes[COST] == pytest.approx(1.0)
    assert not any(key in record.attributes for key in CACHE_PARTS)


def test_exact_name_beats_regex_and_regexes_go_in_order(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "re:ft:.*": {"input_per_mtok": 1, "output_per_mtok": 1},
                "re:ft:gpt-4o-mini:.*": {"input_per_mtok": 2, "output_per_mtok": 2},
                "FT:gpt-4o-mini:acme": {"input_per_mtok": 3, "output_per_mtok": 3},
            }
        )
    )
    prices = compile_prices(path)
    costs = {}
    for model in ("ft:gpt-4o-mini:acme", "ft:gpt-4o-mini:other", "ft:x", "xft:x"):
        record = make_record(model, "openai", (1_000_000, 0, 0, 0, 0))
        run(record, prices)
        costs[model] = record.attributes.get(COST)
    # Exact (case-insensitive) first; then the FIRST matching regex; fullmatch only.
    assert costs == {
        "ft:gpt-4o-mini:acme": 3.0,
        "ft:gpt-4o-mini:other": 1.0,
        "ft:x": 1.0,
        "xft:x": None,
    }


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        textwrap.dedent(
            """
            ["my-model"]
            input_per_mtok = 3
            output_per_mtok = 15.5

            ["re:acme-.*"]
            input_per_mtok = 0.1
            output_per_mtok = 0.2
            """
        )
    )
    prices = compile_prices(str(path))
    for model, expected in (("my-model", 3 + 15.5), ("acme-7b", 0.3)):
        record = make_record(model, None, (1_000_000, 1_000_000, 0, 0, 0))
        run(record, prices)
        assert record.attributes[COST] == pytest.approx(expected)
        assert record.attributes[SOURCE] == "pricing"


def test_price_version_names_the_table() -> None:
    table = {"m": {"input_per_mtok": 1, "output_per_mtok": 2}}
    versions = set()
    for prices in (table, dict(table), {"m": {"input_per_mtok": 1, "output_per_mtok": 3}}):
        record = make_record("m", None)
        run(record, compile_prices(prices))
        versions.add(record.attributes[VERSION])
    assert len(versions) == 2


@pytest.mark.parametrize(
    ("pricing", "words"),
    [
        ({"m": {"input_per_mtok": 1, "output_per_mtok": 1, "cached": 1}}, ["'m'", "cached"]),
        ({"m": {"input_per_mtok": -1, "output_per_mtok": 1}}, ["'m'", "negative"]),
        ({"m": {"input_per_mtok": "1", "output_per_mtok": 1}}, ["'m'", "number"]),
        ({"m": {"input_per_mtok": True, "output_per_mtok": 1}}, ["'m'", "number"]),
        ({"m": {"input_per_mtok": float("nan"), "output_per_mtok": 1}}, ["'m'", "finite"]),
        ({"m": {"input_per_mtok": float("inf"), "output_per_mtok": 1}}, ["'m'", "finite"]),
        ({"m": {"input_per_mtok": 1}}, ["'m'", "output_per_mtok"]),
        ({"m": 2.0}, ["'m'", "table"]),
        ({"re:(": {"input_per_mtok": 1, "output_per_mtok": 1}}, ["'re:('", "regular expression"]),
        ({"re:": {"input_per_mtok": 1, "output_per_mtok": 1}}, ["'re:'", "empty"]),
        ({"": {"input_per_mtok": 1, "output_per_mtok": 1}}, ["non-empty"]),
        (
            {
                "M": {"input_per_mtok": 1, "output_per_mtok": 1},
                "m": {"input_per_mtok": 1, "output_per_mtok": 1},
            },
            ["'m'", "twice"],
        ),
        ([("m", 1)], ["mapping"]),
    ],
)
def test_malformed_pricing_raises_config_error(pricing: Any, words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_prices(pricing)
    assert caught.value.setting == "pricing"
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("p.json", "{not json", ["JSON"]),
        ("p.toml", "[m\ninput_per_mtok = 1", ["TOML"]),
        ("p.yaml", "m: {}", [".json or .toml"]),
        ("p.json", "[1, 2]", ["model names"]),
        ("p.json", '{"m": {"input_per_mtok": 1, "output_per_mtok": -3}}', ["'m'", "negative"]),
        ("missing.json", None, ["cannot read"]),
    ],
)
def test_malformed_pricing_file_raises_config_error(
    tmp_path: Path, name: str, content: str | None, words: list[str]
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        compile_prices(path)
    assert caught.value.source == str(path)
    for word in words:
        assert word in str(caught.value)


# --- unpriced, never a confident 0 -------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("definitely-not-a-model-xyz", None),
        ("definitely-not-a-model-xyz", "openai"),
        ("gpt-4o", "my-self-hosted-server"),  # a provider genai-prices does not know
        (None, "openai"),  # usage but no model
    ],
)
def test_unknown_model_is_unpriced(book: PriceBook, model: str | None, provider: str) -> None:
    record = make_record(model, provider)
    ctx = run(record, book)
    assert record.attributes[UNPRICED] is True
    assert COST not in record.attributes
    assert SOURCE not in record.attributes
    assert ctx.counters["cost.unpriced"] == 1
    assert ctx.counters["cost.priced"] == 0


@pytest.mark.parametrize(
    "usage",
    [
        (100, 10, 80, 40, 0),  # cached tokens exceed the inclusive input count
        (100, 10, 0, 0, 11),  # reasoning exceeds the inclusive output count
        (-1, 10, 0, 0, 0),
        (True, 10, 0, 0, 0),
        ("100", 10, 0, 0, 0),
        (float("nan"), 10, 0, 0, 0),
        (2**70, 10, 0, 0, 0),
    ],
)
def test_invalid_usage_is_unpriced_and_counted(book: PriceBook, usage: tuple[Any, ...]) -> None:
    record = make_record(usage=usage)
    ctx = run(record, book)
    assert record.attributes[UNPRICED] is True
    assert COST not in record.attributes
    assert ctx.counters["cost.invalid_usage"] == 1
    assert ctx.counters["cost.unpriced"] == 1


def test_no_usage_and_no_cost_does_nothing(book: PriceBook) -> None:
    record = make_record(usage=None)
    before = dict(record.attributes)
    ctx = run(record, book)
    assert record.attributes == before
    assert not ctx.counters


@pytest.mark.parametrize("operation", ["invoke_agent", "agent_step"])
def test_an_agent_run_is_not_priced_from_its_summed_usage(book: PriceBook, operation: str) -> None:
    record = make_record(extra={"gen_ai.operation.name": operation})
    before = dict(record.attributes)
    ctx = run(record, book)
    assert record.attributes == before  # no cost, and not "unpriced" either
    assert ctx.counters == {"cost.aggregate_not_priced": 1}
    # A cost reported on it is the caller's own statement: kept.
    record = make_record(extra={"gen_ai.operation.name": operation, "otel_llm.cost.raw": "0.5"})
    run(record, book)
    assert record.attributes[COST] == 0.5 and record.attributes[SOURCE] == "provider"
    # Its model calls are priced as usual.
    record = make_record(extra={"gen_ai.operation.name": "chat"})
    run(record, book)
    assert record.attributes[COST] > 0


def test_zero_tokens_cost_zero_with_provenance(book: PriceBook) -> None:
    record = make_record(usage=(0, 0, None, None, None))
    run(record, book)
    assert record.attributes[COST] == 0.0
    assert record.attributes[SOURCE] == "genai-prices"


def test_response_model_wins_over_request_model(book: PriceBook) -> None:
    record = make_record("gpt-4o", "openai", extra={"gen_ai.response.model": "gpt-4o-mini"})
    run(record, book)
    expected = genai_reference("openai", "gpt-4o-mini", (1_000, 500, 0, 0, 0))
    assert record.attributes[COST] == float(expected.total_price)


def test_default_book_when_context_has_none() -> None:
    ctx = StageContext()
    for _ in range(2):
        record = make_record()
        derive_cost(record, ctx)
        assert record.attributes[SOURCE] == "genai-prices"
    assert ctx.counters["cost.priced"] == 2


def test_memo_is_bounded() -> None:
    prices = compile_prices(None)
    for i in range(5000):
        prices.price(None, f"no-such-model-{i}", (1, 1, 0, 0, 0), WHEN_NS)
    assert len(prices._memo) <= 4096


# --- offline -----------------------------------------------------------------------------
def test_prices_fetched_by_an_update_task_are_not_used() -> None:
    # What genai_prices.UpdatePrices installs after a download: here, a snapshot without
    # any provider. calc_price() would now fail; our stage keeps the bundled prices.
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    try:
        with pytest.raises(LookupError):
            calc_price(Usage(input_tokens=1), "gpt-4o", provider_id="openai")
        record = make_record()
        run(record, compile_prices(None))
        assert record.attributes[VERSION] == GENAI_VERSION
    finally:
        set_custom_snapshot(None)


_OFFLINE_SCRIPT = """
import sys, threading
# otel_llm's own imports are not under test (urllib3 probes IPv6 support at import);
# genai-prices is imported lazily, on the first span, so after the hook.
from otel_llm.processing.cost import compile_prices, derive_cost
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext
assert "genai_prices" not in sys.modules

attempts = []
def audit(event, args):
    if event.startswith(("socket.", "http.client.")) or event == "urllib.Request":
        attempts.append(event)
sys.addaudithook(audit)

ctx = StageContext(prices=compile_prices(None))
models = ["gpt-4o", "claude-sonnet-4-20250514", "gemini-2.5-pro", "deepseek-chat", "nope-9"]
for i, model in enumerate(models * 20):
    record = SpanRecord(trace_id=1, span_id=i + 1, name="x", start_time=1, end_time=2,
                        attributes={"gen_ai.request.model": model,
                                    "gen_ai.usage.input_tokens": 10 + i,
                                    "gen_ai.usage.output_tokens": 5})
    derive_cost(record, ctx)
assert ctx.counters["cost.priced"] == 80, ctx.counters
import genai_prices.update_prices as update_prices
assert update_prices._shared_updater.thread is None
assert update_prices._shared_updater.ref_count == 0
assert not [t for t in threading.enumerate() if t.name.startswith("genai_prices")]
print("attempts:", attempts)
"""


def test_genai_prices_never_touches_the_network() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "ALL_PROXY": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "attempts: []" in done.stdout
