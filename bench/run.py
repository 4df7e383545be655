"""``make bench``: every mode of every family, side by side in one run, into ``results.md``.

Each (round, mode) runs in a fresh subprocess, and modes alternate within each
round (the order rotates too), so a slow phase of the machine hits all modes
alike instead of biasing whichever ran during it. The report shows medians.

Adding a family: write ``bench/<family>.py`` with ``FAMILY``, ``BASELINE``,
``MODES`` and ``mode_main`` (see ``overhead.py``), then list it in ``FAMILIES``.

Exit status 1 when any span was lost: delivery is a correctness check, not a
performance target, so it may fail the run; timings never do.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import overhead
import report

__all__ = ["FAMILIES", "main"]

FAMILIES: tuple[ModuleType, ...] = (overhead,)
"""Benchmark families, in report order; each is a module runnable as a mode script."""

_HERE = Path(__file__).resolve().parent


def run_mode(family: ModuleType, mode: str, n: int) -> dict[str, Any]:
    """Run one mode in a fresh interpreter and return its measurement."""
    script = family.__file__
    assert script is not None, family
    command = [sys.executable, script, "--mode", mode, "--n", str(n)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: {family.FAMILY}/{mode} exited with {done.returncode}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"bench: {family.FAMILY}/{mode} printed no result")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_family(family: ModuleType, n: int, rounds: int) -> report.FamilyResult:
    """All rounds of one family, modes alternating and the order rotating each round."""
    modes: list[str] = list(family.MODES)
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for index in range(rounds):
        shift = index % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            started = time.monotonic()
            result = run_mode(family, mode, n)
            results[mode].append(result)
            print(
                f"bench: round {index + 1}/{rounds} {family.FAMILY}/{mode}: "
                f"{result['cpu_us']:.1f} CPU µs/call ({time.monotonic() - started:.1f}s)",
                file=sys.stderr,
            )
    return report.FamilyResult(family.FAMILY, family.BASELINE, modes, results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=20000, help="timed calls per mode per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--out", type=Path, default=_HERE / "results.md", help="report path")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")

    families = [run_family(family, args.n, args.rounds) for family in FAMILIES]
    text = report.render(families, args.n, args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text, end="")
    lost = report.lost_total(families)
    if lost:
        print(f"bench: {lost} span(s) lost; see Problems in {args.out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
