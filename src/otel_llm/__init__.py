"""otel-llm: OpenTelemetry-native observability for LLM applications.

Instrument with ``observe`` / ``start_observation`` / ``Client``, process with
``LLMSpanProcessor`` (usage, cost, masking, entry marking), deliver to one or
more destinations. ``configure()`` wires it all together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_llm._version import __version__
from otel_llm.config import Pipeline, configure, flush, shutdown
from otel_llm.context import propagate_attributes
from otel_llm.destinations import (
    OTLP,
    Console,
    Destination,
    InMemory,
    Langfuse,
    TencentAPM,
)
from otel_llm.errors import ConfigError
from otel_llm.instrument.client import Client
from otel_llm.instrument.current import (
    get_current_observation_id,
    get_current_trace_id,
    mark_entry,
    score,
    update_current_observation,
    update_current_trace,
)
from otel_llm.instrument.ids import create_trace_id
from otel_llm.instrument.observation import Observation, start_generation, start_observation
from otel_llm.instrument.observe import observe
from otel_llm.integrations.openai import instrument_openai, uninstrument_openai
from otel_llm.processing.processor import LLMSpanProcessor

if TYPE_CHECKING:
    from otel_llm.local.destination import LocalStore

__all__ = [
    "OTLP",
    "Client",
    "ConfigError",
    "Console",
    "Destination",
    "InMemory",
    "LLMSpanProcessor",
    "Langfuse",
    "LocalStore",
    "Observation",
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
    "uninstrument_openai",
    "update_current_observation",
    "update_current_trace",
]

# Public names report the package as their home, like httpx does (nicer reprs and docs).
_LAZY = frozenset({"LocalStore"})
for _name in __all__:
    if _name not in _LAZY and not isinstance(_obj := globals()[_name], str):
        _obj.__module__ = "otel_llm"


def __getattr__(name: str) -> Any:
    # LocalStore (and sqlite3 with it) loads on first use, from otel_llm.destinations.
    if name in _LAZY:
        from otel_llm import destinations

        value = getattr(destinations, name)
        value.__module__ = "otel_llm"
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
