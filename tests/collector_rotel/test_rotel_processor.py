"""The rotel processor end to end in Python: real stages, stand-ins of rotel's span API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from otel_llm import semconv
from otel_llm.collector import rotel_processor
from otel_llm.collector.rotel_config import config_from_env
from otel_llm.collector.rotel_processor import RotelProcessor
from otel_llm.processing import masking
from otel_llm.processing.masking import MASK_FALLBACK_VALUE
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext
from otel_llm.processing.stages import DEFAULT_STAGES
from tests.collector_rotel.rotel_standins import (
    STANDIN_TYPES,
    AnyValue,
    Events,
    KeyValue,
    ResourceSpans,
    Span,
    Status,
    batch,
    event,
    exported,
    make_span,
)

SECRET = "sk-proj-Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789"
MESSAGES = json.dumps(
    [{"role": "user", "parts": [{"type": "text", "content": f"my key is {SECRET}, ok?"}]}]
)


def llm_span(**fields: Any) -> Span:
    span = make_span(
        {
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": 1000,
            "gen_ai.usage.completion_tokens": 500,
            "gen_ai.input.messages": MESSAGES,
            "gen_ai.response.finish_reasons": ["stop", "length"],
        },
        **fields,
    )
    span.events = Events([event("exception", {"exception.message": f"failed: {SECRET}"})])
    return span


def processor(env: dict[str, str] | None = None) -> RotelProcessor:
    return RotelProcessor(config_from_env(env or {}), STANDIN_TYPES)


def test_stages_run_and_results_are_written_back() -> None:
    span = llm_span(status=Status(2, f"upstream said {SECRET}"))
    rs = batch(span, make_span({"plain": 1}), resource={"service.name": "s", "tags": ["a", "b"]})
    p = processor()
    p.process(rs)
    out = exported(span)
    assert out[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert out[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 500
    assert out[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert out[semconv.OBSERVATION_TYPE] == "generation"
    assert out[semconv.GEN_AI_USAGE_COST] == pytest.approx(0.00045)
    assert SECRET not in out["gen_ai.input.messages"]
    assert "[REDACTED:openai_key]" in out["gen_ai.input.messages"]
    assert out["gen_ai.response.finish_reasons"] == ["stop", "length"]  # order survives
    assert exported(span.events.items[0]) == {"exception.message": "failed: [REDACTED:openai_key]"}
    assert span.status is not None and SECRET not in span.status.message
    assert exported(rs.resource) == {"service.name": "s", "tags": ["a", "b"]}  # type: ignore[arg-type]
    stats = p.stats()
    assert stats["spans"] == 2 and stats["spans_changed"] == 1 and stats["batches"] == 1
    assert stats["errors"] == {} and stats["fail_closed"] == 0
    assert stats["processing"]["masking.rule.openai_key"] == 3


def test_pricing_masking_and_capture_content_from_the_environment(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text("[gpt-4o-mini]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n")
    span = llm_span()
    p = processor(
        {
            "OTEL_LLM_PRICING": str(prices),
            "OTEL_LLM_MASKING": '{"scrubbers": false}',
            "OTEL_LLM_CAPTURE_CONTENT": "false",
        }
    )
    p.process(batch(span))
    out = exported(span)
    assert out[semconv.GEN_AI_USAGE_COST] == pytest.approx(0.002)
    assert "gen_ai.input.messages" not in out  # capture_content off: content removed
    assert out[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000  # usage and cost stay
    assert p.stats()["problems"] == []


def test_masking_off_passes_content_through(tmp_path: Path) -> None:
    span = llm_span()
    processor({"OTEL_LLM_MASKING": "off"}).process(batch(span))
    assert exported(span)["gen_ai.input.messages"] == MESSAGES


def test_masking_options_file_and_mask_function(tmp_path: Path) -> None:
    options = tmp_path / "masking.json"
    options.write_text(json.dumps({"extra_patterns": {"ticket": r"TICKET-\d+"}}))
    span = make_span({"otel_llm.observation.input": "see TICKET-1234 and ACME"})
    env = {
        "OTEL_LLM_MASKING": str(options),
        "OTEL_LLM_MASK_FUNCTION": "tests.collector_rotel.test_rotel_processor:mask_acme",
    }
    processor(env).process(batch(span))
    assert exported(span)["otel_llm.observation.input"] == "see [REDACTED:ticket] and [acme]"


def mask_acme(data: Any) -> Any:
    return data.replace("ACME", "[acme]") if isinstance(data, str) else data


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"OTEL_LLM_MASKING": "{not json"}, "masking"),
        ({"OTEL_LLM_MASKING": "/nonexistent/masking.json"}, "masking"),
        ({"OTEL_LLM_MASKING": '{"unknown_option": 1}'}, "masking"),
        ({"OTEL_LLM_MASK_FUNCTION": "no_such_module_xyz:mask"}, "mask"),
        ({"OTEL_LLM_MASK_FUNCTION": "nocolon"}, "mask"),
    ],
)
def test_bad_masking_settings_fail_closed(env: dict[str, str], setting: str) -> None:
    span = llm_span()
    p = processor(env)
    p.process(batch(span))
    out = exported(span)
    assert "gen_ai.input.messages" not in out  # content removed from every span
    assert out[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    stats = p.stats()
    assert stats["config_errors"] == 1 and stats["problems"][0].startswith(setting)


def test_bad_pricing_falls_back_to_genai_prices() -> None:
    span = llm_span()
    p = processor({"OTEL_LLM_PRICING": "/nonexistent/prices.json", "OTEL_LLM_MEDIA": "maybe"})
    p.process(batch(span))
    assert exported(span)[semconv.GEN_AI_USAGE_COST] == pytest.approx(0.00045)
    problems = p.stats()["problems"]
    assert len(problems) == 2
    assert problems[0].startswith("pricing") and problems[1].startswith("media")


def test_bad_capture_content_value_fails_closed() -> None:
    span = llm_span()
    p = processor({"OTEL_LLM_CAPTURE_CONTENT": "sometimes"})
    p.process(batch(span))
    assert "gen_ai.input.messages" not in exported(span)
    assert p.stats()["config_errors"] == 1


def test_reverse_arrays_can_be_switched_off() -> None:
    span = llm_span()
    p = processor({"OTEL_LLM_ROTEL_REVERSE_ARRAYS": "false"})
    p.process(batch(span))
    # the stand-in agent reverses what was read and not pre-reversed
    assert exported(span)["gen_ai.response.finish_reasons"] == ["length", "stop"]


def test_a_failing_stage_is_undone_and_the_others_still_run() -> None:
    def broken(record: SpanRecord, ctx: StageContext) -> None:
        record.attributes["half.done"] = True
        raise RuntimeError("bug")

    span = llm_span()
    stages = (DEFAULT_STAGES[0], broken, *DEFAULT_STAGES[1:])
    p = RotelProcessor(config_from_env({}), STANDIN_TYPES, stages)
    p.process(batch(span))
    out = exported(span)
    assert "half.done" not in out
    assert out[semconv.GEN_AI_USAGE_COST] == pytest.approx(0.00045)
    assert "[REDACTED:openai_key]" in out["gen_ai.input.messages"]
    assert p.stats()["errors"] == {"stage.broken": 1}


def test_masking_failure_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any) -> int:
        raise RuntimeError("masking bug")

    monkeypatch.setattr(masking, "_apply", boom)
    span = llm_span(status=Status(2, f"error {SECRET}"))
    p = processor()
    p.process(batch(span))
    out = exported(span)
    assert "gen_ai.input.messages" not in out
    assert out[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000  # the other stages' work stays
    assert out[semconv.GEN_AI_USAGE_COST] == pytest.approx(0.00045)
    assert exported(span.events.items[0]) == {}  # exception.message is free text: removed
    assert span.status is not None and span.status.message == MASK_FALLBACK_VALUE
    stats = p.stats()
    assert stats["errors"] == {"masking": 1} and stats["fail_closed"] == 1


class _Unreadable(AnyValue):
    """A value rotel would never hand over: reading the span fails."""

    @property
    def value(self) -> Any:
        raise RuntimeError("cannot read")


def unreadable_span() -> Span:
    span = llm_span()
    span.attributes.items.append(KeyValue("odd", _Unreadable("?")))
    return span


def test_unreadable_span_fails_closed() -> None:
    span = unreadable_span()
    p = processor()
    p.process(batch(span))
    out = exported(span)
    assert "gen_ai.input.messages" not in out
    assert out["gen_ai.usage.prompt_tokens"] == 1000  # untouched: it was never processed
    assert p.stats()["errors"] == {"read": 1} and p.stats()["fail_closed"] == 1


def test_unreadable_span_is_left_alone_when_masking_is_off() -> None:
    span = unreadable_span()
    p = processor({"OTEL_LLM_MASKING": "off"})
    p.process(batch(span))
    assert exported(span)["gen_ai.input.messages"] == MESSAGES
    assert p.stats()["fail_closed"] == 0


def test_write_failure_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    span = llm_span()
    real_append = span.attributes.append
    calls = {"n": 0}

    def flaky_append(value: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("agent refused")
        real_append(value)

    monkeypatch.setattr(span.attributes, "append", flaky_append)
    p = processor()
    p.process(batch(span))
    assert "gen_ai.input.messages" not in exported(span)
    assert p.stats()["errors"] == {"write": 1}


def test_broken_containers_never_raise() -> None:
    class Broken:
        @property
        def scope_spans(self) -> Iterator[Any]:
            raise RuntimeError("broken")

        resource = None

    p = processor()
    p.process(Broken())
    assert p.stats()["errors"] == {"batch": 1}


def test_stats_file(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    p = processor({"OTEL_LLM_ROTEL_STATS_FILE": str(path)})
    p.process(batch(llm_span()))
    stats = orjson.loads(path.read_bytes())
    assert stats["spans"] == 1 and stats["processing"]["cost.priced"] == 1


def test_module_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rotel_processor, "load_rotel_types", lambda: STANDIN_TYPES)
    rotel_processor.reset()
    try:
        assert rotel_processor.stats() == {}
        span = llm_span()
        rotel_processor.process_spans(batch(span))
        assert "[REDACTED:openai_key]" in exported(span)["gen_ai.input.messages"]
        assert rotel_processor.stats()["spans"] == 1
    finally:
        rotel_processor.reset()


def test_module_entry_point_fails_closed_when_it_cannot_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_rotel() -> Any:
        raise ImportError("No module named 'rotel_sdk'")

    monkeypatch.setattr(rotel_processor, "load_rotel_types", no_rotel)
    rotel_processor.reset()
    try:
        span = llm_span()
        rs: ResourceSpans = batch(span)
        rotel_processor.process_spans(rs)
        out = exported(span)
        assert "gen_ai.input.messages" not in out
        assert out["gen_ai.request.model"] == "gpt-4o-mini"
    finally:
        rotel_processor.reset()
