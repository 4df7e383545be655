"""Destinations implied by the environment when configure() is given none.

Each destination kind that can be configured from environment variables adds
itself here (Langfuse from ``LANGFUSE_*``, APM and OTLP endpoints from their
variables, the local store as the embedded default) as it is implemented.
"""

from __future__ import annotations

from otel_llm.export.base import Destination

__all__ = ["destinations_from_env"]


def destinations_from_env() -> list[Destination]:
    return []
