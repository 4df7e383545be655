"""Running modes in fresh interpreters, alternating over rounds, and the shared sink process.

Each (round, mode) runs in a fresh subprocess, and modes alternate within each
round (the order rotates too), so a slow phase of the machine hits all modes
alike instead of biasing whichever ran during it. A mode script prints one JSON
line last; that line is its result.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sink import SinkClient

__all__ = ["Options", "alternate", "run_script", "running_sink"]

HERE = Path(__file__).resolve().parent


@dataclass
class Options:
    """What the command line chose, as every family sees it."""

    n: int
    rounds: int
    outage_seconds: float
    outage_rate: float
    outage_rounds: int
    sink: SinkClient | None = None
    facts: dict[str, float] = field(default_factory=dict)
    """Medians a family measured that a later section reads (``floor.py``), by name."""


def run_script(script: str, args: Sequence[str], label: str) -> dict[str, Any]:
    """Run ``python script *args`` and return the JSON object on its last stdout line."""
    command = [sys.executable, script, *args]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: {label} exited with {done.returncode}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"bench: {label} printed no result")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def alternate(
    family: str,
    script: str,
    modes: Sequence[str],
    rounds: int,
    args: Sequence[str],
    summary: Callable[[dict[str, Any]], str],
) -> dict[str, list[dict[str, Any]]]:
    """All rounds of ``modes``, alternating, the order rotating each round.

    Returns each mode's results in round order; ``summary`` makes the progress line.
    """
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for index in range(rounds):
        shift = index % len(modes)
        for mode in [*modes[shift:], *modes[:shift]]:
            started = time.monotonic()
            result = run_script(script, ["--mode", mode, *args], f"{family}/{mode}")
            results[mode].append(result)
            print(
                f"bench: round {index + 1}/{rounds} {family}/{mode}: {summary(result)} "
                f"({time.monotonic() - started:.1f}s)",
                file=sys.stderr,
            )
    return results


def sink_args(sink: SinkClient | None) -> list[str]:
    """Command-line arguments telling a mode script where the sink is."""
    if sink is None:
        raise SystemExit("bench: this family needs the sink (bench/sink.py)")
    return ["--sink", sink.http, "--sink-grpc", sink.grpc]


@contextmanager
def running_sink() -> Iterator[SinkClient]:
    """Start ``sink.py`` in its own process for the duration of the block."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / "sink.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise SystemExit("bench: the sink did not start")
        where = json.loads(line)
        yield SinkClient(where["http"], where["grpc"])
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the sink exits when its stdin closes
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(10)
