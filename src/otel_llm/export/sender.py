"""The background sender every network destination owns: a bounded queue and one thread.

The processor's worker encodes a batch and hands the bytes here; this thread does
the network I/O with retries, so a slow or dead backend never holds up the
processor, other destinations, or the app. What cannot be delivered (retries
exhausted, auth refused, queue full, deadline at shutdown) goes to the spool when
one is configured, and is counted as dropped otherwise — never silently.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import context as otel_context

from otel_llm.diagnostics import log_once, logger, report, strict
from otel_llm.export.retry import Outcome, Transport, send_with_retry
from otel_llm.forking import after_fork_in_child

__all__ = ["Batch", "Sender", "Spool"]


@dataclass(frozen=True, slots=True)
class Batch:
    """One encoded export request and how many spans it carries."""

    body: bytes
    spans: int
    attempts: int = 0


class Spool(Protocol):
    """Where undeliverable batches wait (disk: :class:`otel_llm.export.spool.DiskSpool`)."""

    def put(self, batch: Batch) -> bool:
        """Keep ``batch``; False if it could not be kept (then it is dropped, counted)."""
        ...

    def replay(
        self,
        deliver: Callable[[Batch], bool],
        *,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> int:
        """Deliver kept batches oldest first; each is removed only once delivered."""
        ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, int]: ...


_GZIP_MAGIC = b"\x1f\x8b"  # an OTLP request starts with 0x0a: the two never collide


def _pack(batch: Batch) -> Batch:
    """Spooled bodies are gzipped (level 1): ~20x less disk for span payloads."""
    return Batch(gzip.compress(batch.body, compresslevel=1, mtime=0), batch.spans, batch.attempts)


def _unpack(body: bytes) -> bytes:
    return gzip.decompress(body) if body[:2] == _GZIP_MAGIC else body


_REPLAY_BACKOFF_MIN = 1.0
_REPLAY_BACKOFF_MAX = 30.0


Counter = Callable[[str, int], None]


class Sender:
    """Delivers batches through ``transport`` from a thread of its own."""

    def __init__(
        self,
        name: str,
        transport: Transport,
        count: Counter,
        *,
        spool: Spool | None = None,
        max_queue_batches: int = 64,
        export_timeout: float = 30.0,
        attempt_timeout: float = 10.0,
    ) -> None:
        self._name = name
        self._transport = transport
        self._count = count
        self._spool = spool
        self._max_queue = max_queue_batches
        self._export_timeout = export_timeout
        self._attempt_timeout = attempt_timeout
        self._stop = threading.Event()
        self._closed = False
        self._replay_at = 0.0  # sender thread only: next time to try the spool
        self._inflight: Batch | None = None  # guarded by _lock
        self._inflight_kept = False  # guarded by _lock
        self._replay_backoff = _REPLAY_BACKOFF_MIN
        self._backlog = False  # sender thread only: the spool held batches last we looked
        self._start()
        after_fork_in_child(self._after_fork_in_child)

    def _start(self) -> None:
        self._queue: deque[Batch] = deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()  # guards _queue membership changes with _idle
        self._thread = threading.Thread(
            target=self._run, name=f"otel-llm-sender-{self._name}", daemon=True
        )
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        lost = sum(b.spans for b in self._queue)
        if lost:
            self._count("dropped", lost)
        self._stop = threading.Event()
        self._start()

    # -- processor worker thread ----------------------------------------------------
    def submit(self, batch: Batch) -> None:
        """Queue ``batch`` for delivery (never blocks)."""
        if self._closed:
            self._keep_or_drop(batch, "closed")
            return
        with self._lock:
            if len(self._queue) >= self._max_queue:
                full = True
            else:
                full = False
                self._queue.append(batch)
                self._idle.clear()
        if full:
            self._keep_or_drop(batch, "queue_full")
            return
        self._wake.set()

    # -- sender thread --------------------------------------------------------------
    @property
    def has_spool(self) -> bool:
        return self._spool is not None

    def spool_stats(self) -> dict[str, int]:
        """The spool's own counters (evictions happen inside it), or {} without one."""
        return self._spool.stats() if self._spool is not None else {}

    def set_spool(self, spool: Spool | None) -> None:
        """Attach the disk spool (configure() does it); replays what earlier runs left."""
        self._spool = spool
        if spool is not None:
            self._replay_at = 0.0
            self._wake.set()

    def _run(self) -> None:
        # Our own HTTP/gRPC calls must not be traced, by us or any instrumentation.
        suppress = otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        otel_context.attach(suppress)
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self._replay_spool()
            except Exception as exc:
                report(f"sender.{self._name}.replay", exc)
                if strict():
                    raise
            while not self._stop.is_set():
                with self._lock:
                    batch = self._queue.popleft() if self._queue else None
                if batch is None:
                    break
                try:
                    self._deliver(batch)
                except Exception as exc:
                    report(f"sender.{self._name}", exc)
                    self._count("failed", batch.spans)
                    if strict():
                        raise
            with self._lock:
                if not self._queue:
                    self._idle.set()
            if self._spool is not None and self._backlog and not self._stop.is_set():
                self._wake.set()  # keep rounds coming while a backlog waits on disk
                self._stop.wait(min(1.0, max(0.0, self._replay_at - time.monotonic())))

    def _deliver(self, batch: Batch) -> None:
        with self._lock:
            self._inflight = batch
            self._inflight_kept = False
        try:
            self._deliver_now(batch)
        finally:
            with self._lock:
                self._inflight = None

    def _deliver_now(self, batch: Batch) -> None:
        deadline = time.monotonic() + self._export_timeout
        outcome, attempts = send_with_retry(
            self._transport,
            batch.body,
            deadline=deadline,
            stop=self._stop,
            attempt_timeout=self._attempt_timeout,
            on_retry=lambda _o: self._count("retried", 1),
        )
        if outcome.ok:
            self._count("exported", batch.spans - outcome.rejected)
            if outcome.rejected:
                self._count("rejected", outcome.rejected)
            return
        kept = Batch(batch.body, batch.spans, batch.attempts + attempts)
        with self._lock:
            already_kept = self._inflight_kept  # shutdown spooled it while we waited
        if already_kept:
            return
        if outcome.retryable or outcome.is_auth_error:
            # Auth errors keep spooling: nothing is lost when the keys are fixed.
            self._log_failure(outcome)
            self._keep_or_drop(kept, f"status_{outcome.status}", outcome.retry_after)
        else:
            self._log_failure(outcome)
            self._count("failed", batch.spans)

    def _replay_spool(self) -> None:
        """Send spooled batches while the backend takes them; back off when it doesn't."""
        spool = self._spool
        if spool is None or time.monotonic() < self._replay_at:
            return  # (live traffic does not postpone it: a few spooled batches per round)
        if not len(spool):
            if self._backlog:
                self._backlog = False
                logger.info("otel-llm %s: spooled backlog delivered", self._name)
            return
        stopped_early = False

        def deliver(batch: Batch) -> bool:
            nonlocal stopped_early
            try:
                body = _unpack(batch.body)
            except (OSError, EOFError, zlib.error):
                self._count("dropped", batch.spans)  # corrupt despite the checksum: skip it
                return True
            outcome = self._transport.send(body, self._attempt_timeout)
            if outcome.ok:
                self._count("replayed", batch.spans)
                self._count("exported", batch.spans - outcome.rejected)
                return True
            if not outcome.retryable and not outcome.is_auth_error:
                self._log_failure(outcome)
                self._count("failed", batch.spans)  # it will never be accepted: drop it
                return True
            stopped_early = True
            if outcome.retry_after is not None:
                self._replay_at = time.monotonic() + outcome.retry_after
            return False

        spool.replay(deliver, timeout=self._export_timeout, limit=8 if self._queue else 64)
        if stopped_early:
            self._replay_at = max(self._replay_at, time.monotonic() + self._replay_backoff)
            self._replay_backoff = min(_REPLAY_BACKOFF_MAX, self._replay_backoff * 2)
        else:
            self._replay_backoff = _REPLAY_BACKOFF_MIN
            self._wake.set()  # more may be waiting: come back without sleeping

    def _log_failure(self, outcome: Outcome) -> None:
        hint = " (check the destination's keys)" if outcome.is_auth_error else ""
        log_once(
            f"destination.{self._name}",
            f"status.{outcome.status}",
            f"export failed with {outcome.status}{hint}: {outcome.message[:200]}",
            level=logging.ERROR if not outcome.retryable else logging.WARNING,
        )

    def _keep_or_drop(self, batch: Batch, reason: str, retry_after: float | None = None) -> None:
        if self._spool is not None and self._spool.put(_pack(batch)):
            self._count("spooled", batch.spans)
            if not self._backlog:
                self._backlog = True
                logger.warning(
                    "otel-llm %s: backend unavailable (%s); spooling to disk", self._name, reason
                )
            wait = max(self._replay_backoff, retry_after or 0.0)  # honour Retry-After
            self._replay_at = max(self._replay_at, time.monotonic() + wait)
            return
        self._count("dropped", batch.spans)
        log_once(
            f"destination.{self._name}",
            f"dropped.{reason}",
            f"dropping spans ({reason}); see stats()",
        )

    # -- any thread -------------------------------------------------------------------
    @property
    def queued_batches(self) -> int:
        return len(self._queue)

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far was attempted, at most ``timeout``."""
        self._wake.set()
        return self._idle.wait(max(0.0, timeout))

    def shutdown(self, timeout: float) -> bool:
        """Deliver what can be within ``timeout``; spool (or count) the rest; stop."""
        deadline = time.monotonic() + timeout
        done = self.flush(timeout)
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftover = list(self._queue)
            self._queue.clear()
            if self._thread.is_alive() and self._inflight is not None:
                # Still waiting on the backend: keep a copy, so a process exit loses
                # nothing (if the attempt succeeds after all, replay repeats it once).
                leftover.append(self._inflight)
                self._inflight_kept = True
        for batch in leftover:
            self._keep_or_drop(batch, "shutdown_deadline")
        self._transport.close()
        if self._spool is not None:
            self._spool.close()
        return done and not leftover
