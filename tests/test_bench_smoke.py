"""The benchmark still runs end to end and every mode delivers every span.

Tiny N and one round: this proves the harness, the mode scripts and the report
work, so ``make bench`` does not rot between the times someone runs it. No
timing is asserted (DESIGN: performance is measured, never a timed assertion).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
MODES = ("bare", "observe", "start_observation")
ROW = re.compile(r"^\| (\w+) \| [\d.]+ \| [\d.]+ \| [\d.]+x \| (\d+)/(\d+) \| (\d+) \| [\d.]+ \|$")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=90, check=False
    )


def test_runner_reports_every_mode_with_nothing_lost(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    done = _run(str(BENCH / "run.py"), "--n", "50", "--rounds", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr

    text = out.read_text(encoding="utf-8")
    assert done.stdout == text
    assert "opentelemetry-sdk:" in text and "otel-llm:" in text and "cpus:" in text
    rows = {m.group(1): m.groups()[1:] for m in map(ROW.match, text.splitlines()) if m}
    assert set(rows) == set(MODES)
    for mode, (delivered, expected, lost) in rows.items():
        assert (delivered, expected, lost) == ("50", "50", "0"), mode


def test_profile_flag_reports_app_thread() -> None:
    done = _run(str(BENCH / "overhead.py"), "--mode", "observe", "--n", "20", "--profile")
    assert done.returncode == 0, done.stderr
    assert "app thread, 20 calls: top 10 by cumulative" in done.stdout
    assert "by tottime" in done.stdout
