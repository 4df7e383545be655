"""All destination classes, importable as ``otel_llm.destinations.<Name>``."""

from __future__ import annotations

from otel_llm.export.base import Destination
from otel_llm.export.console import Console
from otel_llm.export.langfuse import Langfuse
from otel_llm.export.memory import InMemory

__all__ = ["Console", "Destination", "InMemory", "Langfuse"]
