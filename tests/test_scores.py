"""otel_llm.score(): data types inferred or checked, current ids, ordering with spans."""

from __future__ import annotations

import pytest

import otel_llm


def test_score_on_current_observation(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    with otel_llm.start_observation("x") as obs:
        otel_llm.score("accuracy", 0.9)
        otel_llm.score("passed", True)
        otel_llm.score("label", "good", comment="c")
    pipeline.flush()
    got = {s.name: s for s in memory.scores}
    assert got["accuracy"].value == 0.9 and got["accuracy"].data_type == "NUMERIC"
    assert got["passed"].value == 1.0 and got["passed"].data_type == "BOOLEAN"
    assert got["label"].data_type == "CATEGORICAL" and got["label"].comment == "c"
    for s in got.values():
        assert s.trace_id == obs.trace_id and s.observation_id == obs.id


def test_explicit_ids_and_data_type(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    tid = otel_llm.create_trace_id(seed="x")
    otel_llm.score("n", 1, trace_id=tid, data_type="boolean")
    otel_llm.score("m", True, trace_id=tid, data_type="NUMERIC")
    pipeline.flush()
    got = {s.name: s for s in memory.scores}
    assert got["n"].data_type == "BOOLEAN" and got["n"].value == 1.0
    assert got["m"].data_type == "NUMERIC" and got["m"].value == 1.0
    assert got["n"].observation_id is None


@pytest.mark.parametrize(
    ("value", "data_type"),
    [("yes", "NUMERIC"), (0.5, "BOOLEAN"), (float("nan"), None), (object(), None), (1, "WEIRD")],
)
def test_invalid_scores_are_counted_not_raised(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, value: object, data_type: str | None
) -> None:
    otel_llm.score("s", value, trace_id=otel_llm.create_trace_id(), data_type=data_type)  # type: ignore[arg-type]
    pipeline.flush()
    assert memory.scores == []
    from otel_llm.diagnostics import counts

    assert counts()["invalid_value.score"] == 1


def test_score_without_trace_is_counted(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    otel_llm.score("orphan", 1)
    pipeline.flush()
    assert memory.scores == []


def test_score_recorded_before_its_trace_ends_still_arrives_after_spans(
    pipeline: otel_llm.Pipeline,
) -> None:
    order: list[str] = []

    class Recorder(otel_llm.Destination):
        kind = "recorder"

        def _export(self, records: object) -> bool:
            order.extend(f"span:{r.name}" for r in records)  # type: ignore[attr-defined]
            return True

        def _export_score(self, score: object) -> bool:
            order.append(f"score:{score.name}")  # type: ignore[attr-defined]
            return True

    from opentelemetry.sdk.trace import TracerProvider

    p = otel_llm.configure(destinations=[Recorder()], tracer_provider=TracerProvider())
    with otel_llm.start_observation("root"):
        with otel_llm.start_observation("child"):
            otel_llm.score("early", 1)
    p.flush()
    # A score never overtakes spans queued before it (within a batch spans go first).
    assert sorted(order) == ["score:early", "span:child", "span:root"]
    assert order.index("span:child") < order.index("score:early")
