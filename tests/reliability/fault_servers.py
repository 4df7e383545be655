"""Loopback OTLP receivers that misbehave on cue, and count only what they accepted.

``tests/otlp_http_server.py`` records every request, refused or not, and always answers.
These servers script *faults* instead, one per request (then a default), and keep the
spans of the requests they really accepted apart from everything else, so a test can
assert "every span delivered once, none twice" on ``accepted_ids()``.

HTTP faults (:class:`Fault`): a status (with headers, e.g. ``Retry-After``); ``hang``
(read the request, never answer, until the server stops); ``close`` (hang up while the
request body is still arriving); ``close_after_body`` (read it all, hang up without an
answer); ``slow`` (answer after ``delay`` seconds). A slow request is committed only if
the client is still connected when the answer goes out — like a server that aborts the
work of a cancelled request — so a client timeout never counts as a delivery; pass
``commit_if_gone=True`` for a server that commits what it read regardless.

gRPC faults (:class:`GrpcFault`): a status code, optionally with ``RetryInfo`` and a
delay before answering; a request whose deadline passed while the server slept is not
committed (``context.is_active()``), again unless ``commit_if_gone``.

Both can be restarted on the same port (``port=`` of a stopped one) to simulate a
backend that goes down and comes back.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import select
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Mapping
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import duration_pb2, json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

__all__ = ["Attempt", "Fault", "FaultGrpcServer", "FaultHTTPServer", "GrpcFault", "free_port"]


def free_port() -> int:
    """A port nobody listens on (right now) on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def span_ids(request: trace_service_pb2.ExportTraceServiceRequest) -> list[str]:
    return [
        span.span_id.hex()
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


@dataclass(frozen=True)
class Attempt:
    """One request as the server saw it."""

    at: float  # time.monotonic() when it arrived
    action: str  # what the server did: "200", "429", "hang", "close", "slow", ...
    span_ids: tuple[str, ...]
    accepted: bool
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None  # the body could not be decoded
    size: int = 0  # bytes of the request body as sent (compressed, if it was)


@dataclass(frozen=True)
class Fault:
    """What the HTTP server does with one request."""

    kind: str = "status"  # status | hang | close | close_after_body | slow
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0  # slow: seconds before answering
    commit_if_gone: bool = False  # slow: commit even if the client hung up meanwhile


class _Recorder:
    """Scripted faults and accepted spans, shared by the handler threads."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.script: deque[Any] = deque()
        self.default: Any = None
        self.attempts: list[Attempt] = []
        self.accepted: list[str] = []  # span ids, in order, duplicates kept
        self.released = threading.Event()  # set on stop: hung handlers give up
        self.connections: set[socket.socket] = set()  # open client connections (HTTP)
        self.json_bodies: list[tuple[str, Any]] = []  # non-OTLP requests (HTTP), decoded

    def next_step(self) -> Any:
        with self.cond:
            return self.script.popleft() if self.script else self.default

    def record(self, attempt: Attempt) -> None:
        with self.cond:
            self.attempts.append(attempt)
            if attempt.accepted:
                self.accepted.extend(attempt.span_ids)
            self.cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.1))
            return True


class _FaultServerBase:
    _rec: _Recorder

    def script(self, *steps: Any) -> None:
        """Answer the next requests with ``steps``, one each, then the default."""
        with self._rec.cond:
            self._rec.script.extend(steps)

    def set_default(self, step: Any) -> None:
        with self._rec.cond:
            self._rec.default = step

    @property
    def attempts(self) -> list[Attempt]:
        with self._rec.cond:
            return list(self._rec.attempts)

    @property
    def json_bodies(self) -> list[tuple[str, Any]]:
        """(path, decoded JSON) of the non-OTLP requests (HTTP only)."""
        with self._rec.cond:
            return list(self._rec.json_bodies)

    def accepted_ids(self) -> list[str]:
        """Span ids of accepted requests, in arrival order, duplicates included."""
        with self._rec.cond:
            return list(self._rec.accepted)

    def wait_accepted(self, n: int, timeout: float = 10.0) -> bool:
        """Until at least ``n`` spans were accepted (or ``timeout``)."""
        return self._rec.wait_for(lambda: len(self._rec.accepted) >= n, timeout)

    def wait_attempts(self, n: int, timeout: float = 10.0) -> bool:
        return self._rec.wait_for(lambda: len(self._rec.attempts) >= n, timeout)


# -- HTTP ----------------------------------------------------------------------------------


class FaultHTTPServer(_FaultServerBase):
    """OTLP/HTTP receiver (any path) with scripted faults; ``auth`` = required Authorization."""

    def __init__(self, port: int = 0, *, auth: str | None = None) -> None:
        self._rec = _Recorder()
        self._rec.default = Fault()
        self._auth = auth
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _http_handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultHTTPServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (keep-alive ones too), unanswered."""
        self._rec.released.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._httpd.server_close()
        with self._rec.cond:
            connections = list(self._rec.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FaultHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _decode(body: bytes, headers: Mapping[str, str]) -> trace_service_pb2.ExportTraceServiceRequest:
    encoding = headers.get("content-encoding", "").lower()
    if "gzip" in encoding:
        body = gzip.decompress(body)
    elif "deflate" in encoding:
        body = zlib.decompress(body)
    message = trace_service_pb2.ExportTraceServiceRequest()
    if "json" in headers.get("content-type", ""):
        data = json.loads(body)
        for rs in data.get("resourceSpans", []):  # OTLP/JSON ids are hex, not base64
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if span.get(key):
                            span[key] = _hex_to_b64(span[key])
        json_format.ParseDict(data, message)
    else:
        message.ParseFromString(body)
    return message


def _hex_to_b64(value: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(value)).decode()


def _client_gone(sock: socket.socket) -> bool:
    """True if the peer closed (or reset) the connection."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _http_handler(server: FaultHTTPServer) -> type[BaseHTTPRequestHandler]:
    rec = server._rec

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with rec.cond:
                rec.connections.add(self.connection)

        def finish(self) -> None:
            with rec.cond:
                rec.connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def do_POST(self) -> None:
            arrived = time.monotonic()
            if rec.released.is_set():  # stopped: a keep-alive connection gets no answer
                self._hang_up()
                return
            step: Fault = rec.next_step()
            headers = {k.lower(): v for k, v in self.headers.items()}
            length = int(headers.get("content-length") or 0)
            if step.kind == "close":
                self.rfile.read(min(length // 2, 16))  # part of the body, then hang up
                rec.record(Attempt(arrived, "close", (), False, headers))
                self._hang_up()
                return
            raw = self.rfile.read(length) if length else b""
            ids: tuple[str, ...] = ()
            error = None
            path = self.path.split("?", 1)[0]
            try:
                if path.endswith("/v1/traces"):
                    ids = tuple(span_ids(_decode(raw, headers)))
                else:  # e.g. Langfuse's JSON scores API
                    with rec.cond:
                        rec.json_bodies.append((path, json.loads(raw)))
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if step.kind == "hang":
                rec.record(Attempt(arrived, "hang", ids, False, headers))
                rec.released.wait(60.0)
                self._hang_up()
                return
            if step.kind == "close_after_body":
                rec.record(Attempt(arrived, "close_after_body", ids, False, headers))
                self._hang_up()
                return
            status = step.status
            if error is not None:
                status = 400
            elif server._auth is not None and headers.get("authorization") != server._auth:
                status = 401
            if step.kind == "slow":
                if rec.released.wait(step.delay):
                    self._hang_up()
                    return
                gone = _client_gone(self.connection)
                accepted = 200 <= status < 300 and (step.commit_if_gone or not gone)
                rec.record(
                    Attempt(arrived, "slow-gone" if gone else "slow", ids, accepted, headers)
                )
                if gone:
                    self._hang_up()
                    return
            else:
                accepted = 200 <= status < 300
                rec.record(Attempt(arrived, str(status), ids, accepted, headers, error, len(raw)))
            body = step.body
            if body is None:
                if 200 <= status < 300:
                    body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                else:
                    body = (error or f"scripted {status}").encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                for key, value in step.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                self.close_connection = True

        def _hang_up(self) -> None:
            self.close_connection = True
            try:
                # RST, not FIN: the client learns at once that no answer will come.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            except OSError:
                pass

    return Handler


# -- gRPC ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrpcFault:
    """What the gRPC server does with one Export call."""

    code: grpc.StatusCode = grpc.StatusCode.OK
    retry_delay: float | None = None  # RetryInfo in the status details
    sleep: float = 0.0  # before answering
    commit_if_gone: bool = False


class _GrpcService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, rec: _Recorder) -> None:
        self.rec = rec

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        arrived = time.monotonic()
        step: GrpcFault = self.rec.next_step()
        ids = tuple(span_ids(request))
        size = request.ByteSize()
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        if step.sleep:
            self.rec.released.wait(step.sleep)
        if step.code is not grpc.StatusCode.OK:
            self.rec.record(Attempt(arrived, step.code.name, ids, False, metadata, size=size))
            if step.retry_delay is not None:
                info = error_details_pb2.RetryInfo(
                    retry_delay=duration_pb2.Duration(
                        seconds=int(step.retry_delay),
                        nanos=round((step.retry_delay % 1) * 1e9),
                    )
                )
                status = status_pb2.Status(code=step.code.value[0], message="scripted")
                status.details.add().Pack(info)
                context.set_trailing_metadata(
                    (("grpc-status-details-bin", status.SerializeToString()),)
                )
            context.abort(step.code, "scripted failure")
        active = context.is_active()
        accepted = active or step.commit_if_gone
        action = "OK" if active else "OK-gone"
        self.rec.record(Attempt(arrived, action, ids, accepted, metadata, size=size))
        return trace_service_pb2.ExportTraceServiceResponse()


class FaultGrpcServer(_FaultServerBase):
    """OTLP/gRPC receiver with scripted faults; ``endpoint`` is plaintext ``http://…``."""

    def __init__(self, port: int = 0, *, max_receive_bytes: int | None = None) -> None:
        """``max_receive_bytes``: default gRPC's (and the OTel Collector's) 4 MiB."""
        self._rec = _Recorder()
        self._rec.default = GrpcFault()
        options = []
        if max_receive_bytes is not None:
            options.append(("grpc.max_receive_message_length", max_receive_bytes))
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=options)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _GrpcService(self._rec), self._server
        )
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        if not self.port:
            raise OSError(f"cannot bind 127.0.0.1:{port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultGrpcServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._rec.released.set()
        self._server.stop(grace=None).wait(5.0)

    def __enter__(self) -> FaultGrpcServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
