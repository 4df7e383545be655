"""Family "pipelines": whole pipelines, instrumentation to a real socket, side by side.

Every mode records the same traced generation call (``payload``; its content made
distinct per call, cycling over 1024 variants) N times as fast as it can and
exports to the counting sink (``sink.py``), which runs in another process for the
whole run, so encoding, compression and HTTP/gRPC are paid here and receiving is
not. Modes:

- ``bare``: OTel SDK ``TracerProvider`` + ``BatchSpanProcessor`` (stock defaults:
  a 2048-span queue) + stock OTLP/HTTP exporter (stock default: no compression);
  attributes set by hand. At full call rate its queue fills and it drops spans.
- ``bare_big``: the same with a queue that never drops (N + 1000): the fair baseline.
- ``langfuse``: the Langfuse Python SDK's ``@observe(as_type="generation")``
  (OTLP/HTTP, gzip by default, to ``/api/public/otel/v1/traces``).
- ``otel-llm``: ``otel_llm.configure(destinations=[Langfuse(...)], spool_dir=False)``
  + ``@otel_llm.observe(as_type="generation")``, all processing on.
- ``otel-llm-dual``: the same plus ``OTLP(<sink gRPC>, insecure=True)``.

Measured per mode (one process per mode and round): app µs/call (loop wall time /
N), app-thread CPU µs/call, CPU µs/call (process CPU, all threads, from the loop's
start until the flush returned and the sink counted every span, or nothing more
arrived for ``_SETTLE`` s), drain (wall seconds from the loop's end to that
point), peak RSS, and spans the sink received per destination vs N.

Run one mode: ``python bench/pipelines.py --mode otel-llm --n 20000 --sink URL
--sink-grpc HOST:PORT``; ``--profile`` prints a cProfile report instead.
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
from dataclasses import dataclass, field
from typing import Any

import payload
import rounds
from harness import FLUSH_TIMEOUT, Subject, peak_rss_mb, rss_mb, thread_cpu
from sink import SinkClient

__all__ = ["BASELINE", "FAMILY", "MAY_LOSE", "MODES", "bench"]

FAMILY = "pipelines"
BASELINE = "bare_big"
REFERENCE = "langfuse"
MAY_LOSE = frozenset({"bare"})
"""Modes whose loss is expected (and so reported, not counted as a failure)."""

_SETTLE = 1.0
"""Seconds without a new span at the sink after which delivery is taken as finished."""
_POLL = 0.05


@dataclass
class Setup:
    """One mode, set up and ready to be timed.

    Attributes:
        call: records one traced generation call.
        flush: drains every queue; False if it timed out.
        channels: destination label -> the sink counter its spans arrive under.
        close: shuts the pipeline down (after timing).
        dropped: the library's own drop/failure counters, to explain a loss.
        backlog: spans waiting in the library's queue (None where not exposed).
        notes: settings worth printing next to the numbers.
    """

    call: Callable[[], object]
    flush: Callable[[], bool]
    channels: dict[str, str]
    close: Callable[[], object] = lambda: None
    dropped: Callable[[], Mapping[str, int]] = dict
    backlog: Callable[[], int | None] = lambda: None
    notes: str = ""


@dataclass
class Result:
    mode: str
    n: int
    app_us: float
    app_cpu_us: float
    cpu_us: float
    drain_s: float
    peak_rss_mb: float
    rss_before_mb: float
    flushed: bool
    backlog: int | None
    delivered: dict[str, int]
    proto_bytes: dict[str, int]
    wire_bytes: dict[str, int]
    expected: int
    dropped: dict[str, int] = field(default_factory=dict)
    notes: str = ""
    thread_cpu_us: dict[str, float] = field(default_factory=dict)
    """CPU µs per call by thread, loop start to delivery (10 ms clock ticks)."""


# -- modes ------------------------------------------------------------------------------
def _caller(generate: Callable[[list[dict[str, str]], str], object]) -> Callable[[], object]:
    """``generate`` called with the next of ``payload.variants()`` each time."""
    calls = payload.variants()

    def call() -> object:
        return generate(*next(calls))

    return call


def _bare(sink: SinkClient, max_queue_size: int | None) -> Setup:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    options = {} if max_queue_size is None else {"max_queue_size": max_queue_size}
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=sink.http + "/v1/traces"), **options)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    calls = payload.variants()

    def call() -> None:
        messages, output = next(calls)
        with tracer.start_as_current_span("generation") as span:
            payload.set_by_hand(span, messages, output)

    queue = max_queue_size or 2048
    return Setup(
        call=call,
        flush=lambda: provider.force_flush(int(FLUSH_TIMEOUT * 1000)),
        channels={"otlp": "otlp_http"},
        close=provider.shutdown,
        notes=f"BatchSpanProcessor queue {queue}, batch 512, 5 s delay; no compression",
    )


def bare(sink: SinkClient, n: int) -> Setup:
    """Stock OTel with stock defaults (2048-span queue)."""
    return _bare(sink, None)


def bare_big(sink: SinkClient, n: int) -> Setup:
    """Stock OTel with a queue big enough never to drop: the fair cost baseline."""
    return _bare(sink, n + 1000 + _warmup(n))


def langfuse_sdk(sink: SinkClient, n: int) -> Setup:
    """The Langfuse Python SDK's decorator, exporting OTLP/HTTP to the sink."""
    from importlib.metadata import version

    from langfuse import Langfuse, observe

    client = Langfuse(public_key="pk-lf-x", secret_key="sk-lf-x", host=sink.http)
    usage = {"input": payload.USAGE["input_tokens"], "output": payload.USAGE["output_tokens"]}

    @observe(as_type="generation")
    def generate(messages: list[dict[str, str]], output: str) -> str:
        client.update_current_generation(
            model=payload.MODEL, model_parameters=payload.MODEL_PARAMETERS, usage_details=usage
        )
        return output

    def flush() -> bool:
        client.flush()
        return True

    return Setup(
        call=_caller(generate),
        flush=flush,
        channels={"langfuse": "langfuse"},
        close=client.shutdown,
        notes=f"langfuse {version('langfuse')}; gzip (its default)",
    )


