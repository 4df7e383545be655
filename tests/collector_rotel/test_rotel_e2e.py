"""End to end with the real rotel agent from PyPI (``pip install rotel``).

The agent (``rotel-agent``, bundled in the ``rotel`` wheel) runs as a subprocess on
loopback ports, with ``otel_llm/collector/rotel_processor.py`` as its trace processor.
Spans go in with the stock OTel OTLP/gRPC exporter and come out at a local OTLP
receiver. Skipped, with the reason, where the ``rotel`` package is not installed or
its agent cannot run (the wheel exists for CPython 3.10-3.13 on x86_64 Linux only,
and the agent needs the shared ``libpython3.X`` of the matching version).
"""

from __future__ import annotations

import base64
import json
import os
import site
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

import otel_llm
from otel_llm import semconv
from tests.otlp_grpc_server import OtlpGrpcServer
from tests.otlp_http_server import OTLPHTTPServer, any_value


def _agent() -> tuple[Path | None, str]:
    """The bundled agent binary and its version, or None and why it cannot be used."""
    try:
        import rotel
    except ImportError:
        return None, "the rotel package is not installed (pip install rotel; x86_64 Linux only)"
    path = Path(rotel.__file__).parent / "rotel-agent"
    if not path.is_file():
        return None, f"the rotel package has no agent binary at {path}"
    try:
        run = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"the rotel agent cannot run here: {exc}"
    if run.returncode != 0:
        reason = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"the rotel agent cannot run here: {reason[0]}"
    return path, run.stdout.strip()


AGENT, AGENT_VERSION = _agent()
pytestmark = pytest.mark.skipif(AGENT is None, reason=AGENT_VERSION)

PROCESSOR = Path(otel_llm.__file__).parent / "collector" / "rotel_processor.py"
SECRET = "sk-proj-Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Agent:
    process: subprocess.Popen[bytes]
    grpc_endpoint: str
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-4000:]


def _agent_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
    # The agent embeds the system libpython: point it at this interpreter's packages.
    paths = [*site.getsitepackages(), str(Path(otel_llm.__file__).parent.parent)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Any]:
    started: list[Agent] = []

    def start(args: Sequence[str], env: dict[str, str] | None = None) -> Agent:
        assert AGENT is not None
        grpc_port, http_port = _free_port(), _free_port()
        output = tmp_path / f"agent-{len(started)}.log"
        command = [
            str(AGENT),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--pid-file",
            str(tmp_path / f"agent-{len(started)}.pid"),
            "--log-file",
            str(tmp_path / f"agent-{len(started)}.daemon.log"),
            *args,
        ]
        with output.open("wb") as sink:
            process = subprocess.Popen(
                command, env=_agent_env(env or {}), stdout=sink, stderr=subprocess.STDOUT
            )
        agent = Agent(process, f"http://127.0.0.1:{grpc_port}", output)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.process.poll() is None:
            agent.process.terminate()
            try:
                agent.process.wait(10)
            except subprocess.TimeoutExpired:
                agent.process.kill()
                agent.process.wait(5)


