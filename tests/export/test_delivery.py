"""Delivery through outages and restarts: every span once, none twice (real servers, real disk)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm.export.otlp import OTLP
from tests.otlp_http_server import OTLPHTTPServer

PATH = "/v1/traces"


@pytest.fixture
def server() -> Iterator[OTLPHTTPServer]:
    with OTLPHTTPServer() as s:
        yield s


def _ids(server: OTLPHTTPServer) -> list[str]:
    return [s.span_id for s in server.spans(PATH)]


def test_outage_spools_then_replays_every_span_once(server: OTLPHTTPServer, tmp_path: Path) -> None:
    server.respond(PATH, 503)  # down
    dest = OTLP(server.url + PATH, protocol="http/protobuf", timeout=0.5)
    dest._sender._export_timeout = 1.0  # type: ignore[union-attr]  # give up quickly for the test
    p = otel_llm.configure(
        destinations=[dest], tracer_provider=TracerProvider(), spool_dir=tmp_path
    )
    expected = []
    for i in range(30):
        with otel_llm.start_observation(f"op-{i}") as obs:
            expected.append(obs.id)
    p.flush(10.0)
    stats = p.stats()["destinations"]["otlp"]
    assert stats["spooled"] == 30 and stats["exported"] == 0
    assert any(tmp_path.rglob("*.seg"))  # on disk, not in memory
    server.reset()  # back up (and forget the refused requests)
    assert server.wait_for(lambda s: len(_ids(s)) >= 30, timeout=30)
    assert sorted(_ids(server)) == sorted(expected)  # every span, once
    deadline = time.monotonic() + 10
    while p.stats()["destinations"]["otlp"].get("replayed", 0) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)  # the counters follow the server's answer
    stats = p.stats()["destinations"]["otlp"]
    assert stats["replayed"] == 30 and stats["exported"] == 30


_APP = """
import sys, otel_llm
from otel_llm.export.otlp import OTLP
dest = OTLP(sys.argv[1], protocol="http/protobuf", timeout=0.3)
dest._sender._export_timeout = 0.5
p = otel_llm.configure(destinations=[dest], spool_dir=sys.argv[2], service_name="app")
for i in range(int(sys.argv[3])):
    with otel_llm.start_observation(f"op-{i}") as obs:
        print(obs.id, flush=True)
p.shutdown(float(sys.argv[4]))
print("stats", p.stats()["destinations"]["otlp"], flush=True)
"""


def _run_app(endpoint: str, spool: Path, n: int, shutdown: float = 5.0) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_APP), endpoint, str(spool), str(n), str(shutdown)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd() / "src")},
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if re.fullmatch(r"[0-9a-f]{16}", line)]


def test_restart_replays_what_an_earlier_process_spooled(
    server: OTLPHTTPServer, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}{PATH}"  # nobody listens there
    first = _run_app(dead, tmp_path, 25)
    assert len(first) == 25
    assert list(tmp_path.rglob("*.seg"))
    # the next start (backend reachable now) delivers the backlog, then its own spans
    second = _run_app(server.url + PATH, tmp_path, 5)
    assert server.wait_for(lambda s: len(_ids(s)) >= 30, timeout=30)
    assert sorted(_ids(server)) == sorted(first + second)
    assert not [f for f in tmp_path.rglob("*.seg") if f.stat().st_size > 0]


def test_spool_bound_evictions_are_counted_as_dropped(
    server: OTLPHTTPServer, tmp_path: Path
) -> None:
    import os

    server.respond(PATH, 503)  # down for the whole test
    dest = OTLP(server.url + PATH, protocol="http/protobuf", timeout=0.2)
    dest._sender._export_timeout = 0.3  # type: ignore[union-attr]
    p = otel_llm.configure(
        destinations=[dest],
        tracer_provider=TracerProvider(),
        spool_dir=tmp_path,
        spool_max_bytes=64 * 1024,
    )
    for batch in range(30):
        for i in range(10):
            with otel_llm.start_observation(f"op-{batch}-{i}", input=os.urandom(2048).hex()):
                pass
        p.flush(5.0)  # one batch each
    stats = p.stats()["destinations"]["otlp"]
    assert stats["spooled"] == 300
    assert stats["spool_evicted"] > 0  # the bound held...
    assert stats["dropped"] >= stats["spool_evicted"]  # ...and what it cost is visible
    on_disk = sum(f.stat().st_size for f in tmp_path.rglob("*.seg"))
    assert on_disk <= 64 * 1024
