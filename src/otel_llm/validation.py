"""Value rules shared by configuration (which raises) and runtime APIs (which count)."""

from __future__ import annotations

import math
import re

from otel_llm.errors import ConfigError

__all__ = ["ENVIRONMENT_RULE", "environment_problem", "unit_interval"]

ENVIRONMENT_RULE = (
    "must be 1-40 characters of lowercase letters, digits, '-' or '_', "
    "and must not start with 'langfuse'"
)
_ENVIRONMENT = re.compile(r"[a-z0-9_-]{1,40}")


def environment_problem(value: str) -> str | None:
    """Why ``value`` is not a valid environment name (the Langfuse server's rule), or None."""
    if not _ENVIRONMENT.fullmatch(value) or value.startswith("langfuse"):
        return f"{value!r} {ENVIRONMENT_RULE}"
    return None


def unit_interval(value: object, name: str, source: str | None = None) -> float:
    """``value`` as a float in [0, 1] (a sample rate), else ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, "must be a number between 0 and 1", source=source)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(name, f"must be between 0 and 1 inclusive, got {value!r}", source=source)
    return float(value)
