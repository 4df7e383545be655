"""Family "outage": otel-llm under a steady load while its backend is down, vs while it is up.

Both modes run the same paced load (``--rate`` traced generation calls per second,
default 2000, for ``--seconds``, default 60) through ``@otel_llm.observe`` into one
Langfuse destination with a disk spool in a fresh temporary folder:

- ``live``: the destination points at the counting sink (``sink.py``);
- ``down``: it points at a closed loopback port (connection refused on every try).

Measured: app µs per call (the call alone, the pacing sleeps excluded; mean, median,
p99), resident memory sampled every second (start, a quarter in, end, peak, after
shutdown), and what became of the spans: delivered (sink), spooled and dropped (the
destination's counters), and spans actually found in the spool folder after
``pipeline.shutdown(5)`` (read back with ``DiskSpool.replay``).

Instrumentation is warmed up first through a throwaway pipeline with an in-memory
destination, so first-call costs do not land in either mode's numbers.

Run one mode: ``python bench/outage.py --mode down --seconds 60 --sink URL --sink-grpc H:P``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import payload
import rounds
from harness import rss_mb
from sink import SinkClient

__all__ = ["FAMILY", "MODES", "bench"]

FAMILY = "outage"
MODES = ("live", "down")
SHUTDOWN_TIMEOUT = 5.0
_RSS_KEYS = ("rss_start_mb", "rss_quarter_mb", "rss_half_mb", "rss_three_quarters_mb", "rss_end_mb")
_WARMUP = 500


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _folder(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path``."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def run(mode: str, sink: SinkClient, seconds: float, rate: float) -> dict[str, Any]:
    import otel_llm
    from otel_llm.export.spool import DiskSpool

    @otel_llm.observe(as_type="generation")
    def generate(messages: list[dict[str, str]], output: str) -> str:
        otel_llm.update_current_observation(
            model=payload.MODEL, model_parameters=payload.MODEL_PARAMETERS, usage=payload.USAGE
        )
        return output

    contents = payload.variants()

    warm = otel_llm.configure(destinations=[otel_llm.InMemory()], spool_dir=False)
    for _ in range(_WARMUP):
        generate(*next(contents))
    warm.flush(30)

    spool_dir = Path(tempfile.mkdtemp(prefix="otel-llm-bench-spool-"))
    try:
        host = sink.http if mode == "live" else f"http://127.0.0.1:{_closed_port()}"
        destination = otel_llm.Langfuse("pk-lf-x", "sk-lf-x", host=host)
        pipeline = otel_llm.configure(destinations=[destination], spool_dir=spool_dir)
        before = sink.count("langfuse")
        total = max(1, round(seconds * rate))
        interval = 1.0 / rate
        durations: list[float] = []
        samples: list[tuple[float, float]] = [(0.0, rss_mb())]
        perf, sleep = time.perf_counter, time.sleep

        start = next_at = next_sample = perf()
        thread0, cpu0 = time.thread_time(), time.process_time()
        for _ in range(total):
            now = perf()
            if next_at > now:
                sleep(next_at - now)
            t0 = perf()
            generate(*next(contents))
            t1 = perf()
            durations.append(t1 - t0)
            next_at += interval
            if t1 >= next_sample:
                samples.append((t1 - start, rss_mb()))
                next_sample = t1 + 1.0
        end = perf()
        thread1, cpu1 = time.thread_time(), time.process_time()
        samples.append((end - start, rss_mb()))

        at_end = destination.stats()
        files_end, bytes_end = _folder(spool_dir)
        spool = _disk_spool(destination)
        shutdown_started = perf()
        shut_ok = pipeline.shutdown(SHUTDOWN_TIMEOUT)
        shutdown_s = perf() - shutdown_started
        rss_after_shutdown = rss_mb()
        final = _settled(destination)
        dropped_reasons = dict(pipeline.stats()["dropped_reasons"])
        delivered = sink.count("langfuse") - before
        files, size = _folder(spool_dir)
        spool_stats = spool.stats() if spool is not None else {}
        on_disk = _spans_on_disk(DiskSpool, spool_dir, destination.name)
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)

    ordered = sorted(durations)

    def rss_at(fraction: float) -> float:
        return next((rss for t, rss in samples if t >= (end - start) * fraction), samples[-1][1])

    return {
        "mode": mode,
        "n": total,
        "seconds": end - start,
        "rate": total / (end - start),
        "app_us": statistics.fmean(ordered) * 1e6,
        "app_median_us": ordered[len(ordered) // 2] * 1e6,
        "app_p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
        "app_cpu_us": (thread1 - thread0) / total * 1e6,
        "cpu_us": (cpu1 - cpu0) / total * 1e6,
        "rss_start_mb": samples[0][1],
        "rss_quarter_mb": rss_at(0.25),
        "rss_half_mb": rss_at(0.5),
        "rss_three_quarters_mb": rss_at(0.75),
        "rss_end_mb": samples[-1][1],
        "rss_peak_mb": max(rss for _, rss in samples),
        "rss_after_shutdown_mb": rss_after_shutdown,
        "delivered": delivered,
        "at_end": at_end,
        "final": final,
        "processor_dropped": dropped_reasons,
        "spool_files_at_end": files_end,
        "spool_bytes_at_end": bytes_end,
        "spool_files": files,
        "spool_bytes": size,
        "spans_on_disk": on_disk,
        "spool_stats": spool_stats,
        "shutdown_ok": shut_ok,
        "shutdown_s": shutdown_s,
    }


def _settled(destination: Any, limit: float = 60.0) -> dict[str, int]:
    """The destination's counters once they stop moving.

    A shutdown that ran out of time leaves the sender thread finishing its work
    (spooling what it still held, evicting at the size bound): counters read at once
    would miss that, and its spans would look unaccounted for.
    """
    deadline = time.monotonic() + limit
    previous: dict[str, int] = destination.stats()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        current: dict[str, int] = destination.stats()
        if current == previous:
            return current
        previous = current
    return previous


def _disk_spool(destination: Any) -> Any:
    """The destination's DiskSpool (private attributes: its counters, e.g. ``evicted``, are
    not in ``stats()``); None if the library's layout changed."""
    sender = getattr(destination, "_sender", None)
    spool = getattr(sender, "_spool", None)
    return spool if hasattr(spool, "stats") else None


