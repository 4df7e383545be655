"""Value rules shared by configuration (which raises) and runtime APIs (which count)."""

from __future__ import annotations

import re

__all__ = ["ENVIRONMENT_RULE", "environment_problem"]

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
