"""A counting OTLP sink in a process of its own, shared by every mode of a benchmark run.

It accepts what the modes send and only counts spans, so what a mode's process
spends on export (encoding, compression, HTTP/gRPC) is measured against a real
socket, while the receiving side's cost lands in this process, not in the mode's:

- OTLP/HTTP protobuf (``gzip``/``deflate`` or plain) on ``POST /v1/traces`` and on
  Langfuse's ``POST /api/public/otel/v1/traces``, answered ``200`` with an empty
  ``ExportTraceServiceResponse``; anything else is answered ``404`` and counted;
- OTLP/gRPC ``TraceService/Export`` (grpcio; gzip handled by grpc itself);
- control: ``GET /count`` returns the counters as JSON, ``POST /reset`` zeroes them.

Spans are counted by parsing each request as an ``ExportTraceServiceRequest``.

Run: ``python bench/sink.py`` prints one JSON line (``{"http": "http://127.0.0.1:P",
"grpc": "127.0.0.1:G"}``) once both servers listen, then serves until its standard
input closes (the runner holds it open), it gets SIGTERM, or ``--max-seconds`` pass.
Only loopback is ever bound.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import signal
import sys
import threading
import urllib.request
import zlib
from collections import Counter
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["CHANNELS", "SinkClient", "main"]

CHANNELS = {
    "/v1/traces": "otlp_http",
    "/api/public/otel/v1/traces": "langfuse",
}
"""HTTP path -> counter name; gRPC exports count under ``grpc``."""

_EMPTY_RESPONSE = b""  # a serialized ExportTraceServiceResponse with no fields


class _Counts:
    """Spans and requests per channel (guarded by one lock; HTTP and gRPC threads write)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, channel: str, spans: int, size: int, wire: int | None = None) -> None:
        """Count one request: its spans, protobuf bytes and, for HTTP, bytes on the wire."""
        with self._lock:
            self._counts[channel] += spans
            self._counts[f"{channel}_requests"] += 1
            self._counts[f"{channel}_bytes"] += size
            if wire is not None:
                self._counts[f"{channel}_wire_bytes"] += wire

    def bump(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def _count_spans(body: bytes) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest.FromString(body)
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def _http_handler(counts: _Counts) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as exporters expect

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request would cost more than the counting

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _body(self) -> tuple[bytes, int]:
            """The decompressed body and its size on the wire."""
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length) if length else b""
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding == "gzip":
                return gzip.decompress(data), len(data)
            if encoding == "deflate":
                return zlib.decompress(data), len(data)
            return data, len(data)

        def do_GET(self) -> None:
            if self.path == "/count":
                payload = json.dumps(counts.snapshot()).encode()
                self._answer(200, payload, "application/json")
            else:
                counts.bump("other_requests")
                self._answer(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                body, wire = self._body()
            except Exception:
                counts.bump("bad_requests")
                self._answer(400, b"bad body", "text/plain")
                return
            if path == "/reset":
                counts.reset()
                self._answer(200, b"{}", "application/json")
                return
            channel = CHANNELS.get(path)
            if channel is None:
                counts.bump("other_requests")
                self._answer(404, b"not found", "text/plain")
                return
            try:
                spans = _count_spans(body)
            except Exception:
                counts.bump("bad_requests")
                self._answer(400, b"not an ExportTraceServiceRequest", "text/plain")
                return
            counts.add(channel, spans, len(body), wire)
            self._answer(200, _EMPTY_RESPONSE, "application/x-protobuf")

    return Handler


def _grpc_server(counts: _Counts, host: str, port: int) -> tuple[Any, int]:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            counts.add("grpc", spans, request.ByteSize())
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 * 2**20)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    return server, bound


class SinkClient:
    """What a mode's process uses to talk to the sink's control endpoint."""

    def __init__(self, http: str, grpc: str) -> None:
        self.http = http.rstrip("/")
        """Base URL, e.g. ``http://127.0.0.1:4318`` (append ``/v1/traces``)."""
        self.grpc = grpc
        """``host:port`` of the plaintext OTLP/gRPC receiver."""

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(self.http + "/count", timeout=10) as response:
            data: dict[str, int] = json.loads(response.read())
        return data

    def count(self, channel: str) -> int:
        return self.counts().get(channel, 0)

    def reset(self) -> None:
        request = urllib.request.Request(self.http + "/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (0: any free one)")
    parser.add_argument("--grpc-port", type=int, default=0, help="gRPC port (0: any free one)")
    parser.add_argument(
        "--max-seconds", type=float, default=6 * 3600, help="stop by itself after this long"
    )
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        parser.error("--host must be a loopback address")

    counts = _Counts()
    http = ThreadingHTTPServer((args.host, args.port), _http_handler(counts))
    http.daemon_threads = True
    grpc_server, grpc_port = _grpc_server(counts, args.host, args.grpc_port)
    grpc_server.start()
    threading.Thread(target=http.serve_forever, name="sink-http", daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        try:
            while sys.stdin.read(4096):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    if not sys.stdin.isatty():
        threading.Thread(target=watch_stdin, name="sink-stdin", daemon=True).start()
    host, port = http.server_address[0], http.server_address[1]
    print(json.dumps({"http": f"http://{host}:{port}", "grpc": f"{host}:{grpc_port}"}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait(args.max_seconds)
    http.shutdown()
    grpc_server.stop(grace=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
