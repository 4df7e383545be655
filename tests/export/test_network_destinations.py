"""OTLP and TencentAPM destinations end to end: real gRPC and HTTP receivers on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm.export.otlp import OTLP, parse_headers, protobuf_to_otlp_json
from otel_llm.export.tencent import TencentAPM
from tests.otlp_grpc_server import OtlpGrpcServer
from tests.otlp_http_server import OTLPHTTPServer

TOKEN = "apm-token-5ecr3t-value"
LF_SECRET = "sk-lf-very-secret"


@pytest.fixture
def grpc_server() -> Iterator[OtlpGrpcServer]:
    server = OtlpGrpcServer().start()
    yield server
    server.stop()


@pytest.fixture
def http_server() -> Iterator[OTLPHTTPServer]:
    with OTLPHTTPServer() as server:
        yield server


def test_otlp_grpc_delivers_canonical_spans(grpc_server: OtlpGrpcServer) -> None:
    dest = OTLP(grpc_server.endpoint, headers={"x-api-key": "k3y-value"}, resource={"team": "ml"})
    p = otel_llm.configure(destinations=[dest], tracer_provider=TracerProvider())
    with otel_llm.start_generation("chat", model="gpt-4o-mini", input="hi") as g:
        g.update(output="hello")
    assert p.flush(10.0)
    spans = grpc_server.spans()
    assert [s.name for s in spans] == ["chat"]
    attrs = {kv.key: kv.value for kv in spans[0].attributes}
    assert attrs["gen_ai.request.model"].string_value == "gpt-4o-mini"
    assert attrs["gen_ai.is_entry"].bool_value is True
    request = grpc_server.received[0]
    resource = {
        kv.key: kv.value.string_value
        for kv in request.request.resource_spans[0].resource.attributes
    }
    assert resource["team"] == "ml"
    assert request.metadata["x-api-key"] == "k3y-value"
    assert p.stats()["destinations"]["otlp"]["exported"] == 1


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_otlp_http(http_server: OTLPHTTPServer, protocol: str) -> None:
    dest = OTLP(http_server.url + "/v1/traces", protocol=protocol)
    p = otel_llm.configure(destinations=[dest], tracer_provider=TracerProvider())
    with otel_llm.start_observation("step"):
        pass
    assert p.flush(10.0)
    request = http_server.requests_to("/v1/traces")[0]
    expected = "application/json" if protocol == "http/json" else "application/x-protobuf"
    assert request.headers["content-type"] == expected
    assert [s.name for s in http_server.spans("/v1/traces")] == ["step"]


def test_otlp_json_ids_are_hex() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    span.span_id = bytes.fromhex("b7ad6b7169203331")
    span.name = "x"
    data = json.loads(protobuf_to_otlp_json(req.SerializeToString()))
    got = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert got["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert got["spanId"] == "b7ad6b7169203331"


def test_otlp_honours_standard_environment(
    monkeypatch: pytest.MonkeyPatch, http_server: OTLPHTTPServer
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_server.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc%3D%3D,tenant=t1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
    dest = OTLP()
    assert dest.endpoint == http_server.url + "/v1/traces"
    p = otel_llm.configure(destinations=[dest], tracer_provider=TracerProvider())
    with otel_llm.start_observation("x"):
        pass
    assert p.flush(10.0)
    request = http_server.requests_to("/v1/traces")[0]
    assert request.headers["api-key"] == "abc=="
    assert request.headers["tenant"] == "t1"
    assert "content-encoding" not in request.headers
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", http_server.url + "/custom")
    assert OTLP().endpoint == http_server.url + "/custom"  # per-signal: used as given


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"endpoint": "localhost:4317", "protocol": "thrift"}, "protocol"),
        ({"endpoint": "not a url", "protocol": "http/protobuf"}, "endpoint"),
        ({"endpoint": "no-port"}, "endpoint"),
        ({"endpoint": "localhost:4317", "compression": "brotli"}, "compression"),
        ({"endpoint": "localhost:4317", "dialect": "zipkin"}, "dialect"),
        ({"endpoint": "localhost:4317", "timeout": -1}, "timeout"),
    ],
)
def test_otlp_config_errors(kwargs: dict[str, object], setting: str) -> None:
    with pytest.raises(otel_llm.ConfigError) as info:
        OTLP(**kwargs)  # type: ignore[arg-type]
    assert info.value.setting == setting


def test_parse_headers_errors() -> None:
    assert parse_headers("a=1, b = 2") == {"a": "1", "b": "2"}
    with pytest.raises(otel_llm.ConfigError):
        parse_headers("novalue")


@pytest.mark.parametrize("bad", ["MyService", "1abc", "abc-", "a_b", "x" * 64, ""])
def test_tencent_service_name_rule(bad: str) -> None:
    with pytest.raises(otel_llm.ConfigError) as info:
        TencentAPM("localhost:4317", TOKEN, service_name=bad)
    assert info.value.setting == "service_name"
    if bad:
        assert "at most 63 characters" in str(info.value)


def test_tencent_requires_endpoint_and_token() -> None:
    with pytest.raises(otel_llm.ConfigError, match="TENCENT_APM_ENDPOINT"):
        TencentAPM(token=TOKEN, service_name="svc")
    with pytest.raises(otel_llm.ConfigError, match="TENCENT_APM_TOKEN"):
        TencentAPM("localhost:4317", service_name="svc")


def test_tencent_repr_hides_token() -> None:
    dest = TencentAPM("localhost:4317", TOKEN, service_name="svc", insecure=True)
    assert TOKEN not in repr(dest)
    dest.shutdown(1.0)


def test_dual_export_token_and_keys_never_cross(
    grpc_server: OtlpGrpcServer, http_server: OTLPHTTPServer
) -> None:
    """Seed 002 without its drawback: Langfuse + APM at once, each with its own secrets."""
    apm = TencentAPM(
        grpc_server.endpoint,
        TOKEN,
        service_name="chat-bot",
        host_name="host-1",
        insecure=True,
        block_scopes=["langfuse-sdk"],
    )
    langfuse = otel_llm.Langfuse("pk-lf-public", LF_SECRET, http_server.url)
    provider = TracerProvider()
    p = otel_llm.configure(destinations=[apm, langfuse], tracer_provider=provider)
    lf_sdk_tracer = provider.get_tracer("langfuse-sdk")
    with otel_llm.propagate_attributes(user_id="u-1"):
        with otel_llm.start_generation("chat", model="gpt-4o-mini", input="hello") as g:
            g.update(output="hi there", usage={"prompt_tokens": 3, "completion_tokens": 2})
            with lf_sdk_tracer.start_as_current_span(
                "lf-span", attributes={"langfuse.observation.type": "span"}
            ):
                pass
    assert p.flush(10.0)
    # APM: its token on its resource, both dialects, and no Langfuse SDK spans
    apm_spans = grpc_server.spans()
    assert [s.name for s in apm_spans] == ["chat"]
    request = grpc_server.received[0]
    resource = {
        kv.key: kv.value.string_value
        for kv in request.request.resource_spans[0].resource.attributes
    }
    assert resource["token"] == TOKEN
    assert resource["service.name"] == "chat-bot"
    assert resource["host.name"] == "host-1"
    keys = {kv.key for kv in apm_spans[0].attributes}
    assert {"gen_ai.request.model", "langfuse.observation.type", "gen_ai.is_entry"} <= keys
    assert LF_SECRET not in request.raw.decode("latin-1")
    assert all(LF_SECRET not in v for v in request.metadata.values())
    # Langfuse: both spans, never the APM token, anywhere in the bytes or headers
    lf_requests = http_server.requests_to("/api/public/otel/v1/traces")
    assert sorted(s.name for s in http_server.spans("/api/public/otel/v1/traces")) == [
        "chat",
        "lf-span",
    ]
    for req in lf_requests:
        assert TOKEN.encode() not in req.body  # decompressed bytes
        assert all(TOKEN not in v for v in req.headers.values())
        decoded = json.dumps([s.resource for s in http_server.spans("/api/public/otel/v1/traces")])
        assert TOKEN not in decoded
    stats = p.stats()["destinations"]
    assert stats["tencentapm"]["exported"] == 1 and stats["tencentapm"]["filtered"] == 1
    assert stats["langfuse"]["exported"] == 2
