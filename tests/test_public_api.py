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