def _otel_llm(sink: SinkClient, dual: bool) -> Setup:
    import otel_llm

    destinations: list[otel_llm.Destination] = [
        otel_llm.Langfuse("pk-lf-x", "sk-lf-x", host=sink.http)
    ]
    channels = {"langfuse": "langfuse"}
    if dual:
        destinations.append(otel_llm.OTLP(sink.grpc, insecure=True))
        channels["otlp"] = "grpc"
    pipeline = otel_llm.configure(destinations=destinations, spool_dir=False)

    @otel_llm.observe(as_type="generation")
    def generate(messages: list[dict[str, str]], output: str) -> str:
        otel_llm.update_current_observation(
            model=payload.MODEL, model_parameters=payload.MODEL_PARAMETERS, usage=payload.USAGE
        )
        return output

    def dropped() -> dict[str, int]:
        stats = pipeline.stats()
        out = dict(stats["dropped_reasons"])
        for name, counts in stats["destinations"].items():
            for key in ("dropped", "failed", "rejected"):
                if counts.get(key):
                    out[f"{name}.{key}"] = counts[key]
        return out

    return Setup(
        call=_caller(generate),
        flush=lambda: pipeline.flush(FLUSH_TIMEOUT),
        channels=channels,
        close=lambda: pipeline.shutdown(FLUSH_TIMEOUT),
        dropped=dropped,
        backlog=lambda: int(pipeline.stats()["spans_queued"]),
        notes="usage, cost, masking, entry on; 16384-span queue; gzip level 1"
        + (
            " for HTTP; gRPC gzip runs in grpc's C core at zlib's default level 6"
            " (the level is not settable from Python)"
            if dual
            else ""
        ),
    )


def otel_llm_single(sink: SinkClient, n: int) -> Setup:
    """otel-llm with one Langfuse destination."""
    return _otel_llm(sink, dual=False)


def otel_llm_dual(sink: SinkClient, n: int) -> Setup:
    """otel-llm with Langfuse (OTLP/HTTP) and an OTLP/gRPC destination."""
    return _otel_llm(sink, dual=True)


MODES: dict[str, Callable[[SinkClient, int], Setup]] = {
    "bare": bare,
    "bare_big": bare_big,
    "langfuse": langfuse_sdk,
    "otel-llm": otel_llm_single,
    "otel-llm-dual": otel_llm_dual,
}
"""Mode name -> factory, in report order."""


def available_modes() -> list[str]:
    """The modes that can run here: ``langfuse`` needs the SDK installed."""
    from importlib.util import find_spec

    return [m for m in MODES if m != "langfuse" or find_spec("langfuse") is not None]