def _spans_on_disk(spool_type: Any, folder: Path, destination: str) -> int:
    """Spans a later process would find in the spool (read back, then discarded)."""
    spool = spool_type(destination, service="unknown_service", directory=folder)
    found = 0

    def count(batch: Any) -> bool:
        nonlocal found
        found += batch.spans
        return True

    spool.replay(count)
    spool.close()
    return found


def mode_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one outage mode in this process.")
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration")
    parser.add_argument("--rate", type=float, default=2000.0, help="calls per second")
    parser.add_argument("--sink", required=True, help="the sink's HTTP base URL")
    parser.add_argument("--sink-grpc", required=True, help="the sink's gRPC host:port")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0:
        parser.error("--seconds and --rate must be positive")
    result = run(args.mode, SinkClient(args.sink, args.sink_grpc), args.seconds, args.rate)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


# -- the family, in the runner's process -------------------------------------------------
def bench(options: rounds.Options) -> tuple[list[str], list[str]]:
    args = [
        *("--seconds", str(options.outage_seconds), "--rate", str(options.outage_rate)),
        *rounds.sink_args(options.sink),
    ]
    results = rounds.alternate(
        FAMILY,
        __file__,
        list(MODES),
        options.outage_rounds,
        args,
        lambda r: (
            f"{r['app_us']:.1f} app µs/call, RSS {r['rss_start_mb']:.0f}->{r['rss_end_mb']:.0f} "
            f"MiB, delivered {r['delivered']}, on disk {r['spans_on_disk']} of {r['n']}"
        ),
    )
    return render(results, options)


