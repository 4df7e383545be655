"""A real OTLP/HTTP receiver on loopback, for wire tests of any HTTP destination.

It runs ``http.server.ThreadingHTTPServer`` on ``127.0.0.1`` (port 0: the OS picks
one) in a background thread. Every request is recorded: path, headers (lowercase
names), the raw body and the decoded one. ``…/v1/traces`` bodies (protobuf or
JSON, optionally gzip/deflate) are parsed as ``ExportTraceServiceRequest`` and
flattened into :class:`DecodedSpan` objects; JSON bodies elsewhere (e.g. Langfuse's
``POST /api/public/scores``) are parsed into ``request.json``.

Langfuse's media API is served too (unless scripted with ``respond``): ``POST
/api/public/media`` answers ``{mediaId, uploadUrl}`` with the SDK's id for the
``sha256Hash`` sent and ``uploadUrl = url + "/upload/<id>"`` (null for ids in
``known_media``, which a PATCH reporting a 2xx upload adds to); ``PUT /upload/<id>``
and ``PATCH /api/public/media/<id>`` answer 200.

Responses are configurable per path: a default (``respond(path, status)``) and
one-shot responses consumed in order (``respond(path, 503, times=2)``), so retry
and failure tests can script the server.

Usage::

    with OTLPHTTPServer() as server:
        exporter = SomeExporter(endpoint=server.url + "/v1/traces")
        ...
        server.wait_for(lambda s: len(s.requests) >= 1)
        assert server.spans()[0].attributes["gen_ai.request.model"] == "gpt-4o"

or as a session fixture with ``server.reset()`` between tests.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

__all__ = ["DecodedSpan", "OTLPHTTPServer", "RecordedRequest", "Response", "any_value"]

MEDIA_PATH = "/api/public/media"


@dataclass(frozen=True)
class Response:
    """What the server answers on one path."""

    status: int = 200
    body: bytes | None = None
    """None: an empty ``ExportTraceServiceResponse`` for traces, ``{}`` elsewhere."""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DecodedSpan:
    """One span of a decoded OTLP request, with ids as lowercase hex."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: int
    start_time: int
    end_time: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    scope_name: str
    scope_version: str
    resource: dict[str, Any]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    body: bytes
    """After Content-Encoding was undone."""
    spans: list[DecodedSpan] = field(default_factory=list)
    json: Any = None
    error: str | None = None
    """Why the body could not be decoded (the server then answered 400)."""


def any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a plain Python value (arrays → lists, kvlists → dicts)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind is None:
        return None
    return getattr(value, kind)


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in items}


def _decode_traces(request: trace_service_pb2.ExportTraceServiceRequest) -> list[DecodedSpan]:
    spans: list[DecodedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                spans.append(
                    DecodedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        kind=span.kind,
                        start_time=span.start_time_unix_nano,
                        end_time=span.end_time_unix_nano,
                        attributes=_attributes(span.attributes),
                        status_code=span.status.code,
                        status_message=span.status.message,
                        events=[(e.name, _attributes(e.attributes)) for e in span.events],
                        scope_name=scope.name,
                        scope_version=scope.version,
                        resource=resource,
                    )
                )
    return spans


class OTLPHTTPServer:
    """A loopback HTTP server recording OTLP and JSON requests (thread-safe)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []  # guarded by _lock
        self._defaults: dict[str, Response] = {}  # guarded by _lock
        self._queued: dict[str, deque[Response]] = {}  # guarded by _lock
        self.known_media: set[str] = set()
        """Media ids whose create answers ``uploadUrl: null`` (already stored)."""
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> OTLPHTTPServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="otlp-http-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> OTLPHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripting --------------------------------------------------------------------
    def respond(
        self,
        path: str,
        status: int = 200,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = None,
    ) -> None:
        """Answer requests to ``path`` with ``status``: always, or for the next ``times``."""
        response = Response(status, body, dict(headers or {}))
        with self._lock:
            if times is None:
                self._defaults[path] = response
            else:
                self._queued.setdefault(path, deque()).extend([response] * times)

    def reset(self) -> None:
        """Forget recorded requests and scripted responses."""
        with self._lock:
            self._requests.clear()
            self._defaults.clear()
            self._queued.clear()
            self.known_media.clear()

    # -- inspection -------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def spans(self, path: str | None = None) -> list[DecodedSpan]:
        """Every span received (on ``path``, if given), in arrival order."""
        return [s for r in self.requests if path is None or r.path == path for s in r.spans]

    def wait_for(self, predicate: Callable[[OTLPHTTPServer], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on each request) or timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if predicate(self):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)

    # -- handler side -----------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> Response:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()
            queued = self._queued.get(request.path)
            if queued:
                return queued.popleft()
            if request.method == "PATCH" and request.path.startswith(MEDIA_PATH + "/"):
                marked = request.json if isinstance(request.json, dict) else {}
                if str(marked.get("uploadHttpStatus", "")).startswith("2"):
                    self.known_media.add(request.path.rsplit("/", 1)[1])  # stored now
            default = self._defaults.get(request.path)
            if default is not None:
                return default
            if request.method == "POST" and request.path == MEDIA_PATH:
                return self._media_created(request)
            return Response()

    def _media_created(self, request: RecordedRequest) -> Response:
        """Langfuse's create answer: the SDK's media id and where to PUT the bytes."""
        sha = request.json.get("sha256Hash", "") if isinstance(request.json, dict) else ""
        digest = base64.b64decode(sha)
        media_id = base64.urlsafe_b64encode(digest).decode("ascii")[:22]
        upload = None if media_id in self.known_media else f"{self.url}/upload/{media_id}"
        return Response(body=json.dumps({"mediaId": media_id, "uploadUrl": upload}).encode())


def _handler_for(server: OTLPHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real collectors do

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_GET(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet tests

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            raw = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]
            recorded = RecordedRequest(self.command, path, headers, raw, raw)
            is_traces = path.endswith("/v1/traces")
            try:
                recorded.body = _decompress(raw, headers.get("content-encoding", ""))
                content_type = headers.get("content-type", "")
                if is_traces:
                    message = trace_service_pb2.ExportTraceServiceRequest()
                    if "json" in content_type:
                        json_format.Parse(recorded.body, message)
                    else:
                        message.ParseFromString(recorded.body)
                    recorded.spans = _decode_traces(message)
                elif recorded.body and "json" in content_type:
                    recorded.json = json.loads(recorded.body)
            except Exception as exc:  # any bad body is the client's fault
                recorded.error = f"{type(exc).__name__}: {exc}"
            response = server._record(recorded)
            status = 400 if recorded.error else response.status
            body = response.body
            if body is None:
                if is_traces:
                    body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                else:
                    body = b"{}"
            self.send_response(status)
            content_type = "application/x-protobuf" if is_traces else "application/json"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.lower()
    if "gzip" in encoding:
        return gzip.decompress(body)
    if "deflate" in encoding:
        return zlib.decompress(body)
    return body
