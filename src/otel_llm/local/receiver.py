"""The embedded OTLP receiver: HTTP and gRPC servers feeding one processing worker.

``otel-llm serve`` runs this. Stock OpenTelemetry exporters of any language send
``ExportTraceServiceRequest``s (:mod:`.receiver_http`, :mod:`.receiver_grpc`); each
request is decoded into ``SpanRecord``s (:mod:`.otlp_decode`) on the server thread
that received it and handed to a :class:`RecordWorker`. The worker runs the same
stages as ``LLMSpanProcessor`` (sampling, default attributes, normalize → usage →
cost → media → masking) and gives each batch to its destinations: the local store,
and in gateway mode the destinations configured from the environment or a file.

Entry marking (``gen_ai.is_entry``) is not derived here: it needs the live span
start/end order of one process. A received span that carries the marker keeps it.

Backpressure, not loss: when the worker's bounded queue is full, a request is
refused as retryable (HTTP 503 / gRPC UNAVAILABLE) and the exporter retries it.
A request is acknowledged once its records are queued; shutdown stops the servers
first, then drains the queue and flushes every destination.
"""

from __future__ import annotations

import enum
import hmac
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from opentelemetry.sdk.resources import Resource

from otel_llm.diagnostics import guard, log_once, strict
from otel_llm.export.base import Destination
from otel_llm.local.otlp_decode import DecodeError, decode_request, encode_reply, encode_status
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.sampling import keep_trace, ratio_bound
from otel_llm.processing.stage import Stage, StageContext
from otel_llm.processing.stages import DEFAULT_STAGES

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "Outcome",
    "Receiver",
    "ReceiverOptions",
    "RecordWorker",
    "Result",
    "Sink",
]

DEFAULT_MAX_BODY_BYTES: Final = 16 * 2**20
_INVALID_ARGUMENT: Final = 3  # google.rpc.Code
_UNAVAILABLE: Final = 14
_BATCH: Final = 512


class Sink(Protocol):
    """Where decoded records go; ``submit`` returns False when it cannot take them now."""

    def submit(self, records: list[SpanRecord]) -> bool: ...


