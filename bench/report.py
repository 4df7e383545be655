"""Turning per-round measurements into ``results.md``: machine, versions, one table per family.

Medians over rounds, not means, because a round that shares the CPU with some
unrelated burst should not move the result; the per-round rows are printed too,
so the spread is visible and nobody has to trust a single number.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = ["FamilyResult", "family_section", "load_average", "machine_lines", "render"]

_DISTRIBUTIONS = (
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "langfuse",
    "otel-llm",
)
_SHARED_MACHINE = (
    "**The machine is shared:** other engineers run test suites on these 2 cores while the "
    "benchmark runs, so absolute numbers are noisy (rounds alternate modes so the noise hits "
    "all alike; compare ratios, look at the per-round rows for spread)."
)


@dataclass
class FamilyResult:
    """All rounds of one family: ``rounds[mode]`` is that mode's measurement per round."""

    name: str
    baseline: str
    modes: Sequence[str]
    rounds: Mapping[str, Sequence[Mapping[str, Any]]]


def machine_lines() -> list[str]:
    """What the numbers depend on, so results from two machines are never compared blind."""
    lines = [
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- cpus: {os.cpu_count()} ({_cpu_model()})",
        f"- python: {platform.python_version()} ({platform.python_implementation()})",
        f"- platform: {platform.platform()}",
    ]
    for name in _DISTRIBUTIONS:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"- {name}: {version}")
    return lines


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1/5/15-minute load averages, to show how busy the shared machine was."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def render(sections: Sequence[Sequence[str]], settings: Sequence[str]) -> str:
    """The whole results.md text: machine and settings, then each family's section."""
    out = [
        "# otel-llm benchmark results",
        "",
        *machine_lines(),
        *settings,
        "",
        _SHARED_MACHINE,
        "",
    ]
    for section in sections:
        out += section
    return "\n".join(out) + "\n"


def family_section(family: FamilyResult, legend: Sequence[str] = ()) -> list[str]:
    """A section for a family measured by ``harness.measure`` (e.g. ``overhead``)."""
    base_cpu = statistics.median(r["cpu_us"] for r in family.rounds[family.baseline])
    out = [
        f"## {family.name}",
        "",
        *legend,
        "",
        f"| mode | app µs/call | CPU µs/call | ratio to {family.baseline} (CPU) "
        "| delivered/expected | lost | app-thread CPU µs/call |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in family.modes:
        runs = family.rounds[mode]
        app = statistics.median(r["app_us"] for r in runs)
        cpu = statistics.median(r["cpu_us"] for r in runs)
        app_cpu = statistics.median(r["app_cpu_us"] for r in runs)
        delivered = sum(r["delivered"] for r in runs)
        expected = sum(r["expected"] for r in runs)
        out.append(
            f"| {mode} | {app:.1f} | {cpu:.1f} | {cpu / base_cpu:.2f}x "
            f"| {delivered}/{expected} | {expected - delivered} | {app_cpu:.1f} |"
        )
    out += ["", "Per round (app / CPU / app-thread CPU µs per call):", ""]
    for mode in family.modes:
        cells = ", ".join(
            f"{r['app_us']:.1f} / {r['cpu_us']:.1f} / {r['app_cpu_us']:.1f}"
            for r in family.rounds[mode]
        )
        out.append(f"- {mode}: {cells}")
    out += _problems(family)
    out.append("")
    return out


def _problems(family: FamilyResult) -> list[str]:
    """Lost spans, drop reasons and timed-out flushes, spelled out per mode and round."""
    lines: list[str] = []
    for mode in family.modes:
        for index, r in enumerate(family.rounds[mode], start=1):
            lost = r["expected"] - r["delivered"]
            if lost or not r["flushed"] or r["dropped"]:
                lines.append(
                    f"- {mode}, round {index}: lost {lost}, flushed={r['flushed']}, "
                    f"drop reasons {dict(r['dropped'])}"
                )
    return ["", "**Problems:**", "", *lines] if lines else []
