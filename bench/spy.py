"""Where a pipelines mode's CPU goes, per thread, sampled by py-spy (not part of ``make bench``).

``python bench/spy.py --mode otel-llm`` starts the counting sink, runs
``pipelines.py --mode otel-llm`` under ``py-spy record --threads --format raw``
(py-spy: ``pip install py-spy``) and prints, for each thread, its share of the
samples and the top functions by own samples (the function itself was running)
and by inclusive samples (it was anywhere on the stack). Idle threads are not
sampled (py-spy's default), so shares approximate CPU.

The app thread is restricted to the timed loop (``pipelines._timed_calls``); other
threads are counted over the whole run, which includes the warm-up (10% of N).
Unlike cProfile (``pipelines.py --profile``), sampling barely slows the program
and sees every thread, but has no call counts.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import pipelines
import rounds

__all__ = ["main", "summarize"]

_THREAD = re.compile(r"^thread \((\w+)\)(?:: (.*))?$")
_LINE = re.compile(r":\d+\)$")
_TIMED = "_timed_calls (pipelines.py"
_MAIN = "<module> (pipelines.py"  # py-spy may not name the main thread at first


def _function(frame: str) -> str:
    """``name (file.py:123)`` -> ``name (file.py)``: aggregate a function's lines."""
    return _LINE.sub(")", frame)


def summarize(raw: str, top: int) -> str:
    """The text report of py-spy ``--format raw --threads`` output."""
    own: dict[str, Counter[str]] = defaultdict(Counter)
    inclusive: dict[str, Counter[str]] = defaultdict(Counter)
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        match = _THREAD.match(frames[0])
        if match is None:
            thread, frames = "?", frames
        else:
            thread, frames = match.group(2) or match.group(1), frames[1:]
        if thread == "MainThread" or any(f.startswith(_MAIN) for f in frames):
            if not any(f.startswith(_TIMED) for f in frames):
                continue  # set-up, imports, warm-up, flush
            thread = "MainThread (timed loop only)"
        count = int(count_text)
        samples[thread] += count
        if frames:
            own[thread][_function(frames[-1])] += count
        for function in {_function(f) for f in frames}:
            inclusive[thread][function] += count
    total = sum(samples.values()) or 1
    out = [f"{total} samples in the threads below"]
    for thread, n in samples.most_common():
        out += ["", f"== {thread}: {n} samples ({n / total:.0%}) =="]
        out.append(f"-- top {top} by own samples --")
        out += [f"{c / n:6.1%}  {f}" for f, c in own[thread].most_common(top)]
        out.append(f"-- top {top} by inclusive samples --")
        out += [f"{c / n:6.1%}  {f}" for f, c in inclusive[thread].most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", default="otel-llm", choices=list(pipelines.MODES))
    parser.add_argument("--n", type=int, default=60000, help="timed calls (default 60000)")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--top", type=int, default=15, help="rows per table")
    parser.add_argument("--raw", type=Path, default=None, help="also keep py-spy's raw output")
    parser.add_argument(
        "--out", type=Path, default=None, help="also write the report as markdown (profile.md)"
    )
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("spy: py-spy is not installed (pip install py-spy)")
    with tempfile.TemporaryDirectory() as tmp, rounds.running_sink() as sink:
        raw_path = Path(tmp) / "raw.txt"
        command = [
            *(spy, "record", "--threads", "--format", "raw", "--rate", str(args.rate)),
            *("-o", str(raw_path), "--", sys.executable, pipelines.__file__),
            *("--mode", args.mode, "--n", str(args.n), *rounds.sink_args(sink)),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not raw_path.exists():
            raise SystemExit(f"spy: py-spy failed ({done.returncode}): {done.stderr[-2000:]}")
        raw = raw_path.read_text(encoding="utf-8")
        if args.raw is not None:
            args.raw.write_text(raw, encoding="utf-8")
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"mode"')]
    result = lines[-1] if lines else "(no result)"
    head = f"mode {args.mode}, N={args.n}, py-spy at {args.rate} Hz; the run measured: {result}"
    summary = summarize(raw, args.top)
    print(head)
    print(summary)
    if args.out is not None:
        args.out.write_text(_markdown(args, head, summary), encoding="utf-8")
    return 0


def _markdown(args: argparse.Namespace, head: str, summary: str) -> str:
    """The report as ``bench/profile.md``: when, how it was made, then the tables."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = f"python bench/spy.py --mode {args.mode} --n {args.n} --top {args.top}"
    return "\n".join(
        [
            f"# Where the CPU goes: {args.mode} ({when})",
            "",
            f"Made by `{command} --out profile.md` on the benchmark machine (see",
            "`results.md` for it). Shares are of py-spy samples per thread; idle waits",
            "are not sampled, so shares approximate CPU.",
            "",
            "```",
            head,
            summary,
            "```",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