def _med(runs: Sequence[Mapping[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def render(
    results: Mapping[str, Sequence[Mapping[str, Any]]], options: Any
) -> tuple[list[str], list[str]]:
    live, down = results["live"], results["down"]
    out = [
        f"## {FAMILY}",
        "",
        f"A paced load of {options.outage_rate:.0f} calls/s for {options.outage_seconds:g} s "
        f"through `@otel_llm.observe` into one Langfuse destination with a disk spool; "
        f"`live`: the sink is up; `down`: a closed port. {options.outage_rounds} round(s), "
        "medians. app µs: the call alone (pacing sleeps excluded). CPU µs: process CPU "
        "(all threads) during the load, per call. RSS sampled every second.",
        "",
        "| mode | calls | achieved calls/s | app µs/call mean | median | p99 "
        "| app-thread CPU µs (incl. pacing loop) | CPU µs/call "
        "| RSS MiB at start → ¼ → ½ → ¾ → end | peak | after shutdown |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for mode, runs in results.items():
        out.append(
            f"| {mode} | {runs[0]['n']} | {_med(runs, 'rate'):.0f} | {_med(runs, 'app_us'):.1f} "
            f"| {_med(runs, 'app_median_us'):.1f} | {_med(runs, 'app_p99_us'):.1f} "
            f"| {_med(runs, 'app_cpu_us'):.1f} | {_med(runs, 'cpu_us'):.1f} "
            f"| {' → '.join(f'{_med(runs, k):.0f}' for k in _RSS_KEYS)} "
            f"| {_med(runs, 'rss_peak_mb'):.0f} "
            f"| {_med(runs, 'rss_after_shutdown_mb'):.0f} |"
        )
    ratio = _med(down, "app_us") / _med(live, "app_us")
    growth = {
        mode: _med(runs, "rss_end_mb") - _med(runs, "rss_half_mb") for mode, runs in results.items()
    }
    out += [
        "",
        f"down vs live, app µs/call (mean): {ratio:.2f}x. RSS over the second half of the "
        f"load: live {growth['live']:+.0f} MiB, down {growth['down']:+.0f} MiB.",
        "",
        "Where the spans went (per round; counters are the destination's `stats()`):",
        "",
        "| mode, round | calls | delivered (sink) | spooled at load end | spool on disk at "
        "load end | spooled after shutdown | dropped | spans read back from disk "
        "| unaccounted | spool evicted (spans) | shutdown |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    failures: list[str] = []
    for mode, runs in results.items():
        for index, r in enumerate(runs, start=1):
            final, at_end = r["final"], r["at_end"]
            dropped = final.get("dropped", 0) + final.get("failed", 0)
            dropped += sum(r["processor_dropped"].values())
            kept = r["delivered"] + r["spans_on_disk"]
            evicted = r["spool_stats"].get("evicted", "n/a")
            unaccounted = r["n"] - kept - dropped
            out.append(
                f"| {mode}, {index} | {r['n']} | {r['delivered']} | {at_end.get('spooled', 0)} "
                f"| {r['spool_files_at_end']} files, {r['spool_bytes_at_end'] / 2**20:.1f} MiB "
                f"| {final.get('spooled', 0)} | {dropped} | {r['spans_on_disk']} "
                f"| {unaccounted} | {evicted} | {r['shutdown_s']:.1f} s, ok={r['shutdown_ok']} |"
            )
            if r["n"] - kept:
                failures.append(
                    f"{FAMILY}/{mode} round {index}: {r['n'] - kept} of {r['n']} spans neither "
                    f"delivered nor on disk ({dropped} counted dropped in `stats()`; the disk "
                    f"spool's own counters say {evicted} evicted)"
                )
    out += [
        "",
        "dropped: the destination's dropped + failed and the processor's drops, as "
        "`pipeline.stats()` shows them; unaccounted: calls − delivered − read back − dropped; "
        "spool evicted: `DiskSpool.stats()['evicted']` (read from the destination's private "
        "spool; not part of `stats()`).",
        "",
    ]
    return out, failures


if __name__ == "__main__":
    sys.exit(mode_main())
