"""OTLP over HTTP (protobuf or JSON): one pooled connection, gzip, an Outcome per attempt.

We use urllib3 directly (it is what ``requests`` — and so the stock exporter —
runs on) for keep-alive pooling and explicit connect/read timeouts, so a hung
backend can never hold a sender past its deadline.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Mapping

import orjson
import urllib3

from otel_llm.export.retry import RETRYABLE_HTTP_STATUS, Outcome, parse_retry_after

__all__ = ["HttpTransport", "redact", "rejected_spans"]

_MAX_MESSAGE = 300


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (and its obvious encodings) replaced by ``[secure]``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[secure]")
    return text


class HttpTransport:
    """POST encoded requests to one OTLP/HTTP endpoint."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        compression: str = "gzip",
        content_type: str = "application/x-protobuf",
        secrets: Iterable[str] = (),
        connect_timeout: float = 5.0,
        verify: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self._headers = {"Content-Type": content_type, "User-Agent": "otel-llm", **(headers or {})}
        self._compression = compression
        if compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"
        elif compression == "deflate":
            self._headers["Content-Encoding"] = "deflate"
        self._secrets = tuple(secrets)
        self._connect_timeout = connect_timeout
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=1,
            retries=False,
            cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
        )

    def _compress(self, body: bytes) -> bytes:
        if self._compression == "gzip":
            # Level 1: several times faster than the default 6 and within ~10% of its
            # size on span payloads; CPU on the sender thread matters more than bytes.
            return gzip.compress(body, compresslevel=1, mtime=0)
        if self._compression == "deflate":
            return zlib.compress(body, 1)
        return body

    def send(self, body: bytes, timeout: float) -> Outcome:
        try:
            response = self._pool.request(
                "POST",
                self.endpoint,
                body=self._compress(body),
                headers=self._headers,
                timeout=urllib3.Timeout(
                    connect=min(self._connect_timeout, timeout), read=max(timeout, 0.001)
                ),
                preload_content=True,
                redirect=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # a ConnectTimeoutError subclass
            message = redact(f"{type(exc).__name__}: {exc}", self._secrets)[:_MAX_MESSAGE]
            return Outcome(ok=False, retryable=True, status="connection", message=message)
        except urllib3.exceptions.TimeoutError as exc:
            return Outcome(ok=False, retryable=True, status="timeout", message=type(exc).__name__)
        except urllib3.exceptions.HTTPError as exc:
            message = redact(f"{type(exc).__name__}: {exc}", self._secrets)[:_MAX_MESSAGE]
            return Outcome(ok=False, retryable=True, status="connection", message=message)
        except Exception as exc:  # a transport must never raise
            name = type(exc).__name__
            return Outcome(ok=False, retryable=True, status="connection", message=name)
        status = response.status
        data = response.data or b""
        if 200 <= status < 300:
            return Outcome(ok=True, status=str(status), rejected=rejected_spans(data))
        message = redact(data[:_MAX_MESSAGE].decode("utf-8", "replace"), self._secrets)
        return Outcome(
            ok=False,
            retryable=status in RETRYABLE_HTTP_STATUS,
            status=str(status),
            message=message.strip(),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    def close(self) -> None:
        self._pool.clear()


def rejected_spans(data: bytes) -> int:
    """Spans a successful OTLP answer (HTTP or gRPC) reports as rejected (partial
    success), 0 when it says none or is not an OTLP answer."""
    if not data:
        return 0
    if data[:1] == b"{":  # OTLP/JSON, or a JSON answer such as Langfuse's
        try:
            partial = orjson.loads(data).get("partialSuccess") or {}
            return max(0, int(partial.get("rejectedSpans", 0)))  # int64: a string in JSON
        except Exception:
            return 0
    # Loaded only for a non-empty protobuf answer: most backends send none.
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    try:
        return int(ExportTraceServiceResponse.FromString(data).partial_success.rejected_spans)
    except Exception:  # JSON or an empty body from a non-OTLP server: nothing rejected
        return 0
