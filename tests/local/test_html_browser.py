"""``otel-llm show TRACE --html FILE`` as a person sees it: opened in headless Chromium.

A small traced app fills a store in-process; the command writes the HTML; Chromium
renders it (``--dump-dom``: the DOM after scripts ran) and takes a screenshot. Chromium
is Debian's ``chromium`` package: when it is missing and we are root with apt-get, the
fixture installs it (bounded in time); only if that is impossible is the test skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm

from .conftest import run_cli

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_INSTALL_TIMEOUT = 900
_RUN_TIMEOUT = 120
SPAN_NAMES = ("support-agent", "plan-step", "chat gpt-4o-mini", "search-docs", "summarize")


def _which() -> str | None:
    return next((found for name in _BROWSERS if (found := shutil.which(name))), None)


def _install() -> str:
    """Why Chromium could not be installed ('' when it was)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not root"
    if not shutil.which("apt-get"):
        return "no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
    try:
        done = subprocess.run(install, env=env, capture_output=True, timeout=_INSTALL_TIMEOUT)
        if done.returncode != 0:  # a stale package list: refresh once and retry
            subprocess.run(
                ["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=_INSTALL_TIMEOUT
            )
            done = subprocess.run(install, env=env, capture_output=True, timeout=_INSTALL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"apt-get failed: {exc}"
    if done.returncode != 0:
        return f"apt-get install chromium failed: {done.stderr.decode(errors='replace')[-200:]}"
    return ""


@pytest.fixture(scope="module")
def chromium() -> str:
    found = _which()
    if found is None:
        problem = _install()
        found = _which()
        if found is None:
            pytest.skip(
                "headless Chromium is not installed and could not be installed "
                f"({problem or 'not found after install'}); run: apt-get install chromium"
            )
    return found


def _browser(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=_RUN_TIMEOUT,
        check=False,
    )


def _traced_app(db: Path) -> str:
    """A small agent: an agent span > a step > a generation, a tool and a summary."""
    pipeline = otel_llm.configure(
        destinations=[otel_llm.LocalStore(path=db)], tracer_provider=TracerProvider()
    )

    @otel_llm.observe(name="search-docs", as_type="tool")
    def search(query: str) -> list[str]:
        return [f"doc about {query}"]

    with otel_llm.start_observation("support-agent", as_type="agent", input="help me") as agent:
        trace_id = otel_llm.get_current_trace_id()
        with otel_llm.start_observation("plan-step", as_type="chain"):
            with otel_llm.start_generation(
                "chat gpt-4o-mini",
                model="gpt-4o-mini",
                input=[{"role": "user", "content": "help <me> & you"}],
            ) as generation:
                generation.update(
                    output="I will search.", usage={"input_tokens": 120, "output_tokens": 30}
                )
            search("billing")
        with otel_llm.start_observation("summarize", level="WARNING") as summary:
            summary.update(output="done")
        agent.update(output="here you go")
    assert trace_id is not None
    assert pipeline.flush(10.0)
    assert pipeline.shutdown(10.0)
    return trace_id


@pytest.mark.timeout(3 * _INSTALL_TIMEOUT + 2 * _RUN_TIMEOUT)  # may install Chromium first
def test_html_waterfall_renders_in_chromium(chromium: str, tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    trace_id = _traced_app(db)
    page = tmp_path / "trace.html"
    r = run_cli("show", trace_id, "--db", db, "--html", page)
    assert r.code == 0, r.err
    url = page.resolve().as_uri()

    dom = _browser(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<html" in dom.stdout.lower()
    for name in SPAN_NAMES:
        assert name in dom.stdout, name
    assert "help &lt;me&gt; &amp; you" in dom.stdout  # content is escaped text, not markup
    assert "<me>" not in dom.stdout

    shot = tmp_path / "trace.png"
    result = _browser(
        chromium,
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1280,900",
        "--hide-scrollbars",
        url,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file()
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000  # a rendered waterfall, not a blank page
