"""OTLP/gRPC for the embedded receiver (``…collector.trace.v1.TraceService/Export``).

A ``grpc.server`` with one generic unary handler that receives the raw request
bytes (gRPC itself undoes ``grpc-encoding: gzip``) and decodes them with the same
decoder as HTTP. Status codes: UNAUTHENTICATED without the bearer token,
INVALID_ARGUMENT for a body that does not decode, UNAVAILABLE (retryable) when the
worker's queue is full, RESOURCE_EXHAUSTED past ``max_body_bytes`` (gRPC's own
message size limit).
"""

from __future__ import annotations

import socket
from concurrent import futures
from typing import TYPE_CHECKING, Any, Final

import grpc

from otel_llm.diagnostics import report, strict

if TYPE_CHECKING:
    from otel_llm.local.receiver import Receiver

__all__ = ["GrpcServer"]

_SERVICE: Final = "opentelemetry.proto.collector.trace.v1.TraceService"
_WORKERS: Final = 16


def _check_free(host: str, port: int, wanted: str) -> None:
    """Fail with one clear line before gRPC core logs its own multi-line bind error."""
    if not port:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {wanted}: {exc.strerror}") from None


class GrpcServer:
    """The receiver's gRPC side: ``start()``, ``address``, ``stop(timeout)``."""

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._server: Any = None
        self._address: str | None = None
        self.port: int | None = None

    def start(self) -> None:
        options = self._receiver.options
        limit = options.max_body_bytes
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="otel-llm-grpc"),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        handler = grpc.method_handlers_generic_handler(
            _SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export)}
        )
        server.add_generic_rpc_handlers((handler,))
        host = f"[{options.host}]" if ":" in options.host else options.host
        wanted = f"{host}:{options.grpc_port or 0}"
        _check_free(options.host, options.grpc_port or 0, wanted)
        try:
            port = server.add_insecure_port(wanted)
        except RuntimeError as exc:  # grpcio >= 1.50 raises on a failed bind
            raise OSError(f"cannot listen on {wanted}: {exc}") from None
        if not port:
            raise OSError(f"cannot listen on {wanted}")
        server.start()
        self._server = server
        self._address = f"{host}:{port}"
        self.port = port

    @property
    def address(self) -> str | None:
        return self._address

    def stop(self, timeout: float) -> bool:
        """Refuse new calls; calls in flight get ``timeout`` seconds to finish."""
        server, self._server = self._server, None
        if server is None:
            return True
        done: bool = server.stop(grace=timeout).wait(timeout + 1.0)
        return done

    def _export(self, request: bytes, context: Any) -> bytes:
        from otel_llm.local.receiver import Outcome

        receiver = self._receiver
        authorization = dict(context.invocation_metadata()).get("authorization")
        if not receiver.authorized(authorization if isinstance(authorization, str) else None):
            receiver.count("grpc_unauthenticated")
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            result = receiver.ingest(request, json=False)
        except Exception as exc:  # a bug of ours: the sender gets INTERNAL, we go on
            report("serve.grpc", exc)
            if strict():
                raise
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        if result.outcome is Outcome.MALFORMED:
            receiver.count("grpc_invalid_argument")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, result.message)
        if result.outcome is Outcome.BUSY:
            receiver.count("grpc_unavailable")
            context.abort(grpc.StatusCode.UNAVAILABLE, result.message)
        return result.body
