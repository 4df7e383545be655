"""All destination classes, importable as ``otel_llm.destinations.<Name>``.

``LocalStore`` is imported on first use: it brings sqlite3, which an app that
sends elsewhere never needs in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_llm.export.base import Destination
from otel_llm.export.console import Console
from otel_llm.export.langfuse import Langfuse
from otel_llm.export.memory import InMemory
from otel_llm.export.otlp import OTLP
from otel_llm.export.tencent import TencentAPM

if TYPE_CHECKING:
    from otel_llm.local.destination import LocalStore

__all__ = ["OTLP", "Console", "Destination", "InMemory", "Langfuse", "LocalStore", "TencentAPM"]


def __getattr__(name: str) -> Any:
    if name == "LocalStore":
        from otel_llm.local.destination import LocalStore

        return LocalStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
