"""``otel-llm serve``: a real subprocess receiving from the stock OpenTelemetry exporters.

The server runs as the installed command on ports the OS picks (``--http-port 0
--grpc-port 0``; the start line says which), with a database of the test's own. Spans
are sent from this (another) process with the stock OTLP exporters, HTTP and gRPC, gzip;
the server is stopped with SIGTERM and the store is read back with ``StoreReader``.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace import TraceState as W3CTraceState
from opentelemetry.trace.status import Status, StatusCode

from otel_llm.export.base import Destination
from otel_llm.export.otlp import protobuf_to_otlp_json
from otel_llm.local.otlp_decode import decode_request
from otel_llm.local.receiver import Receiver, ReceiverOptions, RecordWorker
from otel_llm.local.store_queries import SpanView, StoreReader
from otel_llm.processing.record import SpanRecord, record_from_span
from otel_llm.processing.stages import build_stage_context
from tests.otlp_grpc_server import OtlpGrpcServer
from tests.otlp_http_server import OTLPHTTPServer

from .conftest import one_line, run_cli

API_KEY = "sk-proj-Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LmNbVcXz"
MODEL = "gpt-4o-mini"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_START = re.compile(r"OTLP/HTTP (?P<http>http://\S+/v1/traces), OTLP/gRPC (?P<grpc>\S+?);")


# -- the server ---------------------------------------------------------------------------
def _command() -> list[str]:
    installed = shutil.which("otel-llm", path=os.path.dirname(sys.executable))
    return [installed] if installed else [sys.executable, "-m", "otel_llm.cli"]


@dataclass
class Stopped:
    code: int
    out: str
    err: str


@dataclass
class Served:
    proc: subprocess.Popen[str]
    db: Path
    http_url: str
    grpc_address: str
    start_line: str

    @property
    def http_port(self) -> int:
        return int(self.http_url.rsplit(":", 1)[1].split("/", 1)[0])

    def stop(self, timeout: float = 60.0, sig: int = signal.SIGTERM) -> Stopped:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return Stopped(self.proc.returncode, self.start_line + out, err)


def start_serve(
    db: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> Served:
    """Start ``otel-llm serve`` (``db`` None: no ``--db``) and wait for its start line."""
    where = ["--db", str(db)] if db is not None else []
    proc = subprocess.Popen(
        [*_command(), "serve", *where, "--http-port", "0", "--grpc-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    match = _START.search(line)
    if not match:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"serve did not start: {line!r} {out!r} {err!r}")
    return Served(proc, db or Path(os.devnull), match["http"], match["grpc"], line)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start_serve(tmp_path / "traces.db")
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.communicate(timeout=10)


# -- what is sent -------------------------------------------------------------------------
def llm_spans(label: str, traces: int = 1, *, error: bool = False) -> list[ReadableSpan]:
    """Per trace: a SERVER ``{label}-agent`` span > a CLIENT ``{label}-chat`` generation."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"app-{label}"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("my-agent", "1.2.3")
    messages = [{"role": "user", "parts": [{"type": "text", "content": f"my key: {API_KEY}"}]}]
    for _ in range(traces):
        with tracer.start_as_current_span(f"{label}-agent", kind=SpanKind.SERVER) as root:
            root.add_event("started", {"step": 1})
            with tracer.start_as_current_span(
                f"{label}-chat",
                kind=SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": MODEL,
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 200,
                    "gen_ai.input.messages": json.dumps(messages),
                    "gen_ai.response.finish_reasons": ("stop",),
                },
            ) as chat:
                if error:
                    chat.set_status(Status(StatusCode.ERROR, "rate limited"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def http_exporter(url: str, token: str | None = None) -> HttpSpanExporter:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return HttpSpanExporter(endpoint=url, compression=Compression.Gzip, headers=headers, timeout=10)


def grpc_exporter(address: str, token: str | None = None) -> GrpcSpanExporter:
    headers = {"authorization": f"Bearer {token}"} if token else None
    return GrpcSpanExporter(
        endpoint=f"http://{address}",
        insecure=True,
        compression=grpc.Compression.Gzip,
        headers=headers,
        timeout=10,
    )


def send(exporter: HttpSpanExporter | GrpcSpanExporter, spans: Sequence[ReadableSpan]) -> bool:
    try:
        return exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()


def trace_ids(spans: Sequence[ReadableSpan]) -> set[str]:
    return {f"{s.context.trace_id:032x}" for s in spans if s.context}


def stored(db: Path) -> list[SpanView]:
    with StoreReader(db) as reader:
        ids = [t.trace_id for t in reader.traces(limit=10_000)]
        return [span for trace_id in ids for span in reader.trace(trace_id).spans]


def db_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def post(
    url: str,
    body: bytes,
    content_type: str = "application/x-protobuf",
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, str], bytes]:
    parts = url.removeprefix("http://").split("/", 1)
    own = conn is None
    conn = conn or http.client.HTTPConnection(parts[0], timeout=30)
    try:
        conn.request(
            "POST", "/" + parts[1], body, {"Content-Type": content_type, **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        if own:
            conn.close()


def protobuf_body(spans: Sequence[ReadableSpan]) -> bytes:
    data: bytes = encode_spans(spans).SerializeToString()
    return data


# -- stock exporters end to end -----------------------------------------------------------
def test_stock_http_and_grpc_exporters_store_processed_spans(served: Served) -> None:
    via_http = llm_spans("http", traces=3)
    via_grpc = llm_spans("grpc", traces=2, error=True)
    assert send(http_exporter(served.http_url), via_http)
    assert send(grpc_exporter(served.grpc_address), via_grpc)
    assert send(http_exporter(served.http_url), via_http[:2])  # a retry: stored once

    stopped = served.stop()
    assert stopped.code == 0, stopped.err
    assert "12 spans received" in stopped.out and "localstore: exported 12" in stopped.out

    spans = stored(served.db)
    assert len(spans) == 10
    assert len({(s.trace_id, s.span_id) for s in spans}) == 10
    assert {s.trace_id for s in spans} == trace_ids(via_http) | trace_ids(via_grpc)
    chats = [s for s in spans if s.name.endswith("-chat")]
    assert len(chats) == 5
    for chat in chats:
        assert chat.model == MODEL and chat.kind == "CLIENT"
        assert (chat.input_tokens, chat.output_tokens) == (1000, 200)
        assert chat.cost is not None and chat.cost > 0
        assert chat.attributes["otel_llm.cost.source"] == "genai-prices"
        assert "[REDACTED" in chat.attributes["gen_ai.input.messages"]
        assert chat.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert chat.scope == "my-agent" and chat.parent_span_id is not None
        assert chat.environment == "default"
        label = chat.name.removesuffix("-chat")
        assert chat.service_name == f"app-{label}"
        assert chat.status_code == ("ERROR" if label == "grpc" else "UNSET")
    errored = next(s for s in chats if s.name == "grpc-chat")
    assert errored.status_message == "rate limited"
    agent = next(s for s in spans if s.name == "http-agent")
    assert agent.kind == "SERVER" and agent.parent_span_id is None
    assert agent.events[0]["name"] == "started" and agent.events[0]["attributes"] == {"step": 1}
    assert API_KEY.encode() not in db_bytes(served.db)


def test_everything_received_before_sigterm_is_committed(served: Served) -> None:
    spans = llm_spans("burst", traces=500)
    assert send(http_exporter(served.http_url), spans)
    stopped = served.stop()  # at once: the worker and the store are flushed on the way out
    assert stopped.code == 0, stopped.err
    assert len(stored(served.db)) == 1000


def test_idle_keep_alive_connection_does_not_hold_shutdown(served: Served) -> None:
    conn = http.client.HTTPConnection(served.http_url.split("/")[2], timeout=30)
    status, headers, _ = post(served.http_url, protobuf_body(llm_spans("ka")), conn=conn)
    assert status == 200 and headers.get("connection") != "close"
    stopped = served.stop(timeout=30, sig=signal.SIGINT)  # Ctrl-C; must not wait for `conn`
    assert stopped.code == 0, stopped.err
    conn.close()
    assert len(stored(served.db)) == 2


# -- OTLP/JSON and bad requests -----------------------------------------------------------
def _any(value: Any) -> dict[str, Any]:
    """An OTLP/JSON AnyValue (ints as strings, as the spec's examples write them)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _kvs(value)}}
    return {"stringValue": value}


def _kvs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any(v)} for k, v in values.items()]


def _json_request(trace_id: str, span_id: str, parent: str = "") -> dict[str, Any]:
    messages = [{"role": "user", "parts": [{"type": "text", "content": f"key {API_KEY}"}]}]
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "traceState": "vendor=value",
        "flags": 0x301,
        "name": "json-chat",
        "kind": "SPAN_KIND_CLIENT",  # a name; the spec's integers work too (below)
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": 1700000000500000000,
        "attributes": [
            *_kvs(
                {
                    "gen_ai.request.model": MODEL,
                    "gen_ai.usage.input_tokens": 100,
                    "ratio": 0.5,
                    "ok": True,
                    "raw": b"\x00\x01\x02",
                    "list": ["a", 2],
                    "map": {"k": "v", "n": [1, 2]},
                    "gen_ai.input.messages": messages,  # structured, as other SDKs may send
                }
            ),
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 50}},
            {"key": "empty", "value": {}},
        ],
        "droppedAttributesCount": 2,
        "events": [
            {
                "timeUnixNano": "1700000000100000000",
                "name": "chunk",
                "attributes": _kvs({"n": 1, "payload": {"text": f"echo {API_KEY}"}}),
            }
        ],
        "links": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "flags": 0x300}],
        "status": {"code": 2, "message": "boom"},
    }
    bad = {"traceId": "00" * 16, "spanId": "11" * 8, "name": "bad-id", "kind": 3}
    resource = {"attributes": _kvs({"service.name": "json-app", "host.tags": {}})}
    scope = {"name": "json-scope", "version": "0.1"}
    return {
        "resourceSpans": [
            {"resource": resource, "scopeSpans": [{"scope": scope, "spans": [span, bad]}]}
        ]
    }


def test_otlp_json_with_hex_ids_names_and_partial_success(served: Served) -> None:
    trace_id, span_id, parent = (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        "00f067aa0ba902b7",
    )
    body = json.dumps(_json_request(trace_id, span_id, parent)).encode()
    status, headers, reply = post(
        served.http_url, gzip.compress(body), "application/json", {"Content-Encoding": "gzip"}
    )
    assert status == 200, reply
    assert headers["content-type"] == "application/json"
    partial = json.loads(reply)["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "trace_id" in partial["errorMessage"]
    # the same again, deflated and chunked (no Content-Length): stored once
    deflated = zlib.compress(body)
    conn = http.client.HTTPConnection(served.http_url.split("/")[2], timeout=30)
    conn.request(
        "POST",
        "/v1/traces",
        iter([deflated[:100], deflated[100:]]),
        {"Content-Type": "application/json", "Content-Encoding": "deflate"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    assert response.status == 200 and json.loads(response.read())["partialSuccess"]
    conn.close()
    assert served.stop().code == 0

    (span,) = stored(served.db)
    assert (span.trace_id, span.span_id, span.parent_span_id) == (trace_id, span_id, parent)
    assert (span.name, span.kind, span.scope, span.service_name) == (
        "json-chat",
        "CLIENT",
        "json-scope",
        "json-app",
    )
    assert (span.start_ns, span.end_ns) == (1700000000000000000, 1700000000500000000)
    assert (span.status_code, span.status_message) == ("ERROR", "boom")
    assert (span.input_tokens, span.output_tokens) == (100, 50)
    assert span.cost is not None and span.cost > 0
    a = span.attributes
    assert (a["ratio"], a["ok"], a["list"]) == (0.5, True, ["a", 2])
    assert a["map"] == {"k": "v", "n": [1, 2]} and "empty" not in a  # not content: kept as is
    assert isinstance(a["raw"], str)  # bytes, as the store writes them
    messages = json.loads(a["gen_ai.input.messages"])  # content: JSON text, then masked
    assert messages[0]["parts"][0]["content"] == "key [REDACTED:openai_key]"
    (event,) = span.events
    assert event["name"] == "chunk" and event["attributes"]["n"] == 1
    assert json.loads(event["attributes"]["payload"]) == {"text": "echo [REDACTED:openai_key]"}
    assert span.resource["host.tags"] == "{}"  # a kvlist on a resource is kept as JSON
    assert API_KEY.encode() not in db_bytes(served.db)


def test_malformed_bodies_get_400_and_the_server_keeps_serving(served: Served) -> None:
    url = served.http_url
    conn = http.client.HTTPConnection(url.split("/")[2], timeout=30)
    cases = [
        (b"\xff\xff\xff\xff", "application/x-protobuf", {}),
        (b"{not json", "application/json", {}),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}',
            "application/json",
            {},
        ),
        (b"[1, 2]", "application/json", {}),
        (b"not gzip at all", "application/x-protobuf", {"Content-Encoding": "gzip"}),
        (
            gzip.compress(protobuf_body(llm_spans("cut")))[:-12],
            "application/x-protobuf",
            {"Content-Encoding": "gzip"},
        ),
    ]
    for body, content_type, headers in cases:  # all on one keep-alive connection
        status, reply_headers, reply = post(url, body, content_type, headers, conn=conn)
        assert status == 400, (body[:20], reply)
        if content_type == "application/json":
            message = json.loads(reply)["message"]
        else:
            assert reply_headers["content-type"] == "application/x-protobuf"
            message = status_pb2.Status.FromString(reply).message
        assert message  # a readable reason
    good = llm_spans("after-bad")
    status, _, reply = post(url, protobuf_body(good), conn=conn)
    assert status == 200 and ExportTraceServiceResponse.FromString(reply) == (
        ExportTraceServiceResponse()
    )
    conn.close()

    status, _, reply = post(url, b"{}", "text/plain")
    assert status == 415 and b"Content-Type" in reply
    status, _, _ = post(url, b"{}", "application/json", {"Content-Encoding": "br"})
    assert status == 415
    status, _, _ = post(url.replace("/v1/traces", "/v1/metrics"), b"{}", "application/json")
    assert status == 404
    assert send(http_exporter(url), llm_spans("still-up"))
    assert served.stop().code == 0
    assert {s.name for s in stored(served.db)} == {
        "after-bad-agent",
        "after-bad-chat",
        "still-up-agent",
        "still-up-chat",
    }


def test_oversize_bodies_get_413(tmp_path: Path) -> None:
    served = start_serve(tmp_path / "traces.db", "--max-body-bytes", "20000")
    try:
        big = protobuf_body(llm_spans("big", traces=60))
        assert len(big) > 20000
        status, _, reply = post(served.http_url, big)
        assert status == 413 and b"20000" in reply
        bomb = gzip.compress(b"\0" * 10_000_000)  # 10 MB of zeros in ~10 KB
        assert len(bomb) < 20000
        status, _, _ = post(served.http_url, bomb, headers={"Content-Encoding": "gzip"})
        assert status == 413
        channel = grpc.insecure_channel(served.grpc_address)
        with pytest.raises(grpc.RpcError) as raised:
            channel.unary_unary(EXPORT)(big, timeout=10)
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        channel.close()
        small = llm_spans("small")
        assert send(http_exporter(served.http_url), small)
        assert send(grpc_exporter(served.grpc_address), llm_spans("small-grpc"))
    finally:
        stopped = served.stop()
    assert stopped.code == 0, stopped.err
    assert len(stored(served.db)) == 4


# -- the bearer token ---------------------------------------------------------------------
def test_bearer_token_is_enforced_on_both_protocols(tmp_path: Path) -> None:
    token = "serve-token-4f9a1c"
    served = start_serve(tmp_path / "traces.db", env={"OTEL_LLM_SERVE_TOKEN": token})
    try:
        assert "bearer token required" in served.start_line and token not in served.start_line
        assert not send(http_exporter(served.http_url), llm_spans("http-none"))
        assert not send(http_exporter(served.http_url, "wrong"), llm_spans("http-wrong"))
        status, headers, _ = post(served.http_url, protobuf_body(llm_spans("raw")))
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert not send(grpc_exporter(served.grpc_address), llm_spans("grpc-none"))
        channel = grpc.insecure_channel(served.grpc_address)
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            with pytest.raises(grpc.RpcError) as raised:
                channel.unary_unary(EXPORT)(b"", metadata=metadata, timeout=10)
            assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
        channel.close()
        assert send(http_exporter(served.http_url, token), llm_spans("http-ok"))
        assert send(grpc_exporter(served.grpc_address, token), llm_spans("grpc-ok"))
    finally:
        stopped = served.stop()
    assert stopped.code == 0, stopped.err
    assert token not in stopped.out + stopped.err
    assert {s.name for s in stored(served.db)} == {
        "http-ok-agent",
        "http-ok-chat",
        "grpc-ok-agent",
        "grpc-ok-chat",
    }


# -- gateway mode -------------------------------------------------------------------------
def test_forward_sends_to_langfuse_and_apm_without_crossing_secrets(tmp_path: Path) -> None:
    public, secret, apm_token = "pk-lf-gateway-1234", "sk-lf-gateway-5678", "apm-token-9c8b7a"
    apm = OtlpGrpcServer().start()
    with OTLPHTTPServer() as langfuse:
        env = {
            "LANGFUSE_PUBLIC_KEY": public,
            "LANGFUSE_SECRET_KEY": secret,
            "LANGFUSE_HOST": langfuse.url,
            "TENCENT_APM_ENDPOINT": apm.endpoint,
            "TENCENT_APM_TOKEN": apm_token,
            "TENCENT_APM_SERVICE_NAME": "gateway-test",
        }
        served = start_serve(tmp_path / "traces.db", "--forward", env=env)
        assert "forwarding to langfuse, tencentapm" in served.start_line
        spans = llm_spans("gw", traces=2)
        assert send(http_exporter(served.http_url), spans)
        stopped = served.stop()
        assert stopped.code == 0, stopped.err
        requests = langfuse.requests_to("/api/public/otel/v1/traces")
    apm.stop()

    ids = {s.name: set() for s in spans}
    for s in spans:
        assert s.context is not None
        ids[s.name].add(s.context.span_id)
    assert {s.span_id for s in langfuse.spans()} == {f"{i:016x}" for i in ids["gw-chat"]}
    every = ids["gw-chat"] | ids["gw-agent"]
    assert {s.span_id for s in apm.spans()} == {i.to_bytes(8, "big") for i in every}
    for span in langfuse.spans():
        assert span.attributes["langfuse.observation.model.name"] == MODEL
        assert API_KEY not in json.dumps(span.attributes)
    resource = apm.received[0].request.resource_spans[0].resource
    apm_resource = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert apm_resource["token"] == apm_token and apm_resource["service.name"] == "gateway-test"

    to_langfuse = b"".join(
        r.body + r.path.encode() + json.dumps(r.headers).encode() for r in requests
    )
    assert requests and apm_token.encode() not in to_langfuse
    basic = base64.b64encode(f"{public}:{secret}".encode())
    to_apm = b"".join(r.raw + json.dumps(r.metadata).encode() for r in apm.received)
    assert apm.received
    for leaked in (public.encode(), secret.encode(), basic, API_KEY.encode()):
        assert leaked not in to_apm
    assert API_KEY.encode() not in b"".join(r.body for r in requests)
    assert len(stored(served.db)) == 4
    for text in (secret, apm_token):
        assert text not in stopped.out + stopped.err


def test_forward_from_a_config_file_without_the_store(tmp_path: Path) -> None:
    header_secret = "cfg-secret-31337"
    with OTLPHTTPServer() as collector:
        config = tmp_path / "gateway.toml"
        config.write_text(
            f"""
sample_rate = 1.0
masking = true
capture_content = true
spool_dir = "spool"
release = "r42"

[[destinations.otlp]]
name = "collector"
endpoint = "{collector.url}/v1/traces"
protocol = "http/json"
headers = {{ "x-api-key" = "{header_secret}" }}
""",
            encoding="utf-8",
        )
        served = start_serve(None, "--forward", "--no-store", "--config", str(config))
        assert "forwarding to collector" in served.start_line
        assert "not storing locally" in served.start_line
        assert send(grpc_exporter(served.grpc_address), llm_spans("cfg"))
        stopped = served.stop()
    assert stopped.code == 0, stopped.err
    assert header_secret not in stopped.out + stopped.err
    (request,) = collector.requests_to("/v1/traces")
    assert request.headers["x-api-key"] == header_secret
    assert request.headers["content-type"] == "application/json"
    names = {s.name: s for s in collector.spans()}
    assert set(names) == {"cfg-agent", "cfg-chat"}
    assert names["cfg-chat"].attributes["otel_llm.release"] == "r42"
    assert not Path(os.environ["OTEL_LLM_DB"]).exists()  # no store was opened


@pytest.mark.parametrize(
    ("args", "env", "config", "expected"),
    [
        (["--forward"], {}, None, "no destination configured"),
        (["--no-store"], {}, None, "needs --forward"),
        (["--config", "{config}"], {}, "bogus = 1\n", "bogus"),
        (["--config", "{config}"], {}, "mask = 'x'\n", "Python function"),
        (["--config", "{config}"], {}, "sample_rate = 2\n", "sample_rate"),
        (
            ["--config", "{config}"],
            {},
            "[destinations.otlp]\nendpoint = 'http://h:1'\n",
            "pass --forward",
        ),
        (
            ["--forward", "--config", "{config}"],
            {},
            "[destinations.langfuse]\npublic_key = 'pk-lf-x'\n"
            "secret_key = 'sk-lf-hidden-77'\nbad = 1\n",
            "unknown option(s) bad",
        ),
        (["--config", "{config}"], {}, "= broken\n", "not valid TOML"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], config: str | None, expected: str
) -> None:
    path = tmp_path / "serve.toml"
    if config is not None:
        path.write_text(config, encoding="utf-8")
    argv = [a.replace("{config}", str(path)) for a in args]
    r = run_cli(
        "serve", "--db", tmp_path / "t.db", "--http-port", "0", "--grpc-port", "0", *argv, env=env
    )
    assert r.code == 2 and one_line(r.err) and expected in r.err, r.err
    assert "hidden" not in r.err


def test_busy_port_and_forwarding_loop_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for flag in ("--http-port", "--grpc-port"):
            other = "--grpc-port" if flag == "--http-port" else "--http-port"
            r = run_cli("serve", "--db", tmp_path / "t.db", flag, port, other, "0")
            assert r.code == 2 and one_line(r.err) and f"127.0.0.1:{port}" in r.err, r.err
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = str(probe.getsockname()[1])
    loop = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://localhost:{free}"}  # gRPC by default
    r = run_cli(
        "serve",
        "--db",
        tmp_path / "t.db",
        "--forward",
        "--grpc-port",
        free,
        "--http-port",
        "0",
        env=loop,
    )
    assert r.code == 2 and one_line(r.err) and "loop" in r.err, r.err


# -- in process: backpressure and the decoder ---------------------------------------------
class _Blocking(Destination):
    kind = "blocking"

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.records: list[SpanRecord] = []

    def _export(self, records: Sequence[SpanRecord]) -> bool:
        self.entered.set()
        self.release.wait(30)
        self.records += records
        return True


def test_a_full_queue_answers_retryable_503_and_unavailable() -> None:
    destination = _Blocking()
    worker = RecordWorker([destination], build_stage_context(), max_queue_spans=3)
    receiver = Receiver(worker, ReceiverOptions(http_port=0, grpc_port=0)).start()
    url, address = receiver.http_url, receiver.grpc_address
    assert url and address
    try:
        assert post(url, protobuf_body(llm_spans("first")))[0] == 200
        assert destination.entered.wait(10)  # the worker holds the first batch
        assert post(url, protobuf_body(llm_spans("queued")))[0] == 200
        status, headers, reply = post(url, protobuf_body(llm_spans("refused")))
        assert status == 503 and headers["retry-after"] == "1"
        assert "queue full" in status_pb2.Status.FromString(reply).message
        channel = grpc.insecure_channel(address)
        with pytest.raises(grpc.RpcError) as raised:
            channel.unary_unary(EXPORT)(protobuf_body(llm_spans("refused")), timeout=10)
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
        channel.close()
    finally:
        destination.release.set()
        assert receiver.stop(5.0)
        assert worker.shutdown(10.0)
    assert {r.name for r in destination.records} == {
        "first-agent",
        "first-chat",
        "queued-agent",
        "queued-chat",
    }
    assert worker.stats()["spans_refused"] == 4


def _rich_spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    limits = SpanLimits(max_span_attributes=4, max_events=2, max_links=1, max_event_attributes=1)
    provider = TracerProvider(
        resource=Resource.create({"service.name": "rich", "tags": ("a", "b")}), span_limits=limits
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("scope", "9.9", schema_url="https://schema/1")
    remote = SpanContext(
        0x1234,
        0x5678,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=W3CTraceState([("vendor", "v1")]),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    linked = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    for kind in SpanKind:
        with tracer.start_as_current_span(
            f"span-{kind.name}",
            context=parent,
            kind=kind,
            attributes={"s": "x", "i": -7, "f": 1.5, "b": False, "t": (1, 2), "u": ("a",)},
            links=[Link(linked, {"la": 1}), Link(linked)],
        ) as span:
            span.add_event("e1", {"x": 1, "y": 2}, timestamp=123)
            span.add_event("e2")
            span.add_event("e3")
            span.set_status(Status(StatusCode.ERROR, "bad"))
            with tracer.start_as_current_span("child") as child:
                child.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def _facts(record: SpanRecord) -> dict[str, Any]:
    return {
        "ids": (record.trace_id, record.span_id, record.parent_span_id, record.parent_is_remote),
        "name": record.name,
        "kind": record.kind,
        "times": (record.start_time, record.end_time),
        "attributes": record.attributes,
        "status": (record.status_code, record.status_description),
        "flags": record.trace_flags,
        "trace_state": dict(record.trace_state or {}),
        "events": [
            (e.name, e.timestamp, dict(e.attributes or {}), e.dropped_attributes)
            for e in record.events
        ],
        "links": [
            (
                lk.context.trace_id,
                lk.context.span_id,
                lk.context.is_remote,
                dict(lk.attributes or {}),
                lk.dropped_attributes,
            )
            for lk in record.links
        ],
        "resource": dict(record.resource.attributes),
        "scope": (record.scope.name, record.scope.version, record.scope.schema_url)
        if record.scope
        else None,
        "dropped": (record.dropped_attributes, record.dropped_events, record.dropped_links),
    }


@pytest.mark.parametrize("as_json", [False, True], ids=["protobuf", "otlp-json"])
def test_decoder_round_trips_the_stock_encoder(as_json: bool) -> None:
    spans = _rich_spans()
    body = protobuf_body(spans)
    if as_json:
        body = protobuf_to_otlp_json(body)
    decoded = decode_request(body, json=as_json)
    assert decoded.rejected == 0
    expected = sorted((_facts(record_from_span(s)) for s in spans), key=lambda f: f["ids"])
    got = sorted((_facts(r) for r in decoded.records), key=lambda f: f["ids"])
    assert got == expected
    first = next(f for f in got if f["name"] == "span-CLIENT")
    assert first["ids"][3] is True and first["trace_state"] == {"vendor": "v1"}
    assert first["dropped"] == (2, 1, 1) and first["links"][0][2] is True
