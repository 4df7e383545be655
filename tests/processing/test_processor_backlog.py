"""A backlog waits as compact records, not SDK spans, and stays complete and in order."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from otel_llm.destinations import Destination
from otel_llm.processing.processor import LLMSpanProcessor
from otel_llm.processing.record import SpanRecord
from otel_llm.scores import Score

BATCH = 4


class Gate(Destination):
    """Holds the worker inside ``export`` until the test lets each batch go."""

    kind = "gate"

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.names: list[str] = []
        self.scores: list[str] = []

    def _export(self, records: Sequence[SpanRecord]) -> bool:
        self.entered.release()
        assert self.release.acquire(timeout=10)
        self.names.extend(record.name for record in records)
        return True

    def export_score(self, score: Score) -> None:
        self.scores.append(score.name)


class Watch(SpanProcessor):
    """Keeps a weak reference to every finished SDK span."""

    def __init__(self) -> None:
        self.spans: list[weakref.ref[ReadableSpan]] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(weakref.ref(span))


def _pipeline() -> tuple[LLMSpanProcessor, Gate, Watch, Any]:
    gate = Gate()
    processor = LLMSpanProcessor([gate], max_batch_size=BATCH, schedule_delay=0.05)
    watch = Watch()
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.add_span_processor(watch)
    return processor, gate, watch, provider.get_tracer("test")


def _spans(tracer: Any, first: int, count: int) -> None:
    for i in range(first, first + count):
        with tracer.start_as_current_span(f"s{i}", attributes={"gen_ai.request.model": "m"}):
            pass


def test_queued_spans_are_released_once_the_worker_converts_them() -> None:
    processor, gate, watch, tracer = _pipeline()
    try:
        _spans(tracer, 0, BATCH)
        assert gate.entered.acquire(timeout=10)  # the worker is inside the first export
        _spans(tracer, BATCH, 20)  # queued behind it, as SDK spans
        gc.collect()
        assert all(ref() is not None for ref in watch.spans[BATCH:])
        gate.release.release()
        assert gate.entered.acquire(timeout=10)  # second export: one batch of 4 taken
        gc.collect()
        # All 20 were converted before that batch: no SDK span is held any more,
        # though 16 of them still wait as records.
        assert [ref() for ref in watch.spans] == [None] * (BATCH + 20)
        stats = processor.stats()
        assert stats["spans_queued"] == 20 - BATCH
        assert stats["spans_received"] == BATCH + 20
    finally:
        for _ in range(100):
            gate.release.release()
        assert processor.shutdown(10)
    assert gate.names == [f"s{i}" for i in range(BATCH + 20)]


def test_scores_keep_their_place_among_converted_spans() -> None:
    processor, gate, _, tracer = _pipeline()
    try:
        _spans(tracer, 0, BATCH)
        assert gate.entered.acquire(timeout=10)
        _spans(tracer, BATCH, 2)
        processor.submit_score(Score("after-s5", 1.0, "NUMERIC", "0" * 31 + "1"))
        _spans(tracer, BATCH + 2, 6)
        for _ in range(100):
            gate.release.release()
        assert processor.flush(10)
    finally:
        assert processor.shutdown(10)
    assert gate.names == [f"s{i}" for i in range(BATCH + 8)]
    assert gate.scores == ["after-s5"]
    assert processor.stats()["spans_dropped"] == 0


def test_the_queue_bound_counts_converted_spans_too() -> None:
    gate = Gate()
    processor = LLMSpanProcessor(
        [gate], max_batch_size=BATCH, schedule_delay=0.05, max_queue_size=10
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    try:
        _spans(tracer, 0, BATCH)
        assert gate.entered.acquire(timeout=10)
        _spans(tracer, BATCH, 10)  # 10 fit; the worker converts them after this export
        gate.release.release()
        assert gate.entered.acquire(timeout=10)  # 4 taken, 6 wait as records
        _spans(tracer, BATCH + 10, 6)  # room for 4 more (6 + 4 = 10): 2 dropped
        stats = processor.stats()
        assert stats["dropped_reasons"] == {"queue_full": 2}
        assert stats["spans_queued"] == 10
    finally:
        for _ in range(100):
            gate.release.release()
        assert processor.shutdown(10)
    assert len(gate.names) == BATCH + 10 + 4
