"""configure(): precedence, validation, provider handling, re-configuration, lifecycle."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_llm
from otel_llm.settings import resolve


@pytest.mark.parametrize(
    ("setting", "kwarg", "env", "expected", "source"),
    [
        ("environment", None, {}, "default", "default"),
        ("environment", None, {"LANGFUSE_ENVIRONMENT": "old"}, "old", "LANGFUSE_ENVIRONMENT"),
        (
            "environment",
            None,
            {"LANGFUSE_ENVIRONMENT": "old", "LANGFUSE_TRACING_ENVIRONMENT": "new"},
            "new",
            "LANGFUSE_TRACING_ENVIRONMENT",
        ),
        ("environment", "arg", {"LANGFUSE_TRACING_ENVIRONMENT": "new"}, "arg", "argument"),
        ("environment", None, {"LANGFUSE_TRACING_ENVIRONMENT": ""}, "default", "default"),
        ("service_name", None, {"OTEL_SERVICE_NAME": "svc"}, "svc", "OTEL_SERVICE_NAME"),
        ("service_name", "mine", {"OTEL_SERVICE_NAME": "svc"}, "mine", "argument"),
        ("release", None, {"LANGFUSE_RELEASE": "v9"}, "v9", "LANGFUSE_RELEASE"),
        ("sample_rate", None, {"LANGFUSE_SAMPLE_RATE": "0.25"}, 0.25, "LANGFUSE_SAMPLE_RATE"),
        ("sample_rate", 0.5, {"LANGFUSE_SAMPLE_RATE": "0.25"}, 0.5, "argument"),
        ("sample_rate", None, {}, 1.0, "default"),
        (
            "capture_content",
            None,
            {"OTEL_LLM_CAPTURE_CONTENT": "false"},
            False,
            "OTEL_LLM_CAPTURE_CONTENT",
        ),
        (
            "capture_content",
            None,
            {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"},
            False,
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        ),
        ("capture_content", True, {"OTEL_LLM_CAPTURE_CONTENT": "false"}, True, "argument"),
        (
            "max_content_chars",
            None,
            {"OTEL_LLM_MAX_CONTENT_CHARS": "99"},
            99,
            "OTEL_LLM_MAX_CONTENT_CHARS",
        ),
        ("spool_dir", False, {"OTEL_LLM_SPOOL_DIR": "/tmp/x"}, False, "argument"),
    ],
)
def test_configuration_precedence(
    setting: str, kwarg: object, env: dict[str, str], expected: object, source: str
) -> None:
    assert resolve(setting, kwarg, env) == (expected, source)


@pytest.mark.parametrize(
    ("kwargs", "setting", "fragment"),
    [
        ({"environment": "Prod"}, "environment", "lowercase"),
        ({"environment": "langfuse-prod"}, "environment", "must not start with 'langfuse'"),
        ({"environment": "x" * 41}, "environment", "1-40 characters"),
        ({"environment": "a b"}, "environment", "lowercase"),
        ({"sample_rate": 1.5}, "sample_rate", "between 0 and 1"),
        ({"sample_rate": -0.1}, "sample_rate", "between 0 and 1"),
        ({"sample_rate": float("nan")}, "sample_rate", "between 0 and 1"),
        ({"sample_rate": "half"}, "sample_rate", "not a number"),
        ({"mask": "not callable"}, "mask", "must be a function"),
        ({"masking": 3}, "masking", "True, False or a mapping"),
        ({"pricing": "/does/not/exist.json"}, "pricing", "does not exist"),
        ({"resource_attributes": {"k": object()}}, "resource_attributes", "must be a non-empty"),
        ({"destinations": ["langfuse"]}, "destinations", "is not a destination"),
        ({"tracer_provider": object()}, "tracer_provider", "TracerProvider"),
        ({"max_queue_size": 0}, "max_queue_size", "positive integer"),
        ({"spool_max_bytes": -5}, "spool_max_bytes", "positive integer"),
    ],
)
def test_bad_settings_raise_config_error_naming_setting_and_rule(
    kwargs: dict[str, object], setting: str, fragment: str
) -> None:
    with pytest.raises(otel_llm.ConfigError) as info:
        otel_llm.configure(**{"tracer_provider": TracerProvider(), **kwargs})  # type: ignore[arg-type]
    assert info.value.setting == setting
    assert str(info.value).startswith(setting)
    assert fragment in str(info.value)


def test_bad_environment_from_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_TRACING_ENVIRONMENT", "PROD")
    with pytest.raises(
        otel_llm.ConfigError, match="environment variable LANGFUSE_TRACING_ENVIRONMENT"
    ):
        otel_llm.configure(tracer_provider=TracerProvider())


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        otel_llm.configure(tracer_provider=TracerProvider(), sample_rate=2)


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        otel_llm.configure(no_such_setting=1)  # type: ignore[call-arg]


def test_duplicate_destination_names_rejected() -> None:
    with pytest.raises(otel_llm.ConfigError, match="named 'inmemory'"):
        otel_llm.configure(
            destinations=[otel_llm.InMemory(), otel_llm.InMemory()],
            tracer_provider=TracerProvider(),
        )


def test_environment_release_version_on_every_span(memory: otel_llm.InMemory) -> None:
    p = otel_llm.configure(
        destinations=[memory],
        tracer_provider=TracerProvider(),
        environment="staging",
        release="r-42",
        version="1.2",
    )
    with otel_llm.start_observation("outer"), otel_llm.start_observation("inner"):
        pass
    assert p.flush()
    assert len(memory.spans) == 2
    for span in memory.spans:
        assert span.attributes["otel_llm.environment"] == "staging"
        assert span.attributes["otel_llm.release"] == "r-42"
        assert span.attributes["otel_llm.version"] == "1.2"


def test_environment_from_old_langfuse_variable(
    monkeypatch: pytest.MonkeyPatch, memory: otel_llm.InMemory
) -> None:
    monkeypatch.setenv("LANGFUSE_ENVIRONMENT", "development")  # what seed 001 sets
    p = otel_llm.configure(destinations=[memory], tracer_provider=TracerProvider())
    with otel_llm.start_observation("x"):
        pass
    p.flush()
    assert memory.spans[0].attributes["otel_llm.environment"] == "development"


def test_existing_provider_keeps_its_processors_and_gets_ours_once(
    memory: otel_llm.InMemory,
) -> None:
    provider = TracerProvider()
    theirs = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(theirs))
    otel_llm.configure(destinations=[memory], tracer_provider=provider)
    second = otel_llm.InMemory(name="second")
    p = otel_llm.configure(destinations=[second], tracer_provider=provider)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("app-span"):
        pass
    p.flush()
    assert [s.name for s in theirs.get_finished_spans()] == ["app-span"]
    assert [s.name for s in second.spans] == ["app-span"]  # new pipeline, exactly once
    assert memory.spans == []  # the replaced pipeline no longer receives anything
    # one slot on the provider, however often configure() runs
    processors = provider._active_span_processor._span_processors
    assert sum(type(x).__name__ == "_ProcessorSlot" for x in processors) == 1


def test_provider_slot_follows_the_current_pipeline(memory: otel_llm.InMemory) -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("app")
    first = otel_llm.configure(destinations=[memory], tracer_provider=provider)
    second_memory = otel_llm.InMemory(name="second")
    second = otel_llm.configure(destinations=[second_memory], tracer_provider=provider)
    with tracer.start_as_current_span("to-second"):
        pass
    second.flush()
    second.shutdown()  # the slot now delegates to nothing
    with tracer.start_as_current_span("after-shutdown"):
        pass
    third_memory = otel_llm.InMemory(name="third")
    third = otel_llm.configure(destinations=[third_memory], tracer_provider=provider)
    with tracer.start_as_current_span("to-third"):
        pass
    third.flush()
    assert memory.spans == [] and first.processor.is_shut_down
    assert [s.name for s in second_memory.spans] == ["to-second"]
    assert [s.name for s in third_memory.spans] == ["to-third"]


def test_reconfigure_flushes_old_pipeline_first() -> None:
    provider = TracerProvider()
    first = otel_llm.InMemory()
    otel_llm.configure(destinations=[first], tracer_provider=provider)
    with otel_llm.start_observation("before"):
        pass
    otel_llm.configure(destinations=[otel_llm.InMemory()], tracer_provider=provider)
    assert [s.name for s in first.spans] == ["before"]


def test_reconfigure_with_same_destination_keeps_it_open(memory: otel_llm.InMemory) -> None:
    provider = TracerProvider()
    otel_llm.configure(destinations=[memory], tracer_provider=provider)
    p = otel_llm.configure(destinations=[memory], tracer_provider=provider, release="2")
    with otel_llm.start_observation("after"):
        pass
    p.flush()
    assert [s.name for s in memory.spans] == ["after"]
    assert p.stats()["destinations"]["inmemory"]["exported"] == 1


def test_stats_shape_from_the_start(pipeline: otel_llm.Pipeline) -> None:
    stats = pipeline.stats()
    assert stats["spans_received"] == 0
    assert stats["spans_dropped"] == 0
    assert stats["destinations"] == {
        "inmemory": {"exported": 0, "failed": 0, "spooled": 0, "dropped": 0, "filtered": 0}
    }
    with otel_llm.start_observation("x"):
        pass
    pipeline.flush()
    stats = pipeline.stats()
    assert stats["spans_received"] == 1
    assert stats["destinations"]["inmemory"]["exported"] == 1


def test_flush_and_shutdown_return_bool_within_timeout(pipeline: otel_llm.Pipeline) -> None:
    started = time.monotonic()
    assert pipeline.flush(timeout=1.0) is True
    assert pipeline.shutdown(timeout=1.0) is True
    assert pipeline.shutdown(timeout=1.0) is True  # idempotent
    assert time.monotonic() - started < 2.0


class _SlowDestination(otel_llm.Destination):
    kind = "slow"

    def _export(self, records: object) -> bool:
        time.sleep(1.5)
        return True


def test_flush_gives_up_at_its_deadline() -> None:
    p = otel_llm.configure(destinations=[_SlowDestination()], tracer_provider=TracerProvider())
    with otel_llm.start_observation("x"):
        pass
    started = time.monotonic()
    assert p.flush(timeout=0.2) is False
    assert time.monotonic() - started < 1.0


def test_module_level_flush_and_shutdown_without_pipeline() -> None:
    assert otel_llm.flush() is True
    assert otel_llm.shutdown() is True


def test_sample_rate_zero_exports_nothing(memory: otel_llm.InMemory) -> None:
    p = otel_llm.configure(destinations=[memory], tracer_provider=TracerProvider(), sample_rate=0)
    for _ in range(20):
        with otel_llm.start_observation("x"):
            pass
    p.flush()
    assert memory.spans == []
    assert p.stats()["spans_sampled_out"] == 20
    assert p.stats()["spans_dropped"] == 0


def test_sample_rate_keeps_whole_traces(memory: otel_llm.InMemory) -> None:
    p = otel_llm.configure(destinations=[memory], tracer_provider=TracerProvider(), sample_rate=0.5)
    for _ in range(200):
        with otel_llm.start_observation("root"), otel_llm.start_observation("child"):
            pass
    p.flush()
    per_trace: dict[int, int] = {}
    for span in memory.spans:
        per_trace[span.context.trace_id] = per_trace.get(span.context.trace_id, 0) + 1
    assert set(per_trace.values()) == {2}
    assert 40 < len(per_trace) < 160


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_registers_global_provider_only_when_none_is_set() -> None:
    out = _run(
        """
        from opentelemetry import trace
        import otel_llm
        p = otel_llm.configure(destinations=[otel_llm.InMemory()])
        print(trace.get_tracer_provider() is p.tracer_provider)
        """
    )
    assert out.split() == ["True"]
    out = _run(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        import otel_llm
        mine = TracerProvider()
        trace.set_tracer_provider(mine)
        p = otel_llm.configure(destinations=[otel_llm.InMemory()])
        print(trace.get_tracer_provider() is mine, p.tracer_provider is mine)
        p2 = otel_llm.configure(destinations=[otel_llm.InMemory()])
        print(p2.tracer_provider is mine)
        """
    )
    assert out.split() == ["True", "True", "True"]


