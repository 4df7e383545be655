"""The public surface is a contract: pin it."""

from __future__ import annotations

import inspect
import subprocess
import sys

import otel_llm

EXPECTED = {
    "Client",
    "ConfigError",
    "Console",
    "Destination",
    "InMemory",
    "LLMSpanProcessor",
    "Langfuse",
    "LocalStore",
    "Observation",
    "OTLP",
    "Pipeline",
    "TencentAPM",
    "__version__",
    "configure",
    "create_trace_id",
    "flush",
    "get_current_observation_id",
    "get_current_trace_id",
    "instrument_openai",
    "mark_entry",
    "observe",
    "propagate_attributes",
    "score",
    "shutdown",
    "start_generation",
    "start_observation",
    "update_current_observation",
    "uninstrument_openai",
    "update_current_trace",
}


def test_exported_members() -> None:
    assert set(otel_llm.__all__) == EXPECTED
    for name in otel_llm.__all__:
        assert hasattr(otel_llm, name)


def test_configure_signature_matches_design() -> None:
    params = inspect.signature(otel_llm.configure).parameters
    assert list(params)[:14] == [
        "service_name",
        "destinations",
        "environment",
        "release",
        "version",
        "mask",
        "masking",
        "capture_content",
        "sample_rate",
        "pricing",
        "tracer_provider",
        "resource_attributes",
        "spool_dir",
        "spool_max_bytes",
    ]
    assert params["sample_rate"].default == 1.0
    assert params["spool_max_bytes"].default == 256 * 2**20


def test_observe_signature() -> None:
    params = inspect.signature(otel_llm.observe).parameters
    assert list(params) == ["name", "as_type", "capture_input", "capture_output", "entry"]


def test_importing_does_not_import_integrations_or_rich() -> None:
    code = (
        "import sys, otel_llm; "
        "print(sorted(m for m in ('openai', 'langchain_core', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


_PIPELINE_FOOTPRINT = """
import sys, otel_llm
pipeline = otel_llm.configure(
    destinations=[otel_llm.Langfuse("pk-lf-x", "sk-lf-x", host="http://127.0.0.1:9")],
    spool_dir=False,
)
@otel_llm.observe(as_type="generation")
def generate(question):
    otel_llm.update_current_observation(
        model="gpt-4o-mini", usage={"input_tokens": 10, "output_tokens": 5}
    )
    return "answer"
generate("question?")
trace = otel_llm.Client().trace(name="t")
trace.generation(name="g", model="gpt-4o", usage={"input": 3, "output": 2}).end()
pipeline.flush(5)
assert pipeline.stats()["processing"].get("cost.priced") == 2, pipeline.stats()["processing"]
heavy = ("asyncio", "sqlite3", "genai_prices", "pydantic", "grpc", "rich", "splintr",
         "google.protobuf.json_format", "opentelemetry.proto.trace.v1.trace_pb2")
print(sorted(m for m in heavy if m in sys.modules))
pipeline.shutdown(0.5)
"""


def test_a_langfuse_pipeline_loads_only_what_it_uses() -> None:
    # Each of these costs 1.5-20 MiB of memory for the life of the app.
    out = subprocess.run(
        [sys.executable, "-c", _PIPELINE_FOOTPRINT],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "[]"


def test_local_store_loads_on_first_use() -> None:
    code = (
        "import sys, otel_llm; before = 'sqlite3' in sys.modules; "
        "store = otel_llm.LocalStore; "
        "print(before, 'sqlite3' in sys.modules, store.__module__, "
        "store is otel_llm.destinations.LocalStore)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "otel_llm", "True"]


def test_every_module_declares_all() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(otel_llm.__path__, "otel_llm."):
        if info.name.startswith("otel_llm._proto"):
            continue  # generated code
        module = importlib.import_module(info.name)
        if info.ispkg:
            continue
        assert hasattr(module, "__all__"), info.name
