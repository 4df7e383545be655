"""Attribute vocabularies a destination can send.

- ``genai``: the canonical attributes (OpenTelemetry GenAI semconv v1.41 plus ours).
- ``langfuse``: what the Langfuse server reads (``langfuse.*``), ``gen_ai.*`` kept.
- ``both``: canonical and Langfuse keys together, for backends that read either
  (the Tencent-style APM, which its vendor feeds Langfuse SDK spans).

A dialect never changes the mapping it is given; it returns the same mapping when
nothing changes, so the genai dialect costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_llm.export.dialect_langfuse import to_langfuse

__all__ = ["DIALECTS", "Dialect"]

Dialect = Callable[[dict[str, Any]], dict[str, Any]]


def _genai(attributes: dict[str, Any]) -> dict[str, Any]:
    return attributes


def _langfuse(attributes: dict[str, Any]) -> dict[str, Any]:
    return to_langfuse(attributes)


def _both(attributes: dict[str, Any]) -> dict[str, Any]:
    return {**attributes, **to_langfuse(attributes)}


DIALECTS: dict[str, Dialect] = {"genai": _genai, "langfuse": _langfuse, "both": _both}
