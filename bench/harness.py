"""Timing one benchmark mode inside its own process, and the command line every family shares.

Each mode runs in a fresh interpreter (spawned by ``run.py``) so that one mode's
imports, caches, threads and garbage never bill another. A family module maps
mode names to factories returning a :class:`Subject`; :func:`mode_main` turns that
map into ``python bench/<family>.py --mode NAME --n N``, which prints one JSON line.

What is measured, and why:

- app µs/call: wall time of the call loop / N, i.e. what the application thread
  waits for. Work deferred to a background thread is not in it.
- app-thread CPU µs/call: ``time.thread_time()`` of the loop, / N: the app thread's
  own work. App µs can exceed it because the app thread waits for the GIL while a
  worker thread runs, so "moved to a worker" is not "free for the app".
- CPU µs/call: ``time.process_time()`` (all threads) from before the loop to after
  the flush, / N. It includes the deferred work, so a design that only moves cost
  to a worker thread cannot look free.
- delivered / expected: spans that reached the counting sink vs calls made; a lost
  span is a correctness failure, not a speed-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "FLUSH_TIMEOUT",
    "Measurement",
    "Subject",
    "measure",
    "mode_main",
    "peak_rss_mb",
    "rss_mb",
    "thread_cpu",
]

FLUSH_TIMEOUT: Final = 120.0
"""Seconds a mode's flush may take: generous, since a timeout shows up as lost spans anyway."""

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux ``/proc``; 0.0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread, by thread name (Linux ``/proc``).

    Threads Python does not know (grpc's C core) are summed under ``native``. Only
    threads alive now are seen: read it before a pipeline shuts its threads down.
    """
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[str, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        name = names.get(int(tid), "native")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (``ru_maxrss``), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@dataclass
class Subject:
    """One mode, set up and ready to be timed.

    Attributes:
        call: records one LLM call (the unit whose cost is measured).
        flush: drains every queue and worker; returns False if it timed out.
        delivered: spans the counting sink has received so far.
        dropped: the library's own drop counters by reason (empty for bare OTel),
            so a loss can be explained, not only counted.
    """

    call: Callable[[], object]
    flush: Callable[[], bool]
    delivered: Callable[[], int]
    dropped: Callable[[], Mapping[str, int]] = dict


@dataclass
class Measurement:
    """The result of one mode in one process (one round)."""

    mode: str
    n: int
    app_us: float
    app_cpu_us: float
    cpu_us: float
    delivered: int
    expected: int
    flushed: bool
    dropped: dict[str, int] = field(default_factory=dict)


def measure(mode: str, subject: Subject, n: int, warmup: int) -> Measurement:
    """Time ``n`` calls of ``subject`` after ``warmup`` untimed ones.

    The warm-up pays for lazy imports and first-call caches, then is flushed and
    subtracted, so ``delivered`` counts only the timed calls.
    """
    call = subject.call
    for _ in range(warmup):
        call()
    subject.flush()
    before = subject.delivered()
    gc.collect()

    wall0, thread0, cpu0 = time.perf_counter(), time.thread_time(), time.process_time()
    for _ in range(n):
        call()
    wall1, thread1 = time.perf_counter(), time.thread_time()
    flushed = subject.flush()
    cpu1 = time.process_time()

    return Measurement(
        mode=mode,
        n=n,
        app_us=(wall1 - wall0) / n * 1e6,
        app_cpu_us=(thread1 - thread0) / n * 1e6,
        cpu_us=(cpu1 - cpu0) / n * 1e6,
        delivered=subject.delivered() - before,
        expected=n,
        flushed=flushed,
        dropped={k: v for k, v in subject.dropped().items() if v},
    )


def mode_main(modes: Mapping[str, Callable[[], Subject]], argv: Sequence[str] | None = None) -> int:
    """Command line of a family module: run one mode and print its Measurement as JSON.

    ``--profile`` prints a cProfile report instead (app and worker threads), for
    finding where a mode's time goes; its timings are inflated by the profiler.
    """
    parser = argparse.ArgumentParser(description="Run one benchmark mode in this process.")
    parser.add_argument("--mode", required=True, choices=sorted(modes))
    parser.add_argument("--n", type=int, default=20000, help="timed calls (default 20000)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first")
    parser.add_argument("--profile", action="store_true", help="print a cProfile report")
    parser.add_argument("--top", type=int, default=10, help="rows per profile table")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    warmup = args.warmup if args.warmup is not None else max(1, min(2000, args.n // 10))

    if args.profile:
        from profiling import profile_mode

        print(profile_mode(modes[args.mode], args.n, warmup, args.top))
        return 0
    result = measure(args.mode, modes[args.mode](), args.n, warmup)
    sys.stdout.write(json.dumps(dataclasses.asdict(result)) + "\n")
    return 0