def test_without_configure_helpers_follow_the_global_provider_with_one_tracer() -> None:
    # The manual setup: LLMSpanProcessor on the app's own provider, no configure().
    out = _run(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        import otel_llm

        @otel_llm.observe()
        def work(x):
            return x

        work(0)  # no provider yet: a no-op span, as with any OTel library
        class Counting(TracerProvider):
            made = 0
            def get_tracer(self, *args, **kwargs):
                Counting.made += 1
                return super().get_tracer(*args, **kwargs)
        mem = otel_llm.InMemory()
        provider = Counting()
        provider.add_span_processor(otel_llm.LLMSpanProcessor([mem]))
        trace.set_tracer_provider(provider)
        for i in range(50):
            work(i)
        provider.force_flush()
        print(len(mem.spans), Counting.made, mem.spans[0].instrumentation_scope.name)
        """
    )
    assert out.split() == ["50", "1", "otel-llm"]


def test_spans_of_the_global_api_reach_destinations_in_a_fresh_process() -> None:
    out = _run(
        """
        from opentelemetry import trace
        import otel_llm
        mem = otel_llm.InMemory()
        p = otel_llm.configure(destinations=[mem], service_name="svc")
        with trace.get_tracer("third.party").start_as_current_span("lib-span"):
            pass
        p.flush()
        s = mem.spans[0]
        print(s.name, s.resource.attributes["service.name"])
        """
    )
    assert out.split() == ["lib-span", "svc"]


def test_atexit_flushes_what_was_recorded() -> None:
    out = _run(
        """
        import sys
        import otel_llm
        class Printer(otel_llm.Destination):
            kind = "printer"
            def _export(self, records):
                for r in records:
                    sys.stdout.write("exported " + r.name + "\\n")
                return True
        otel_llm.configure(destinations=[Printer()])
        with otel_llm.start_observation("last-words"):
            pass
        """
    )
    assert "exported last-words" in out


def test_service_name_overrides_existing_provider_resource(memory: otel_llm.InMemory) -> None:
    p = otel_llm.configure(
        destinations=[memory],
        tracer_provider=TracerProvider(),
        service_name="checkout",
        resource_attributes={"deployment.region": "eu"},
    )
    with otel_llm.start_observation("x"):
        pass
    p.flush()
    attrs = memory.spans[0].resource.attributes
    assert attrs["service.name"] == "checkout"
    assert attrs["deployment.region"] == "eu"


def test_helpers_without_configure_follow_the_global_api() -> None:
    # Not configured: no-op spans, no error, ids are None outside a span.
    with otel_llm.start_observation("x") as obs:
        obs.update(output="y")
    assert otel_llm.get_current_trace_id() is None
    assert isinstance(trace_api.get_current_span(), trace_api.Span)


def test_nothing_configured_means_the_local_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from pathlib import Path

    db = Path(str(tmp_path)) / "here.db"
    monkeypatch.setenv("OTEL_LLM_DB", str(db))
    p = otel_llm.configure(tracer_provider=TracerProvider())
    assert [d.kind for d in p.destinations] == ["localstore"]
    with otel_llm.start_generation("g", model="gpt-4o-mini"):
        pass
    assert p.flush(10.0)
    from otel_llm.local.store_queries import StoreReader

    assert [t.name for t in StoreReader(db).traces(limit=10)] == ["g"]


def test_empty_destination_list_is_respected() -> None:
    p = otel_llm.configure(destinations=[], tracer_provider=TracerProvider())
    assert p.destinations == ()
