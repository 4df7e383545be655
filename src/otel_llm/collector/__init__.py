"""otel-llm's processing stages inside an OpenTelemetry collector.

:mod:`otel_llm.collector.rotel_processor` is a rotel Python trace processor: point the
rotel agent's ``--otlp-with-trace-processor`` at that file and every span rotel
forwards gets the same normalization, canonical usage, cost, media references and
masking as spans that pass through the in-process ``LLMSpanProcessor``. The recipe
(single destination, environment variables, limitations) is
``collector-config/rotel.md``.

Nothing is imported here: the processor module is loaded by rotel from its file path.
"""

from __future__ import annotations

__all__: list[str] = []
