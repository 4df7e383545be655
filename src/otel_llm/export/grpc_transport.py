"""OTLP over gRPC with pre-encoded request bytes.

The generated stub would serialize a protobuf message; we already hold the bytes
(our encoder), so the call uses an identity serializer. Retryable status codes
follow the OTLP spec, and a server's ``RetryInfo`` becomes ``retry_after``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlparse

import grpc
from google.rpc import error_details_pb2, status_pb2

from otel_llm.errors import ConfigError
from otel_llm.export.http_transport import redact, rejected_spans
from otel_llm.export.retry import Outcome

__all__ = ["GrpcTransport", "grpc_target"]

_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def grpc_target(endpoint: str, insecure: bool | None) -> tuple[str, bool]:
    """(host:port, use TLS) from an endpoint as the stock exporter accepts it.

    ``http://`` means plaintext, ``https://`` TLS; a bare ``host:port`` uses TLS
    unless ``insecure`` is set.
    """
    if "://" in endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError("endpoint", f"{endpoint!r} is not an http(s) URL or host:port")
        port = parsed.port or (443 if parsed.scheme == "https" else 4317)
        tls = parsed.scheme == "https" and not insecure
        return f"{parsed.hostname}:{port}", tls
    host, _, port_text = endpoint.rpartition(":")
    if not host or not port_text.isdigit():
        raise ConfigError("endpoint", f"{endpoint!r} needs a port (host:port)")
    return endpoint, not insecure


class GrpcTransport:
    """Unary Export calls on one channel."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        insecure: bool | None = None,
        compression: str = "gzip",
        secrets: Iterable[str] = (),
    ) -> None:
        target, tls = grpc_target(endpoint, insecure)
        self.endpoint = target
        options = [("grpc.primary_user_agent", "otel-llm")]
        self._compression = grpc.Compression.Gzip if compression == "gzip" else None
        if tls:
            channel = grpc.secure_channel(
                target, grpc.ssl_channel_credentials(), options, compression=self._compression
            )
        else:
            channel = grpc.insecure_channel(target, options, compression=self._compression)
        self._channel = channel
        self._call = channel.unary_unary(_METHOD)  # identity serializers: bytes in, bytes out
        self._metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())
        self._secrets = tuple(secrets)

    def send(self, body: bytes, timeout: float) -> Outcome:
        try:
            data = self._call(body, timeout=max(timeout, 0.001), metadata=self._metadata)
        except grpc.RpcError as error:
            return self._failure(error)
        except Exception as exc:  # a transport must never raise
            name = type(exc).__name__
            return Outcome(ok=False, retryable=True, status="connection", message=name)
        return Outcome(ok=True, status="OK", rejected=rejected_spans(data))

    def _failure(self, error: grpc.RpcError) -> Outcome:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else ""
        retry_after = _retry_info(error)
        retryable = code in _RETRYABLE
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after is None:
            # OTLP: retryable only when the server says recovery is possible (RetryInfo);
            # otherwise it is usually a message over the server's size limit, which no
            # retry will fix and which would block the spool behind it.
            retryable = False
        return Outcome(
            ok=False,
            retryable=retryable,
            status=code.name,
            message=redact(str(details or ""), self._secrets)[:300],
            retry_after=retry_after,
        )

    def close(self) -> None:
        self._channel.close()


def _retry_info(error: grpc.RpcError) -> float | None:
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailing or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
        except Exception:
            return None
    return None
