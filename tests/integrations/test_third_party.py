"""Spans from the Langfuse SDK, OpenLLMetry and OpenInference through our pipeline.

Real packages from the registry, a real OpenAI client against the fake server, and real
receivers: their spans come out canonical (usage, cost, masked content), reach every
destination once, and one destination's secret never reaches another.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

import otel_llm
from otel_llm.export.tencent import TencentAPM
from tests.fake_llm_server import FakeLLMServer
from tests.otlp_grpc_server import OtlpGrpcServer
from tests.otlp_http_server import OTLPHTTPServer

TOKEN = "apm-t0ken-never-in-langfuse"
SECRET = "SECRET_do-not-export"
TRACES = "/api/public/otel/v1/traces"


def mask(data: object) -> object:
    """The seed 004 masking function."""
    if isinstance(data, str) and data.startswith("SECRET_"):
        return "REDACTED"
    return data


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
def receivers() -> Iterator[tuple[OTLPHTTPServer, OtlpGrpcServer]]:
    grpc_server = OtlpGrpcServer().start()
    with OTLPHTTPServer() as http_server:
        yield http_server, grpc_server
    grpc_server.stop()


def _pipeline(
    receivers: tuple[OTLPHTTPServer, OtlpGrpcServer], memory: otel_llm.InMemory
) -> otel_llm.Pipeline:
    http_server, grpc_server = receivers
    return otel_llm.configure(
        service_name="chat-bot",
        destinations=[
            memory,
            otel_llm.Langfuse("pk-lf-ours", "sk-lf-ours", http_server.url),
            TencentAPM(grpc_server.endpoint, TOKEN, service_name="chat-bot", insecure=True),
        ],
        tracer_provider=TracerProvider(),
        mask=mask,
    )


def _generation(memory: otel_llm.InMemory) -> ReadableSpan:
    found = [
        s for s in memory.spans if s.attributes.get("otel_llm.observation.type") == "generation"
    ]
    assert len(found) == 1, [(s.name, dict(s.attributes)) for s in memory.spans]
    return found[0]


def _assert_delivered_everywhere(
    receivers: tuple[OTLPHTTPServer, OtlpGrpcServer], memory: otel_llm.InMemory
) -> None:
    http_server, grpc_server = receivers
    ids = sorted(f"{s.context.span_id:016x}" for s in memory.spans)
    lf_ids = sorted(s.span_id for s in http_server.spans(TRACES))
    apm_ids = sorted(s.span_id.hex() for s in grpc_server.spans())
    assert apm_ids == ids  # the APM takes every span, once
    assert set(lf_ids) <= set(ids) and len(lf_ids) == len(set(lf_ids))  # LLM spans, once
    for request in http_server.requests_to(TRACES):
        assert TOKEN.encode() not in request.body and SECRET.encode() not in request.body
        assert request.headers["authorization"].startswith("Basic ")
    for received in grpc_server.received:
        assert SECRET.encode() not in received.raw


def test_langfuse_sdk_spans_flow_through_our_pipeline(
    receivers: tuple[OTLPHTTPServer, OtlpGrpcServer], memory: otel_llm.InMemory
) -> None:
    """Seed 002's setup without double export: the SDK's own exporter sends nothing."""
    langfuse = pytest.importorskip("langfuse")
    pipeline = _pipeline(receivers, memory)
    client = langfuse.Langfuse(
        public_key="pk-lf-sdk",
        secret_key="sk-lf-sdk",
        host="http://127.0.0.1:9",  # never contacted: its exporter exports nothing
        tracer_provider=pipeline.tracer_provider,
        should_export_span=lambda span: False,
    )

    @langfuse.observe(as_type="generation")
    def generate(question: str) -> str:
        langfuse.get_client().update_current_generation(
            model="gpt-4o-mini", usage_details={"input": 12, "output": 4}
        )
        return "answer"

    @langfuse.observe()
    def agent(question: str) -> str:
        with langfuse.propagate_attributes(user_id="u-7", session_id="s-7"):
            return generate(question)

    agent(SECRET)
    client.flush()
    assert pipeline.flush(10.0)
    gen = _generation(memory)
    attrs = gen.attributes
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 4
    assert attrs["gen_ai.usage.cost"] > 0 and attrs["otel_llm.cost.source"] == "genai-prices"
    assert attrs["user.id"] == "u-7" and attrs["session.id"] == "s-7"
    assert SECRET not in json.dumps([dict(s.attributes) for s in memory.spans])
    entries = [s.name for s in memory.spans if s.attributes.get("gen_ai.is_entry")]
    assert entries == ["agent"]
    _assert_delivered_everywhere(receivers, memory)
    http_server, _ = receivers
    lf = {s.name: s for s in http_server.spans(TRACES)}
    assert lf["generate"].attributes["langfuse.observation.type"] == "generation"
    assert "otel-llm/" in lf["generate"].scope_name  # 'langfuse-sdk' renamed for the server


def _openai_call(llm: FakeLLMServer) -> None:
    with openai.OpenAI(base_url=llm.url + "/v1", api_key="test", max_retries=0) as client:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": SECRET},
            ],
        )


def test_openllmetry_openai_spans(
    llm: FakeLLMServer, receivers: tuple[OTLPHTTPServer, OtlpGrpcServer], memory: otel_llm.InMemory
) -> None:
    module = pytest.importorskip("opentelemetry.instrumentation.openai")
    pipeline = _pipeline(receivers, memory)
    instrumentor = module.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider)
    try:
        _openai_call(llm)
    finally:
        instrumentor.uninstrument()
    assert pipeline.flush(10.0)
    attrs = _generation(memory).attributes
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.usage.cost"] > 0, dict(attrs)
    assert attrs["gen_ai.provider.name"] == "openai"
    messages = json.loads(attrs["gen_ai.input.messages"])
    assert messages[-1]["parts"][0]["content"] == "REDACTED"
    assert SECRET not in json.dumps([dict(s.attributes) for s in memory.spans])
    _assert_delivered_everywhere(receivers, memory)


def test_openinference_openai_spans(
    llm: FakeLLMServer, receivers: tuple[OTLPHTTPServer, OtlpGrpcServer], memory: otel_llm.InMemory
) -> None:
    module = pytest.importorskip("openinference.instrumentation.openai")
    pipeline = _pipeline(receivers, memory)
    instrumentor = module.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider)
    try:
        _openai_call(llm)
    finally:
        instrumentor.uninstrument()
    assert pipeline.flush(10.0)
    attrs = _generation(memory).attributes
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.usage.cost"] > 0
    assert attrs["gen_ai.request.model"].startswith("gpt-4o-mini")
    assert SECRET not in json.dumps([dict(s.attributes) for s in memory.spans])
    _assert_delivered_everywhere(receivers, memory)
