"""Fixtures for the local store: deterministic records, a filled database, the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace.status import StatusCode

from otel_llm import semconv
from otel_llm.local.destination import LocalStore
from otel_llm.processing.record import SpanRecord
from otel_llm.scores import Score

MS = 1_000_000
T0 = 1_700_000_000_000 * MS  # 2023-11-14, a fixed clock
_SCOPE = InstrumentationScope(semconv.SCOPE_NAME)


def make_record(
    trace: int,
    span: int,
    name: str,
    start_ms: float,
    end_ms: float,
    *,
    parent: int | None = None,
    error: bool = False,
    **attributes: Any,
) -> SpanRecord:
    return SpanRecord(
        trace_id=trace,
        span_id=span,
        name=name,
        start_time=T0 + int(start_ms * MS),
        end_time=T0 + int(end_ms * MS),
        attributes=dict(attributes),
        parent_span_id=parent,
        status_code=StatusCode.ERROR if error else StatusCode.UNSET,
        status_description="boom" if error else None,
        scope=_SCOPE,
    )


def trace_hex(trace: int) -> str:
    return f"{trace:032x}"


def span_hex(span: int) -> str:
    return f"{span:016x}"


def _common(user: str, session: str, release: str, version: str) -> dict[str, Any]:
    return {
        semconv.USER_ID: user,
        semconv.SESSION_ID: session,
        semconv.RELEASE: release,
        semconv.VERSION: version,
        semconv.ENVIRONMENT: "test",
        semconv.TRACE_TAGS: ("t", user),
    }


def _generation(model: str, tokens_in: int, tokens_out: int, cost: float | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        semconv.OBSERVATION_TYPE: "generation",
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: tokens_in,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: tokens_out,
        semconv.OBSERVATION_INPUT: '[{"role":"user","content":"hi <b>there</b>"}]',
        semconv.OBSERVATION_OUTPUT: f"answer from {model}",
    }
    if cost is not None:
        attrs[semconv.GEN_AI_USAGE_COST] = cost
    return attrs


def dataset_records() -> list[SpanRecord]:
    """Three traces (see the table in test_cli.py), children before parents, like real spans."""
    a1 = _common("alice", "s1", "r1", "v1")
    a2 = _common("alice", "s2", "r2", "v2")
    b3 = _common("bob", "s3", "r1", "v1")
    agent = {semconv.OBSERVATION_TYPE: "agent", semconv.OBSERVATION_INPUT: '{"q":"first"}'}
    return [
        make_record(
            1, 11, "answer", 100, 400, parent=10, **a1, **_generation("gpt-a", 100, 20, 0.01)
        ),
        make_record(1, 10, "request", 0, 1000, **a1, **agent, **{semconv.GEN_AI_IS_ENTRY: True}),
        make_record(
            2, 21, "answer", 100, 600, parent=20, **a2, **_generation("gpt-b", 200, 40, 0.02)
        ),
        make_record(
            2,
            22,
            "retry",
            700,
            800,
            parent=20,
            error=True,
            **a2,
            **_generation("gpt-a", 50, 10, 0.005),
        ),
        make_record(2, 20, "request", 10, 2010, **a2, **agent),
        make_record(3, 31, "answer", 50, 250, parent=30, **b3, **_generation("gpt-b", 10, 1, None)),
        make_record(3, 30, "batch", 20, 520, **b3, **{semconv.TRACE_NAME: "nightly-batch"}),
    ]


def dataset_scores() -> list[Score]:
    return [
        Score("quality", 1.0, "NUMERIC", trace_hex(1), observation_id=span_hex(11), comment="ok"),
        Score("helpful", 1.0, "BOOLEAN", trace_hex(1)),
        Score("helpful", 0.0, "BOOLEAN", trace_hex(2)),
        Score("label", "meh", "CATEGORICAL", trace_hex(2), observation_id=span_hex(20)),
    ]


def fill(path: Path) -> None:
    store = LocalStore(path)
    store.export(dataset_records())
    for score in dataset_scores():
        store.export_score(score)
    assert store.force_flush(10.0)
    assert store.shutdown(10.0)
    assert store.stats()["exported"] == len(dataset_records())


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "traces.db"
    fill(path)
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str


def _command() -> list[str]:
    installed = shutil.which("otel-llm", path=os.path.dirname(sys.executable))
    return [installed] if installed else [sys.executable, "-m", "otel_llm.cli"]


def run_cli(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """Run the installed ``otel-llm`` command in a subprocess."""
    done = subprocess.run(
        [*_command(), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


def names(spans: Sequence[Any]) -> set[str]:
    return {s.name for s in spans}
