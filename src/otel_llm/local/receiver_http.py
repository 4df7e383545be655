"""OTLP/HTTP for the embedded receiver: ``POST /v1/traces``, protobuf or JSON, gzip or not.

A ``ThreadingHTTPServer`` (one thread per connection, HTTP/1.1 keep-alive). What the
OTLP/HTTP spec and the stock exporters expect:

- ``Content-Type: application/x-protobuf`` (or ``application/protobuf``) or
  ``application/json``; anything else is 415. The reply uses the request's type.
- ``Content-Encoding: gzip`` (also ``deflate``, ``identity``); others are 415.
- 200 with an ``ExportTraceServiceResponse`` (partial success when spans were
  rejected); 400 for a body that does not decode; 413 past ``max_body_bytes``
  (compressed or decompressed); 401 without the bearer token; 503 with
  ``Retry-After`` when the worker's queue is full. Error bodies are
  ``google.rpc.Status`` messages, as the spec prescribes.

When a request is refused before its body was read, the connection is closed (the
unread body would otherwise be taken for the next request).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from otel_llm.diagnostics import report, strict
from otel_llm.local.otlp_decode import encode_status

if TYPE_CHECKING:
    from otel_llm.local.receiver import Receiver

__all__ = ["HttpServer"]

_PATH: Final = "/v1/traces"
_PROTOBUF_TYPES: Final = frozenset({"application/x-protobuf", "application/protobuf"})
_JSON_TYPE: Final = "application/json"
_ENCODINGS: Final = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
_IDLE_TIMEOUT: Final = 60.0
_UNAUTHENTICATED: Final = 16  # google.rpc.Code
_INVALID_ARGUMENT: Final = 3
_NOT_FOUND: Final = 5
_RESOURCE_EXHAUSTED: Final = 8
_UNIMPLEMENTED: Final = 12
_INTERNAL: Final = 13


class _Refused(Exception):
    """Answer ``status`` with ``message`` (and close the connection when ``close``)."""

    def __init__(self, status: int, code: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.close = status, code, message, close


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() waits for in-flight requests itself, with a deadline

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.receiver = receiver
        self.max_body = receiver.options.max_body_bytes
        self.closing = False
        self.active: dict[_Handler, bool] = {}  # handler -> busy; guarded by lock
        self.lock = threading.Condition()
        super().__init__(address, _Handler)

    def close_idle(self) -> None:
        """Disconnect keep-alive connections waiting for their next request."""
        with self.lock:
            idle = [h for h, busy in self.active.items() if not busy]
        for handler in idle:
            with contextlib.suppress(OSError):  # it closed meanwhile
                handler.connection.shutdown(socket.SHUT_RDWR)

    def wait_idle(self, deadline: float) -> bool:
        with self.lock:
            while self.active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(min(remaining, 0.1))
            return True


class HttpServer:
    """The receiver's HTTP side: ``start()``, ``url``, ``stop(timeout)``."""

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        options = self._receiver.options
        port = options.http_port or 0
        try:
            self._httpd = _Server((options.host, port), self._receiver)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on {_hostport(options.host, port)}: {exc.strerror}"
            ) from None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="otel-llm-serve-http",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str | None:
        if self._httpd is None:
            return None
        host, port = self._httpd.server_address[:2]
        return f"http://{_hostport(str(host), int(port))}{_PATH}"

    @property
    def port(self) -> int | None:
        return int(self._httpd.server_address[1]) if self._httpd is not None else None

    def stop(self, timeout: float) -> bool:
        """Stop accepting, close idle connections, let busy ones finish (until ``timeout``)."""
        httpd = self._httpd
        if httpd is None:
            return True
        deadline = time.monotonic() + timeout
        httpd.closing = True
        if self._thread is not None:
            httpd.shutdown()
            self._thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None
        httpd.server_close()
        httpd.close_idle()
        return httpd.wait_idle(deadline)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "otel-llm"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    server: _Server

    # -- connection bookkeeping (for a clean shutdown) ----------------------------------
    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.active[self] = False

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.lock:
                self.server.active.pop(self, None)
                self.server.lock.notify_all()

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # the client went away: nothing to answer
            super().handle()

    def handle_one_request(self) -> None:
        with self.server.lock:
            self.server.active[self] = False
        if self.server.closing:
            self.close_connection = True
            return
        super().handle_one_request()

    def parse_request(self) -> bool:
        with self.server.lock:
            self.server.active[self] = True  # a request line arrived: let it finish
        return super().parse_request()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the start line; see stats

    # -- requests -----------------------------------------------------------------------
    def do_GET(self) -> None:
        self._reject_method()

    def do_PUT(self) -> None:
        self._reject_method()

    def _reject_method(self) -> None:
        if urlsplit(self.path).path.rstrip("/") == _PATH:
            self._refuse(_Refused(405, _UNIMPLEMENTED, f"use POST {_PATH}", close=True), True)
        else:
            self._refuse(_Refused(404, _NOT_FOUND, f"not found; POST to {_PATH}", close=True), True)

    def do_POST(self) -> None:
        json = True
        try:
            json = self._check()
            body = self._body()
            self._answer(body, json)
        except _Refused as refused:
            self.server.receiver.count(f"http_{refused.status}")
            self._refuse(refused, json)
        except OSError:
            self.close_connection = True
        except Exception as exc:
            report("serve.http", exc)
            self._refuse(_Refused(500, _INTERNAL, "internal error", close=True), json)
            if strict():
                raise

    def _check(self) -> bool:
        """Path, token, content type and encoding; returns True for JSON."""
        if urlsplit(self.path).path.rstrip("/") != _PATH:
            raise _Refused(404, _NOT_FOUND, f"not found; POST to {_PATH}", close=True)
        media = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        json = media not in _PROTOBUF_TYPES
        if not self.server.receiver.authorized(self.headers.get("Authorization")):
            raise _Refused(401, _UNAUTHENTICATED, "missing or wrong bearer token", close=True)
        if media != _JSON_TYPE and media not in _PROTOBUF_TYPES:
            shown = media[:60] or "none"
            raise _Refused(
                415,
                _INVALID_ARGUMENT,
                f"unsupported Content-Type {shown!r}: use application/x-protobuf or "
                "application/json",
                close=True,
            )
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in _ENCODINGS:
            raise _Refused(
                415,
                _INVALID_ARGUMENT,
                f"unsupported Content-Encoding {encoding[:30]!r}: use gzip or none",
                close=True,
            )
        return json

    def _body(self) -> bytes:
        limit = self.server.max_body
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raw = self._read_chunked(limit)
        else:
            length_text = self.headers.get("Content-Length")
            if length_text is None:
                raise _Refused(411, _INVALID_ARGUMENT, "Content-Length is required", close=True)
            try:
                length = int(length_text)
            except ValueError:
                length = -1
            if length < 0:
                raise _Refused(400, _INVALID_ARGUMENT, "bad Content-Length", close=True)
            if length > limit:
                raise _Refused(413, _RESOURCE_EXHAUSTED, _too_large(limit), close=True)
            raw = self.rfile.read(length)
            if len(raw) < length:
                raise OSError("client closed the connection mid-body")
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        return _decompress(raw, encoding, limit)

    def _read_chunked(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Refused(400, _INVALID_ARGUMENT, "bad chunked encoding", close=True) from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > limit:
                raise _Refused(413, _RESOURCE_EXHAUSTED, _too_large(limit), close=True)
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise OSError("client closed the connection mid-body")
            chunks.append(chunk)
            self.rfile.readline(8)

    def _answer(self, body: bytes, json: bool) -> None:
        from otel_llm.local.receiver import Outcome

        result = self.server.receiver.ingest(body, json=json)
        if result.outcome is Outcome.ACCEPTED:
            self._send(200, result.body, json)
        elif result.outcome is Outcome.BUSY:
            self.server.receiver.count("http_503")
            self._send(503, result.body, json, (("Retry-After", "1"),))
        else:
            self.server.receiver.count("http_400")
            self._send(400, result.body, json)

    def _refuse(self, refused: _Refused, json: bool) -> None:
        if refused.close:
            self.close_connection = True
        headers: tuple[tuple[str, str], ...] = ()
        if refused.status == 401:
            headers = (("WWW-Authenticate", 'Bearer realm="otel-llm"'),)
        elif refused.status == 405:
            headers = (("Allow", "POST"),)
        try:
            body = encode_status(refused.code, refused.message, json=json)
            self._send(refused.status, body, json, headers)
        except OSError:
            self.close_connection = True

    def _send(
        self, status: int, body: bytes, json: bool, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", _JSON_TYPE if json else "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        if self.close_connection or self.server.closing:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes (--max-body-bytes)"


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding``, never producing more than ``limit`` bytes."""
    if encoding in ("", "identity"):
        return body
    gzip = encoding in ("gzip", "x-gzip")
    wbits = 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS
    out: list[bytes] = []
    total = 0
    data = body
    try:
        while data:
            inflater = zlib.decompressobj(wbits)
            part = inflater.decompress(data, limit - total + 1)
            total += len(part)
            if total > limit:
                raise _Refused(413, _RESOURCE_EXHAUSTED, _too_large(limit) + " once decompressed")
            if not inflater.eof:
                raise zlib.error("truncated data")
            out.append(part)
            data = inflater.unused_data if gzip else b""
    except zlib.error as exc:
        raise _Refused(400, _INVALID_ARGUMENT, f"body is not valid {encoding}: {exc}") from None
    return b"".join(out)