def _wait_ready(agent: Agent, timeout: float = 20.0) -> None:
    port = int(agent.grpc_endpoint.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.process.poll() is not None:
            pytest.fail(f"rotel agent exited ({agent.process.returncode}):\n{agent.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"rotel agent did not listen within {timeout}s:\n{agent.log()}")


def _wait_exit(agent: Agent, timeout: float = 20.0) -> int:
    try:
        return agent.process.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"rotel agent kept running:\n{agent.log()}")


def _send(endpoint: str) -> None:
    """A root agent span and a chat child with usage, a secret and an error, via stock OTLP."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "rotel-e2e", "deployment.tags": ["a", "b"]})
    )
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint, insecure=True)))
    tracer = provider.get_tracer("e2e-instrumentation")
    messages = [{"role": "user", "parts": [{"type": "text", "content": f"use {SECRET} now"}]}]
    with tracer.start_as_current_span("invoke_agent helper") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attributes(
                {
                    "gen_ai.system": "openai",
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.prompt_tokens": 1000,
                    "gen_ai.usage.completion_tokens": 500,
                    "gen_ai.input.messages": json.dumps(messages),
                    "gen_ai.response.finish_reasons": ["stop", "length"],
                }
            )
            chat.add_event("exception", {"exception.message": f"retry after {SECRET}"})
            chat.set_status(Status(StatusCode.ERROR, f"upstream echoed {SECRET}"))
    assert provider.force_flush(10_000)
    provider.shutdown()


def _attrs(items: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in items}


def test_agent_applies_our_stages_and_forwards_over_grpc(start_agent: Any, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"gpt-4o-mini": {"input_per_mtok": 1, "output_per_mtok": 2}}))
    stats_file = tmp_path / "stats.json"
    receiver = OtlpGrpcServer().start()
    try:
        agent = start_agent(
            [
                "--exporter",
                "otlp",
                "--otlp-exporter-endpoint",
                receiver.endpoint,
                "--otlp-exporter-protocol",
                "grpc",
                "--otlp-with-trace-processor",
                str(PROCESSOR),
                "--batch-timeout",
                "50ms",
            ],
            {"OTEL_LLM_PRICING": str(prices), "OTEL_LLM_ROTEL_STATS_FILE": str(stats_file)},
        )
        _wait_ready(agent)
        _send(agent.grpc_endpoint)
        deadline = time.monotonic() + 30
        while len(receiver.spans()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        spans = {span.name: span for span in receiver.spans()}
        assert set(spans) == {"invoke_agent helper", "chat gpt-4o-mini"}, agent.log()
        raw = b"".join(r.raw for r in receiver.received)
    finally:
        receiver.stop()

    chat = spans["chat gpt-4o-mini"]
    attrs = _attrs(chat.attributes)
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 500
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[semconv.OBSERVATION_TYPE] == "generation"
    assert attrs[semconv.GEN_AI_USAGE_COST] == pytest.approx(0.002)  # from OTEL_LLM_PRICING
    assert SECRET.encode() not in raw
    assert "[REDACTED:openai_key]" in attrs["gen_ai.input.messages"]
    assert attrs["gen_ai.response.finish_reasons"] == ["stop", "length"]
    [exception] = chat.events
    assert _attrs(exception.attributes) == {
        "exception.message": "retry after [REDACTED:openai_key]"
    }
    assert chat.status.message == "upstream echoed [REDACTED:openai_key]"
    root = spans["invoke_agent helper"]
    assert _attrs(root.attributes)[semconv.OBSERVATION_TYPE] == "agent"
    [resource] = {
        json.dumps(_attrs(rs.resource.attributes), sort_keys=True)
        for r in receiver.received
        for rs in r.request.resource_spans
    }
    assert json.loads(resource)["deployment.tags"] == ["a", "b"]  # order survived rotel

    stats = orjson.loads(stats_file.read_bytes())
    assert stats["spans"] == 2 and stats["errors"] == {} and stats["fail_closed"] == 0
    assert stats["problems"] == []


def test_langfuse_recipe_single_exporter_keeps_padded_basic_auth(start_agent: Any) -> None:
    token = base64.b64encode(b"pk-lf-1:sk-lf-12").decode()
    assert token.endswith("=")  # the padding the named-exporter form rejects
    with OTLPHTTPServer() as langfuse:
        agent = start_agent(
            [
                "--exporter",
                "otlp",
                "--otlp-exporter-protocol",
                "http",
                "--otlp-exporter-endpoint",
                f"{langfuse.url}/api/public/otel",
                "--otlp-exporter-custom-headers",
                f"authorization=Basic {token},x-langfuse-ingestion-version=4",
                "--otlp-with-trace-processor",
                str(PROCESSOR),
                "--batch-timeout",
                "50ms",
            ]
        )
        _wait_ready(agent)
        _send(agent.grpc_endpoint)
        assert langfuse.wait_for(lambda s: len(s.spans()) >= 2, timeout=30), agent.log()
        request = langfuse.requests[0]
    assert request.path == "/api/public/otel/v1/traces"
    assert request.headers["authorization"] == f"Basic {token}"
    assert request.headers["x-langfuse-ingestion-version"] == "4"
    assert SECRET.encode() not in request.body


def test_tencent_recipe_grpc_with_token_resource_attribute(start_agent: Any) -> None:
    receiver = OtlpGrpcServer().start()
    try:
        agent = start_agent(
            [
                "--exporter",
                "otlp",
                "--otlp-exporter-protocol",
                "grpc",
                "--otlp-exporter-endpoint",
                receiver.endpoint,
                "--otel-resource-attributes",
                "token=apm-t0k3n,service.name=checkout-assistant,host.name=host-1",
                "--otlp-with-trace-processor",
                str(PROCESSOR),
                "--batch-timeout",
                "50ms",
            ]
        )
        _wait_ready(agent)
        _send(agent.grpc_endpoint)
        deadline = time.monotonic() + 30
        while len(receiver.spans()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(receiver.spans()) == 2, agent.log()
        resources = [
            _attrs(rs.resource.attributes)
            for r in receiver.received
            for rs in r.request.resource_spans
        ]
        raw = b"".join(r.raw for r in receiver.received)
    finally:
        receiver.stop()
    for resource in resources:
        # the token is a resource attribute: masking never touches the resource
        assert resource["token"] == "apm-t0k3n"
        assert resource["service.name"] == "checkout-assistant"
        assert resource["host.name"] == "host-1"
        assert resource["deployment.tags"] == ["a", "b"]
    assert SECRET.encode() not in raw


def test_named_exporters_reject_header_values_containing_equals(start_agent: Any) -> None:
    token = base64.b64encode(b"pk-lf-1:sk-lf-12").decode()
    agent = start_agent(
        ["--exporters", "langfuse:otlp", "--exporters-traces", "langfuse"],
        {
            "ROTEL_EXPORTER_LANGFUSE_ENDPOINT": "http://127.0.0.1:9/api/public/otel",
            "ROTEL_EXPORTER_LANGFUSE_PROTOCOL": "http",
            "ROTEL_EXPORTER_LANGFUSE_CUSTOM_HEADERS": f"authorization=Basic {token}",
        },
    )
    assert _wait_exit(agent) != 0
    assert "Invalid key=value pair" in agent.log()


def test_one_exporter_per_signal(start_agent: Any) -> None:
    agent = start_agent(
        ["--exporters", "langfuse:otlp,apm:otlp", "--exporters-traces", "langfuse,apm"],
        {
            "ROTEL_EXPORTER_LANGFUSE_ENDPOINT": "http://127.0.0.1:9",
            "ROTEL_EXPORTER_APM_ENDPOINT": "http://127.0.0.1:9",
        },
    )
    assert _wait_exit(agent) != 0
    assert "Only one exporter supported" in agent.log()


def test_agent_version_is_the_one_the_recipe_describes() -> None:
    # collector-config/rotel.md documents the PyPI agent; a new one needs a fresh look
    # (array order, header parsing, fan-out), so say so when it changes.
    assert AGENT_VERSION.startswith("rotel 0.0.1-alpha"), AGENT_VERSION
