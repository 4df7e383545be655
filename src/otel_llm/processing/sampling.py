"""Trace-consistent sampling: the same decision for every span of a trace, everywhere.

The rule is OpenTelemetry's ``TraceIdRatioBased``: keep a trace when the low 64
bits of its id are below ``rate * 2**64``. Another process (or a collector)
using the same rule and rate keeps exactly the same traces.
"""

from __future__ import annotations

__all__ = ["keep_trace", "ratio_bound"]

_MASK_64 = (1 << 64) - 1


def ratio_bound(rate: float) -> int:
    """The exclusive upper bound for ``rate``, computed once per configuration."""
    return round(rate * (1 << 64))


def keep_trace(trace_id: int, bound: int) -> bool:
    return (trace_id & _MASK_64) < bound
