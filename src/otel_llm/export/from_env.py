"""Destinations implied by the environment when configure() is given none.

- Langfuse when ``LANGFUSE_PUBLIC_KEY`` and ``LANGFUSE_SECRET_KEY`` are set;
- TencentAPM when ``TENCENT_APM_ENDPOINT`` and ``TENCENT_APM_TOKEN`` are set;
- OTLP when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``
  is set.

A destination that is named by the environment but misconfigured raises
``ConfigError`` from configure(), like an explicit one would.
"""

from __future__ import annotations

import os

from otel_llm.export.base import Destination

__all__ = ["destinations_from_env"]


def _set(*names: str) -> bool:
    return all(os.environ.get(name, "").strip() for name in names)


def destinations_from_env() -> list[Destination]:
    found: list[Destination] = []
    if _set("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"):
        from otel_llm.export.langfuse import Langfuse

        found.append(Langfuse())
    if _set("TENCENT_APM_ENDPOINT", "TENCENT_APM_TOKEN"):
        from otel_llm.export.tencent import TencentAPM

        found.append(TencentAPM())
    if _set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _set("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from otel_llm.export.otlp import OTLP

        found.append(OTLP())
    return found
