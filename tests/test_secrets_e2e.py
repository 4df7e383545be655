"""Secrets never leave the process: masked before any destination sees a byte (real receivers)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm.export.otlp import OTLP
from tests.otlp_grpc_server import OtlpGrpcServer
from tests.otlp_http_server import OTLPHTTPServer

SECRET = "SECRET_7f3a9c"  # what the seed's masking function hides
API_KEY = "sk-proj-AbCdEf0123456789AbCdEf0123456789"  # what the built-in scrubbers hide
TRACES = "/v1/traces"


def seed_mask(data: object) -> object:
    if isinstance(data, str) and data.startswith("SECRET_"):
        return "REDACTED"
    return data


@pytest.fixture
def receivers() -> Iterator[tuple[OTLPHTTPServer, OtlpGrpcServer]]:
    grpc_server = OtlpGrpcServer().start()
    with OTLPHTTPServer() as http_server:
        yield http_server, grpc_server
    grpc_server.stop()


def _configure(
    receivers: tuple[OTLPHTTPServer, OtlpGrpcServer], mask: object
) -> tuple[otel_llm.Pipeline, otel_llm.InMemory]:
    http_server, grpc_server = receivers
    memory = otel_llm.InMemory()
    pipeline = otel_llm.configure(
        destinations=[
            memory,
            OTLP(http_server.url + TRACES, protocol="http/protobuf", dialect="both"),
            OTLP(grpc_server.endpoint, name="grpc"),
            otel_llm.Langfuse("pk-lf-1", "sk-lf-1", http_server.url),
        ],
        tracer_provider=TracerProvider(),
        mask=mask,  # type: ignore[arg-type]
    )
    return pipeline, memory


def _everything_sent(receivers: tuple[OTLPHTTPServer, OtlpGrpcServer]) -> bytes:
    http_server, grpc_server = receivers
    return b"".join(r.body for r in http_server.requests) + b"".join(
        r.raw for r in grpc_server.received
    )


def _run_app(pipeline: otel_llm.Pipeline) -> None:
    third_party = pipeline.tracer_provider.get_tracer("openinference.instrumentation.openai")
    with otel_llm.propagate_attributes(metadata={"note": SECRET, "api_key": "plain-key-value"}):
        with otel_llm.start_generation(
            "chat",
            model="gpt-4o-mini",
            input=[
                {"role": "system", "content": f"use {API_KEY}"},
                {"role": "user", "content": SECRET},
            ],
            metadata={"customer": SECRET, "nested": {"deep": [SECRET]}},
        ) as gen:
            gen.update(
                output={
                    "role": "assistant",
                    "content": SECRET,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": json.dumps({"q": SECRET})},
                        }
                    ],
                },
                usage={"prompt_tokens": 10, "completion_tokens": 3},
            )
        with third_party.start_as_current_span(
            "ChatCompletion",
            attributes={
                "openinference.span.kind": "LLM",
                "input.value": SECRET,
                "output.value": f"token {API_KEY}",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": SECRET,
            },
        ):
            pass


def test_no_secret_in_any_exported_byte(
    receivers: tuple[OTLPHTTPServer, OtlpGrpcServer],
) -> None:
    pipeline, memory = _configure(receivers, seed_mask)
    _run_app(pipeline)
    assert pipeline.flush(10.0)
    sent = _everything_sent(receivers)
    assert sent  # something was exported
    for secret in (SECRET, API_KEY, "plain-key-value"):
        assert secret.encode() not in sent, secret
        assert secret not in json.dumps([dict(s.attributes) for s in memory.spans])
    # structure survives: roles and the tool-call id are intact
    chat = next(s for s in memory.spans if s.name == "chat")
    messages = json.loads(chat.attributes["gen_ai.input.messages"])
    assert [m["role"] for m in messages] == ["user"]
    output = json.loads(chat.attributes["gen_ai.output.messages"])
    assert any(p.get("id") == "call_1" for p in output[0]["parts"])
    assert pipeline.stats()["processing"]["masking.masked_values"] > 0


def test_a_raising_mask_never_lets_data_through(
    receivers: tuple[OTLPHTTPServer, OtlpGrpcServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(data: object) -> object:
        raise RuntimeError("bug in the user's mask")

    pipeline, _memory = _configure(receivers, broken)
    _run_app(pipeline)
    assert pipeline.flush(10.0)
    sent = _everything_sent(receivers)
    assert sent
    assert SECRET.encode() not in sent and API_KEY.encode() not in sent
    assert b"fully masked due to failed mask function" in sent
    assert pipeline.stats()["processing"]["masking.mask_failed"] > 0
