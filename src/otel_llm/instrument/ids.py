"""Trace ids the user chooses: deterministic ids from a seed, and starting a trace with one.

The SDK only lets an ``IdGenerator`` choose a new trace's id, so configure()
wraps the provider's generator in :class:`SeededIdGenerator`, which returns the
id placed in :data:`forced_trace_id` for the duration of one ``start_span`` call.
The result is a true root span (no dangling parent) with the requested id.
"""

from __future__ import annotations

import contextvars
import hashlib
import random
import re

from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

from otel_llm.diagnostics import count, log_once

__all__ = ["SeededIdGenerator", "create_trace_id", "forced_trace_id", "parse_trace_id"]

forced_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "otel_llm_forced_trace_id", default=None
)

_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def create_trace_id(seed: str | None = None) -> str:
    """A new trace id (32 lowercase hex digits): random, or derived from ``seed``.

    With a seed (your message id, run id, request id) the same seed always gives
    the same id: the first 16 bytes of SHA-256 of the seed, as the Langfuse SDK
    derives it, so both libraries agree on the id of the same seed.
    """
    if seed is None:
        value = 0
        while value == 0:
            value = random.getrandbits(128)
        return f"{value:032x}"
    # surrogatepass: a seed with a lone surrogate still gets its own stable id
    return hashlib.sha256(str(seed).encode("utf-8", "surrogatepass")).digest()[:16].hex()


def parse_trace_id(value: object) -> int | None:
    """The integer id for a 32-hex-digit string (UUIDs with dashes accepted), else None."""
    try:
        text = str(value).strip().lower().replace("-", "")
    except Exception:
        text = ""
    if _TRACE_ID.fullmatch(text) and int(text, 16) != 0:
        return int(text, 16)
    count("invalid_value.trace_id")
    log_once("ids", "trace_id", "trace_id must be 32 hex digits and not all zero; ignored")
    return None


class SeededIdGenerator(IdGenerator):
    """Delegates to the provider's generator unless a trace id was forced for this call."""

    def __init__(self, inner: IdGenerator | None = None) -> None:
        self.inner = inner or RandomIdGenerator()

    def generate_span_id(self) -> int:
        return self.inner.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = forced_trace_id.get()
        if forced is not None:
            return forced
        return self.inner.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        # A seeded id is not random; W3C consumers must not rely on its randomness.
        return forced_trace_id.get() is None and self.inner.is_trace_id_random()
