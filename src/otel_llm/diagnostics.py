"""Internal failures: caught, counted, logged once, never raised into the app.

Every entry point that runs on the application's thread and every worker loop
goes through :func:`guard`. A failure there means a bug on our side or a hostile
value; either way the app must keep running, and the user must be able to see
that something was lost (``stats()``) without a log line per span.

Set ``OTEL_LLM_STRICT=1`` (our own test suite does) to re-raise instead, so our
bugs fail our tests. It is read per call, never implied by running under pytest.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from types import TracebackType

__all__ = [
    "count",
    "counts",
    "guard",
    "log_once",
    "logger",
    "report",
    "reset_for_tests",
    "strict",
]

logger = logging.getLogger("otel_llm")

_lock = threading.Lock()
_counts: Counter[str] = Counter()  # guarded by _lock
_logged: set[tuple[str, str]] = set()  # guarded by _lock


def _strict() -> bool:
    return os.environ.get("OTEL_LLM_STRICT", "") in ("1", "true", "yes")


def count(reason: str, n: int = 1) -> None:
    """Add ``n`` to the process-wide counter ``reason`` (rare paths only: it locks)."""
    with _lock:
        _counts[reason] += n


def counts() -> dict[str, int]:
    with _lock:
        return dict(_counts)


def log_once(component: str, kind: str, message: str, *, level: int = logging.WARNING) -> None:
    """Log ``message`` the first time (component, kind) is seen in this process.

    The message must never contain user content or secrets: callers pass a
    description of what happened, not the value it happened to.
    """
    key = (component, kind)
    with _lock:
        if key in _logged:
            return
        _logged.add(key)
    logger.log(level, "otel-llm %s: %s (logged once; see stats())", component, message)


class _Guard:
    """Stateless, so one instance per component is reused (hot paths pay two calls)."""

    __slots__ = ("component",)

    def __init__(self, component: str) -> None:
        self.component = component

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        report(self.component, exc)
        return not _strict()


_guards: dict[str, _Guard] = {}


def guard(component: str) -> _Guard:
    """A context manager that swallows, counts and logs once any exception inside it."""
    g = _guards.get(component)
    if g is None:
        g = _guards.setdefault(component, _Guard(component))
    return g


def report(component: str, exc: BaseException) -> None:
    """Count and log once an internal error of ``component`` (callers decide re-raising)."""
    kind = type(exc).__name__
    count(f"internal_error.{component}")
    log_once(component, kind, f"internal error {kind}; your application keeps running")


def handled(component: str, exc: Exception) -> None:
    """What :func:`guard` does with ``exc``, for hot paths that use a plain ``try``.

    Counts and logs it once; re-raises it only in strict mode (our own test suite).
    """
    report(component, exc)
    if _strict():
        raise exc


def strict() -> bool:
    """True when internal errors must re-raise (our own test suite)."""
    return _strict()


def reset_for_tests() -> None:
    with _lock:
        _counts.clear()
        _logged.clear()
