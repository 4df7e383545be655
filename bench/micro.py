"""Family "micro": otel-llm's hot parts in isolation, each next to its stock counterpart.

Each part runs in a fresh process per round (parts alternate like modes do):

- ``encode``: ``otel_llm.export.encoder.encode(records)`` vs the stock
  ``encode_spans(spans).SerializeToString()`` on the same 512 realistic generation
  records (made by a real pipeline from ``@otel_llm.observe`` calls with distinct
  content; stock gets them as ``record_to_readable`` spans, built before timing).
- ``stages``: each default processing stage (normalize, derive_usage, derive_cost,
  extract_media, mask_record) on fresh copies of those records, each copy in the
  state the previous stages leave it in (copies are made before timing); twice, with
  and without deriving ``gen_ai.*`` messages (a Langfuse-only pipeline skips that).
- ``processor``: what a span processor costs the app thread: ``on_start + on_end``
  timed around the call (``perf_counter_ns``) for spans made by
  ``@otel_llm.observe``, for a no-op processor (the timer's own cost), stock
  ``SimpleSpanProcessor`` and ``BatchSpanProcessor`` with a no-op exporter, and
  ``LLMSpanProcessor`` with its worker idle while timed (it never wakes by itself; a
  flush every 512 spans, outside the timed hooks, drains it: the app thread's own
  work) and with default settings (its worker running alongside, competing for the
  GIL as in production).

Run one part: ``python bench/micro.py --mode encode --n 20000`` (one JSON line).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import payload
import rounds

if TYPE_CHECKING:
    from otel_llm.processing.record import SpanRecord

__all__ = ["FAMILY", "MODES", "bench"]

FAMILY = "micro"
RECORDS = 512
COST_TARGET_US = 10.0
PROCESSOR_TARGET_US = 15.0
IDLE_PROCESSOR = "LLMSpanProcessor, worker idle"
"""The processor row that is the app thread's own work (no worker alongside)."""
_CHUNK = 512
"""The idle-worker processor row flushes (untimed) every this many spans."""


# -- realistic records -----------------------------------------------------------------
def _records(count: int) -> tuple[list[SpanRecord], list[SpanRecord]]:
    """(raw, processed) records of ``count`` distinct generation calls.

    Raw: as the processor hands them to the stages (defaults and entry mark set, no
    stage run); processed: as destinations receive them. Both from real pipelines on
    one provider, fed by ``@otel_llm.observe``.
    """
    from opentelemetry.sdk.trace import TracerProvider

    import otel_llm
    from otel_llm.destinations import Destination

    class Capture(Destination):
        kind = "capture"

        def __init__(self, name: str) -> None:
            super().__init__(name=name)
            self.records: list[SpanRecord] = []

        def _export(self, records: Sequence[SpanRecord]) -> bool:
            self.records.extend(records)
            return True

    provider = TracerProvider()
    raw, processed = Capture("raw"), Capture("processed")
    unprocessed = otel_llm.LLMSpanProcessor([raw], stages=())
    provider.add_span_processor(unprocessed)
    pipeline = otel_llm.configure(
        destinations=[processed], tracer_provider=provider, spool_dir=False
    )

    @otel_llm.observe(as_type="generation")
    def generate(messages: list[dict[str, str]], output: str) -> str:
        otel_llm.update_current_observation(
            model=payload.MODEL, model_parameters=payload.MODEL_PARAMETERS, usage=payload.USAGE
        )
        return output

    for index in range(count):
        generate(*payload.distinct(index))
    pipeline.flush(60)
    unprocessed.flush(60)
    if len(raw.records) != count or len(processed.records) != count:
        raise SystemExit(f"micro: got {len(raw.records)}/{len(processed.records)} of {count}")
    return raw.records, processed.records


def _copy(record: SpanRecord) -> SpanRecord:
    return dataclasses.replace(
        record, attributes=dict(record.attributes), extras=dict(record.extras)
    )


