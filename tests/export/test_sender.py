"""The background sender: delivery, retries, spooling of what can't be delivered, deadlines."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_llm.export.http_transport import HttpTransport
from otel_llm.export.sender import Batch, Sender
from tests.otlp_http_server import OTLPHTTPServer

PATH = "/v1/traces"
BODY = ExportTraceServiceRequest().SerializeToString()


class ListSpool:
    """A spool that keeps batches in a list (the disk spool has its own tests)."""

    def __init__(self, capacity: int = 100) -> None:
        self.batches: deque[Batch] = deque()
        self.capacity = capacity

    def put(self, batch: Batch) -> bool:
        if len(self.batches) >= self.capacity:
            return False
        self.batches.append(batch)
        return True

    def replay(
        self,
        deliver: Callable[[Batch], bool],
        *,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> int:
        done = 0
        while self.batches and (limit is None or done < limit) and deliver(self.batches[0]):
            self.batches.popleft()
            done += 1
        return done

    def __len__(self) -> int:
        return len(self.batches)

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return {"batches": len(self.batches)}


@pytest.fixture
def server() -> Iterator[OTLPHTTPServer]:
    with OTLPHTTPServer() as s:
        yield s


def _sender(url: str, spool: ListSpool | None = None, **kw: float) -> tuple[Sender, Counter[str]]:
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def count(key: str, n: int) -> None:
        with lock:
            counts[key] += n

    return Sender("test", HttpTransport(url), count, spool=spool, **kw), counts  # type: ignore[arg-type]


def test_delivers_and_counts(server: OTLPHTTPServer) -> None:
    sender, counts = _sender(server.url + PATH)
    for _ in range(5):
        sender.submit(Batch(BODY, 3))
    assert sender.flush(5.0)
    assert counts["exported"] == 15
    assert len(server.requests) == 5
    assert sender.shutdown(2.0)


def test_retries_then_delivers(server: OTLPHTTPServer) -> None:
    server.respond(PATH, 503, times=2)
    sender, counts = _sender(server.url + PATH)
    sender.submit(Batch(BODY, 4))
    assert sender.flush(10.0)
    assert counts["exported"] == 4 and counts["retried"] == 2
    sender.shutdown(1.0)


def test_permanent_error_is_counted_failed(server: OTLPHTTPServer) -> None:
    server.respond(PATH, 400, body=b"bad span id")
    spool = ListSpool()
    sender, counts = _sender(server.url + PATH, spool)
    sender.submit(Batch(BODY, 2))
    assert sender.flush(5.0)
    assert counts["failed"] == 2 and len(spool) == 0
    sender.shutdown(1.0)


def test_auth_error_keeps_spooling(server: OTLPHTTPServer) -> None:
    server.respond(PATH, 401, body=b"invalid credentials")
    spool = ListSpool()
    sender, counts = _sender(server.url + PATH, spool)
    sender.submit(Batch(BODY, 2))
    assert sender.flush(5.0)
    assert counts["spooled"] == 2 and len(spool) == 1
    assert spool.batches[0].attempts == 1
    sender.shutdown(1.0)


def test_exhausted_retries_go_to_spool_or_are_counted_dropped(server: OTLPHTTPServer) -> None:
    server.respond(PATH, 503)
    spool = ListSpool()
    sender, counts = _sender(server.url + PATH, spool, export_timeout=0.5)
    sender.submit(Batch(BODY, 3))
    assert sender.flush(5.0)
    assert counts["spooled"] == 3
    sender.shutdown(1.0)
    no_spool, counts2 = _sender(server.url + PATH, None, export_timeout=0.3)
    no_spool.submit(Batch(BODY, 3))
    assert no_spool.flush(5.0)
    assert counts2["dropped"] == 3
    no_spool.shutdown(1.0)


def test_queue_full_is_counted(server: OTLPHTTPServer) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        sender, counts = _sender(
            f"http://127.0.0.1:{listener.getsockname()[1]}{PATH}",
            max_queue_batches=2,
            export_timeout=0.5,
            attempt_timeout=0.4,
        )
        for _ in range(6):
            sender.submit(Batch(BODY, 1))
        assert counts["dropped"] >= 3  # what did not fit was counted at once
        started = time.monotonic()
        sender.shutdown(1.0)
        assert time.monotonic() - started < 2.5
        assert counts["dropped"] + counts["exported"] + counts["failed"] <= 6
    finally:
        listener.close()


def test_shutdown_is_bounded_when_backend_hangs() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts, never answers
    try:
        spool = ListSpool()
        sender, counts = _sender(
            f"http://127.0.0.1:{listener.getsockname()[1]}{PATH}", spool, attempt_timeout=5.0
        )
        for _ in range(3):
            sender.submit(Batch(BODY, 1))
        started = time.monotonic()
        assert sender.shutdown(0.5) is False
        assert time.monotonic() - started < 1.5
        assert counts["spooled"] >= 2  # queued batches were kept, not lost
    finally:
        listener.close()
