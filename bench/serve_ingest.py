"""Family "serve": ``otel-llm serve`` ingest throughput and store cost, next to bare stock OTel.

A producer process records the same generation span as the other families
(``payload``, content distinct per call) with the stock OTel SDK:
``BatchSpanProcessor(OTLPSpanExporter(<endpoint>/v1/traces))`` over OTLP/HTTP, its
queue big enough (N + 3000) never to drop, so any loss is the receiver's. Modes:

- ``sink``: the bare stock pipeline into the counting sink (``sink.py``, another
  process): what the stock exporter can push when the receiver costs nothing;
- ``serve``: the same N spans, as fast as possible, into ``otel-llm serve --db
  <tmp>/traces.db`` (a fresh store, a process of its own, started by the mode);
- ``serve_paced``: the same N spans paced at ``PACED_RATE`` spans/s (N / 5000 s)
  into a fresh ``serve``: the rate where the stock ``BatchSpanProcessor`` with its
  default 2048-span queue starts dropping on a 2-core machine.

Measured per mode (one producer process per mode and round): accepted spans/s (N /
wall seconds from the first timed span to ``force_flush`` returning: every export
answered), stored spans/s (N / wall seconds from the first timed span until the
store (or the sink) holds every span, or stopped growing for ``_SETTLE`` s), the
serve process's CPU µs per span (``/proc/<pid>/stat`` utime + stime over that same
window: receiving, decoding, processing and writing the store), serve's peak RSS,
the producer's CPU µs/span and its loop's rate (offered spans/s), the peak depth of
its exporter queue (above 2048 the stock default queue would have dropped), and spans
stored vs sent, counted after SIGTERM with
``StoreReader``.

Run one mode: ``python bench/serve_ingest.py --mode serve --n 20000 --sink URL
--sink-grpc HOST:PORT``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import payload
import rounds
from harness import FLUSH_TIMEOUT
from sink import SinkClient

__all__ = ["FAMILY", "MODES", "PACED_RATE", "bench"]

FAMILY = "serve"
MODES = ("sink", "serve", "serve_paced")
PACED_RATE = 5000.0
"""Spans per second of the paced mode."""

_SETTLE = 2.0
"""Seconds without a new stored span after which storing is taken as finished."""
_POLL = 0.05
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
_HTTP_URL = re.compile(r"OTLP/HTTP (http://\S+?)[,;\s]")


@dataclass
class Result:
    mode: str
    n: int
    sent: int
    stored: int
    accepted_per_s: float
    stored_per_s: float
    producer_cpu_us: float
    serve_cpu_us: float | None
    serve_peak_rss_mb: float | None
    lag_s: float
    offered_per_s: float
    peak_queue: int | None
    flushed: bool
    stop_line: str = ""


# -- serve, in its own process ----------------------------------------------------------
def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), from ``/proc/<pid>/stat``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / _ticks()


def _peak_rss_mb(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


class Serve:
    """``otel-llm serve`` on free loopback ports with a fresh store in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.db = folder / "traces.db"
        self._log = (folder / "serve.log").open("w+")
        command = [sys.executable, "-m", "otel_llm.cli", "serve", "--db", str(self.db)]
        self.process = subprocess.Popen(
            [*command, "--http-port", "0", "--grpc-port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the start line, once it listens
        found = _HTTP_URL.search(line + " ")
        if not found:
            self.process.kill()
            self.process.wait()
            self._log.seek(0)
            raise SystemExit(f"bench: serve did not start: {line!r} {self._log.read()[-2000:]}")
        self.url = found.group(1)
        """The OTLP/HTTP traces URL (``.../v1/traces``)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def count(self) -> int:
        """Spans in the store now (0 before the first commit)."""
        if not self.db.is_file():
            return 0
        try:
            conn = sqlite3.connect(f"{self.db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
            try:
                return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error:
            return 0

    def stop(self) -> str:
        """SIGTERM, wait, and return serve's stop line."""
        self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self._log.close()
        lines = [line for line in (out or "").splitlines() if line.strip()]
        return lines[-1] if lines else f"(no stop line; exit {self.process.returncode})"

    def stored(self) -> int:
        """Spans stored, read with the store's own reader (after :meth:`stop`)."""
        from otel_llm.local.store_queries import StoreReader

        with StoreReader(self.db) as reader:
            return sum(group.count for group in reader.stats(by="model"))


# -- the producer (this process) --------------------------------------------------------
def _producer(
    endpoint: str, queue: int
) -> tuple[Callable[[], None], Callable[[], bool], Any, Callable[[], int | None]]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=endpoint)
    processor = BatchSpanProcessor(exporter, max_queue_size=queue)
    provider.add_span_processor(processor)
    # the SDK's private deque (opentelemetry-sdk 1.3x+); None where a version keeps it elsewhere
    pending = getattr(getattr(processor, "_batch_processor", None), "_queue", None)
    tracer = provider.get_tracer("bench")
    calls = payload.variants()

    def call() -> None:
        messages, output = next(calls)
        with tracer.start_as_current_span("generation") as span:
            payload.set_by_hand(span, messages, output)

    def depth() -> int | None:
        return len(pending) if pending is not None else None

    def flush() -> bool:
        return provider.force_flush(int(FLUSH_TIMEOUT * 1000))

    return call, flush, provider, depth


def _send(
    call: Callable[[], None], n: int, rate: float | None, depth: Callable[[], int | None]
) -> int | None:
    """Record ``n`` spans (at ``rate`` per second if given); the exporter queue's peak
    depth, sampled every 64 spans."""
    peak: int | None = None
    start = time.perf_counter()
    for index in range(n):
        if rate is not None:
            ahead = start + index / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        call()
        if not index % 64:
            now = depth()
            if now is not None and (peak is None or now > peak):
                peak = now
    return peak


def _wait_stored(
    count: Callable[[], int], target: int, pid: int | None
) -> tuple[int, float, float]:
    """The count, and the (wall, serve CPU) clocks when it last grew: waits until it
    reaches ``target``, or stops growing for ``_SETTLE`` s, or ``FLUSH_TIMEOUT``."""
    deadline = time.monotonic() + FLUSH_TIMEOUT
    last = -1
    wall = cpu = 0.0
    while True:
        now = count()
        if now != last:
            last, wall = now, time.perf_counter()
            cpu = _cpu_seconds(pid) if pid is not None else 0.0
        if now >= target or time.perf_counter() - wall >= _SETTLE:
            return now, wall, cpu
        if time.monotonic() >= deadline:
            return now, wall, cpu
        time.sleep(_POLL)


def _warmup(n: int) -> int:
    return max(1, min(2000, n // 10))


def measure(mode: str, sink: SinkClient, n: int) -> Result:
    warmup = _warmup(n)
    queue = n + warmup + 3000
    rate = PACED_RATE if mode == "serve_paced" else None
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        serve = Serve(Path(folder)) if mode != "sink" else None
        try:
            endpoint = serve.url if serve else sink.http + "/v1/traces"
            call, flush, provider, depth = _producer(endpoint, queue)
            if serve:
                count, base, pid = serve.count, warmup, serve.pid
            else:
                count, base, pid = (lambda: sink.count("otlp_http")), 0, None
            _send(call, warmup, None, depth)
            flush()
            if serve:  # the warm-up's spans are stored before the clock starts
                _wait_stored(count, warmup, pid)
            else:
                base = sink.count("otlp_http")
            serve_cpu0 = _cpu_seconds(pid) if pid is not None else 0.0
            wall0, cpu0 = time.perf_counter(), time.process_time()
            peak_queue = _send(call, n, rate, depth)
            wall_sent = time.perf_counter()
            flushed = flush()
            wall1, cpu1 = time.perf_counter(), time.process_time()
            now, wall2, serve_cpu1 = _wait_stored(count, base + n, pid)
            peak = _peak_rss_mb(pid) if pid is not None else None
            provider.shutdown()
        except BaseException:
            if serve:
                serve.stop()
            raise
        stop_line = ""
        if serve:
            stop_line = serve.stop()
            stored = serve.stored() - warmup
        else:
            stored = now - base
    return Result(
        mode=mode,
        n=n,
        sent=n,
        stored=stored,
        accepted_per_s=n / (wall1 - wall0),
        stored_per_s=(now - base) / (wall2 - wall0) if wall2 > wall0 else 0.0,
        producer_cpu_us=(cpu1 - cpu0) / n * 1e6,
        serve_cpu_us=(serve_cpu1 - serve_cpu0) / max(1, now - base) * 1e6 if pid else None,
        serve_peak_rss_mb=peak,
        lag_s=max(0.0, wall2 - wall1),
        offered_per_s=n / (wall_sent - wall0),
        peak_queue=peak_queue,
        flushed=flushed,
        stop_line=stop_line,
    )


def mode_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one serve mode in this process.")
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--n", type=int, default=20000, help="timed spans (default 20000)")
    parser.add_argument("--sink", required=True, help="the sink's HTTP base URL")
    parser.add_argument("--sink-grpc", required=True, help="the sink's gRPC host:port")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    result = measure(args.mode, SinkClient(args.sink, args.sink_grpc), args.n)
    sys.stdout.write(json.dumps(dataclasses.asdict(result)) + "\n")
    return 0


# -- the family, in the runner's process -------------------------------------------------
def bench(options: rounds.Options) -> tuple[list[str], list[str]]:
    """Run every mode over the rounds; return (markdown lines, failures)."""
    args = ["--n", str(options.n), *rounds.sink_args(options.sink)]
    results = rounds.alternate(
        FAMILY,
        __file__,
        MODES,
        options.rounds,
        args,
        lambda r: (
            f"{r['accepted_per_s']:.0f} accepted/s, {r['stored_per_s']:.0f} stored/s, "
            f"stored {r['stored']}/{r['sent']}"
        ),
    )
    return render(results, options)


def _median(runs: Sequence[Mapping[str, Any]], key: str, fmt: str = "{:.0f}") -> str:
    values = [float(r[key]) for r in runs if r[key] is not None]
    return fmt.format(statistics.median(values)) if values else "–"


_TARGETS = {
    "sink": "counting sink (bare stock pipeline)",
    "serve": "otel-llm serve, full rate",
    "serve_paced": f"otel-llm serve, paced {PACED_RATE:.0f}/s",
}


def render(
    results: Mapping[str, Sequence[Mapping[str, Any]]], options: Any
) -> tuple[list[str], list[str]]:
    out = [
        f"## {FAMILY}",
        "",
        f"N = {options.n} generation spans per mode per round, {options.rounds} round(s), "
        "sent by a producer process with the stock OTel SDK (BatchSpanProcessor, queue N + "
        "3000 so it never drops, batch 512; stock OTLP/HTTP exporter, no compression) to the "
        "counting sink or to a fresh `otel-llm serve --db` (its own process, loopback). "
        f"`serve_paced` sends the N spans at {PACED_RATE:.0f} spans/s. Medians over rounds; "
        "sent and stored are summed. accepted/s = N / (first span → every export answered); "
        "stored/s = N / (first span → last span in the store, or counted by the sink). "
        "serve CPU = the serve process's utime + stime over that window per span "
        "(receive + decode + process + store write). lag = seconds from every export "
        "answered to the last span stored. offered/s = N / the producer's loop time (paced: "
        "at most the pace). peak queue = most spans waiting in the producer's "
        "BatchSpanProcessor (sampled every 64 spans): above 2048, the stock default queue "
        "would have dropped. The machine is shared (see above).",
        "",
        "| mode | target | offered spans/s | accepted spans/s | stored spans/s "
        "| producer CPU µs/span | serve CPU µs/span | serve peak RSS MiB | lag s "
        "| producer peak queue | stored/sent | lost |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    failures: list[str] = []
    for mode in MODES:
        runs = results[mode]
        sent = sum(r["sent"] for r in runs)
        stored = sum(r["stored"] for r in runs)
        lost = sent - stored
        if lost:
            failures.append(f"{FAMILY}/{mode}: lost {lost} of {sent}")
        out.append(
            f"| {mode} | {_TARGETS[mode]} | {_median(runs, 'offered_per_s')} "
            f"| {_median(runs, 'accepted_per_s')} "
            f"| {_median(runs, 'stored_per_s')} | {_median(runs, 'producer_cpu_us', '{:.1f}')} "
            f"| {_median(runs, 'serve_cpu_us', '{:.1f}')} "
            f"| {_median(runs, 'serve_peak_rss_mb')} | {_median(runs, 'lag_s', '{:.2f}')} "
            f"| {_median(runs, 'peak_queue')} | {stored}/{sent} | {lost} |"
        )
    out += ["", "Per round (accepted/s / stored/s / serve CPU µs per span):", ""]
    for mode in MODES:
        cells = ", ".join(
            f"{r['accepted_per_s']:.0f} / {r['stored_per_s']:.0f} / "
            + (f"{r['serve_cpu_us']:.1f}" if r["serve_cpu_us"] is not None else "–")
            for r in results[mode]
        )
        out.append(f"- {mode}: {cells}")
    stops = [
        f"- {mode}, round {i}: `{r['stop_line']}`"
        for mode in MODES
        for i, r in enumerate(results[mode], start=1)
        if r["stop_line"] and (r["stored"] != r["sent"] or not r["flushed"])
    ]
    if stops:
        out += ["", "serve's stop line where a span was lost or a flush timed out:", "", *stops]
    out.append("")
    return out, failures


if __name__ == "__main__":
    sys.exit(mode_main())
