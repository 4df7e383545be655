"""LLMSpanProcessor: the one SpanProcessor that turns finished spans into delivered records.

The app thread does as little as possible: ``on_start`` stamps propagated trace
attributes and notes entry facts; ``on_end`` appends ``(span, entry)`` to a
bounded deque and returns. A worker thread converts spans to ``SpanRecord``s,
samples, runs the stages in order and hands each batch to every destination.

The worker converts everything queued before it processes the next batch: a
waiting SDK span holds ~3.6 KB in 11 garbage-collected objects (locks, deques,
its attribute mapping), its record ~1.4 KB in one, so a backlog under load costs
well under half the memory and far less collector time.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_llm import semconv
from otel_llm.context import current_trace_attributes
from otel_llm.diagnostics import counts, guard, handled, log_once, strict
from otel_llm.errors import ConfigError
from otel_llm.export.base import Destination
from otel_llm.export.encoder import encoder_counts
from otel_llm.forking import after_fork_in_child
from otel_llm.processing.entry import EntryTracker
from otel_llm.processing.record import ResourceMerger, SpanRecord, record_from_span
from otel_llm.processing.sampling import keep_trace, ratio_bound
from otel_llm.processing.stage import Stage
from otel_llm.processing.stages import DEFAULT_STAGES, build_stage_context
from otel_llm.scores import Score
from otel_llm.serialize import replacement_counts
from otel_llm.validation import environment_problem, unit_interval

__all__ = ["LLMSpanProcessor"]

_DEFAULT_QUEUE_SIZE = 16384
_DEFAULT_BATCH_SIZE = 512
_DEFAULT_DELAY = 0.5

_QueueItem = tuple[ReadableSpan, bool] | Score
_Pending = SpanRecord | Score


class LLMSpanProcessor(SpanProcessor):
    """Derive LLM facts from finished spans and deliver them to destinations.

    Add it to your own ``TracerProvider`` (``provider.add_span_processor(...)``), or
    let :func:`otel_llm.configure` do it. Processing options are those of
    ``configure()``; a bad one raises ``ConfigError`` here.

    Args:
        destinations: where processed spans go; each filters, shapes and sends.
        mask: ``mask(data) -> data`` applied to every input, output and metadata
            value (fail-closed: if it raises, the value is replaced by a marker).
        masking: built-in scrubbers; False turns them off, a mapping configures them.
        capture_content: False removes content after usage and cost were derived.
        sample_rate: fraction of traces kept, decided from the trace id.
        pricing: extra or overriding prices (mapping, or a JSON/TOML file path).
        media: base64 payload extraction (False disables; a mapping sets limits).
        estimate_usage: estimate tokens offline when a generation reports none.
        environment, release, version: set on every span that lacks them.
        resource_attributes: merged over the span's resource on every record.
        max_queue_size: spans buffered between the app and the worker; beyond it
            spans are dropped and counted (never blocking the app).
        stages: replaces the default stages (tests and advanced use).
    """

    def __init__(
        self,
        destinations: Iterable[Destination] = (),
        *,
        mask: Callable[..., Any] | None = None,
        masking: bool | Mapping[str, Any] | None = None,
        capture_content: bool | None = None,
        sample_rate: float = 1.0,
        pricing: Mapping[str, Any] | str | Path | None = None,
        media: bool | Mapping[str, Any] | None = None,
        estimate_usage: bool = True,
        environment: str | None = None,
        release: str | None = None,
        version: str | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        max_content_chars: int = 1_000_000,
        max_queue_size: int = _DEFAULT_QUEUE_SIZE,
        max_batch_size: int = _DEFAULT_BATCH_SIZE,
        schedule_delay: float = _DEFAULT_DELAY,
        stages: Sequence[Stage] | None = None,
    ) -> None:
        if mask is not None and not callable(mask):
            raise ConfigError("mask", f"must be a function, got {type(mask).__name__}")
        self._destinations: tuple[Destination, ...] = tuple(destinations)
        self._sample_bound = ratio_bound(unit_interval(sample_rate, "sample_rate"))
        self._defaults = _default_attributes(environment, release, version)
        self._resource_for = ResourceMerger(resource_attributes)  # worker thread only
        self._stages = DEFAULT_STAGES if stages is None else tuple(stages)
        self._stage_context = build_stage_context(
            mask=mask,
            masking=masking,
            pricing=pricing,
            media=media,
            capture_content=True if capture_content is None else capture_content,
            estimate_usage=estimate_usage,
            max_content_chars=max_content_chars,
            semconv_messages=any(d.wants_semconv_messages for d in self._destinations),
        )
        self._max_queue = max_queue_size
        self._batch_size = max_batch_size
        self._delay = schedule_delay
        self._entries = EntryTracker()
        # counters written by the worker thread only
        self._processed = 0
        self._sampled_out = 0
        self._drop_lock = threading.Lock()
        self._dropped: Counter[str] = Counter()  # guarded by _drop_lock
        self._start_worker()
        self._shutdown = False
        after_fork_in_child(self._after_fork_in_child)

    # -- worker lifecycle -----------------------------------------------------------
    def _start_worker(self) -> None:
        self._queue: deque[_QueueItem] = deque()
        self._pending: deque[_Pending] = deque()  # converted, not yet processed (worker)
        self._wake = threading.Event()
        self._flush_requests: deque[threading.Event] = deque()
        self._worker = threading.Thread(target=self._run, name="otel-llm-processor", daemon=True)
        self._worker.start()

    def _after_fork_in_child(self) -> None:
        # The parent's queue belongs to the parent: sending it again would duplicate.
        waiting = (*self._queue, *self._pending)
        lost = sum(1 for item in waiting if not isinstance(item, Score))
        if lost:
            self._drop_lock = threading.Lock()
            self._drop("fork_inherited_queue", lost)
        self._entries = EntryTracker()
        self._start_worker()

    # -- app thread -----------------------------------------------------------------
    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        try:
            propagated = current_trace_attributes(parent_context)
            if propagated:
                span.set_attributes(propagated)
            extra = self._entries.on_start(span)
            if extra:
                span.set_attributes(extra)
        except Exception as exc:  # never into the app; plain try: this runs for every span
            handled("processor.on_start", exc)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if self._shutdown:
                self._drop("after_shutdown")
                return
            self._enqueue((span, self._entries.on_end(span)))
        except Exception as exc:
            handled("processor.on_end", exc)

    def _enqueue(self, item: _QueueItem) -> None:
        queue = self._queue
        if len(queue) + len(self._pending) >= self._max_queue:
            self._drop("queue_full" if isinstance(item, tuple) else "score_queue_full")
            log_once(
                "processor",
                "queue_full",
                f"queue full ({self._max_queue} spans): dropping; raise max_queue_size",
            )
            return
        queue.append(item)
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def submit_score(self, score: Score) -> None:
        """Queue a score behind the spans already queued (called from the app thread)."""
        if self._shutdown:
            self._drop("score_after_shutdown")
            return
        self._enqueue(score)

    def update_trace(self, trace_id: int, attributes: Mapping[str, Any]) -> None:
        """Remember trace-level attributes for spans started later in this trace."""
        self._entries.update_trace(trace_id, attributes)

    def note_explicit_entry(self, trace_id: int, span_id: int) -> None:
        self._entries.note_explicit(trace_id, span_id)

    # -- worker thread --------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self._delay)
            self._wake.clear()
            waiting = len(self._flush_requests)
            with guard("processor.worker"):
                self._drain()
            for _ in range(waiting):
                self._flush_requests.popleft().set()
            if self._shutdown and not self._queue and not self._pending:
                while self._flush_requests:
                    self._flush_requests.popleft().set()
                return

    def _drain(self) -> None:
        queue, pending = self._queue, self._pending
        popleft, size = pending.popleft, self._batch_size
        while queue or pending:
            if queue:
                self._convert()
            records: list[SpanRecord] = []
            scores: list[Score] = []
            while pending and len(records) < size:
                item = popleft()
                if isinstance(item, Score):
                    scores.append(item)
                elif self._run_stages(item):
                    records.append(item)
            for destination in self._destinations:
                with guard(f"destination.{destination.name}"):
                    if records:
                        destination.export(records)
                    for score in scores:
                        destination.export_score(score)

    def _convert(self) -> None:
        """Turn every queued span into a sampled, defaulted record, in queue order."""
        popleft, append = self._queue.popleft, self._pending.append
        bound = self._sample_bound
        sampling = bound < 1 << 64  # else every trace is kept
        merger = self._resource_for if self._resource_for.merges else None
        defaults = tuple(self._defaults.items())
        for _ in range(len(self._queue)):
            item = popleft()
            if isinstance(item, Score):
                append(item)
                continue
            span, entry = item
            self._processed += 1
            context = span.context
            if context is None or (sampling and not keep_trace(context.trace_id, bound)):
                self._sampled_out += 1
                continue
            record = record_from_span(span, merger(span.resource) if merger else None)
            attributes = record.attributes
            for key, value in defaults:
                attributes.setdefault(key, value)
            if entry:
                attributes[semconv.GEN_AI_IS_ENTRY] = True
            append(record)

    def _run_stages(self, record: SpanRecord) -> bool:
        ctx = self._stage_context
        for stage in self._stages:
            try:
                stage(record, ctx)
            except Exception as exc:
                # A half-processed record may still hold unmasked content: drop it.
                name = getattr(stage, "__name__", "stage")
                self._drop(f"stage_error.{name}")
                log_once("processor", f"stage.{name}", f"{name} failed ({type(exc).__name__})")
                if strict():
                    raise
                return False
        return True

    # -- lifecycle ------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.flush(timeout_millis / 1000)

    def flush(self, timeout: float = 5.0) -> bool:
        """Process everything queued so far and flush every destination, within ``timeout``."""
        deadline = time.monotonic() + timeout
        ok = self._wait_for_worker(deadline)
        for destination in self._destinations:
            with guard(f"destination.{destination.name}"):
                ok = destination.force_flush(max(0.0, deadline - time.monotonic())) and ok
        return ok and time.monotonic() <= deadline

    def _wait_for_worker(self, deadline: float) -> bool:
        if not self._worker.is_alive():
            return not self._queue and not self._pending
        done = threading.Event()
        self._flush_requests.append(done)
        self._wake.set()
        return done.wait(max(0.0, deadline - time.monotonic()))

    def shutdown(  # type: ignore[override]
        self, timeout: float = 5.0, *, keep: Iterable[Destination] = ()
    ) -> bool:
        """Flush, stop the worker and shut down every destination not in ``keep``; idempotent."""
        if self._shutdown:
            return True
        deadline = time.monotonic() + timeout
        ok = self._wait_for_worker(deadline)
        self._shutdown = True
        self._wake.set()
        self._worker.join(max(0.0, deadline - time.monotonic()))
        kept = {id(d) for d in keep}
        for destination in self._destinations:
            with guard(f"destination.{destination.name}"):
                remaining = max(0.0, deadline - time.monotonic())
                if id(destination) in kept:
                    ok = destination.force_flush(remaining) and ok
                else:
                    ok = destination.shutdown(remaining) and ok
        return ok and not self._worker.is_alive()

    # -- introspection --------------------------------------------------------------
    def _drop(self, reason: str, n: int = 1) -> None:
        with self._drop_lock:
            self._dropped[reason] += n

    @property
    def is_shut_down(self) -> bool:
        return self._shutdown

    @property
    def destinations(self) -> tuple[Destination, ...]:
        return self._destinations

    def stats(self) -> dict[str, Any]:
        internal = counts()
        with self._drop_lock:
            reasons = dict(self._dropped)
        span_drops = sum(v for k, v in reasons.items() if not k.startswith("score_"))
        return {
            "spans_received": self._processed + len(self._queue) + span_drops,
            "spans_dropped": span_drops,
            "spans_sampled_out": self._sampled_out,
            "spans_queued": len(self._queue) + len(self._pending),
            "dropped_reasons": reasons,
            "values_replaced": {
                **replacement_counts(),
                **{f"encoder.{k}": v for k, v in encoder_counts().items()},
            },
            "invalid_values": {
                key.removeprefix("invalid_value."): value
                for key, value in internal.items()
                if key.startswith("invalid_value.")
            },
            "processing": dict(self._stage_context.counters),
            "internal_errors": {
                key.removeprefix("internal_error."): value
                for key, value in internal.items()
                if key.startswith("internal_error.")
            },
            "destinations": {d.name: d.stats() for d in self._destinations},
        }


def _default_attributes(
    environment: str | None, release: str | None, version: str | None
) -> dict[str, Any]:
    defaults: dict[str, Any] = {semconv.ENVIRONMENT: environment or "default"}
    if environment is not None and (problem := environment_problem(environment)):
        raise ConfigError("environment", problem)
    if release is not None:
        defaults[semconv.RELEASE] = str(release)
    if version is not None:
        defaults[semconv.VERSION] = str(version)
    return defaults
