"""The process-wide current pipeline, and what the instrumentation helpers read from it.

Helpers call :func:`tracer` on every observation, so it is one attribute read in
the common case. Without ``configure()`` they use the global OpenTelemetry
provider: a no-op until someone installs one, which is how OTel libraries behave.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace as trace_api

from otel_llm import semconv
from otel_llm._version import __version__

if TYPE_CHECKING:
    from otel_llm.config import Pipeline
    from otel_llm.processing.processor import LLMSpanProcessor

__all__ = ["Runtime", "current"]


class Runtime:
    """What helpers need, swapped as a whole by ``configure()`` (readers never lock)."""

    __slots__ = ("_global", "capture_content", "max_content_chars", "pipeline", "tracer")

    def __init__(
        self,
        pipeline: Pipeline | None = None,
        capture_content: bool = True,
        max_content_chars: int = 1_000_000,
    ) -> None:
        self.pipeline = pipeline
        self.capture_content = capture_content
        self.max_content_chars = max_content_chars
        provider = pipeline.tracer_provider if pipeline is not None else None
        self.tracer: trace_api.Tracer | None = (
            provider.get_tracer(semconv.SCOPE_NAME, __version__) if provider else None
        )
        self._global: tuple[trace_api.TracerProvider, trace_api.Tracer] | None = None

    def get_tracer(self) -> trace_api.Tracer:
        if self.tracer is not None:
            return self.tracer
        # Not configured: follow whatever global provider the app installs. The SDK's
        # get_tracer() builds a new Tracer each call (several µs), so keep the one made
        # for the provider that is global now; another provider gets its own.
        provider = trace_api.get_tracer_provider()
        cached = self._global
        if cached is not None and cached[0] is provider:
            return cached[1]
        tracer = provider.get_tracer(semconv.SCOPE_NAME, __version__)
        self._global = (provider, tracer)
        return tracer

    @property
    def processor(self) -> LLMSpanProcessor | None:
        return self.pipeline.processor if self.pipeline is not None else None


_current = Runtime()


def current() -> Runtime:
    return _current


def install(runtime: Runtime) -> None:
    global _current
    _current = runtime
