"""Shared fixtures: a clean environment per test and a fresh in-memory pipeline."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm import diagnostics

_PREFIXES = ("OTEL_", "LANGFUSE_", "OTEL_LLM_")

# Our own bugs must fail our tests: internal guards re-raise in strict mode.
os.environ["OTEL_LLM_STRICT"] = "1"


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith(_PREFIXES) and key != "OTEL_LLM_STRICT":
            monkeypatch.delenv(key)
    # Each test gets its own spool: batches one test could not deliver must never be
    # replayed into another test's server (or the user's real cache dir).
    monkeypatch.setenv("OTEL_LLM_SPOOL_DIR", str(tmp_path_factory.mktemp("spool")))
    # configure() with nothing set writes to the embedded store: keep it per test.
    monkeypatch.setenv("OTEL_LLM_DB", str(tmp_path_factory.mktemp("db") / "traces.db"))
    diagnostics.reset_for_tests()
    yield
    otel_llm.shutdown(2.0)


@pytest.fixture
def memory() -> otel_llm.InMemory:
    return otel_llm.InMemory()


@pytest.fixture
def pipeline(memory: otel_llm.InMemory) -> Iterator[otel_llm.Pipeline]:
    """A pipeline on its own provider, exporting to ``memory``."""
    p = otel_llm.configure(destinations=[memory], tracer_provider=TracerProvider())
    yield p
    p.shutdown(2.0)


def spans_by_name(memory: otel_llm.InMemory) -> dict[str, object]:
    return {s.name: s for s in memory.spans}
