"""All destination classes, importable as ``otel_llm.destinations.<Name>``."""

from __future__ import annotations

from otel_llm.export.base import Destination
from otel_llm.export.console import Console
from otel_llm.export.langfuse import Langfuse
from otel_llm.export.memory import InMemory
from otel_llm.export.otlp import OTLP
from otel_llm.export.tencent import TencentAPM
from otel_llm.local.destination import LocalStore

__all__ = ["OTLP", "Console", "Destination", "InMemory", "Langfuse", "LocalStore", "TencentAPM"]