# -- the worker -------------------------------------------------------------------------
class RecordWorker:
    """Process received records on one thread and deliver them to destinations.

    Args:
        destinations: every processed batch goes to each of them (scope filters,
            dialects and spools are theirs).
        stage_context: compiled stage options (``build_stage_context``).
        stages: the stages in order; default normalize → usage → cost → media → masking.
        sample_rate: fraction of traces kept, decided from the trace id.
        defaults: attributes set on every record that lacks them (environment, ...).
        resource_attributes: merged over each record's resource.
        max_queue_spans: spans waiting for the worker; beyond it ``submit`` refuses.
    """

    def __init__(
        self,
        destinations: Sequence[Destination],
        stage_context: StageContext,
        *,
        stages: Sequence[Stage] = DEFAULT_STAGES,
        sample_rate: float = 1.0,
        defaults: Mapping[str, Any] | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        max_queue_spans: int = 16384,
    ) -> None:
        self._destinations = tuple(destinations)
        self._context = stage_context
        self._stages = tuple(stages)
        self._bound = ratio_bound(sample_rate)
        self._defaults = dict(defaults or {})
        self._overrides = dict(resource_attributes or {})
        self._resources: dict[int, tuple[Resource, Resource]] = {}  # worker thread only
        self._max = max_queue_spans
        self._lock = threading.Lock()
        self._queue: deque[list[SpanRecord]] = deque()  # guarded by _lock
        self._queued = 0  # spans in _queue; guarded by _lock
        self._closed = False  # guarded by _lock
        self._counts: Counter[str] = Counter()  # guarded by _lock
        self._flushes: deque[threading.Event] = deque()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otel-llm-serve", daemon=True)
        self._thread.start()

    @property
    def destinations(self) -> tuple[Destination, ...]:
        return self._destinations

    # -- server threads -----------------------------------------------------------------
    def submit(self, records: list[SpanRecord]) -> bool:
        """Queue ``records``; False (nothing queued) when full or shut down."""
        if not records:
            return True
        with self._lock:
            if self._closed or (self._queued and self._queued + len(records) > self._max):
                self._counts["refused_full" if not self._closed else "refused_closed"] += len(
                    records
                )
                return False
            self._queue.append(records)
            self._queued += len(records)
            self._counts["received"] += len(records)
        self._wake.set()
        return True

    # -- worker thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            waiting = len(self._flushes)
            with guard("serve.worker"):
                self._drain()
            for _ in range(waiting):
                self._flushes.popleft().set()
            with self._lock:
                done = self._closed and not self._queue
            if done:
                while self._flushes:
                    self._flushes.popleft().set()
                return

    def _next_batch(self) -> list[SpanRecord]:
        batch: list[SpanRecord] = []
        with self._lock:
            while self._queue and len(batch) < _BATCH:
                records = self._queue.popleft()
                self._queued -= len(records)
                batch += records
        return batch

    def _drain(self) -> None:
        while batch := self._next_batch():
            records = self._process(batch)
            if not records:
                continue
            for destination in self._destinations:
                with guard(f"destination.{destination.name}"):
                    destination.export(records)

    def _process(self, batch: list[SpanRecord]) -> list[SpanRecord]:
        out: list[SpanRecord] = []
        sampled_out = dropped = 0
        for record in batch:
            if not keep_trace(record.trace_id, self._bound):
                sampled_out += 1
                continue
            for key, value in self._defaults.items():
                record.attributes.setdefault(key, value)
            if self._overrides:
                record.resource = self._resource_for(record.resource)
            if self._run_stages(record):
                out.append(record)
            else:
                dropped += 1
        with self._lock:
            self._counts["processed"] += len(batch)
            self._counts["sampled_out"] += sampled_out
            self._counts["dropped"] += dropped
        return out

    def _run_stages(self, record: SpanRecord) -> bool:
        ctx = self._context
        for stage in self._stages:
            try:
                stage(record, ctx)
            except Exception as exc:
                # A half-processed record may still hold unmasked content: drop it.
                name = getattr(stage, "__name__", "stage")
                with self._lock:
                    self._counts[f"stage_error.{name}"] += 1
                log_once("serve", f"stage.{name}", f"{name} failed ({type(exc).__name__})")
                if strict():
                    raise
                return False
        return True

    def _resource_for(self, resource: Resource) -> Resource:
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        merged = resource.merge(Resource(self._overrides))
        if len(self._resources) >= 256:
            self._resources.clear()
        self._resources[id(resource)] = (resource, merged)
        return merged

    # -- lifecycle (any thread) ---------------------------------------------------------
    def _wait(self, deadline: float) -> bool:
        if not self._thread.is_alive():
            with self._lock:
                return not self._queue
        done = threading.Event()
        self._flushes.append(done)
        self._wake.set()
        return done.wait(max(0.0, deadline - time.monotonic()))

    def flush(self, timeout: float = 5.0) -> bool:
        """Process what is queued and flush every destination, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        ok = self._wait(deadline)
        for destination in self._destinations:
            with guard(f"destination.{destination.name}"):
                ok = destination.force_flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Refuse new records, process the queue, shut every destination down; idempotent."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        ok = not self._thread.is_alive()
        for destination in self._destinations:
            with guard(f"destination.{destination.name}"):
                ok = destination.shutdown(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self._counts)
            queued = self._queued
        return {
            "spans_received": counts.pop("received", 0),
            "spans_processed": counts.pop("processed", 0),
            "spans_sampled_out": counts.pop("sampled_out", 0),
            "spans_dropped": counts.pop("dropped", 0),
            "spans_queued": queued,
            "spans_refused": counts.pop("refused_full", 0) + counts.pop("refused_closed", 0),
            "errors": counts,
            "processing": dict(self._context.counters),
            "destinations": {d.name: d.stats() for d in self._destinations},
        }


# -- the servers' shared logic ----------------------------------------------------------
class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    MALFORMED = "malformed"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Result:
    """What to answer: ``body`` is an ``ExportTraceServiceResponse`` or a ``google.rpc.Status``."""

    outcome: Outcome
    body: bytes
    message: str = ""
    spans: int = 0


@dataclass(frozen=True)
class ReceiverOptions:
    """Where and how the receiver listens.

    Attributes:
        host: interface for both servers (``127.0.0.1``: this machine only).
        http_port, grpc_port: 0 lets the OS pick a free port; None disables that server.
        token: when set, requests need ``Authorization: Bearer <token>``.
        max_body_bytes: largest request body, compressed or not (HTTP 413 /
            gRPC RESOURCE_EXHAUSTED beyond it).
    """

    host: str = "127.0.0.1"
    http_port: int | None = 4318
    grpc_port: int | None = 4317
    token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __repr__(self) -> str:  # the token is a secret
        token = "[secure]" if self.token else None
        return (
            f"ReceiverOptions(host={self.host!r}, http_port={self.http_port!r}, "
            f"grpc_port={self.grpc_port!r}, token={token}, max_body_bytes={self.max_body_bytes})"
        )


class Receiver:
    """The HTTP and gRPC servers in front of one :class:`Sink`.

    ``start()`` binds both (raising ``OSError`` naming the address); ``stop()`` stops
    taking requests and waits for those in flight. Flushing the sink is the caller's.
    """

    def __init__(self, sink: Sink, options: ReceiverOptions | None = None) -> None:
        from otel_llm.local.receiver_grpc import GrpcServer
        from otel_llm.local.receiver_http import HttpServer

        self.options = options or ReceiverOptions()
        self._sink = sink
        token = self.options.token
        self._expected = f"Bearer {token}".encode() if token else None
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()  # guarded by _lock
        self._http = None if self.options.http_port is None else HttpServer(self)
        self._grpc = None if self.options.grpc_port is None else GrpcServer(self)

    def start(self) -> Receiver:
        try:
            if self._http is not None:
                self._http.start()
            if self._grpc is not None:
                self._grpc.start()
        except BaseException:
            self.stop(1.0)
            raise
        return self

    @property
    def http_url(self) -> str | None:
        """``http://host:port/v1/traces`` once started (None when HTTP is off)."""
        return self._http.url if self._http is not None else None

    @property
    def grpc_address(self) -> str | None:
        """``host:port`` once started (None when gRPC is off)."""
        return self._grpc.address if self._grpc is not None else None

    @property
    def ports(self) -> set[int]:
        """The ports bound once started."""
        found = (s.port if s is not None else None for s in (self._http, self._grpc))
        return {p for p in found if p}

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop both servers, letting requests in flight finish within ``timeout``."""
        deadline = time.monotonic() + timeout
        ok = True
        for server in (self._http, self._grpc):
            if server is not None:
                ok = server.stop(max(0.0, deadline - time.monotonic())) and ok
        return ok

    # -- called by the servers (any thread) ---------------------------------------------
    def authorized(self, header: str | None) -> bool:
        """True when no token is required, or ``header`` is ``Bearer <token>``."""
        expected = self._expected
        if expected is None:
            return True
        if not header:
            return False
        scheme, _, credentials = header.strip().partition(" ")
        given = f"Bearer {credentials.strip()}".encode() if scheme.lower() == "bearer" else b""
        return hmac.compare_digest(given, expected)

    def ingest(self, body: bytes, *, json: bool) -> Result:
        """Decode one request body and hand its records to the sink."""
        try:
            decoded = decode_request(body, json=json)
        except DecodeError as exc:
            message = str(exc)
            self.count("malformed")
            body = encode_status(_INVALID_ARGUMENT, message, json=json)
            return Result(Outcome.MALFORMED, body, message)
        if not self._sink.submit(decoded.records):
            message = "receiver queue full; retry later"
            self.count("busy")
            return Result(Outcome.BUSY, encode_status(_UNAVAILABLE, message, json=json), message)
        self.count("spans_accepted", len(decoded.records))
        if decoded.rejected:
            self.count("spans_rejected", decoded.rejected)
        reply = encode_reply(decoded.rejected, decoded.reason, json=json)
        return Result(Outcome.ACCEPTED, reply, decoded.reason, len(decoded.records))

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
