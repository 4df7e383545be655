"""A real OTLP/gRPC trace receiver on 127.0.0.1 for tests.

It records every request (decoded), its metadata, and can be told to fail: a
queue of scripted responses (status code, optional RetryInfo delay) is consumed
one per call before it answers OK again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass
class Scripted:
    code: grpc.StatusCode
    retry_delay: float | None = None
    sleep: float = 0.0
    rejected: int = 0
    """With ``OK``: spans the answer reports as rejected (OTLP partial success)."""


@dataclass
class ReceivedGrpc:
    request: trace_service_pb2.ExportTraceServiceRequest
    metadata: dict[str, str]
    raw: bytes


@dataclass
class _State:
    received: list[ReceivedGrpc] = field(default_factory=list)
    script: deque[Scripted] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Service(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, state: _State) -> None:
        self.state = state

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self.state.lock:
            step = self.state.script.popleft() if self.state.script else None
        if step is not None:
            if step.sleep:
                time.sleep(step.sleep)
            if step.code is not grpc.StatusCode.OK:
                if step.retry_delay is not None:
                    info = error_details_pb2.RetryInfo(
                        retry_delay=duration_pb2.Duration(
                            seconds=int(step.retry_delay),
                            nanos=int((step.retry_delay % 1) * 1e9),
                        )
                    )
                    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="retry later")
                    status.details.add().Pack(info)
                    context.set_trailing_metadata(
                        (("grpc-status-details-bin", status.SerializeToString()),)
                    )
                context.abort(step.code, "scripted failure")
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        with self.state.lock:
            self.state.received.append(ReceivedGrpc(request, metadata, request.SerializeToString()))
        if step is not None and step.rejected:
            partial = trace_service_pb2.ExportTracePartialSuccess(
                rejected_spans=step.rejected, error_message="scripted rejection"
            )
            return trace_service_pb2.ExportTraceServiceResponse(partial_success=partial)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpGrpcServer:
    """Start with ``start()``; ``endpoint`` is ``http://127.0.0.1:<port>`` (plaintext)."""

    def __init__(self, port: int = 0) -> None:
        self._state = _State()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _Service(self._state), self._server
        )
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpGrpcServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def fail_next(self, *steps: Scripted) -> None:
        with self._state.lock:
            self._state.script.extend(steps)

    @property
    def received(self) -> list[ReceivedGrpc]:
        with self._state.lock:
            return list(self._state.received)

    def spans(self) -> list[Span]:
        return [
            span
            for r in self.received
            for rs in r.request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def clear(self) -> None:
        with self._state.lock:
            self._state.received.clear()
            self._state.script.clear()
