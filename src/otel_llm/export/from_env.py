"""Destinations implied by the environment when configure() is given none.

Each destination kind that can be configured from environment variables adds
itself here as it is implemented: Langfuse when both ``LANGFUSE_PUBLIC_KEY`` and
``LANGFUSE_SECRET_KEY`` are set.
"""

from __future__ import annotations

import os

from otel_llm.export.base import Destination

__all__ = ["destinations_from_env"]


def destinations_from_env() -> list[Destination]:
    found: list[Destination] = []
    if (
        os.environ.get("LANGFUSE_PUBLIC_KEY", "").strip()
        and os.environ.get("LANGFUSE_SECRET_KEY", "").strip()
    ):
        from otel_llm.export.langfuse import Langfuse

        found.append(Langfuse())
    return found
