"""One retry loop for every transport: jittered backoff, Retry-After, one deadline.

Transports report an :class:`Outcome`; this module decides whether and when to try
again. Waits happen on the destination's stop ``Event``, so shutdown cuts them
short, and never past the deadline the caller set: what could not be delivered
by then goes back to the caller (which spools it) instead of blocking.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "RETRYABLE_HTTP_STATUS",
    "Outcome",
    "Transport",
    "backoff_delay",
    "parse_retry_after",
    "send_with_retry",
]

RETRYABLE_HTTP_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""OTLP/HTTP spec: retry on 429, 502, 503, 504; we add 408 and 500 (transient in practice)."""

_BASE_DELAY = 0.5
_MAX_DELAY = 30.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt to send a request produced."""

    ok: bool
    retryable: bool = False
    status: str = ""
    """HTTP status code, gRPC status name, or 'connection' / 'timeout'."""
    message: str = ""
    """Server message or error description, with secrets removed."""
    retry_after: float | None = None
    """Seconds the server asked us to wait (Retry-After / gRPC RetryInfo)."""
    rejected: int = 0
    """Spans the server reported as rejected in a partial success."""

    @property
    def is_auth_error(self) -> bool:
        return self.status in ("401", "403", "UNAUTHENTICATED", "PERMISSION_DENIED")


class Transport(Protocol):
    """Sends one encoded request. Must not raise: failures are Outcomes."""

    def send(self, body: bytes, timeout: float) -> Outcome: ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0
    return float(seconds)


def backoff_delay(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Delay before retry ``attempt`` (1-based): 0.5 s doubling, ±20% jitter, capped."""
    base: float = min(_MAX_DELAY, _BASE_DELAY * 2.0 ** (attempt - 1))
    return base * (0.8 + 0.4 * rng())


def send_with_retry(
    transport: Transport,
    body: bytes,
    *,
    deadline: float,
    stop: threading.Event,
    attempt_timeout: float,
    on_retry: Callable[[Outcome], None] | None = None,
) -> tuple[Outcome, int]:
    """Send ``body`` until it is delivered, refused for good, or ``deadline`` passes.

    Returns the last outcome and the number of attempts made. ``deadline`` is a
    ``time.monotonic()`` value; each attempt's timeout is capped by what is left.
    """
    attempts = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Outcome(ok=False, retryable=True, status="timeout", message="deadline"), attempts
        attempts += 1
        outcome = transport.send(body, min(attempt_timeout, remaining))
        if outcome.ok or not outcome.retryable:
            return outcome, attempts
        delay = backoff_delay(attempts)
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        if time.monotonic() + delay >= deadline or stop.is_set():
            return outcome, attempts
        if on_retry is not None:
            on_retry(outcome)
        if stop.wait(delay):
            return outcome, attempts
