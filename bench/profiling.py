"""cProfile reports of one mode, for the app thread and for threads the mode starts.

cProfile only sees the thread that enabled it, while otel-llm moves work to a
worker thread. So a profile hook is installed with ``threading.setprofile``
before the mode is set up: each thread started afterwards enables its own
profiler on its first event, and its stats are reported separately. Timings
under the profiler are inflated; read the tables for shares, not for µs.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from harness import Subject

__all__ = ["profile_mode"]


class _ThreadProfiles:
    """One profiler per thread started while installed (guarded by ``_lock``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.profiles: dict[str, cProfile.Profile] = {}

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        # Runs once per new thread, on its first profiled event, in that thread.
        sys.setprofile(None)
        profile = cProfile.Profile()
        with self._lock:
            self.profiles[threading.current_thread().name] = profile
        profile.enable()


def profile_mode(factory: Callable[[], Subject], n: int, warmup: int, top: int) -> str:
    """Run ``factory``'s subject ``n`` times under cProfile; return the text report."""
    threads = _ThreadProfiles()
    threading.setprofile(threads.hook)
    try:
        subject = factory()
    finally:
        threading.setprofile(None)
    for _ in range(warmup):
        subject.call()
    subject.flush()
    for profile in threads.profiles.values():
        profile.clear()  # keep only the timed calls

    app = cProfile.Profile()
    app.enable()
    for _ in range(n):
        subject.call()
    app.disable()
    subject.flush()

    sections = [_report(f"app thread, {n} calls", app, top)]
    for name, profile in sorted(threads.profiles.items()):
        sections.append(_report(f"thread {name!r}", profile, top))
    return "\n".join(sections)


def _report(title: str, profile: cProfile.Profile, top: int) -> str:
    if not profile.getstats():  # e.g. a resource-detection pool thread, idle while timed
        return f"== {title}: no calls while timed ==\n"
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).strip_dirs()
    for key in ("cumulative", "tottime"):
        out.write(f"== {title}: top {top} by {key} ==\n")
        stats.sort_stats(key).print_stats(top)
    return out.getvalue()
