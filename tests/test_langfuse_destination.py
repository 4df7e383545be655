"""Langfuse destination: wire format against a real OTLP/HTTP server, dialect rules, config."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

import otel_llm
from otel_llm import semconv
from otel_llm.errors import ConfigError
from otel_llm.export import dialect_langfuse as dialect
from otel_llm.export.langfuse import Langfuse
from otel_llm.export.langfuse_details import cost_details, model_parameters, usage_details
from otel_llm.processing.record import SpanRecord
from tests.otlp_http_server import DecodedSpan, OTLPHTTPServer

TRACES = "/api/public/otel/v1/traces"
SCORES = "/api/public/scores"
PK, SK = "pk-lf-test", "sk-lf-secret-value"
BASIC = "Basic " + base64.b64encode(f"{PK}:{SK}".encode()).decode()


@pytest.fixture(scope="session")
def _server() -> Iterator[OTLPHTTPServer]:
    with OTLPHTTPServer() as server:
        yield server


@pytest.fixture
def server(_server: OTLPHTTPServer) -> OTLPHTTPServer:
    _server.reset()
    return _server


def langfuse(server: OTLPHTTPServer, **kwargs: Any) -> Langfuse:
    return Langfuse(PK, SK, host=server.url, **kwargs)


def configure(destination: Langfuse, **kwargs: Any) -> otel_llm.Pipeline:
    return otel_llm.configure(
        destinations=[destination], tracer_provider=TracerProvider(), **kwargs
    )


def by_name(spans: list[DecodedSpan]) -> dict[str, DecodedSpan]:
    return {s.name: s for s in spans}


def loads(value: Any) -> Any:
    assert isinstance(value, str), value
    return json.loads(value)


# --- the wire ------------------------------------------------------------------------
def test_request_goes_to_the_otel_endpoint_with_auth_version_and_gzip(
    server: OTLPHTTPServer,
) -> None:
    pipeline = configure(langfuse(server))
    with otel_llm.start_generation("llm", model="gpt-4o"):
        pass
    assert pipeline.flush()
    [request] = server.requests
    assert request.method == "POST" and request.path == TRACES
    assert request.headers["authorization"] == BASIC
    assert request.headers["x-langfuse-ingestion-version"] == "4"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.error is None and request.body != request.raw_body
    [span] = request.spans
    assert span.name == "llm" and span.scope_name == "otel-llm"
    assert pipeline.stats()["destinations"]["langfuse"]["exported"] == 1


def test_generation_and_trace_fields_in_the_langfuse_dialect(server: OTLPHTTPServer) -> None:
    pipeline = configure(langfuse(server), environment="staging", release="r1", version="v9")
    usage = {
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 50,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 40,
        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 5,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 10,
        semconv.GEN_AI_USAGE_COST: 0.25,
    }
    with (
        otel_llm.propagate_attributes(
            user_id="u1",
            session_id="s1",
            tags=["t1", "t2"],
            metadata={"m": "x", "n": 5},
            trace_name="tn",
        ),
        otel_llm.start_observation("agent", as_type="agent", input={"q": "hi"}) as agent,
    ):
        with otel_llm.start_generation(
            "llm",
            model="gpt-4o",
            input=[{"role": "user", "content": "hi"}],
            metadata={"step": 1},
            model_parameters={"temperature": 0.2, "response_format": {"type": "json"}},
            prompt={"name": "greeting", "version": 3},
            attributes=usage,
        ) as gen:
            gen.update(output="hello", completion_start_time=1_700_000_000.5, level="warning")
        with otel_llm.start_observation("tool", as_type="tool", prompt={"name": "p", "version": 1}):
            pass
        agent.update(output={"a": 1})
    assert pipeline.flush()
    spans = by_name(server.spans(TRACES))
    assert set(spans) == {"agent", "llm", "tool"}

    for span in spans.values():  # trace-level fields on every span
        attrs = span.attributes
        assert attrs["user.id"] == "u1" and attrs["session.id"] == "s1"
        assert attrs["langfuse.trace.name"] == "tn"
        assert attrs["langfuse.trace.tags"] == ["t1", "t2"]  # a string array value
        assert attrs["langfuse.trace.metadata.m"] == "x"
        assert attrs["langfuse.trace.metadata.n"] == "5"
        assert attrs["langfuse.environment"] == "staging"
        assert attrs["langfuse.release"] == "r1" and attrs["langfuse.version"] == "v9"
        assert not [k for k in attrs if k.startswith(("otel_llm.trace.", "otel_llm.env"))]

    gen_attrs = spans["llm"].attributes
    assert gen_attrs["langfuse.observation.type"] == "generation"
    assert loads(gen_attrs["langfuse.observation.input"]) == [{"role": "user", "content": "hi"}]
    assert gen_attrs["langfuse.observation.output"] == "hello"  # strings pass unquoted
    assert loads(gen_attrs["langfuse.observation.metadata"]) == {"step": 1}
    assert gen_attrs["langfuse.observation.model.name"] == "gpt-4o"
    assert loads(gen_attrs["langfuse.observation.model.parameters"]) == {
        "temperature": 0.2,
        "response_format": '{"type":"json"}',
    }
    assert gen_attrs["langfuse.observation.completion_start_time"].endswith("Z")
    assert gen_attrs["langfuse.observation.level"] == "WARNING"
    assert gen_attrs["langfuse.observation.prompt.name"] == "greeting"
    assert gen_attrs["langfuse.observation.prompt.version"] == 3  # an int value on the wire
    details = loads(gen_attrs["langfuse.observation.usage_details"])
    assert details == {
        "input": 55,
        "output": 40,
        "input_cached_tokens": 40,
        "input_cache_creation": 5,
        "output_reasoning_tokens": 10,
        "total": 150,
    }
    assert all(type(v) is int for v in details.values())
    assert loads(gen_attrs["langfuse.observation.cost_details"]) == {"total": 0.25}
    assert gen_attrs[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o"  # gen_ai.* kept as fallbacks
    assert gen_attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 100
    translated = [k for k in gen_attrs if k.startswith(("otel_llm.observation", "otel_llm.prompt"))]
    assert translated == []

    tool_attrs = spans["tool"].attributes  # prompt links only on generations
    assert "langfuse.observation.prompt.name" not in tool_attrs
    assert "langfuse.observation.prompt.version" not in tool_attrs

    agent_attrs = spans["agent"].attributes  # input and output together
    assert loads(agent_attrs["langfuse.observation.input"]) == {"q": "hi"}
    assert loads(agent_attrs["langfuse.observation.output"]) == {"a": 1}
    assert agent_attrs["langfuse.observation.type"] == "agent"
    assert agent_attrs["langfuse.internal.is_app_root"] is True


def test_raised_exception_is_numeric_error_status_with_description(
    server: OTLPHTTPServer,
) -> None:
    pipeline = configure(langfuse(server))
    with pytest.raises(ValueError, match="bad input"), otel_llm.start_generation("llm"):
        raise ValueError("bad input")
    assert pipeline.flush()
    [span] = server.spans(TRACES)
    assert span.status_code == 2
    assert span.status_message == "ValueError: bad input"
    assert span.attributes["langfuse.observation.level"] == "ERROR"
    assert span.attributes["langfuse.observation.status_message"] == "bad input"


def test_raw_usage_and_provided_cost_are_mapped(server: OTLPHTTPServer) -> None:
    pipeline = configure(langfuse(server))
    with otel_llm.start_generation("openai") as gen:
        gen.update(
            usage={
                "prompt_tokens": 30,
                "completion_tokens": 20,
                "total_tokens": 50,
                "prompt_tokens_details": {"cached_tokens": 10},
            },
            cost={"input": 0.01, "output": 0.02},
        )
    with otel_llm.start_generation("langfuse-shape", usage={"input": 7, "output": 3, "total": 10}):
        pass
    assert pipeline.flush()
    spans = by_name(server.spans(TRACES))
    openai_attrs = spans["openai"].attributes
    assert loads(openai_attrs["langfuse.observation.usage_details"]) == {
        "input": 20,
        "output": 20,
        "input_cached_tokens": 10,
        "total": 50,
    }
    assert loads(openai_attrs["langfuse.observation.cost_details"]) == {
        "input": 0.01,
        "output": 0.02,
        "total": pytest.approx(0.03),
    }
    assert semconv.USAGE_RAW not in openai_attrs and semconv.COST_RAW not in openai_attrs
    assert loads(spans["langfuse-shape"].attributes["langfuse.observation.usage_details"]) == {
        "input": 7,
        "output": 3,
        "total": 10,
    }


def test_trace_fields_set_late_reach_spans_started_earlier(server: OTLPHTTPServer) -> None:
    pipeline = configure(langfuse(server))
    with (
        otel_llm.start_observation("root"),
        otel_llm.start_observation("child", input="q"),
    ):
        otel_llm.update_current_trace(name="late", user_id="u9", tags=["x"])
    assert pipeline.flush()
    spans = by_name(server.spans(TRACES))
    for name in ("root", "child"):
        attrs = spans[name].attributes
        assert attrs["langfuse.trace.name"] == "late"
        assert attrs["user.id"] == "u9"
        assert attrs["langfuse.trace.tags"] == ["x"]


# --- filtering -----------------------------------------------------------------------
def test_non_llm_spans_are_filtered_and_llm_children_reattached(
    server: OTLPHTTPServer,
) -> None:
    pipeline = configure(langfuse(server))
    web = pipeline.tracer_provider.get_tracer("web-framework")
    with web.start_as_current_span("GET /chat"):
        with otel_llm.start_observation("agent", as_type="agent") as agent:
            with web.start_as_current_span("http client"):
                with otel_llm.start_generation("llm", model="gpt-4o") as gen:
                    with web.start_as_current_span("db query"):
                        pass
    assert pipeline.flush()
    spans = by_name(server.spans(TRACES))
    assert set(spans) == {"agent", "llm"}
    assert spans["agent"].parent_span_id is None  # its web parent is gone: now a root
    assert spans["llm"].parent_span_id == agent.id  # skips the filtered http client span
    assert spans["llm"].span_id == gen.id
    stats = pipeline.stats()["destinations"]["langfuse"]
    assert stats["exported"] == 2 and stats["filtered"] == 3


def test_export_all_spans_keeps_the_whole_tree(server: OTLPHTTPServer) -> None:
    pipeline = configure(langfuse(server, export_all_spans=True))
    web = pipeline.tracer_provider.get_tracer("web-framework")
    with web.start_as_current_span("GET /chat") as http, otel_llm.start_generation("llm"):
        pass
    assert pipeline.flush()
    spans = by_name(server.spans(TRACES))
    assert set(spans) == {"GET /chat", "llm"}
    assert spans["llm"].parent_span_id == f"{http.get_span_context().span_id:016x}"
    assert spans["GET /chat"].scope_name == "web-framework"


def test_block_scopes_drop_spans_and_keep_the_tree_connected(server: OTLPHTTPServer) -> None:
    pipeline = configure(langfuse(server, export_all_spans=True, block_scopes=["web*"]))
    web = pipeline.tracer_provider.get_tracer("web-framework")
    db = pipeline.tracer_provider.get_tracer("db")
    with (
        otel_llm.start_observation("agent", as_type="agent") as agent,
        web.start_as_current_span("GET /x"),
        db.start_as_current_span("select"),
    ):
        pass
    assert pipeline.flush()
    spans = by_name(server.spans(TRACES))
    assert set(spans) == {"agent", "select"}
    assert spans["select"].parent_span_id == agent.id


def test_allow_scopes_limit_what_is_sent(server: OTLPHTTPServer) -> None:
    pipeline = configure(langfuse(server, allow_scopes=["other"]))
    with otel_llm.start_generation("llm"):
        pass
    assert pipeline.flush()
    assert server.requests == []
    assert pipeline.stats()["destinations"]["langfuse"]["filtered"] == 1


def test_special_scope_names_are_renamed(server: OTLPHTTPServer) -> None:
    pipeline = configure(langfuse(server))
    for scope in ("langfuse-sdk", "ai", "pydantic-ai", "genkit-tracer", "my.app"):
        tracer = pipeline.tracer_provider.get_tracer(scope, "1.0")
        with tracer.start_as_current_span(scope) as span:
            span.set_attribute(semconv.GEN_AI_REQUEST_MODEL, "m")
    assert pipeline.flush()
    scopes = {s.name: (s.scope_name, s.scope_version) for s in server.spans(TRACES)}
    assert scopes == {
        "langfuse-sdk": ("otel-llm/lf-sdk", "1.0"),
        "ai": ("otel-llm/ai", "1.0"),
        "pydantic-ai": ("otel-llm/pydantic-ai", "1.0"),
        "genkit-tracer": ("otel-llm/genkit-tracer", "1.0"),
        "my.app": ("my.app", "1.0"),
    }


def test_filtered_parent_from_an_earlier_batch_is_skipped(server: OTLPHTTPServer) -> None:
    destination = langfuse(server)
    root = record(1, 0xA, None, llm=True)
    http = record(1, 0xB, 0xA, llm=False)
    child = record(1, 0xC, 0xB, llm=True)
    destination.export([http])  # the non-LLM parent ends first, alone in its batch
    destination.export([child, root])
    destination.force_flush(5.0)  # delivery happens on the sender thread
    spans = by_name(server.spans(TRACES))
    assert spans["s-c"].parent_span_id == f"{0xA:016x}"
    assert spans["s-a"].parent_span_id is None
    destination.shutdown()


def test_spans_with_bad_ids_are_dropped_and_counted_not_the_batch(
    server: OTLPHTTPServer,
) -> None:
    destination = langfuse(server)
    good = record(1, 0xA, None, llm=True)
    destination.export(
        [record(0, 0xB, None, llm=True), record(1, 0, None, llm=True), record(1, 0xD, 0), good]
    )
    destination.force_flush(5.0)  # delivery happens on the sender thread
    [span] = server.spans(TRACES)
    assert span.span_id == f"{0xA:016x}"
    stats = destination.stats()
    assert stats["dropped"] == 3 and stats["exported"] == 1
    destination.shutdown()


def test_records_are_not_mutated(server: OTLPHTTPServer) -> None:
    destination = langfuse(server, export_all_spans=True, block_scopes=["blocked"])
    parent = record(1, 0xA, None, llm=False, scope="blocked")
    child = record(1, 0xB, 0xA, llm=True, scope="langfuse-sdk")
    child.attributes[semconv.OBSERVATION_INPUT] = '"q"'
    before = dict(child.attributes)
    destination.export([parent, child])
    destination.force_flush(5.0)  # delivery happens on the sender thread
    assert child.attributes == before
    assert child.parent_span_id == 0xA and child.scope is not None
    assert child.scope.name == "langfuse-sdk"
    [span] = server.spans(TRACES)
    assert span.parent_span_id is None and span.scope_name == "otel-llm/lf-sdk"
    destination.shutdown()


def record(
    trace_id: int,
    span_id: int,
    parent: int | None,
    *,
    llm: bool = True,
    scope: str = "otel-llm",
    resource: Resource | None = None,
) -> SpanRecord:
    attributes: dict[str, Any] = {semconv.OBSERVATION_TYPE: "span"} if llm else {"http.x": 1}
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        name=f"s-{span_id:x}",
        start_time=1,
        end_time=2,
        attributes=attributes,
        parent_span_id=parent,
        scope=InstrumentationScope(scope),
        resource=resource or Resource({"service.name": "svc"}),
    )


# --- content, secrets ----------------------------------------------------------------
def test_capture_content_false_drops_inputs_and_outputs(server: OTLPHTTPServer) -> None:
    pipeline = configure(langfuse(server, capture_content=False))
    with otel_llm.start_generation("llm", model="m", input="secret prompt") as gen:
        gen.update(output="secret answer", metadata={"k": "secret"})
    assert pipeline.flush()
    [span] = server.spans(TRACES)
    assert "secret" not in json.dumps(span.attributes)
    assert span.attributes["langfuse.observation.type"] == "generation"
    assert span.attributes["langfuse.observation.model.name"] == "m"


def test_other_destinations_headers_and_tokens_never_reach_langfuse(
    server: OTLPHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "token=apm-secret,authorization=Bearer apm")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-apm-key=apm-secret")
    destination = langfuse(server)
    resource = Resource({"service.name": "svc", "token": "apm-secret"})
    destination.export([record(1, 0xA, None, resource=resource)])
    destination.force_flush(5.0)  # delivery happens on the sender thread
    [request] = server.requests
    assert request.headers["authorization"] == BASIC
    assert "token" not in request.headers and "x-apm-key" not in request.headers
    assert "apm-secret" not in json.dumps(request.headers)
    assert request.spans[0].resource == {"service.name": "svc"}
    destination.shutdown()


def test_rejected_batch_is_counted_as_failed(server: OTLPHTTPServer) -> None:
    server.respond(TRACES, 400)
    pipeline = configure(langfuse(server))
    with otel_llm.start_generation("llm"):
        pass
    pipeline.flush()
    stats = pipeline.stats()["destinations"]["langfuse"]
    assert stats["failed"] == 1 and stats["exported"] == 0


def test_large_batches_are_split_into_requests_of_a_few_megabytes(
    server: OTLPHTTPServer,
) -> None:
    destination = langfuse(server)
    records = [record(1, span_id, None) for span_id in (0xA, 0xB, 0xC, 0xD)]
    for big in records[:3]:
        big.attributes[semconv.OBSERVATION_INPUT] = "x" * 1_600_000
    destination.export(records)
    destination.force_flush(5.0)  # delivery happens on the sender thread
    requests = server.requests_to(TRACES)
    assert len(requests) == 3  # two 1.6 MB inputs would pass the 3 MiB budget
    assert [len(r.spans) for r in requests] == [1, 1, 2]
    assert destination.stats()["exported"] == 4
    destination.shutdown()


# --- scores --------------------------------------------------------------------------
def test_score_is_posted_as_json(server: OTLPHTTPServer) -> None:
    pipeline = configure(langfuse(server), environment="prod")
    with otel_llm.start_observation("answer") as obs:
        otel_llm.score("helpful", 0.75, comment="good")
    otel_llm.score("passed", True, trace_id=obs.trace_id)
    assert pipeline.flush()
    [first, second] = server.requests_to(SCORES)
    assert first.method == "POST"
    assert first.headers["authorization"] == BASIC
    assert first.headers["content-type"] == "application/json"
    assert first.json == {
        "traceId": obs.trace_id,
        "observationId": obs.id,
        "name": "helpful",
        "value": 0.75,
        "dataType": "NUMERIC",
        "comment": "good",
        "environment": "prod",
    }
    assert second.json == {
        "traceId": obs.trace_id,
        "name": "passed",
        "value": 1.0,
        "dataType": "BOOLEAN",
        "environment": "prod",
    }
    assert pipeline.stats()["destinations"]["langfuse"]["scores_exported"] == 2


def test_failed_score_is_counted_not_raised(server: OTLPHTTPServer) -> None:
    server.respond(SCORES, 400, body=b"invalid score")
    pipeline = configure(langfuse(server))
    otel_llm.score("s", "label", trace_id=otel_llm.create_trace_id())
    assert pipeline.flush()
    assert len(server.requests_to(SCORES)) == 1  # a 400 is not retried
    stats = pipeline.stats()["destinations"]["langfuse"]
    assert stats["scores_failed"] == 1 and "scores_exported" not in stats


def test_score_for_an_unseen_trace_gets_the_pipeline_environment(
    server: OTLPHTTPServer,
) -> None:
    pipeline = configure(langfuse(server), environment="dev")
    trace_id = otel_llm.create_trace_id()
    otel_llm.score("s", 2, trace_id=trace_id)
    assert pipeline.flush()
    [request] = server.requests_to(SCORES)
    assert request.json["environment"] == "dev" and request.json["traceId"] == trace_id


def test_score_gets_the_environment_its_trace_was_exported_with(server: OTLPHTTPServer) -> None:
    destination = langfuse(server)
    trace_id = (0xABC << 64) | 5
    attributes = {semconv.OBSERVATION_TYPE: "generation", semconv.ENVIRONMENT: "staging"}
    destination.export([SpanRecord(trace_id, 7, "g", 1, 2, attributes)])
    destination.export_score(otel_llm.scores.Score("s", 1.0, "NUMERIC", f"{trace_id:032x}"))
    # only the exact id spans are exported with names the trace
    destination.export_score(otel_llm.scores.Score("s", 1.0, "NUMERIC", f"{trace_id:032X}"))
    destination.export_score(otel_llm.scores.Score("s", 1.0, "NUMERIC", f"0x{trace_id:x}"))
    assert destination.force_flush(5.0)
    environments = [r.json.get("environment") for r in server.requests_to(SCORES)]
    assert environments[0] == "staging" and "staging" not in environments[1:]
    destination.shutdown()


def test_unreachable_score_endpoint_is_counted() -> None:
    with OTLPHTTPServer() as gone:
        host = gone.url  # a port nobody listens on once the server stops
    destination = Langfuse(PK, SK, host=host, timeout=0.5)
    destination.export_score(otel_llm.scores.Score("s", 1.0, "NUMERIC", "ab" * 16))
    destination.force_flush(5.0)  # delivery happens on the sender thread
    assert destination.stats()["scores_failed"] == 1
    destination.shutdown()


# --- configuration -------------------------------------------------------------------
def test_missing_keys_raise_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="LANGFUSE_PUBLIC_KEY") as public:
        Langfuse(secret_key=SK)
    assert public.value.setting == "public_key"
    with pytest.raises(ConfigError, match="LANGFUSE_SECRET_KEY") as secret:
        Langfuse(public_key=PK)
    assert secret.value.setting == "secret_key"
    with pytest.raises(ConfigError):
        Langfuse(public_key="  ", secret_key=SK)


def test_keys_and_host_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PK)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SK)
    assert Langfuse()._describe()["host"] == "https://cloud.langfuse.com"
    monkeypatch.setenv("LANGFUSE_BASE_URL", "https://base.example.com/")
    assert Langfuse()._describe()["host"] == "https://base.example.com"
    monkeypatch.setenv("LANGFUSE_HOST", "http://host.example.com:3000")
    described = Langfuse()._describe()
    assert described["host"] == "http://host.example.com:3000"
    assert described["public_key"] == PK
    assert Langfuse(host="https://arg.example.com")._describe()["host"] == "https://arg.example.com"


@pytest.mark.parametrize(
    "host",
    [
        "cloud.langfuse.com",
        "ftp://cloud.langfuse.com",
        "https://",
        "https://cloud.langfuse.com:99999",
        "https://user:pw@cloud.langfuse.com",
        "https://cloud.langfuse.com/?x=1",
        "https://cloud.langfuse.com/api/public/otel",
    ],
)
def test_malformed_host_raises_config_error(host: str) -> None:
    with pytest.raises(ConfigError) as error:
        Langfuse(PK, SK, host=host)
    assert error.value.setting == "host"


def test_bad_host_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANGFUSE_HOST", "localhost:3000")
    with pytest.raises(ConfigError, match="LANGFUSE_HOST"):
        Langfuse(PK, SK)


def test_swapped_keys_are_caught_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as error:
        Langfuse(public_key="sk-lf-oops-secret", secret_key="pk-lf-1")
    assert error.value.setting == "public_key"
    assert "oops-secret" not in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"export_all_spans": "yes"}, "export_all_spans"),
        ({"capture_content": 1}, "capture_content"),
        ({"block_scopes": "web"}, "block_scopes"),
    ],
)
def test_bad_options_raise_config_error(kwargs: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as error:
        Langfuse(PK, SK, **kwargs)
    assert error.value.setting == setting


def test_repr_and_description_hide_the_secret_key() -> None:
    destination = Langfuse(PK, SK, host="https://eu.example.com", name="lf-eu")
    text = repr(destination)
    assert SK not in text and "[secure]" in text
    assert "lf-eu" in text and PK in text and "https://eu.example.com" in text
    assert SK not in repr(destination._describe())
    assert destination.name == "lf-eu" and destination.kind == "langfuse"
    destination.shutdown()


def test_shutdown_is_idempotent_and_later_exports_are_counted(server: OTLPHTTPServer) -> None:
    destination = langfuse(server)
    assert destination.shutdown() and destination.shutdown()
    destination.export([record(1, 0xA, None)])
    destination.force_flush(5.0)  # delivery happens on the sender thread
    assert server.requests == []
    assert destination.stats()["dropped"] == 1


# --- the dialect, as a pure function --------------------------------------------------
def test_usage_buckets_are_exclusive_integers() -> None:
    details = usage_details(
        {
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 50,
            semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 40,
            semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 10,
        }
    )
    assert details == {
        "input": 60,
        "output": 40,
        "input_cached_tokens": 40,
        "output_reasoning_tokens": 10,
        "total": 150,
    }


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({}, None),
        ({semconv.GEN_AI_USAGE_INPUT_TOKENS: 12}, {"input": 12, "total": 12}),
        ({semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 7.0}, {"output": 7, "total": 7}),
        ({semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 7.5}, None),
        ({semconv.GEN_AI_USAGE_OUTPUT_TOKENS: -1}, None),
        ({semconv.GEN_AI_USAGE_OUTPUT_TOKENS: True}, None),
        (  # inconsistent counts never go negative
            {
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 5,
                semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 9,
            },
            {"input": 0, "input_cached_tokens": 9, "total": 9},
        ),
        (
            {semconv.USAGE_RAW: '{"prompt_tokens": 3, "completion_tokens": 4}'},
            {"input": 3, "output": 4, "total": 7},
        ),
        (
            {
                semconv.USAGE_RAW: json.dumps(
                    {
                        "prompt_tokens": 30,
                        "completion_tokens": 20,
                        "total_tokens": 50,
                        "prompt_tokens_details": {"cached_tokens": 0},
                        "completion_tokens_details": {"reasoning_tokens": 5},
                    }
                )
            },
            {"input": 30, "output": 15, "output_reasoning_tokens": 5, "total": 50},
        ),
        (
            {semconv.USAGE_RAW: '{"input": 2, "output": 1, "input_cached_tokens": 4}'},
            {"input": 2, "output": 1, "input_cached_tokens": 4, "total": 7},
        ),
        ({semconv.USAGE_RAW: '{"tokens": 3}'}, None),
        ({semconv.USAGE_RAW: "not json"}, None),
        (  # canonical counts win over the raw shape
            {semconv.GEN_AI_USAGE_INPUT_TOKENS: 1, semconv.USAGE_RAW: '{"input": 9}'},
            {"input": 1, "total": 1},
        ),
    ],
)
def test_usage_details(attributes: dict[str, Any], expected: dict[str, int] | None) -> None:
    assert usage_details(attributes) == expected


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({}, None),
        ({semconv.GEN_AI_USAGE_COST: 0.5}, {"total": 0.5}),
        (
            {
                semconv.GEN_AI_USAGE_COST: 0.5,
                "otel_llm.cost.input": 0.2,
                "otel_llm.cost.output": 0.25,
                "otel_llm.cost.cache_read": 0.05,
                "otel_llm.cost.currency": "USD",
            },
            {"input": 0.2, "output": 0.25, "input_cached_tokens": 0.05, "total": 0.5},
        ),
        (
            {"otel_llm.cost.input": 0.25, "otel_llm.cost.output": 0.5},
            {"input": 0.25, "output": 0.5, "total": 0.75},
        ),
        ({semconv.COST_RAW: "0.125"}, {"total": 0.125}),
        ({semconv.COST_RAW: '{"total": 1, "input": 0.5, "x": "y"}'}, {"total": 1.0, "input": 0.5}),
        ({semconv.GEN_AI_USAGE_COST: float("nan")}, None),
        ({semconv.GEN_AI_USAGE_COST: -1.0}, None),
    ],
)
def test_cost_details(attributes: dict[str, Any], expected: dict[str, float] | None) -> None:
    assert cost_details(attributes) == expected


def test_lone_input_takes_its_output_from_the_source_the_server_would_have_used() -> None:
    messages = '[{"role":"assistant","parts":[{"type":"text","content":"hi"}]}]'
    out = dialect.to_langfuse(
        {semconv.OBSERVATION_INPUT: '"q"', semconv.GEN_AI_OUTPUT_MESSAGES: messages}
    )
    assert out[dialect.LF_INPUT] == '"q"' and out[dialect.LF_OUTPUT] == messages
    # with both langfuse keys set, the message copy would only double the request
    assert semconv.GEN_AI_OUTPUT_MESSAGES not in out
    out = dialect.to_langfuse(
        {semconv.OBSERVATION_OUTPUT: '"a"', semconv.GEN_AI_INPUT_MESSAGES: "[]"}
    )
    assert out[dialect.LF_INPUT] == "[]" and out[dialect.LF_OUTPUT] == '"a"'


def test_message_copies_are_not_sent_twice() -> None:
    messages = '[{"role":"user","parts":[{"type":"text","content":"q"}]}]'
    out = dialect.to_langfuse(
        {
            semconv.OBSERVATION_INPUT: '"q"',
            semconv.OBSERVATION_OUTPUT: '"a"',
            semconv.GEN_AI_INPUT_MESSAGES: messages,
            semconv.GEN_AI_SYSTEM_INSTRUCTIONS: "[]",
            semconv.GEN_AI_REQUEST_MODEL: "m",
        }
    )
    assert out[dialect.LF_INPUT] == '"q"' and out[dialect.LF_OUTPUT] == '"a"'
    assert semconv.GEN_AI_INPUT_MESSAGES not in out
    assert semconv.GEN_AI_SYSTEM_INSTRUCTIONS not in out
    assert out[semconv.GEN_AI_REQUEST_MODEL] == "m"  # other gen_ai.* keys stay


def test_lone_input_without_other_sources_sends_no_invented_output() -> None:
    out = dialect.to_langfuse({semconv.OBSERVATION_INPUT: '"q"'})
    assert out == {dialect.LF_INPUT: '"q"'}


def test_no_io_of_ours_leaves_the_server_its_own_sources() -> None:
    attrs = {semconv.GEN_AI_INPUT_MESSAGES: "[]", "traceloop.entity.output": "x"}
    assert dialect.to_langfuse(attrs) == attrs


def test_prompt_needs_a_generation_a_name_and_an_int_version() -> None:
    link = {semconv.PROMPT_NAME: "p", semconv.PROMPT_VERSION: 2}
    out = dialect.to_langfuse({semconv.OBSERVATION_TYPE: "generation", **link})
    assert out[dialect.LF_PROMPT_NAME] == "p" and out[dialect.LF_PROMPT_VERSION] == 2
    assert semconv.PROMPT_NAME not in out
    for attrs in (
        {semconv.OBSERVATION_TYPE: "span", **link},
        {semconv.OBSERVATION_TYPE: "generation", semconv.PROMPT_NAME: "p"},
        {semconv.OBSERVATION_TYPE: "generation", **link, semconv.PROMPT_VERSION: "2"},
        {semconv.OBSERVATION_TYPE: "generation", **link, semconv.PROMPT_VERSION: True},
    ):
        out = dialect.to_langfuse(attrs)
        assert dialect.LF_PROMPT_NAME not in out and dialect.LF_PROMPT_VERSION not in out


def test_metadata_is_always_a_json_object() -> None:
    def metadata(value: str) -> Any:
        return json.loads(
            dialect.to_langfuse({semconv.OBSERVATION_METADATA: value})[dialect.LF_METADATA]
        )

    assert metadata('{"a": 1}') == {"a": 1}
    assert metadata("[1, 2]") == {"value": [1, 2]}
    assert metadata("plain text") == {"value": "plain text"}


def test_trace_metadata_tags_and_versions() -> None:
    out = dialect.to_langfuse(
        {
            semconv.TRACE_METADATA: '{"a": "x", "b": 2, "c": {"d": 1}, "e": null}',
            semconv.TRACE_TAGS: '["t1", "t2"]',
            semconv.VERSION: "v1",
            "otel_llm.observation.version": "obs-v2",
            semconv.USER_ID: 42,
            semconv.TRACE_INPUT: '"in"',
        }
    )
    assert out == {
        "langfuse.trace.metadata.a": "x",
        "langfuse.trace.metadata.b": "2",
        "langfuse.trace.metadata.c": '{"d":1}',
        dialect.LF_TRACE_TAGS: ("t1", "t2"),
        dialect.LF_VERSION: "obs-v2",
        semconv.USER_ID: "42",
        dialect.LF_TRACE_INPUT: '"in"',
    }
    assert dialect.to_langfuse({semconv.TRACE_TAGS: "solo"})[dialect.LF_TRACE_TAGS] == ("solo",)


def test_observation_fields_and_untouched_foreign_attributes() -> None:
    attrs = {
        semconv.OBSERVATION_TYPE: "Tool",
        semconv.OBSERVATION_LEVEL: "debug",
        semconv.OBSERVATION_STATUS_MESSAGE: "ok",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        semconv.OBSERVATION_MODEL_PARAMETERS: '{"t": 1, "stop": ["x"], "flag": true, "n": null}',
        semconv.USAGE_ESTIMATED: True,
        "http.method": "GET",
        "otel_llm.cost.unpriced": True,
    }
    out = dialect.to_langfuse(attrs)
    assert out[dialect.LF_TYPE] == "tool"
    assert out[dialect.LF_LEVEL] == "DEBUG" and out[dialect.LF_STATUS_MESSAGE] == "ok"
    assert out[dialect.LF_MODEL_NAME] == "gpt-4o-2024-08-06"  # the response model wins
    assert json.loads(out[dialect.LF_MODEL_PARAMETERS]) == {
        "t": 1,
        "stop": '["x"]',
        "flag": "true",
    }
    assert out["http.method"] == "GET"
    assert out[semconv.USAGE_ESTIMATED] is True and out["otel_llm.cost.unpriced"] is True
    assert dialect.LF_COST_DETAILS not in out  # unpriced: let the server price it
    assert attrs[semconv.OBSERVATION_TYPE] == "Tool"  # input untouched


@pytest.mark.parametrize(
    "params",
    [
        '{"temperature": 0.2, "max_tokens": 256}',
        '{"t": 1, "stop": ["x"], "flag": true, "n": null, "big": 18446744073709551615}',
        '["not", "an", "object"]',
        "not json",
        '{"long": "' + "x" * 2000 + '"}',  # beyond the cached size
        {"mapping": 1.5, "inf": float("inf")},  # not text: never cached
    ],
)
def test_model_parameters_give_the_same_result_every_time(params: object) -> None:
    attrs = {semconv.OBSERVATION_TYPE: "generation", semconv.OBSERVATION_MODEL_PARAMETERS: params}
    expected = model_parameters(params)
    for _ in range(3):  # the first call may fill the cache, the others read it
        out = dialect.to_langfuse(attrs)
        if expected is None:
            assert dialect.LF_MODEL_PARAMETERS not in out
            assert out[semconv.OBSERVATION_MODEL_PARAMETERS] == params
        else:
            assert json.loads(out[dialect.LF_MODEL_PARAMETERS]) == json.loads(json.dumps(expected))


def test_unknown_type_and_level_are_not_translated() -> None:
    attrs = {semconv.OBSERVATION_TYPE: "weird", semconv.OBSERVATION_LEVEL: "LOUD"}
    assert dialect.to_langfuse(attrs) == attrs


@pytest.mark.parametrize(
    ("name", "renamed"),
    [
        ("langfuse-sdk", "otel-llm/lf-sdk"),
        ("my-LangFuse-bridge", "otel-llm/my-lf-bridge"),
        ("ai", "otel-llm/ai"),
        ("pydantic-ai", "otel-llm/pydantic-ai"),
        ("genkit-tracer", "otel-llm/genkit-tracer"),
        ("otel-llm", None),
        ("ai.sdk", None),
        ("openai", None),
    ],
)
def test_langfuse_scope(name: str, renamed: str | None) -> None:
    out = dialect.langfuse_scope_name(name)
    assert out == (name if renamed is None else renamed)
    assert "langfuse" not in out.lower()


def test_share_trace_fields_leaves_lone_spans_alone() -> None:
    spans: list[tuple[int, dict[str, Any]]] = [
        (1, {"user.id": "u1"}),
        (2, {dialect.LF_TRACE_NAME: "n"}),
        (3, {}),
    ]
    dialect.share_trace_fields(spans)
    assert [a for _, a in spans] == [{"user.id": "u1"}, {dialect.LF_TRACE_NAME: "n"}, {}]


def test_share_trace_fields_fills_missing_values_only() -> None:
    a: dict[str, Any] = {"user.id": "u1", "langfuse.trace.metadata.k": "v", "x": 1}
    b: dict[str, Any] = {"user.id": "u2", dialect.LF_TRACE_NAME: "n"}
    c: dict[str, Any] = {}
    other: dict[str, Any] = {}
    dialect.share_trace_fields([(1, a), (1, b), (1, c), (2, other)])
    assert a == {
        "user.id": "u1",
        "langfuse.trace.metadata.k": "v",
        "x": 1,
        dialect.LF_TRACE_NAME: "n",
    }
    assert b["user.id"] == "u2" and b["langfuse.trace.metadata.k"] == "v"
    assert c == {"user.id": "u1", "langfuse.trace.metadata.k": "v", dialect.LF_TRACE_NAME: "n"}
    assert other == {}
