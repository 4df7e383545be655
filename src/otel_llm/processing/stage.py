"""The contract every processing stage follows.

A stage is a plain function ``stage(record, ctx) -> None`` run on the worker
thread: it changes only ``record``, reads settings and bumps counters through
``ctx``, does no I/O, takes no locks and never logs content. Adding a stage is one
function, one entry in the processor's tuple and one test file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otel_llm.processing.record import SpanRecord

__all__ = ["Stage", "StageContext"]


@dataclass
class StageContext:
    """Settings and counters shared by the stages of one processor (worker thread only)."""

    settings: dict[str, Any] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)


Stage = Callable[[SpanRecord, StageContext], None]