def _reps(n: int) -> int:
    return max(3, min(30, n // 1000))


# -- parts ------------------------------------------------------------------------------
def encode_part(n: int) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from otel_llm.export.dialect_langfuse import to_langfuse
    from otel_llm.export.encoder import encode
    from otel_llm.processing.record import record_to_readable

    _, records = _records(RECORDS)
    spans = [record_to_readable(r) for r in records]
    ours_bytes = encode(records)
    stock_bytes = encode_spans(spans).SerializeToString()
    shaped = [to_langfuse(r.attributes) for r in records]
    ours, stock, shape, langfuse = [], [], [], []
    gc.collect()
    for _ in range(_reps(n)):
        t0 = time.perf_counter()
        encode(records)
        t1 = time.perf_counter()
        encode_spans(spans).SerializeToString()
        t2 = time.perf_counter()
        shaped = [to_langfuse(r.attributes) for r in records]
        t3 = time.perf_counter()
        encode(records, attributes=shaped)
        t4 = time.perf_counter()
        ours.append((t1 - t0) / RECORDS * 1e6)
        stock.append((t2 - t1) / RECORDS * 1e6)
        shape.append((t3 - t2) / RECORDS * 1e6)
        langfuse.append((t4 - t3) / RECORDS * 1e6)
    return {
        "mode": "encode",
        "records": RECORDS,
        "reps": len(ours),
        "ours_us": statistics.median(ours),
        "stock_us": statistics.median(stock),
        "langfuse_shape_us": statistics.median(shape),
        "langfuse_encode_us": statistics.median(langfuse),
        "langfuse_bytes_per_span": len(encode(records, attributes=shaped)) / RECORDS,
        "bytes_per_span": len(ours_bytes) / RECORDS,
        "identical": ours_bytes == stock_bytes,
        "stock_bytes_per_span": len(stock_bytes) / RECORDS,
    }


def stages_part(n: int) -> dict[str, Any]:
    """Each stage's mean µs per span, with and without deriving semconv messages.

    A pipeline whose only destination is Langfuse skips deriving ``gen_ai.*``
    messages from our own input/output (the Langfuse dialect would drop them), so
    normalize and masking cost less there; both settings are timed.
    """
    raw, _ = _records(RECORDS)
    reps = _reps(n)
    result: dict[str, Any] = {"mode": "stages", "records": RECORDS, "reps": reps}
    for label, messages in (("stages", True), ("stages_langfuse_only", False)):
        means = _stage_times(raw, reps, semconv_messages=messages)
        result[label] = {name: statistics.fmean(t) for name, t in means.items()}
        result[f"{label}_median"] = {name: statistics.median(t) for name, t in means.items()}
    return result


def _stage_times(
    raw: Sequence[SpanRecord], reps: int, *, semconv_messages: bool
) -> dict[str, list[float]]:
    from otel_llm.processing.stages import DEFAULT_STAGES, build_stage_context

    ctx = build_stage_context(semconv_messages=semconv_messages)
    means: dict[str, list[float]] = {}
    state = [_copy(r) for r in raw]  # the records as the next stage receives them
    for stage in DEFAULT_STAGES:
        name = getattr(stage, "__name__", repr(stage))
        stage(_copy(state[0]), ctx)  # first-use setup (lazy tables) is not per-span cost
        times = []
        for _ in range(reps):
            copies = [_copy(r) for r in state]
            gc.collect()
            t0 = time.perf_counter()
            for record in copies:
                stage(record, ctx)
            times.append((time.perf_counter() - t0) / len(copies) * 1e6)
        means[name] = times
        for record in state:
            stage(record, ctx)
    return means


def processor_part(n: int) -> dict[str, Any]:
    from opentelemetry import trace as trace_api
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    import otel_llm
    from otel_llm.destinations import Destination

    class NoopExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class Counting(Destination):
        kind = "count"

        def _export(self, records: Sequence[object]) -> bool:
            return True

    class Timed(SpanProcessor):
        """Times ``on_start + on_end`` of ``target`` per span (app thread, wall)."""

        def __init__(self) -> None:
            self.target: SpanProcessor = SpanProcessor()
            self.durations: list[int] = []
            self._started = 0

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            t = time.perf_counter_ns()
            self.target.on_start(span, parent_context)
            self._started = time.perf_counter_ns() - t

        def on_end(self, span: ReadableSpan) -> None:
            t = time.perf_counter_ns()
            self.target.on_end(span)
            self.durations.append(time.perf_counter_ns() - t + self._started)

    timed = Timed()
    provider = TracerProvider()
    provider.add_span_processor(timed)
    trace_api.set_tracer_provider(provider)  # otel_llm helpers, not configured, use it

    @otel_llm.observe(as_type="generation")
    def generate(messages: list[dict[str, str]]) -> str:
        otel_llm.update_current_observation(
            model=payload.MODEL, model_parameters=payload.MODEL_PARAMETERS, usage=payload.USAGE
        )
        return payload.OUTPUT

    # name -> (factory, flush every CHUNK spans outside the timed hooks)
    targets: dict[str, tuple[Callable[[], SpanProcessor], bool]] = {
        "no-op processor (timer cost)": (SpanProcessor, False),
        "SimpleSpanProcessor + no-op exporter": (
            lambda: SimpleSpanProcessor(NoopExporter()),
            False,
        ),
        "BatchSpanProcessor + no-op exporter (defaults)": (
            lambda: BatchSpanProcessor(NoopExporter()),
            False,
        ),
        IDLE_PROCESSOR: (
            lambda: otel_llm.LLMSpanProcessor(
                [Counting()], max_batch_size=_CHUNK + 1, schedule_delay=3600.0
            ),
            True,
        ),
        "LLMSpanProcessor, worker running (defaults)": (
            lambda: otel_llm.LLMSpanProcessor([Counting()]),
            False,
        ),
    }
    out: dict[str, dict[str, float]] = {}
    warmup = max(1, min(1000, n // 10))
    for name, (make, chunked) in targets.items():
        target = make()
        timed.target = target
        for _ in range(warmup):
            generate(payload.MESSAGES)
        target.force_flush()
        timed.durations = []
        gc.collect()
        for index in range(1, n + 1):
            generate(payload.MESSAGES)
            if chunked and index % _CHUNK == 0:
                target.force_flush()  # untimed: keeps the worker's work out of the loop
        timed.target = SpanProcessor()
        target.shutdown()
        ordered = sorted(timed.durations)
        out[name] = {
            "mean_us": statistics.fmean(ordered) / 1e3,
            "median_us": ordered[len(ordered) // 2] / 1e3,
            "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e3,
            "max_us": ordered[-1] / 1e3,
        }
    return {"mode": "processor", "spans": n, "processors": out}


MODES: dict[str, Callable[[int], dict[str, Any]]] = {
    "encode": encode_part,
    "stages": stages_part,
    "processor": processor_part,
}


def mode_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one micro-benchmark part.")
    parser.add_argument("--mode", required=True, choices=list(MODES))
    parser.add_argument("--n", type=int, default=20000, help="spans (processor), reps scale")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    sys.stdout.write(json.dumps(MODES[args.mode](args.n)) + "\n")
    return 0


# -- the family, in the runner's process -------------------------------------------------
def bench(options: rounds.Options) -> tuple[list[str], list[str]]:
    results = rounds.alternate(
        FAMILY, __file__, list(MODES), options.rounds, ["--n", str(options.n)], _summary
    )
    return render(results, options), []


def _summary(result: Mapping[str, Any]) -> str:
    if result["mode"] == "encode":
        return f"ours {result['ours_us']:.2f} µs/span, stock {result['stock_us']:.2f}"
    if result["mode"] == "stages":
        return ", ".join(f"{k} {v:.1f}" for k, v in result["stages"].items()) + " µs/span"
    return ", ".join(f"{v['mean_us']:.1f}" for v in result["processors"].values()) + " µs/span"


def _med(values: Sequence[float]) -> float:
    return statistics.median(values)


def render(results: Mapping[str, Sequence[Mapping[str, Any]]], options: Any) -> list[str]:
    facts: dict[str, float] = options.facts
    enc = results["encode"]
    ours = _med([r["ours_us"] for r in enc])
    stock = _med([r["stock_us"] for r in enc])
    identical = all(r["identical"] for r in enc)
    out = [
        f"## {FAMILY}",
        "",
        f"In-process micro-benchmarks, each part in a fresh process per round, "
        f"{options.rounds} round(s); medians over rounds (each round itself a median or "
        "mean over repetitions, as said). Records: 512 generation calls with distinct "
        "content, made by a real pipeline from `@otel_llm.observe`.",
        "",
        f"### OTLP encoding ({RECORDS} records per request)",
        "",
        "| encoder | µs/span | speedup |",
        "|---|---:|---:|",
        f"| stock `encode_spans(...).SerializeToString()` | {stock:.2f} | 1.00x |",
        f"| otel-llm `encoder.encode` | {ours:.2f} | {stock / ours:.2f}x |",
        "",
        f"Same bytes as stock: {'yes' if identical else 'NO'} "
        f"({enc[0]['bytes_per_span']:.0f} B/span ours, "
        f"{enc[0]['stock_bytes_per_span']:.0f} B/span stock). Stock's time excludes "
        "building its ReadableSpans (done before timing).",
        "",
    ]
    lean_enc = [r for r in enc if "langfuse_encode_us" in r]
    if lean_enc:
        shape = _med([r["langfuse_shape_us"] for r in lean_enc])
        lf_encode = _med([r["langfuse_encode_us"] for r in lean_enc])
        facts.update(langfuse_shape_us=shape, langfuse_encode_us=lf_encode)
        out += [
            "What a Langfuse destination does with the same records: the Langfuse dialect "
            f"(`to_langfuse`) {shape:.2f} µs/span, then `encoder.encode` of its attributes "
            f"{lf_encode:.2f} µs/span ({lean_enc[0]['langfuse_bytes_per_span']:.0f} B/span).",
            "",
        ]
    st = results["stages"]
    names = list(st[0]["stages"])
    lean = [r for r in st if "stages_langfuse_only" in r]
    totals = [0.0, 0.0]
    out += [
        "### Processing stages (worker thread), mean µs per span",
        "",
        "Default: `gen_ai.*` messages are derived from our own input/output (a pipeline",
        "with an OTLP, Tencent, local or in-memory destination). Langfuse only: they are",
        "not, since the Langfuse dialect would drop them.",
        "",
        "| stage | default µs/span | Langfuse only µs/span | target |",
        "|---|---:|---:|---|",
    ]
    for name in names:
        value = _med([r["stages"][name] for r in st])
        lean_value = _med([r["stages_langfuse_only"][name] for r in lean]) if lean else 0.0
        totals[0] += value
        totals[1] += lean_value
        target = ""
        if name == "derive_cost":
            worst = max(value, lean_value)
            verdict = (
                "met"
                if worst <= COST_TARGET_US
                else f"missed by {worst - COST_TARGET_US:.1f} µs ({worst / COST_TARGET_US:.1f}x)"
            )
            target = f"≤ {COST_TARGET_US:.0f} µs: {verdict}"
        out.append(f"| {name} | {value:.1f} | {lean_value:.1f} | {target} |")
        if lean:
            facts[f"stage_{name}_us"] = lean_value
    out += [f"| all five | {totals[0]:.1f} | {totals[1]:.1f} | |", ""]

    pr = results["processor"]
    names = list(pr[0]["processors"])
    timer = _med([r["processors"][names[0]]["mean_us"] for r in pr])
    out += [
        f"### Span processor cost on the app thread (`on_start + on_end`, "
        f"{pr[0]['spans']} spans from `@otel_llm.observe`)",
        "",
        "| processor | mean µs/span | median | p99 | mean minus timer | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in names:
        mean = _med([r["processors"][name]["mean_us"] for r in pr])
        median = _med([r["processors"][name]["median_us"] for r in pr])
        p99 = _med([r["processors"][name]["p99_us"] for r in pr])
        target = ""
        if name.startswith("LLMSpanProcessor"):
            verdict = (
                "met"
                if mean <= PROCESSOR_TARGET_US
                else f"missed by {mean - PROCESSOR_TARGET_US:.1f} µs"
            )
            target = f"≤ {PROCESSOR_TARGET_US:.0f} µs: {verdict}"
        out.append(
            f"| {name} | {mean:.2f} | {median:.2f} | {p99:.2f} | {mean - timer:.2f} | {target} |"
        )
        if name == IDLE_PROCESSOR:
            facts["processor_idle_us"] = mean - timer
    out += [
        "",
        "Mean includes GIL waits: with the worker running, on_end sometimes waits for the "
        "worker's time slice (see p99); the idle-worker row is the app thread's own work.",
        "",
    ]
    return out


if __name__ == "__main__":
    sys.exit(mode_main())
