"""The benchmark still runs end to end and every mode delivers every span.

Tiny N, one round and a 2-second outage: this proves the runner, the sink, every
family's mode scripts and the report work, so ``make bench`` does not rot between
the times someone runs it. No timing is asserted (DESIGN: performance is measured,
never a timed assertion). The ``bare`` pipeline may lose spans by design (its stock
2048-span queue), so its delivery is not checked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
N = 50
OVERHEAD_MODES = ("bare", "observe", "start_observation")
PIPELINE_MODES = ("bare", "bare_big", "langfuse", "otel-llm", "otel-llm-dual")
OVERHEAD_ROW = re.compile(
    r"^\| (\w+) \| [\d.]+ \| [\d.]+ \| [\d.]+x \| (\d+)/(\d+) \| (\d+) \| [\d.]+ \|$"
)
PIPELINE_ROW = re.compile(r"^\| ([\w-]+) \|(?: (?:[\d.]+x?|–) \|){10} ([^|]+) \| ([^|]+) \|$")
OUTAGE_ROW = re.compile(
    r"^\| (live|down), 1 \| (\d+) \| (\d+) \| \d+ \| [^|]+ \| (\d+) \| (\d+) \| (\d+) \| (-?\d+) \|"
)


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _section(text: str, name: str) -> list[str]:
    after = text.split(f"\n## {name}\n", 1)[1]
    return after.split("\n## ", 1)[0].splitlines()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("bench") / "results.md"
    done = _run(
        str(BENCH / "run.py"),
        *("--n", str(N), "--rounds", "1", "--outage-seconds", "2", "--out", str(out)),
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert done.stdout == text
    return text


@pytest.mark.timeout(600)
def test_header_names_the_machine(report: str) -> None:
    assert "opentelemetry-sdk:" in report and "otel-llm:" in report and "cpus:" in report
    assert "load average" in report and "shared" in report


@pytest.mark.timeout(600)
def test_overhead_reports_every_mode_with_nothing_lost(report: str) -> None:
    rows = {
        m.group(1): m.groups()[1:]
        for m in map(OVERHEAD_ROW.match, _section(report, "overhead"))
        if m
    }
    assert set(rows) == set(OVERHEAD_MODES)
    for mode, (delivered, expected, lost) in rows.items():
        assert (delivered, expected, lost) == (str(N), str(N), "0"), mode


@pytest.mark.timeout(600)
def test_pipelines_report_every_mode_and_delivery(report: str) -> None:
    rows = {
        m.group(1): (m.group(2), m.group(3))
        for m in map(PIPELINE_ROW.match, _section(report, "pipelines"))
        if m
    }
    expected_modes = set(PIPELINE_MODES)
    if find_spec("langfuse") is None:
        expected_modes.discard("langfuse")
    assert set(rows) == expected_modes
    for mode, (delivered, lost) in rows.items():
        if mode == "bare":
            continue  # the stock 2048-span queue may drop: measured, not asserted
        if mode == "otel-llm-dual":
            assert delivered == f"langfuse {N}/{N}, otlp {N}/{N}", mode
            assert lost == "0 + 0", mode
        else:
            assert delivered == f"{N}/{N}", mode
            assert lost == "0", mode


@pytest.mark.timeout(600)
def test_micro_reports_encoder_stages_and_processors(report: str) -> None:
    section = "\n".join(_section(report, "micro"))
    assert "| otel-llm `encoder.encode` |" in section
    assert "Same bytes as stock: yes" in section
    for stage in ("normalize", "derive_usage", "derive_cost", "extract_media", "mask_record"):
        assert f"| {stage} | " in section, stage
        # both columns: messages derived (default) and not (Langfuse only)
        assert re.search(rf"^\| {stage} \| [\d.]+ \| [\d.]+ \|", section, re.M), stage
    assert "| SimpleSpanProcessor + no-op exporter |" in section
    assert "| LLMSpanProcessor, worker idle |" in section


FLOOR_ROW = re.compile(r"^\| (\*\*sum: the floor\*\*|[^|*+][^|]*) \| \**([\d.]+)\** \|")


@pytest.mark.timeout(600)
def test_floor_adds_up_the_required_parts(report: str) -> None:
    rows = [
        m.groups()
        for m in map(FLOOR_ROW.match, _section(report, "Floor under the CPU targets"))
        if m
    ]
    labels = [label for label, _ in rows]
    parts = [float(value) for label, value in rows[: labels.index("**sum: the floor**")]]
    assert len(parts) == 6, rows  # SDK span, usage, cost, masking, encoding, sending
    floor = float(rows[labels.index("**sum: the floor**")][1])
    assert floor == pytest.approx(sum(parts), abs=0.1 * len(parts))
    assert parts[0] > 0 and all(value >= 0 for value in parts), rows  # /proc ticks may say 0
    text = "\n".join(_section(report, "Floor under the CPU targets"))
    assert "- ≤ 0.6× `bare_big`" in text
    if find_spec("langfuse") is not None:
        assert "- ≤ 0.2× the Langfuse SDK" in text


@pytest.mark.timeout(600)
def test_outage_keeps_every_span(report: str) -> None:
    rows = {
        m.group(1): tuple(int(g) for g in m.groups()[1:])
        for m in map(OUTAGE_ROW.match, _section(report, "outage"))
        if m
    }
    assert set(rows) == {"live", "down"}
    calls, delivered, _, dropped, on_disk, unaccounted = rows["live"]
    assert (delivered, dropped, on_disk, unaccounted) == (calls, 0, 0, 0)
    calls, delivered, _, dropped, on_disk, unaccounted = rows["down"]
    assert (delivered, dropped, on_disk, unaccounted) == (0, 0, calls, 0)


def test_profile_flag_reports_app_thread() -> None:
    done = _run(str(BENCH / "overhead.py"), "--mode", "observe", "--n", "20", "--profile")
    assert done.returncode == 0, done.stderr
    assert "app thread, 20 calls: top 10 by cumulative" in done.stdout
    assert "by tottime" in done.stdout


SERVE_ROW = re.compile(
    r"^\| (sink|serve|serve_paced) \|[^|]+\|(?: (?:[\d.]+|–) \|){8} (\d+)/(\d+) \| (\d+) \|$"
)


@pytest.mark.timeout(600)
def test_serve_stores_every_span(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    done = _run(
        str(BENCH / "run.py"),
        *("--families", "serve", "--n", "200", "--rounds", "1", "--out", str(out)),
    )
    assert done.returncode == 0, done.stderr
    rows = {
        m.group(1): m.groups()[1:]
        for m in map(SERVE_ROW.match, _section(out.read_text(encoding="utf-8"), "serve"))
        if m
    }
    assert set(rows) == {"sink", "serve", "serve_paced"}
    for mode, (stored, sent, lost) in rows.items():
        assert (stored, sent, lost) == ("200", "200", "0"), mode