# -- measuring (in the mode's process) --------------------------------------------------
def _warmup(n: int) -> int:
    return max(1, min(2000, n // 10))


def _wait_delivered(
    sink: SinkClient, channels: Mapping[str, str], before: Mapping[str, int], n: int
) -> tuple[dict[str, int], float, float]:
    """Spans the sink got per destination since ``before``, and the (wall, CPU) clocks
    when the last of them had arrived: waits until all N are there, or nothing new came
    for ``_SETTLE`` s (then the clocks are those of the last progress), or
    ``FLUSH_TIMEOUT``."""
    deadline = time.monotonic() + FLUSH_TIMEOUT
    last: dict[str, int] | None = None
    wall = cpu = 0.0
    while True:
        counts = sink.counts()
        now = {label: counts.get(ch, 0) - before.get(ch, 0) for label, ch in channels.items()}
        if now != last:
            last, wall, cpu = now, time.perf_counter(), time.process_time()
        if all(v >= n for v in now.values()):
            return now, wall, cpu
        if time.perf_counter() - wall >= _SETTLE or time.monotonic() >= deadline:
            return now, wall, cpu
        time.sleep(_POLL)


def _timed_calls(call: Callable[[], object], n: int) -> None:
    """The timed loop, in a function of its own so a sampling profiler can pick it out."""
    for _ in range(n):
        call()


def measure(mode: str, setup: Setup, sink: SinkClient, n: int, warmup: int) -> Result:
    call = setup.call
    for _ in range(warmup):
        call()
    setup.flush()  # synchronous in every mode: the warm-up's spans have arrived
    before = sink.counts()
    gc.collect()
    rss_before = rss_mb()

    threads0 = thread_cpu()
    wall0, thread0, cpu0 = time.perf_counter(), time.thread_time(), time.process_time()
    _timed_calls(call, n)
    wall1, thread1 = time.perf_counter(), time.thread_time()
    backlog = setup.backlog()
    flushed = setup.flush()
    delivered, wall2, cpu1 = _wait_delivered(sink, setup.channels, before, n)
    threads1 = thread_cpu()
    peak = peak_rss_mb()
    after = sink.counts()
    dropped = {k: v for k, v in setup.dropped().items() if v}
    setup.close()
    return Result(
        mode=mode,
        n=n,
        app_us=(wall1 - wall0) / n * 1e6,
        app_cpu_us=(thread1 - thread0) / n * 1e6,
        cpu_us=(cpu1 - cpu0) / n * 1e6,
        drain_s=wall2 - wall1,
        peak_rss_mb=peak,
        rss_before_mb=rss_before,
        flushed=flushed,
        backlog=backlog,
        delivered=delivered,
        proto_bytes=_delta(setup.channels, before, after, "bytes"),
        wire_bytes=_delta(setup.channels, before, after, "wire_bytes"),
        expected=n,
        dropped=dropped,
        notes=setup.notes,
        thread_cpu_us={
            name: (spent - threads0.get(name, 0.0)) / n * 1e6
            for name, spent in sorted(threads1.items())
            if spent - threads0.get(name, 0.0) > 0
        },
    )


def _delta(
    channels: Mapping[str, str], before: Mapping[str, int], after: Mapping[str, int], key: str
) -> dict[str, int]:
    return {
        label: after.get(f"{ch}_{key}", 0) - before.get(f"{ch}_{key}", 0)
        for label, ch in channels.items()
    }


def mode_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one pipelines mode in this process.")
    parser.add_argument("--mode", required=True, choices=list(MODES))
    parser.add_argument("--n", type=int, default=20000, help="timed calls (default 20000)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first")
    parser.add_argument("--sink", required=True, help="the sink's HTTP base URL")
    parser.add_argument("--sink-grpc", required=True, help="the sink's gRPC host:port")
    parser.add_argument("--profile", action="store_true", help="print a cProfile report")
    parser.add_argument("--top", type=int, default=15, help="rows per profile table")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    sink = SinkClient(args.sink, args.sink_grpc)
    warmup = args.warmup if args.warmup is not None else _warmup(args.n)
    factory = MODES[args.mode]

    if args.profile:
        from profiling import profile_mode

        def subject() -> Subject:
            setup = factory(sink, args.n)
            channel = next(iter(setup.channels.values()))
            return Subject(setup.call, setup.flush, lambda: sink.count(channel))

        print(profile_mode(subject, args.n, warmup, args.top))
        return 0
    result = measure(args.mode, factory(sink, args.n), sink, args.n, warmup)
    sys.stdout.write(json.dumps(dataclasses.asdict(result)) + "\n")
    return 0


# -- the family, in the runner's process -------------------------------------------------
def bench(options: rounds.Options) -> tuple[list[str], list[str]]:
    """Run every mode over the rounds; return (markdown lines, failures)."""
    modes = available_modes()
    args = ["--n", str(options.n), *rounds.sink_args(options.sink)]
    results = rounds.alternate(
        FAMILY,
        __file__,
        modes,
        options.rounds,
        args,
        lambda r: (
            f"{r['app_us']:.1f} app µs, {r['cpu_us']:.1f} CPU µs/call, "
            f"delivered {r['delivered']}/{r['expected']}"
        ),
    )
    for mode, name in ((BASELINE, "bare_big_cpu_us"), (REFERENCE, "langfuse_cpu_us")):
        if results.get(mode):
            options.facts[name] = _median(results[mode], "cpu_us")
    if results.get("otel-llm"):
        runs = results["otel-llm"]
        options.facts["otel_llm_cpu_us"] = _median(runs, "cpu_us")
        options.facts["sender_us"] = _median_of(
            [r.get("thread_cpu_us", {}).get(SENDER_THREAD, 0.0) for r in runs]
        )
    return render(modes, results, options)


SENDER_THREAD = "otel-llm-sender-langfuse"
"""The thread that gzips and posts otel-llm's Langfuse requests."""


def _median_of(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _median(runs: Sequence[Mapping[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}x" if base else "–"


def _backlog(runs: Sequence[Mapping[str, Any]]) -> str:
    values = [r["backlog"] for r in runs if r["backlog"] is not None]
    return f"{statistics.median(values):.0f}" if values else "–"


def _per_span(runs: Sequence[Mapping[str, Any]], key: str, label: str) -> str:
    values = [r[key][label] / r["delivered"][label] for r in runs if r["delivered"][label]]
    return f"{statistics.median(values):.0f} B" if values and any(values) else "–"


def render(
    modes: Sequence[str], results: Mapping[str, Sequence[Mapping[str, Any]]], options: Any
) -> tuple[list[str], list[str]]:
    out = [
        f"## {FAMILY}",
        "",
        f"N = {options.n} traced generation calls per mode per round, {options.rounds} "
        "round(s), each mode in its own process; all modes export to the same counting "
        "sink (another process, loopback). Medians over rounds; delivered and lost are "
        "summed over rounds. CPU = process CPU (all threads) from the loop's start until "
        "the sink has every span (or stopped receiving): it includes export (encoding, "
        "compression, HTTP/gRPC). drain = wall seconds from the loop's end to that point. "
        "queued at loop end: spans still waiting in otel-llm's queue (16384 max; beyond it "
        "spans are dropped and counted) when the last call returned.",
        "",
    ]
    if "langfuse" not in modes:
        out += ["**langfuse mode skipped: the `langfuse` package is not installed.**", ""]
    medians = {m: {k: _median(results[m], k) for k in ("app_us", "cpu_us")} for m in modes}
    base = medians.get(BASELINE, {})
    ref = medians.get(REFERENCE, {})
    out += [
        f"| mode | app µs/call | CPU µs/call | app ×{BASELINE} | CPU ×{BASELINE} "
        f"| app ×{REFERENCE} | CPU ×{REFERENCE} | app-thread CPU µs/call | drain s "
        "| peak RSS MiB | queued at loop end | delivered/expected | lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    failures: list[str] = []
    for mode in modes:
        runs = results[mode]
        app, cpu = medians[mode]["app_us"], medians[mode]["cpu_us"]
        labels = list(runs[0]["delivered"])
        delivered = {lab: sum(r["delivered"][lab] for r in runs) for lab in labels}
        expected = sum(r["expected"] for r in runs)
        lost = {lab: expected - d for lab, d in delivered.items()}
        if len(labels) == 1:
            cell = f"{delivered[labels[0]]}/{expected}"
        else:
            cell = ", ".join(f"{lab} {delivered[lab]}/{expected}" for lab in labels)
        lost_cell = " + ".join(str(v) for v in lost.values())
        if mode in MAY_LOSE and any(lost.values()):
            lost_cell += f" ({sum(lost.values()) / (expected * len(labels)):.0%}, expected)"
        elif any(lost.values()):
            failures.append(f"{FAMILY}/{mode}: lost {lost}")
        out.append(
            f"| {mode} | {app:.1f} | {cpu:.1f} | {_ratio(app, base.get('app_us'))} "
            f"| {_ratio(cpu, base.get('cpu_us'))} | {_ratio(app, ref.get('app_us'))} "
            f"| {_ratio(cpu, ref.get('cpu_us'))} | {_median(runs, 'app_cpu_us'):.1f} "
            f"| {_median(runs, 'drain_s'):.2f} | {_median(runs, 'peak_rss_mb'):.0f} "
            f"| {_backlog(runs)} | {cell} | {lost_cell} |"
        )
    out += [
        "",
        "Settings, and bytes per span as protobuf / on the wire (after compression; gRPC "
        "decompresses before the sink sees it):",
        "",
    ]
    for mode in modes:
        runs = results[mode]
        sizes = ", ".join(
            f"{lab} {_per_span(runs, 'proto_bytes', lab)} / {_per_span(runs, 'wire_bytes', lab)}"
            for lab in runs[0]["delivered"]
        )
        out.append(f"- {mode}: {runs[0]['notes']}; {sizes}")
    out += [
        "",
        "CPU by thread, µs per call (median over rounds; from /proc, 10 ms clock ticks;",
        "`native`: threads Python does not know, e.g. grpc's C core):",
        "",
    ]
    for mode in modes:
        per_run = [r.get("thread_cpu_us", {}) for r in results[mode]]
        names = sorted({name for spent in per_run for name in spent})
        cells = ", ".join(
            f"{name} {_median_of([spent.get(name, 0.0) for spent in per_run]):.1f}"
            for name in names
        )
        out.append(f"- {mode}: {cells or 'not measured'}")
    out += ["", "Per round (app µs / CPU µs / peak RSS MiB):", ""]
    for mode in modes:
        cells = ", ".join(
            f"{r['app_us']:.1f} / {r['cpu_us']:.1f} / {r['peak_rss_mb']:.0f}" for r in results[mode]
        )
        out.append(f"- {mode}: {cells}")
    problems = []
    for mode in modes:
        for index, r in enumerate(results[mode], start=1):
            expected = r["expected"]
            lost = {lab: expected - d for lab, d in r["delivered"].items() if d != expected}
            if lost or not r["flushed"] or r["dropped"]:
                problems.append(
                    f"- {mode}, round {index}: lost {lost or 0}, flushed={r['flushed']}, "
                    f"library counters {r['dropped'] or {}}"
                )
    if problems:
        out += ["", "Losses and drops per round:", "", *problems]
    out += ["", *_targets(results)]
    out.append("")
    return out, failures


# The targets for this family (ratios to the same run's medians).
CPU_VS_BASELINE = 0.6
CPU_VS_REFERENCE = 0.2
DUAL_VS_SINGLE = 1.3
RSS_OVER_BARE_MB = 10.0
PROFILE = "bench/profile.md"
"""Where ``spy.py --out`` writes the latest per-thread profile (not made by ``make bench``)."""


def _targets(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """One line per target: met, or missed by how much (absolute and as a ratio)."""

    def cpu(mode: str) -> float | None:
        return _median(results[mode], "cpu_us") if mode in results else None

    def verdict(value: float | None, limit: float, unit: str = "x") -> str:
        if value is None:
            return "not measured"
        if value <= limit:
            return f"{value:.2f}{unit}: met"
        over = value - limit
        return f"{value:.2f}{unit}: missed by {over:.2f}{unit} ({value / limit:.1f}x the limit)"

    ours, dual = cpu("otel-llm"), cpu("otel-llm-dual")
    base, ref = cpu(BASELINE), cpu(REFERENCE)
    lines = ["### Targets", ""]
    lines.append(
        f"- total CPU otel-llm ÷ {BASELINE} ≤ {CPU_VS_BASELINE}: "
        + verdict(ours / base if ours and base else None, CPU_VS_BASELINE)
    )
    lines.append(
        f"- total CPU otel-llm ÷ {REFERENCE} ≤ {CPU_VS_REFERENCE}: "
        + verdict(ours / ref if ours and ref else None, CPU_VS_REFERENCE)
    )
    lines.append(
        f"- total CPU dual ÷ single ≤ {DUAL_VS_SINGLE}: "
        + verdict(dual / ours if dual and ours else None, DUAL_VS_SINGLE)
    )
    if "bare" in results and "otel-llm" in results:
        bare_rss = _median(results["bare"], "peak_rss_mb")
        our_rss = _median(results["otel-llm"], "peak_rss_mb")
        lines.append(
            f"- peak RSS otel-llm ≤ bare + {RSS_OVER_BARE_MB:.0f} MiB "
            f"({bare_rss + RSS_OVER_BARE_MB:.0f}): "
            + verdict(our_rss, bare_rss + RSS_OVER_BARE_MB, " MiB")
        )
    lines += [
        "",
        f"Where the time and memory go, for missed targets: `{PROFILE}` (py-spy, per "
        "thread; remade with `python bench/spy.py --mode otel-llm --out "
        f"{PROFILE.removeprefix('bench/')}`). What the required parts cost on their own, "
        "against the CPU limits: the section *Floor under the CPU targets* below.",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(mode_main())
