"""The callback handler's open runs: ``run_id`` → observation, bounded and thread-safe.

One handler may serve many concurrent requests (threads, asyncio tasks), so all
state is keyed by LangChain's ``run_id`` and nothing else. A run that never gets
its end callback (a stream dropped without being closed) cannot leak: runs of a
trace whose root ended long ago are swept, and past ``limit`` open runs the
oldest is ended. Both end the span at its last activity, flagged
``otel_llm.observation.auto_ended``, and are counted in ``stats()``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any
from uuid import UUID

from otel_llm.diagnostics import count
from otel_llm.instrument.observation import Observation

__all__ = ["Run", "Runs"]


class Run:
    """One LangChain run that has an observation (or borrows its parent's, when hidden)."""

    __slots__ = ("ended_ns", "first_token_ns", "observation", "root", "trace_attributes")

    def __init__(
        self, observation: Observation, trace_attributes: dict[str, Any], root: Run | None
    ) -> None:
        self.observation = observation
        self.trace_attributes = trace_attributes
        """The trace-level span attributes, shared by every run of the trace."""
        self.root: Run = root if root is not None else self
        self.first_token_ns: int | None = None
        self.ended_ns: int | None = None
        """When this run ended (read on roots, to sweep orphaned children)."""


class Runs:
    """``run_id`` → (run, owned). A hidden run maps to its parent's run, not owned."""

    def __init__(self, limit: int = 10_000, orphan_grace_s: float = 300.0) -> None:
        self._limit = limit
        self._grace_ns = int(orphan_grace_s * 1e9)
        self._lock = threading.Lock()
        self._runs: OrderedDict[UUID, tuple[Run, bool]] = OrderedDict()  # guarded by _lock

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, run_id: UUID | None) -> Run | None:
        if run_id is None:
            return None
        entry = self._runs.get(run_id)  # a single dict read: atomic, no lock needed
        return entry[0] if entry is not None else None

    def add(self, run_id: UUID, run: Run, *, owned: bool = True) -> None:
        evicted: list[tuple[Run, bool]] = []
        with self._lock:
            replaced = self._runs.pop(run_id, None)  # a run_id reused while still running
            self._runs[run_id] = (run, owned)
            while len(self._runs) > self._limit:
                evicted.append(self._runs.popitem(last=False)[1])
        if replaced is not None and replaced[0] is not run:
            _abandon([replaced], "langchain.runs_replaced")
        _abandon(evicted, "langchain.runs_evicted")

    def pop(self, run_id: UUID) -> tuple[Run, bool] | None:
        with self._lock:
            return self._runs.pop(run_id, None)

    def sweep(self) -> None:
        """End the oldest runs whose root ended more than the grace period ago."""
        now = time.time_ns()
        stale: list[tuple[Run, bool]] = []
        with self._lock:
            while self._runs:
                run_id, (run, owned) = next(iter(self._runs.items()))
                ended = run.root.ended_ns
                if ended is None or now - ended < self._grace_ns:
                    break
                del self._runs[run_id]
                stale.append((run, owned))
        _abandon(stale, "langchain.runs_orphaned")

    def clear(self) -> None:
        """End every open run (the handler is being discarded)."""
        with self._lock:
            entries = list(self._runs.values())
            self._runs.clear()
        _abandon(entries, "langchain.runs_abandoned")


def _abandon(entries: list[tuple[Run, bool]], reason: str) -> None:
    owned = [run for run, is_owned in entries if is_owned]
    if not owned:
        return
    count(reason, len(owned))
    for run in owned:
        run.observation._end_idle()
