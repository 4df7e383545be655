"""The precomputed genai-prices table: exactly genai-prices' answers, used only when current."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from otel_llm.processing import price_table
from otel_llm.processing.cost import GenaiPrices, PriceBook, compile_prices
from otel_llm.processing.price_table import (
    TABLE_FILE,
    installed_genai_version,
    load_table,
    plan_from_spec,
    plan_spec,
)
from otel_llm.processing.price_table_build import build_table, main, model_refs, render

USAGE = (12_000, 900, 3_000, 1_000, 100)


@pytest.fixture(scope="module")
def genai() -> GenaiPrices:
    return GenaiPrices()


@pytest.fixture(scope="module")
def committed() -> dict[str, object]:
    table: dict[str, object] = orjson.loads(TABLE_FILE.read_bytes())
    return table


def test_committed_table_is_what_the_installed_genai_prices_answers(
    genai: GenaiPrices, committed: dict[str, object]
) -> None:
    if committed["genai_prices"] != installed_genai_version():
        # Another genai-prices than the table's: the table must not be used at all.
        assert load_table() is None
        pytest.skip(f"table is for genai-prices {committed['genai_prices']}: run make prices")
    assert render(build_table(genai)) == TABLE_FILE.read_bytes(), "stale: run make prices"


def test_table_covers_every_model_id_under_its_provider(
    genai: GenaiPrices, committed: dict[str, object]
) -> None:
    entries = committed["entries"]
    assert isinstance(entries, dict)
    missing = [
        (provider.id, model.id)
        for provider in genai.providers
        for model in provider.models
        if price_table.table_key(provider.id, model.id) not in entries
        and genai.spec(provider.id, model.id) is not None  # genai-prices answers it
    ]
    assert missing == []
    assert len(entries) > 2 * sum(len(p.models) for p in genai.providers) * 0.8


def test_plans_round_trip_through_their_spec(genai: GenaiPrices) -> None:
    plans = 0
    for provider in genai.providers:
        for model in provider.models:
            variants = genai.variants(provider.id, model.id)
            if not isinstance(variants, list):
                continue
            for _, plan in variants:
                text = orjson.dumps(plan_spec(plan))
                again = plan_from_spec(orjson.loads(text))
                assert again.parts == plan.parts, (provider.id, model.id)
                assert again.compute(USAGE) == plan.compute(USAGE), (provider.id, model.id)
                plans += 1
    assert plans > 2000


def _book_without_table() -> PriceBook:
    book = compile_prices(None)
    book._table_loaded = True  # as when the table is for another genai-prices version
    book._table = None
    return book


def test_every_table_entry_prices_like_genai_prices_itself() -> None:
    """Table answers vs live genai-prices answers, at times either side of each condition."""
    table = load_table()
    assert table is not None
    via_table, live = compile_prices(None), _book_without_table()
    starts = [
        int(datetime(year, month, 2, hour, tzinfo=timezone.utc).timestamp()) * 10**9
        for year, month in ((2024, 1), (2025, 6), (2026, 11))
        for hour in (0, 9, 17, 23)
    ]
    compared = 0
    for key in table._entries:
        provider, model = key.split("\x00")
        for start in starts:
            ours = via_table.price(provider or None, model, USAGE, start)
            theirs = live.price(provider or None, model, USAGE, start)
            assert ours == theirs, (provider, model, start)
            compared += 1
    assert compared > 40_000
    assert live._genai is not None and via_table._genai is None  # never needed genai-prices


def test_model_refs_include_exact_aliases(genai: GenaiPrices) -> None:
    refs = {ref for provider in genai.providers for m in provider.models for ref in model_refs(m)}
    ids = {m.id for provider in genai.providers for m in provider.models}
    assert ids < refs  # aliases from `equals` clauses beyond the ids


def test_a_table_for_another_version_or_format_is_not_used(tmp_path: Path) -> None:
    data = orjson.loads(TABLE_FILE.read_bytes())
    changes = (
        {"genai_prices": "0.0.1"},
        {"format": 99},
        {"specs": [1]},
        {"entries": []},
        {"entries": {"openai\u0000gpt-4o": len(data["specs"])}},
        {"entries": {"openai\u0000gpt-4o": "0"}},
    )
    for change in changes:
        path = tmp_path / "table.json"
        path.write_bytes(orjson.dumps({**data, **change}))
        assert load_table(path) is None, change
    path.write_bytes(b"{not json")
    assert load_table(path) is None
    assert load_table(tmp_path / "absent.json") is None


def test_check_mode_reports_a_stale_table(tmp_path: Path) -> None:
    path = tmp_path / "table.json"
    assert main(["--out", str(path)]) == 0
    assert main(["--check", "--out", str(path)]) == 0
    path.write_bytes(path.read_bytes().replace(b'"0.', b'"9.', 1))
    assert main(["--check", "--out", str(path)]) == 1


_LIGHT_SCRIPT = """
import sys, time
from otel_llm.processing.cost import compile_prices
book = compile_prices(None)
now = time.time_ns()
for provider, model in [("openai", "gpt-4o-2024-08-06"), ("anthropic", "claude-sonnet-4-5"),
                        ("gcp.gemini", "gemini-2.5-pro"), (None, "GPT-4o-mini"),
                        ("azure.ai.openai", "gpt-4o-mini"),
                        ("azure.ai.inference", "deepseek-chat")]:
    assert not isinstance(book.price(provider, model, (1000, 100, 0, 0, 0), now), str), model
print("known:", "genai_prices" in sys.modules, "pydantic" in sys.modules)
print("unknown:", book.price("anthropic", "claude-sonnet-4-20250514", (1, 1, 0, 0, 0), now))
print("after:", "genai_prices" in sys.modules)
"""


def test_known_models_are_priced_without_importing_genai_prices() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LIGHT_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "known: False False"
    # A name only a prefix rule matches is not in the table: genai-prices decides, and prices it.
    assert lines[1].startswith("unknown: Priced(") and lines[2] == "after: True"


def test_time_conditioned_entries_follow_the_span_start(genai: GenaiPrices) -> None:
    """A time-conditioned model from the table follows the span's start like genai-prices."""
    table = load_table()
    assert table is not None
    conditioned = [
        key
        for key in table._entries
        if isinstance(spec := table.lookup(*_split(key)), list) and spec[-1][0] is not None
    ]
    assert conditioned, "the bundled data has time-conditioned prices"
    via_table, live = compile_prices(None), _book_without_table()
    base = datetime(2025, 6, 2, tzinfo=timezone.utc)
    for key in conditioned:
        for minutes in range(0, 24 * 60, 30):
            start = int((base + timedelta(minutes=minutes)).timestamp()) * 10**9
            provider, model = _split(key)
            assert via_table.price(provider, model, USAGE, start) == live.price(
                provider, model, USAGE, start
            )


def _split(key: str) -> tuple[str | None, str]:
    provider, model = key.split("\x00")
    return provider or None, model
