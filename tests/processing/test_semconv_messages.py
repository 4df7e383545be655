"""Deriving gen_ai.* messages from our own input/output only for destinations that read them.

A Langfuse-only pipeline sends ``otel_llm.observation.input/output`` (as
``langfuse.observation.*``) and drops the messages, so normalize skips them there: the
Langfuse export, cost and token estimates stay the same; a pipeline with any other
destination still gets them; foreign dialects are translated as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm import semconv
from otel_llm.destinations import Destination
from otel_llm.export.langfuse import Langfuse
from otel_llm.processing.normalize import normalize
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext
from otel_llm.processing.stages import DEFAULT_STAGES
from otel_llm.processing.usage import derive_usage
from tests.otlp_http_server import DecodedSpan, OTLPHTTPServer

MESSAGE_KEYS = (
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
)
CHAT = json.dumps(
    {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Is the metro still running at midnight?"},
        ]
    }
)
OURS = {
    semconv.OBSERVATION_TYPE: "generation",
    semconv.GEN_AI_OPERATION_NAME: "chat",
    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    semconv.OBSERVATION_INPUT: CHAT,
    semconv.OBSERVATION_OUTPUT: "It closes at 01:00.",
}
FOREIGN = {
    "langfuse SDK": {
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "gpt-4o",
        "langfuse.observation.input": CHAT,
        "langfuse.observation.output": '{"role": "assistant", "content": "answer"}',
    },
    "OpenLLMetry": {
        "gen_ai.system": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "hi",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "hello",
        "traceloop.entity.input": CHAT,
        "traceloop.entity.output": "hello",
    },
    "OpenInference": {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "hi",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "hello",
        "input.value": CHAT,
        "output.value": "hello",
    },
}


def _normalized(attributes: Mapping[str, Any], semconv_messages: bool) -> dict[str, Any]:
    record = SpanRecord(1, 2, "x", 0, 1, attributes=dict(attributes))
    normalize(record, StageContext(semconv_messages=semconv_messages))
    return record.attributes


def test_our_generation_with_input_and_output_gets_messages_only_when_wanted() -> None:
    wanted = _normalized(OURS, True)
    skipped = _normalized(OURS, False)
    assert all(key in wanted for key in MESSAGE_KEYS)
    assert not any(key in skipped for key in MESSAGE_KEYS)
    assert {k: v for k, v in wanted.items() if k not in MESSAGE_KEYS} == skipped


@pytest.mark.parametrize("missing", [semconv.OBSERVATION_INPUT, semconv.OBSERVATION_OUTPUT])
def test_a_one_sided_generation_keeps_its_messages(missing: str) -> None:
    """The Langfuse dialect sends the message copies when one side is missing."""
    attributes = {k: v for k, v in OURS.items() if k != missing}
    assert _normalized(attributes, False) == _normalized(attributes, True)


@pytest.mark.parametrize("dialect", sorted(FOREIGN))
def test_foreign_dialects_are_translated_as_before(dialect: str) -> None:
    attributes = FOREIGN[dialect]
    translated = _normalized(attributes, False)
    assert translated == _normalized(attributes, True)
    assert semconv.GEN_AI_INPUT_MESSAGES in translated


@pytest.mark.parametrize("output", ["It closes at 01:00.", None])
def test_token_estimates_do_not_depend_on_the_messages_being_kept(output: str | None) -> None:
    attributes = {k: v for k, v in OURS.items() if k != semconv.OBSERVATION_OUTPUT}
    if output is not None:
        attributes[semconv.OBSERVATION_OUTPUT] = output
    estimates = []
    for semconv_messages in (True, False):
        ctx = StageContext(semconv_messages=semconv_messages)
        record = SpanRecord(1, 2, "x", 0, 1, attributes=dict(attributes))
        normalize(record, ctx)
        derive_usage(record, ctx)
        estimates.append(
            {k: v for k, v in record.attributes.items() if k.startswith("gen_ai.usage.")}
        )
    assert estimates[0] == estimates[1]
    assert estimates[0][semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0


# --- pipelines ----------------------------------------------------------------------
PK, SK = "pk-lf-test", "sk-lf-secret-value"
TRACES = "/api/public/otel/v1/traces"


class Capture(Destination):
    """Records every processed record (reads everything, messages included)."""

    kind = "capture"

    def __init__(self) -> None:
        super().__init__()
        self.records: list[SpanRecord] = []

    def _export(self, records: Sequence[SpanRecord]) -> bool:
        self.records.extend(records)
        return True


class LangfuseLike(Capture):
    """Declines the messages, as Langfuse does, and shows what the stages produced."""

    kind = "langfuse-like"
    wants_semconv_messages = False


@pytest.fixture(scope="module")
def server() -> Iterator[OTLPHTTPServer]:
    with OTLPHTTPServer() as running:
        yield running


def _langfuse_export(server: OTLPHTTPServer, *extra: Destination) -> DecodedSpan:
    """One generation through a pipeline of Langfuse (plus ``extra``); what Langfuse got."""
    server.reset()
    pipeline = otel_llm.configure(
        destinations=[Langfuse(PK, SK, host=server.url), *extra],
        tracer_provider=TracerProvider(),
        spool_dir=False,
    )
    with otel_llm.start_generation(
        "llm",
        model="gpt-4o-mini",
        input=json.loads(CHAT)["messages"],
        model_parameters={"temperature": 0.2, "max_tokens": 64},
    ) as generation:
        generation.update(output="It closes at 01:00.")  # no usage: estimated
    assert pipeline.flush()
    pipeline.shutdown()
    [span] = server.spans(TRACES)
    return span


def test_langfuse_only_pipelines_skip_the_messages_and_export_the_same(
    server: OTLPHTTPServer,
) -> None:
    alone = _langfuse_export(server)
    memory = otel_llm.InMemory()
    beside_memory = _langfuse_export(server, memory)
    assert alone.attributes == beside_memory.attributes  # estimate and cost included
    assert "langfuse.observation.usage_details" in alone.attributes
    assert not any(key in alone.attributes for key in MESSAGE_KEYS)
    [span] = memory.spans  # the other destination still gets the messages
    assert span.attributes is not None
    assert all(key in span.attributes for key in MESSAGE_KEYS)


@pytest.mark.parametrize(
    ("destinations", "derived"),
    [
        ([LangfuseLike], False),
        ([LangfuseLike, LangfuseLike], False),
        ([LangfuseLike, Capture], True),
        ([Capture], True),
    ],
)
def test_the_processor_derives_messages_when_any_destination_reads_them(
    destinations: list[type[Capture]], derived: bool
) -> None:
    assert Langfuse.wants_semconv_messages is False
    assert otel_llm.OTLP.wants_semconv_messages and otel_llm.InMemory.wants_semconv_messages
    sinks = [make() for make in destinations]
    provider = TracerProvider()
    processor = otel_llm.LLMSpanProcessor(sinks, schedule_delay=3600.0)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("llm") as span:
        span.set_attributes(OURS)
    assert processor.flush()
    processor.shutdown()
    for sink in sinks:
        [record] = sink.records
        assert all((key in record.attributes) is derived for key in MESSAGE_KEYS)


def test_the_stages_give_langfuse_the_same_span_either_way() -> None:
    """Every default stage on the same record: what the Langfuse dialect makes of it."""
    from otel_llm.export.dialect_langfuse import to_langfuse

    results = []
    for semconv_messages in (True, False):
        ctx = StageContext(semconv_messages=semconv_messages)
        record = SpanRecord(1, 2, "x", 0, 1, attributes=dict(OURS))
        for stage in DEFAULT_STAGES:
            stage(record, ctx)
        results.append(to_langfuse(record.attributes))
    assert results[0] == results[1]
