"""Scores: evaluations attached to a trace or an observation.

A score is not a span, so it travels next to spans through the processor's
queue (keeping order, so a score recorded before its trace is exported still
arrives after it) and each destination decides how to deliver it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DATA_TYPES", "Score", "infer_data_type"]

DataType = Literal["NUMERIC", "BOOLEAN", "CATEGORICAL"]
DATA_TYPES: tuple[DataType, ...] = ("NUMERIC", "BOOLEAN", "CATEGORICAL")


@dataclass(frozen=True, slots=True)
class Score:
    name: str
    value: float | str
    data_type: DataType
    trace_id: str
    observation_id: str | None = None
    comment: str | None = None
    id: str | None = None
    timestamp: float = field(default_factory=time.time)


def infer_data_type(value: object) -> DataType | None:
    """The data type a value implies, or None when it can't be a score value."""
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, (int, float)):
        try:
            finite = math.isfinite(float(value))
        except OverflowError:  # an int beyond any float
            return None
        return "NUMERIC" if finite else None
    if isinstance(value, str):
        return "CATEGORICAL"
    return None
