"""HTTP and gRPC transports and the retry loop, against real servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_llm.errors import ConfigError
from otel_llm.export.grpc_transport import GrpcTransport, grpc_target
from otel_llm.export.http_transport import HttpTransport, redact
from otel_llm.export.retry import Outcome, backoff_delay, parse_retry_after, send_with_retry
from tests.otlp_grpc_server import OtlpGrpcServer, Scripted
from tests.otlp_http_server import OTLPHTTPServer

BODY = ExportTraceServiceRequest().SerializeToString()
PATH = "/v1/traces"


@pytest.fixture
def http_server() -> Iterator[OTLPHTTPServer]:
    with OTLPHTTPServer() as server:
        yield server


@pytest.fixture
def grpc_server() -> Iterator[OtlpGrpcServer]:
    server = OtlpGrpcServer().start()
    yield server
    server.stop()


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_with_jitter_and_caps() -> None:
    assert backoff_delay(1, rng=lambda: 0.5) == pytest.approx(0.5)
    assert backoff_delay(3, rng=lambda: 0.0) == pytest.approx(2.0 * 0.8)
    assert backoff_delay(3, rng=lambda: 1.0) == pytest.approx(2.0 * 1.2)
    assert backoff_delay(50, rng=lambda: 1.0) == pytest.approx(36.0)


def test_redact() -> None:
    assert redact("bad key sk-lf-12345 here", ["sk-lf-12345"]) == "bad key [secure] here"
    assert redact("short ab", ["ab"]) == "short ab"


def test_http_success_gzip_and_headers(http_server: OTLPHTTPServer) -> None:
    transport = HttpTransport(http_server.url + PATH, headers={"Authorization": "Basic xyz"})
    outcome = transport.send(BODY, 5.0)
    assert outcome.ok and outcome.status == "200"
    request = http_server.requests[0]
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.headers["authorization"] == "Basic xyz"
    transport.close()


def _partial(rejected: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTracePartialSuccess,
        ExportTraceServiceResponse,
    )

    answer = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=rejected, error_message="no")
    )
    return answer.SerializeToString()


@pytest.mark.parametrize(
    ("body", "rejected"),
    [
        (b"", 0),
        (None, 0),  # the server's default: an empty ExportTraceServiceResponse
        (_partial(3), 3),
        (b'{"partialSuccess": {"rejectedSpans": "2", "errorMessage": "bad ids"}}', 2),
        (b'{"partialSuccess": {"rejectedSpans": 4}}', 4),
        (b'{"partialSuccess": {}}', 0),
        (b"{}", 0),  # Langfuse's answer
        (b"[1, 2]", 0),
        (b"<html>ok</html>", 0),
        (b'{"partialSuccess": {"rejectedSpans": "many"}}', 0),
    ],
)
def test_http_partial_success_counts_rejected_spans(
    http_server: OTLPHTTPServer, body: bytes | None, rejected: int
) -> None:
    http_server.respond(PATH, 200, body=body)
    outcome = HttpTransport(http_server.url + PATH).send(BODY, 5.0)
    assert outcome.ok and outcome.rejected == rejected


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (408, True),
        (429, True),
        (500, True),
        (503, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
    ],
)
def test_http_status_classification(
    http_server: OTLPHTTPServer, status: int, retryable: bool
) -> None:
    http_server.respond(PATH, status, body=b"nope: sk-secret-value", headers={"Retry-After": "7"})
    outcome = HttpTransport(http_server.url + PATH, secrets=["sk-secret-value"]).send(BODY, 5.0)
    assert not outcome.ok
    assert outcome.retryable is retryable
    assert outcome.status == str(status)
    assert outcome.retry_after == 7.0
    assert "sk-secret-value" not in outcome.message and "[secure]" in outcome.message
    assert outcome.is_auth_error is (status in (401, 403))


def test_http_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome = HttpTransport(f"http://127.0.0.1:{port}{PATH}").send(BODY, 2.0)
    assert not outcome.ok and outcome.retryable and outcome.status == "connection"


def test_http_hung_server_times_out_within_deadline() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        started = time.monotonic()
        outcome = HttpTransport(f"http://127.0.0.1:{listener.getsockname()[1]}{PATH}").send(
            BODY, 0.5
        )
        assert time.monotonic() - started < 3.0
        assert not outcome.ok and outcome.retryable and outcome.status == "timeout"
    finally:
        listener.close()


def test_retry_loop_honours_retry_after_then_succeeds(http_server: OTLPHTTPServer) -> None:
    http_server.respond(PATH, 429, headers={"Retry-After": "0.3"}, times=1)
    http_server.respond(PATH, 503, times=1)
    transport = HttpTransport(http_server.url + PATH)
    retried: list[Outcome] = []
    started = time.monotonic()
    outcome, attempts = send_with_retry(
        transport,
        BODY,
        deadline=time.monotonic() + 10,
        stop=threading.Event(),
        attempt_timeout=2.0,
        on_retry=retried.append,
    )
    elapsed = time.monotonic() - started
    assert outcome.ok and attempts == 3
    assert [o.status for o in retried] == ["429", "503"]
    assert elapsed >= 0.3  # waited at least what the server asked


def test_retry_loop_gives_up_at_deadline(http_server: OTLPHTTPServer) -> None:
    http_server.respond(PATH, 503)
    started = time.monotonic()
    outcome, attempts = send_with_retry(
        HttpTransport(http_server.url + PATH),
        BODY,
        deadline=time.monotonic() + 1.0,
        stop=threading.Event(),
        attempt_timeout=1.0,
    )
    assert not outcome.ok and outcome.status == "503"
    assert attempts >= 1
    assert time.monotonic() - started < 1.5


def test_retry_loop_does_not_retry_permanent_errors(http_server: OTLPHTTPServer) -> None:
    http_server.respond(PATH, 401)
    outcome, attempts = send_with_retry(
        HttpTransport(http_server.url + PATH),
        BODY,
        deadline=time.monotonic() + 5,
        stop=threading.Event(),
        attempt_timeout=1.0,
    )
    assert attempts == 1 and outcome.is_auth_error


def test_stop_event_cuts_waits_short(http_server: OTLPHTTPServer) -> None:
    http_server.respond(PATH, 429, headers={"Retry-After": "30"})
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    outcome, _ = send_with_retry(
        HttpTransport(http_server.url + PATH),
        BODY,
        deadline=time.monotonic() + 60,
        stop=stop,
        attempt_timeout=1.0,
    )
    assert not outcome.ok
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("endpoint", "insecure", "expected"),
    [
        ("http://collector:4317", None, ("collector:4317", False)),
        ("https://apm.example.com", None, ("apm.example.com:443", True)),
        ("apm.example.com:4317", None, ("apm.example.com:4317", True)),
        ("apm.example.com:4317", True, ("apm.example.com:4317", False)),
    ],
)
def test_grpc_target(endpoint: str, insecure: bool | None, expected: tuple[str, bool]) -> None:
    assert grpc_target(endpoint, insecure) == expected


@pytest.mark.parametrize("bad", ["ftp://x:1", "no-port", "http://"])
def test_grpc_bad_endpoint(bad: str) -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        grpc_target(bad, None)


def test_grpc_success_with_metadata(grpc_server: OtlpGrpcServer) -> None:
    transport = GrpcTransport(grpc_server.endpoint, headers={"Authorization": "Bearer t0k3n"})
    outcome = transport.send(BODY, 5.0)
    assert outcome.ok
    assert grpc_server.received[0].metadata["authorization"] == "Bearer t0k3n"
    transport.close()


def test_grpc_partial_success_counts_rejected_spans(grpc_server: OtlpGrpcServer) -> None:
    transport = GrpcTransport(grpc_server.endpoint, insecure=True)
    grpc_server.fail_next(Scripted(grpc.StatusCode.OK, rejected=3))
    outcome = transport.send(BODY, 5.0)
    assert outcome.ok and outcome.rejected == 3
    outcome = transport.send(BODY, 5.0)  # an empty answer: nothing rejected
    assert outcome.ok and outcome.rejected == 0
    transport.close()


def test_grpc_retry_info_and_codes(grpc_server: OtlpGrpcServer) -> None:
    grpc_server.fail_next(
        Scripted(grpc.StatusCode.UNAVAILABLE, retry_delay=0.25),
        Scripted(grpc.StatusCode.INVALID_ARGUMENT),
    )
    transport = GrpcTransport(grpc_server.endpoint)
    first = transport.send(BODY, 5.0)
    assert not first.ok and first.retryable and first.status == "UNAVAILABLE"
    assert first.retry_after == pytest.approx(0.25)
    second = transport.send(BODY, 5.0)
    assert not second.ok and not second.retryable and second.status == "INVALID_ARGUMENT"
    assert transport.send(BODY, 5.0).ok


def test_grpc_unreachable_and_deadline() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome = GrpcTransport(f"http://127.0.0.1:{port}").send(BODY, 0.5)
    assert not outcome.ok and outcome.retryable
    assert outcome.status in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def test_grpc_slow_server_deadline(grpc_server: OtlpGrpcServer) -> None:
    grpc_server.fail_next(Scripted(grpc.StatusCode.OK, sleep=1.5))
    started = time.monotonic()
    outcome = GrpcTransport(grpc_server.endpoint).send(BODY, 0.3)
    assert time.monotonic() - started < 1.2
    assert not outcome.ok and outcome.status == "DEADLINE_EXCEEDED" and outcome.retryable
