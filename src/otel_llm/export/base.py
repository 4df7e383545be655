"""The destination lifecycle, written once.

Every destination (Langfuse, an APM, any OTLP endpoint, the local store, the
console, memory) is a subclass of :class:`Destination`. The base owns what must
behave the same everywhere: the state machine, scope filtering, the counters in
``stats()`` and idempotent ``shutdown``. Subclasses implement ``_export`` (and
optionally ``_export_score``, ``_force_flush``, ``_shutdown``).

Threading: ``export`` and ``export_score`` are called from one processor worker
thread; ``force_flush``/``shutdown``/``stats`` may be called from any thread.
Records passed to ``export`` are shared between destinations and must not be
mutated: copy the attributes before changing them.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from otel_llm import semconv
from otel_llm.errors import ConfigError
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.sampling import keep_trace, ratio_bound
from otel_llm.scores import Score
from otel_llm.validation import unit_interval

__all__ = ["Destination", "ScopeFilter"]


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class ScopeFilter:
    """Instrumentation-scope allow/block lists: exact names or ``prefix*`` patterns."""

    __slots__ = ("_allow", "_block", "_cache")

    def __init__(self, block: Iterable[str] = (), allow: Iterable[str] | None = None) -> None:
        self._block = _patterns("block_scopes", block)
        self._allow = None if allow is None else _patterns("allow_scopes", allow)
        self._cache: dict[str, bool] = {}

    def allows(self, scope_name: str) -> bool:
        cached = self._cache.get(scope_name)
        if cached is None:
            cached = not _matches(scope_name, self._block) and (
                self._allow is None or _matches(scope_name, self._allow)
            )
            if len(self._cache) < 4096:
                self._cache[scope_name] = cached
        return cached

    @property
    def is_trivial(self) -> bool:
        return not self._block and self._allow is None


def _patterns(setting: str, values: Iterable[str]) -> tuple[tuple[str, bool], ...]:
    if isinstance(values, str):
        raise ConfigError(setting, "must be a list of scope names, not a single string")
    out: list[tuple[str, bool]] = []
    for value in values:
        if not isinstance(value, str) or not value or "*" in value[:-1]:
            raise ConfigError(setting, f"{value!r} is not a scope name or a 'prefix*' pattern")
        out.append((value[:-1], True) if value.endswith("*") else (value, False))
    return tuple(out)


def _without_content(record: SpanRecord) -> SpanRecord:
    attributes = {k: v for k, v in record.attributes.items() if not semconv.is_content_key(k)}
    events = tuple(e for e in record.events if not e.name.startswith("gen_ai."))
    return dataclasses.replace(record, attributes=attributes, events=events)


def _matches(name: str, patterns: tuple[tuple[str, bool], ...]) -> bool:
    return any(name.startswith(p) if is_prefix else name == p for p, is_prefix in patterns)


class Destination:
    """Base class: lifecycle, scope filter and counters shared by all destinations."""

    kind: ClassVar[str] = "destination"
    wants_semconv_messages: ClassVar[bool] = True  # reads gen_ai.* messages derived from our I/O

    def __init__(
        self,
        *,
        name: str | None = None,
        block_scopes: Iterable[str] = (),
        allow_scopes: Iterable[str] | None = None,
        sample_rate: float | None = None,
        capture_content: bool | None = None,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError("name", "must be a non-empty string")
        self._name = name or self.kind
        self._scopes = ScopeFilter(block_scopes, allow_scopes)
        self._sample_bound = (
            None if sample_rate is None else ratio_bound(unit_interval(sample_rate, "sample_rate"))
        )
        if capture_content is not None and not isinstance(capture_content, bool):
            raise ConfigError("capture_content", "must be True or False")
        self._capture_content = capture_content
        self._state = _State.OPEN
        self._lock = threading.Lock()
        self._counts = {"exported": 0, "failed": 0, "spooled": 0, "dropped": 0, "filtered": 0}
        # guarded by _lock (written by the worker, read by stats() from any thread)

    @property
    def name(self) -> str:
        return self._name

    def _count(self, key: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[key] = self._counts.get(key, 0) + n

    # -- worker thread ----------------------------------------------------------------
    def export(self, records: Sequence[SpanRecord]) -> None:
        """Filter ``records`` and send the rest; failures are counted, never raised."""
        if self._state is _State.CLOSED:
            self._count("dropped", len(records))
            return
        selected = self.select(records)
        if len(selected) < len(records):
            self._count("filtered", len(records) - len(selected))
        if not selected:
            return
        try:
            ok = self._export(selected)
        except Exception:
            self._count("failed", len(selected))
            raise
        if ok is not None:  # None: the destination counts delivery itself (async senders)
            self._count("exported" if ok else "failed", len(selected))

    def select(self, records: Sequence[SpanRecord]) -> Sequence[SpanRecord]:
        """The records this destination sends: scope filter, then its own sample rate.

        With ``capture_content=False`` the selected records are copies without content
        attributes (the shared records are never changed).
        """
        scopes = self._scopes
        if not scopes.is_trivial:
            records = [r for r in records if scopes.allows(r.scope.name if r.scope else "")]
        bound = self._sample_bound
        if bound is not None:
            records = [r for r in records if keep_trace(r.trace_id, bound)]
        if self._capture_content is False:
            records = [_without_content(r) for r in records]
        return records

    def export_score(self, score: Score) -> None:
        if self._state is _State.CLOSED:
            self._count("scores_dropped")
            return
        if self._export_score(score):
            self._count("scores_exported")

    # -- subclass hooks -------------------------------------------------------------
    def _export(self, records: Sequence[SpanRecord]) -> bool | None:
        """Send ``records``: True/False counts them exported/failed, None leaves counting
        to the destination (senders that deliver later from their own thread)."""
        raise NotImplementedError

    def _export_score(self, score: Score) -> bool:
        """Deliver one score; return False when this destination has no use for scores."""
        return False

    def _force_flush(self, timeout: float) -> bool:
        return True

    def _shutdown(self, timeout: float) -> bool:
        return True

    # -- any thread -----------------------------------------------------------------
    def force_flush(self, timeout: float = 5.0) -> bool:
        if self._state is _State.CLOSED:
            return True
        return self._force_flush(timeout)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush and release resources; a second call is a no-op returning True."""
        with self._lock:
            if self._state is _State.CLOSED:
                return True
            self._state = _State.CLOSED
        return self._shutdown(timeout)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r})"

    def _describe(self) -> dict[str, Any]:
        """Non-secret settings, for check-config and logs."""
        return {"kind": self.kind, "name": self._name}
