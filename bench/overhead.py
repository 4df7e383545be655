"""Family "overhead": what recording one LLM call costs, bare OTel SDK vs otel-llm's helpers.

Every mode records the call from ``payload`` into an in-process sink that only
counts, so export I/O is out of the picture and what remains is instrumentation
plus processing. Imports happen inside the factories: each mode runs in its own
process, and the bare mode must not pay for (or warm up) otel-llm.

Run one mode: ``python bench/overhead.py --mode observe --n 20000`` (JSON line),
or add ``--profile`` for a cProfile report of the app and worker threads.
"""

from __future__ import annotations

import functools
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import payload
import report
import rounds
from harness import FLUSH_TIMEOUT, Subject, mode_main

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult

__all__ = ["BASELINE", "FAMILY", "MODES", "bench"]

FAMILY = "overhead"
BASELINE = "bare"


def bare() -> Subject:
    """Hand-written OTel: the floor any instrumentation library is compared with.

    ``SimpleSpanProcessor`` exports on the app thread, so all the cost is on the
    app thread and app µs ≈ CPU µs. Attributes: ``payload.set_by_hand``.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class CountingExporter(SpanExporter):
        def __init__(self) -> None:
            self.n = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.n += len(spans)
            return SpanExportResult.SUCCESS

    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")

    def call() -> None:
        with tracer.start_as_current_span("generation") as span:
            payload.set_by_hand(span)

    return Subject(
        call=call,
        flush=lambda: provider.force_flush(int(FLUSH_TIMEOUT * 1000)),
        delivered=lambda: exporter.n,
    )


def _with_pipeline(call: Callable[[], object]) -> Subject:
    """Configure otel-llm with one counting destination on a private provider, as a user would.

    The helpers read the pipeline at call time, so ``call`` may be built before this runs.
    """
    from opentelemetry.sdk.trace import TracerProvider

    import otel_llm
    from otel_llm.destinations import Destination

    class CountingDestination(Destination):
        kind = "count"

        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def _export(self, records: Sequence[object]) -> bool:
            self.n += len(records)
            return True

    sink = CountingDestination()
    pipeline = otel_llm.configure(destinations=[sink], tracer_provider=TracerProvider())
    return Subject(
        call=call,
        flush=lambda: pipeline.flush(FLUSH_TIMEOUT),
        delivered=lambda: sink.n,
        dropped=lambda: pipeline.stats()["dropped_reasons"],
    )


def observe() -> Subject:
    """The decorator path: input captured from the arguments, output from the return value."""
    import otel_llm

    @otel_llm.observe(as_type="generation")
    def generate(messages: list[dict[str, str]]) -> str:
        otel_llm.update_current_observation(
            model=payload.MODEL, model_parameters=payload.MODEL_PARAMETERS, usage=payload.USAGE
        )
        return payload.OUTPUT

    return _with_pipeline(functools.partial(generate, payload.MESSAGES))


def start_observation() -> Subject:
    """The context-manager path: every field passed explicitly, no signature binding."""
    import otel_llm

    def call() -> None:
        with otel_llm.start_generation(
            "generation", model=payload.MODEL, model_parameters=payload.MODEL_PARAMETERS
        ) as generation:
            generation.update(input=payload.MESSAGES, output=payload.OUTPUT, usage=payload.USAGE)

    return _with_pipeline(call)


MODES: dict[str, Callable[[], Subject]] = {
    "bare": bare,
    "observe": observe,
    "start_observation": start_observation,
}
"""Mode name -> factory, in the order the report lists them; the baseline first."""


LEGEND = (
    "Each mode runs in its own process and records into a sink that only counts (no export",
    "I/O). app µs: wall time of the call loop per call. CPU µs: process CPU (all threads) from",
    "the loop's start until everything is flushed, per call. app-thread CPU µs: the calling",
    "thread's own CPU during the loop. delivered/expected: summed over rounds.",
)


def bench(options: rounds.Options) -> tuple[list[str], list[str]]:
    """Run every mode over the rounds; return (markdown lines, failures)."""
    results = rounds.alternate(
        FAMILY,
        __file__,
        list(MODES),
        options.rounds,
        ["--n", str(options.n)],
        lambda r: f"{r['cpu_us']:.1f} CPU µs/call",
    )
    family = report.FamilyResult(FAMILY, BASELINE, list(MODES), results)
    options.facts["sdk_span_us"] = statistics.median(r["cpu_us"] for r in results[BASELINE])
    failures = [
        f"{FAMILY}/{mode}: lost {r['expected'] - r['delivered']}"
        for mode, runs in results.items()
        for r in runs
        if r["expected"] != r["delivered"]
    ]
    return report.family_section(family, LEGEND), failures


if __name__ == "__main__":
    sys.exit(mode_main(MODES))
