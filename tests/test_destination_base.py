"""The destination base: scope filters, per-destination sampling and content policy, lifecycle."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm.export.base import ScopeFilter


@pytest.mark.parametrize(
    ("block", "allow", "scope", "allowed"),
    [
        ((), None, "anything", True),
        (("langfuse-sdk",), None, "langfuse-sdk", False),
        (("langfuse-sdk",), None, "langfuse-sdk-extra", True),
        (("opentelemetry.instrumentation.*",), None, "opentelemetry.instrumentation.httpx", False),
        ((), ("otel-llm", "openinference.*"), "openinference.instrumentation.openai", True),
        ((), ("otel-llm",), "other", False),
        (("otel-llm",), ("otel-*",), "otel-llm", False),
    ],
)
def test_scope_filter(
    block: tuple[str, ...], allow: tuple[str, ...] | None, scope: str, allowed: bool
) -> None:
    assert ScopeFilter(block, allow).allows(scope) is allowed


@pytest.mark.parametrize("bad", ["single-string", ["a*b"], [""], [3]])
def test_bad_scope_patterns(bad: object) -> None:
    with pytest.raises(otel_llm.ConfigError, match="block_scopes"):
        otel_llm.InMemory(block_scopes=bad)  # type: ignore[arg-type]


def test_two_destinations_each_with_own_scopes_sampling_and_content() -> None:
    everything = otel_llm.InMemory(name="all")
    no_langfuse = otel_llm.InMemory(name="apm", block_scopes=["langfuse-sdk"])
    sampled = otel_llm.InMemory(name="sampled", sample_rate=0.0)
    no_content = otel_llm.InMemory(name="metadata-only", capture_content=False)
    provider = TracerProvider()
    p = otel_llm.configure(
        destinations=[everything, no_langfuse, sampled, no_content], tracer_provider=provider
    )
    foreign = provider.get_tracer("langfuse-sdk")
    with otel_llm.start_generation("ours", model="m", input="secret prompt") as gen:
        gen.update(output="secret answer", usage={"input": 1})
        with foreign.start_as_current_span("theirs"):
            pass
    p.flush()
    assert sorted(s.name for s in everything.spans) == ["ours", "theirs"]
    assert [s.name for s in no_langfuse.spans] == ["ours"]
    assert sampled.spans == []
    stripped = next(s for s in no_content.spans if s.name == "ours")
    assert "otel_llm.observation.input" not in stripped.attributes
    assert "otel_llm.observation.output" not in stripped.attributes
    assert stripped.attributes["gen_ai.request.model"] == "m"
    assert stripped.attributes["gen_ai.usage.input_tokens"] == 1  # usage survives
    kept = next(s for s in everything.spans if s.name == "ours")
    assert kept.attributes["otel_llm.observation.input"] == "secret prompt"  # shared record intact
    stats = p.stats()["destinations"]
    assert stats["apm"]["filtered"] == 1 and stats["apm"]["exported"] == 1
    assert stats["sampled"]["filtered"] == 2 and stats["sampled"]["exported"] == 0


def test_bad_destination_options() -> None:
    with pytest.raises(otel_llm.ConfigError, match="sample_rate"):
        otel_llm.InMemory(sample_rate=2)
    with pytest.raises(otel_llm.ConfigError, match="capture_content"):
        otel_llm.InMemory(capture_content="no")  # type: ignore[arg-type]
    with pytest.raises(otel_llm.ConfigError, match="name"):
        otel_llm.InMemory(name="")


def test_export_after_shutdown_is_counted() -> None:
    mem = otel_llm.InMemory()
    assert mem.shutdown() is True
    assert mem.shutdown() is True
    from otel_llm.processing.record import SpanRecord

    mem.export(
        [SpanRecord(trace_id=1, span_id=2, name="late", start_time=0, end_time=1, attributes={})]
    )
    assert mem.spans == []
    assert mem.stats()["dropped"] == 1


def test_failing_destination_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_LLM_STRICT")

    class Broken(otel_llm.Destination):
        kind = "broken"

        def _export(self, records: object) -> bool:
            raise RuntimeError("backend exploded")

    good = otel_llm.InMemory()
    p = otel_llm.configure(destinations=[Broken(), good], tracer_provider=TracerProvider())
    with otel_llm.start_observation("x"):
        pass
    assert p.flush() is True
    assert [s.name for s in good.spans] == ["x"]
    stats = p.stats()
    assert stats["destinations"]["broken"]["failed"] == 1
    assert stats["internal_errors"] == {"destination.broken": 1}
