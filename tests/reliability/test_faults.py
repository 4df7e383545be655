"""Fault injection: real HTTP and gRPC receivers on 127.0.0.1 that fail on cue.

Every test asserts the exact multiset of span ids the server *accepted*: each span
produced exactly once, none twice, none lost (unless a test says which documented
limit allows otherwise), and that ``stats()`` counts what happened.
"""

from __future__ import annotations

import ast
import os
import random
import signal
import string
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm.export.otlp import OTLP
from tests.reliability.fault_servers import (
    Fault,
    FaultGrpcServer,
    FaultHTTPServer,
    GrpcFault,
    free_port,
)

PATH = "/v1/traces"
SERVICE = "reliability"

pytestmark = pytest.mark.timeout(30)


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def http() -> Iterator[FaultHTTPServer]:
    server = FaultHTTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def grpc_server() -> Iterator[FaultGrpcServer]:
    server = FaultGrpcServer().start()
    yield server
    server.stop()


def http_dest(
    url: str,
    *,
    timeout: float = 1.0,
    export_timeout: float = 5.0,
    protocol: str = "http/protobuf",
    name: str | None = None,
) -> OTLP:
    dest = OTLP(url + PATH, protocol=protocol, timeout=timeout, name=name)
    dest._sender._export_timeout = export_timeout  # type: ignore[union-attr]
    return dest


def grpc_dest(endpoint: str, *, timeout: float = 1.0, export_timeout: float = 5.0) -> OTLP:
    dest = OTLP(endpoint, protocol="grpc", timeout=timeout)
    dest._sender._export_timeout = export_timeout  # type: ignore[union-attr]
    return dest


def configure(dest: otel_llm.Destination, spool: Path, service: str = SERVICE) -> otel_llm.Pipeline:
    return otel_llm.configure(
        destinations=[dest],
        tracer_provider=TracerProvider(),
        spool_dir=spool,
        service_name=service,
    )


def produce(n: int, prefix: str = "op") -> list[str]:
    ids = []
    for i in range(n):
        with otel_llm.start_observation(f"{prefix}-{i}") as obs:
            ids.append(obs.id)
    return ids


def dstats(p: otel_llm.Pipeline, name: str = "otlp") -> dict[str, int]:
    stats: dict[str, int] = p.stats()["destinations"][name]
    return stats


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def wait_stat(
    p: otel_llm.Pipeline, key: str, n: int, timeout: float = 10.0, name: str = "otlp"
) -> None:
    assert wait_until(lambda: dstats(p, name).get(key, 0) >= n, timeout), dstats(p, name)


def assert_exactly_once(server: FaultHTTPServer | FaultGrpcServer, expected: list[str]) -> None:
    got = Counter(server.accepted_ids())
    twice = {k: v for k, v in got.items() if v > 1}
    assert not twice, f"delivered more than once: {twice}"
    missing = set(expected) - set(got)
    assert not missing, f"never delivered: {sorted(missing)}"
    extra = set(got) - set(expected)
    assert not extra, f"unexpected spans: {sorted(extra)}"


def assert_counts(p: otel_llm.Pipeline, name: str = "otlp", **expected: int) -> None:
    """The destination's counters are exactly these (absent = 0), and nothing broke inside."""
    stats = dstats(p, name)
    got = {k: stats.get(k, 0) for k in expected}
    assert got == expected, stats
    no_internal_errors(p)


def no_internal_errors(p: otel_llm.Pipeline) -> None:
    assert p.stats()["internal_errors"] == {}


# -- HTTP: retryable statuses ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_http_500_then_recovers(http: FaultHTTPServer, tmp_path: Path, protocol: str) -> None:
    http.script(Fault(status=500), Fault(status=503))
    p = configure(http_dest(http.url, protocol=protocol), tmp_path)
    ids = produce(10)
    assert p.flush(10.0)
    assert_exactly_once(http, ids)
    actions = [a.action for a in http.attempts]  # later batches (if any) go straight through
    assert actions[:2] == ["500", "503"] and set(actions[2:]) == {"200"}, actions
    assert_counts(p, exported=10, retried=2, spooled=0, replayed=0, failed=0, dropped=0)
    no_internal_errors(p)


def test_http_429_retry_after_seconds(http: FaultHTTPServer, tmp_path: Path) -> None:
    http.script(Fault(status=429, headers={"Retry-After": "1"}))
    p = configure(http_dest(http.url), tmp_path)
    ids = produce(8)
    assert p.flush(10.0)
    assert_exactly_once(http, ids)
    first, second = http.attempts[:2]
    assert second.at - first.at >= 0.95  # backoff alone would be ≤ 0.6 s
    assert_counts(p, exported=8, retried=1, spooled=0, failed=0, dropped=0)


def test_http_429_retry_after_http_date(http: FaultHTTPServer, tmp_path: Path) -> None:
    # HTTP-dates have one-second resolution: "now + 2 s" means a wait of 1 to 2 s.
    http.script(
        Fault(status=429, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)})
    )
    p = configure(http_dest(http.url), tmp_path)
    ids = produce(8)
    assert p.flush(10.0)
    assert_exactly_once(http, ids)
    first, second = http.attempts[:2]
    assert second.at - first.at >= 0.9  # backoff alone would be ≤ 0.6 s
    assert_counts(p, exported=8, retried=1, spooled=0, failed=0, dropped=0)


def test_retry_after_longer_than_the_deadline_is_honoured_by_replay(
    http: FaultHTTPServer, tmp_path: Path
) -> None:
    http.script(Fault(status=429, headers={"Retry-After": "3"}))
    p = configure(http_dest(http.url, export_timeout=1.0), tmp_path)
    ids = produce(5)
    p.flush(5.0)
    assert http.wait_accepted(5, timeout=10.0)
    assert_exactly_once(http, ids)
    first, second = http.attempts[:2]
    assert second.at - first.at >= 2.9, f"came back after {second.at - first.at:.2f} s"


# -- HTTP: a backend that hangs, hangs up, or is slow --------------------------------------


def test_hang_flush_is_bounded_then_spool_replays_to_a_live_server_on_the_same_port(
    tmp_path: Path,
) -> None:
    hung = FaultHTTPServer().start()
    hung.set_default(Fault("hang"))
    port = hung.port
    live: FaultHTTPServer | None = None
    try:
        p = configure(http_dest(hung.url, timeout=0.5, export_timeout=1.5), tmp_path)
        ids = produce(10)
        started = time.monotonic()
        assert p.flush(1.0) is False  # still hanging: the answer is "not yet", on time
        assert time.monotonic() - started < 1.5
        wait_stat(p, "spooled", 10, timeout=5.0)
        assert hung.accepted_ids() == []
        assert list(tmp_path.rglob("*.seg"))
        hung.stop()
        live = FaultHTTPServer(port=port).start()  # the backend is replaced, same address
        assert live.wait_accepted(10, timeout=10.0)
        assert_exactly_once(live, ids)
        wait_stat(p, "replayed", 10)
        assert_counts(p, spooled=10, replayed=10, exported=10, failed=0, dropped=0)
        assert dstats(p)["retried"] >= 1
        assert p.shutdown(5.0)
        assert_exactly_once(live, ids)
        no_internal_errors(p)
    finally:
        hung.stop()
        if live is not None:
            live.stop()


def _hang_at_shutdown(tmp_path: Path) -> tuple[FaultHTTPServer, otel_llm.Pipeline, list[str]]:
    """A batch in flight to a hung backend when shutdown(1.0) is called (bounded)."""
    hung = FaultHTTPServer().start()
    hung.set_default(Fault("hang"))
    p = configure(http_dest(hung.url, timeout=5.0, export_timeout=30.0), tmp_path)
    ids = produce(6, "in-flight")
    p.flush(0.3)  # hand the batch to the sender (it will not be answered)
    assert hung.wait_attempts(1, timeout=5.0)  # it is on the wire, unanswered
    ids += produce(4, "queued")  # queued behind it
    started = time.monotonic()
    assert p.shutdown(1.0) is False
    assert time.monotonic() - started < 1.6
    return hung, p, ids


def test_hang_at_shutdown_returns_on_time_and_accounts_for_every_span(tmp_path: Path) -> None:
    hung, p, ids = _hang_at_shutdown(tmp_path)
    try:
        hung.stop()  # the hung request ends (connection reset): the sender thread finishes
        sender = p.destinations[0]._sender  # type: ignore[attr-defined]
        sender._thread.join(5.0)
        stats = dstats(p)
        # Nothing vanishes silently: every span is exported, spooled or counted dropped.
        assert stats["spooled"] + stats["dropped"] + stats["exported"] == len(ids), stats
        assert stats["spooled"] >= 4, stats  # at least the queued batch was kept
        assert hung.accepted_ids() == []
    finally:
        hung.stop()


def test_hang_at_shutdown_loses_nothing(tmp_path: Path) -> None:
    hung, p, ids = _hang_at_shutdown(tmp_path)
    port = hung.port
    hung.stop()
    p.destinations[0]._sender._thread.join(5.0)  # type: ignore[attr-defined]
    with FaultHTTPServer(port=port) as live:
        # the next run of the app (same spool, service and destination name) replays
        p2 = configure(http_dest(live.url), tmp_path)
        live.wait_accepted(len(ids), timeout=4.0)
        p2.shutdown(5.0)
        assert_exactly_once(live, ids)


def test_connection_closed_mid_request_is_retried(http: FaultHTTPServer, tmp_path: Path) -> None:
    http.script(Fault("close"), Fault("close_after_body"))
    p = configure(http_dest(http.url), tmp_path)
    ids = produce(10)
    assert p.flush(10.0)
    assert_exactly_once(http, ids)
    actions = [a.action for a in http.attempts]
    assert actions[:2] == ["close", "close_after_body"] and set(actions[2:]) == {"200"}
    assert_counts(p, exported=10, retried=2, spooled=0, failed=0, dropped=0)
    no_internal_errors(p)


def test_slow_answer_times_out_then_fast_answer_delivers(
    http: FaultHTTPServer, tmp_path: Path
) -> None:
    http.script(Fault("slow", delay=1.5))  # longer than the 0.5 s attempt timeout
    p = configure(http_dest(http.url, timeout=0.5), tmp_path)
    ids = produce(10)
    assert p.flush(10.0)
    assert http.wait_attempts(2, timeout=5.0)
    assert http._rec.wait_for(lambda: any(a.action.startswith("slow") for a in http.attempts), 5)
    actions = Counter(a.action for a in http.attempts)
    assert actions["slow-gone"] == 1 and set(actions) == {"200", "slow-gone"}, actions
    assert_exactly_once(http, ids)
    assert_counts(p, exported=10, retried=1, spooled=0, failed=0, dropped=0)


def test_slow_answer_committed_anyway_is_the_documented_at_least_once_duplicate(
    http: FaultHTTPServer, tmp_path: Path
) -> None:
    """A server that commits a request whose client already timed out sees it twice.

    This is the at-least-once limit (a lost answer is indistinguishable from a lost
    request): exactly the one timed-out batch is repeated, once, nothing else.
    """
    http.script(Fault("slow", delay=1.2, commit_if_gone=True))
    p = configure(http_dest(http.url, timeout=0.5), tmp_path)
    ids = produce(10)
    assert p.flush(10.0)
    assert http._rec.wait_for(lambda: len(http.accepted_ids()) >= 20, 5)
    assert Counter(http.accepted_ids()) == Counter({i: 2 for i in ids})
    assert_counts(p, exported=10, retried=1, spooled=0, failed=0, dropped=0)


# -- HTTP: outages, auth and permanent errors -----------------------------------------------


def test_backend_goes_down_and_comes_back_on_the_same_port(tmp_path: Path) -> None:
    server = FaultHTTPServer().start()
    port = server.port
    p = configure(http_dest(server.url, timeout=0.5, export_timeout=1.0), tmp_path)
    before = produce(5, "before")
    assert p.flush(5.0)
    assert server.wait_accepted(5)
    accepted_before = server.accepted_ids()
    server.stop()  # down: connection refused
    during = produce(12, "during")
    wait_stat(p, "spooled", 12, timeout=6.0)
    assert list(tmp_path.rglob("*.seg"))
    with FaultHTTPServer(port=port) as back:
        assert back.wait_accepted(12, timeout=12.0)
        wait_stat(p, "replayed", 12)
        assert sorted(accepted_before) == sorted(before)
        assert_exactly_once(back, during)
        after = produce(3, "after")
        assert p.flush(5.0)
        assert back.wait_accepted(15)
        assert_exactly_once(back, during + after)
        assert_counts(p, exported=20, spooled=12, replayed=12, failed=0, dropped=0)
        assert p.shutdown(5.0)
    no_internal_errors(p)


def test_wrong_keys_spool_and_a_later_run_with_right_keys_delivers(tmp_path: Path) -> None:
    import base64

    good = "Basic " + base64.b64encode(b"pk-lf-public:sk-lf-right").decode()
    with FaultHTTPServer(auth=good) as server:
        wrong = otel_llm.Langfuse("pk-lf-public", "sk-lf-wrong", host=server.url, timeout=1.0)
        p = configure(wrong, tmp_path, service="auth-app")
        ids = []
        for i in range(7):
            with otel_llm.start_generation(f"gen-{i}", model="gpt-4o-mini") as gen:
                ids.append(gen.id)
        assert p.flush(5.0)
        wait_stat(p, "spooled", 7, name="langfuse")
        assert server.attempts and all(a.action == "401" for a in server.attempts)
        assert_counts(p, "langfuse", spooled=7, exported=0, failed=0, dropped=0, retried=0)
        time.sleep(1.3)  # the spool is retried (and refused again) meanwhile: still kept
        assert p.shutdown(3.0)
        assert server.accepted_ids() == []
        assert dstats(p, "langfuse")["failed"] == 0

        right = otel_llm.Langfuse("pk-lf-public", "sk-lf-right", host=server.url, timeout=1.0)
        p2 = configure(right, tmp_path, service="auth-app")
        assert server.wait_accepted(7, timeout=10.0)
        wait_stat(p2, "replayed", 7, name="langfuse")
        assert_exactly_once(server, ids)
        assert_counts(p2, "langfuse", replayed=7, exported=7, failed=0, dropped=0)
        assert p2.shutdown(5.0)


def test_400_is_dropped_and_counted_not_retried(http: FaultHTTPServer, tmp_path: Path) -> None:
    http.script(Fault(status=400, body=b"bad span"))
    p = configure(http_dest(http.url), tmp_path)
    first = produce(6, "first")
    assert p.flush(5.0)
    refused = set(http.attempts[0].span_ids)
    assert http.attempts[0].action == "400" and refused
    time.sleep(1.2)  # no retry, no replay later either
    assert sum(bool(set(a.span_ids) & refused) for a in http.attempts) == 1
    kept = produce(4, "kept")
    assert p.flush(5.0)
    assert_exactly_once(http, [i for i in first + kept if i not in refused])
    failed = len(refused)
    assert_counts(p, failed=failed, exported=10 - failed, retried=0, spooled=0, dropped=0)
    assert not [f for f in tmp_path.rglob("*.seg") if f.stat().st_size]


def test_400_on_replay_removes_the_batch_from_the_spool(
    http: FaultHTTPServer, tmp_path: Path
) -> None:
    http.set_default(Fault(status=503))
    p = configure(http_dest(http.url, timeout=0.5, export_timeout=0.8), tmp_path)
    ids = produce(5)
    wait_stat(p, "spooled", 5, timeout=5.0)
    before = len(http.attempts)
    http.script(Fault(status=400))  # the first replay is refused for good
    http.set_default(Fault())
    wait_stat(p, "failed", 1, timeout=6.0)
    time.sleep(1.5)
    replays = http.attempts[before:]
    assert replays[0].action == "400"
    refused = set(replays[0].span_ids)
    assert sum(bool(set(a.span_ids) & refused) for a in replays) == 1  # once, then forgotten
    later = produce(3, "later")
    assert p.flush(5.0)
    kept = [i for i in ids if i not in refused]
    assert_exactly_once(http, kept + later)
    assert_counts(
        p,
        spooled=5,
        failed=len(refused),
        replayed=len(kept),
        exported=len(kept) + 3,
        dropped=0,
    )
    assert not len(p.destinations[0]._sender._spool)  # type: ignore[attr-defined]


# -- gRPC -----------------------------------------------------------------------------------


def test_grpc_unavailable_with_retry_info_is_honoured(
    grpc_server: FaultGrpcServer, tmp_path: Path
) -> None:
    grpc_server.script(GrpcFault(grpc.StatusCode.UNAVAILABLE, retry_delay=1.2))
    p = configure(grpc_dest(grpc_server.endpoint), tmp_path)
    ids = produce(10)
    assert p.flush(10.0)
    assert_exactly_once(grpc_server, ids)
    first, second = grpc_server.attempts[:2]
    assert first.action == "UNAVAILABLE" and second.action == "OK"
    assert second.at - first.at >= 1.15  # backoff alone would be ≤ 0.6 s
    assert_counts(p, exported=10, retried=1, spooled=0, failed=0, dropped=0)


def test_grpc_resource_exhausted_with_retry_info_is_retried_after_the_delay(
    grpc_server: FaultGrpcServer, tmp_path: Path
) -> None:
    grpc_server.script(GrpcFault(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=1.0))
    p = configure(grpc_dest(grpc_server.endpoint), tmp_path)
    ids = produce(10)
    assert p.flush(10.0)
    assert_exactly_once(grpc_server, ids)
    a = grpc_server.attempts
    assert [x.action for x in a[:2]] == ["RESOURCE_EXHAUSTED", "OK"]
    assert a[1].at - a[0].at >= 0.95
    assert_counts(p, exported=10, retried=1, spooled=0, failed=0, dropped=0)


def test_grpc_resource_exhausted_without_retry_info_is_failed_and_counted(
    grpc_server: FaultGrpcServer, tmp_path: Path
) -> None:
    """OTLP spec: RESOURCE_EXHAUSTED is retryable only with RetryInfo. Without it (often a
    message over the server's size limit) a retry cannot help: counted failed, not spooled."""
    grpc_server.script(GrpcFault(grpc.StatusCode.RESOURCE_EXHAUSTED))
    p = configure(grpc_dest(grpc_server.endpoint), tmp_path)
    produce(10)
    assert p.flush(10.0)
    assert grpc_server.accepted_ids() == []
    assert_counts(p, exported=0, retried=0, spooled=0, failed=10, dropped=0)


def test_an_oversized_span_does_not_block_the_spool_forever(tmp_path: Path) -> None:
    with FaultGrpcServer(max_receive_bytes=4 * 2**20) as server:
        p = configure(grpc_dest(server.endpoint, timeout=1.0, export_timeout=1.0), tmp_path)
        with otel_llm.start_generation("huge", model="gpt-4o-mini") as huge:
            huge.update(input="é" * 900_000, output="ü" * 900_000, metadata={"m": "ß" * 900_000})
        wait_stat(p, "failed", 1, timeout=5.0)  # refused as too large: counted, not retried
        server.set_default(GrpcFault(grpc.StatusCode.UNAVAILABLE))  # a short outage
        behind = produce(5, "behind")
        wait_stat(p, "spooled", 5, timeout=5.0)
        server.set_default(GrpcFault())  # recovered
        delivered = server.wait_accepted(5, timeout=6.0)
        stats = dstats(p)
        assert delivered, f"spooled spans stuck behind the oversized batch: {stats}"
        assert_exactly_once(server, behind)
        assert stats["failed"] + stats["dropped"] >= 1  # the oversized one is given up, counted


def test_grpc_deadline_exceeded_from_server_and_from_a_slow_server(
    grpc_server: FaultGrpcServer, tmp_path: Path
) -> None:
    grpc_server.script(
        GrpcFault(grpc.StatusCode.DEADLINE_EXCEEDED),  # answered by the server
        GrpcFault(sleep=1.5),  # too slow for the 0.5 s attempt timeout: the client's deadline
    )
    p = configure(grpc_dest(grpc_server.endpoint, timeout=0.5), tmp_path)
    ids = produce(10)
    assert p.flush(10.0)
    assert grpc_server._rec.wait_for(lambda: len(grpc_server.attempts) >= 3, 5.0)
    actions = Counter(x.action for x in grpc_server.attempts)
    assert actions["DEADLINE_EXCEEDED"] == actions["OK-gone"] == 1, actions
    assert set(actions) == {"DEADLINE_EXCEEDED", "OK-gone", "OK"}, actions
    assert_exactly_once(grpc_server, ids)
    assert_counts(p, exported=10, retried=2, spooled=0, failed=0, dropped=0)


def test_grpc_permanent_and_auth_errors(grpc_server: FaultGrpcServer, tmp_path: Path) -> None:
    grpc_server.set_default(GrpcFault(grpc.StatusCode.INVALID_ARGUMENT))
    p = configure(grpc_dest(grpc_server.endpoint), tmp_path)
    refused = produce(4, "invalid")
    assert p.flush(5.0)
    assert_counts(p, failed=4, retried=0, spooled=0, exported=0)
    assert len(grpc_server.attempts) == len({a.span_ids for a in grpc_server.attempts})  # once
    grpc_server.set_default(GrpcFault(grpc.StatusCode.UNAUTHENTICATED))
    kept = produce(5, "unauthenticated")
    assert p.flush(5.0)
    wait_stat(p, "spooled", 5)
    grpc_server.set_default(GrpcFault())  # keys fixed server-side: the spool drains
    assert grpc_server.wait_accepted(5, timeout=8.0)
    wait_stat(p, "replayed", 5)
    assert_exactly_once(grpc_server, kept)
    assert not set(refused) & set(grpc_server.accepted_ids())
    assert_counts(p, failed=4, spooled=5, replayed=5, exported=5, dropped=0, retried=0)


def test_grpc_backend_goes_down_and_comes_back_on_the_same_port(tmp_path: Path) -> None:
    server = FaultGrpcServer().start()
    port = server.port
    p = configure(grpc_dest(server.endpoint, timeout=0.5, export_timeout=1.0), tmp_path)
    before = produce(4, "before")
    assert p.flush(5.0)
    assert server.wait_accepted(4)
    assert sorted(server.accepted_ids()) == sorted(before)
    server.stop()
    during = produce(10, "during")
    wait_stat(p, "spooled", 10, timeout=6.0)
    back = FaultGrpcServer(port=port).start()
    try:
        assert back.wait_accepted(10, timeout=12.0)
        wait_stat(p, "replayed", 10)
        assert_exactly_once(back, during)
        assert_counts(p, exported=14, spooled=10, replayed=10, failed=0, dropped=0)
        assert p.shutdown(5.0)
    finally:
        back.stop()


# -- a process killed with SIGKILL mid-outage -----------------------------------------------

_CHILD = """
import sys, time
import otel_llm
from otel_llm.export.otlp import OTLP

endpoint, spool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
dest = OTLP(endpoint, protocol="http/protobuf", timeout=0.3)
dest._sender._export_timeout = 0.5
p = otel_llm.configure(destinations=[dest], spool_dir=spool, service_name="killed-app")
ids = []
for batch in range(3):  # a few separate batches (records) in the spool
    for i in range(n // 3 + (batch < n % 3)):
        with otel_llm.start_observation(f"op-{batch}-{i}") as obs:
            ids.append(obs.id)
    p.flush(3.0)
deadline = time.monotonic() + 20
while p.stats()["destinations"]["otlp"]["spooled"] < n and time.monotonic() < deadline:
    time.sleep(0.05)
print("IDS", " ".join(ids), flush=True)
print("STATS", p.stats()["destinations"]["otlp"], flush=True)
time.sleep(600)
"""


def _read_lines(proc: subprocess.Popen[str], prefixes: tuple[str, ...], timeout: float) -> dict:
    """The first line starting with each prefix (a reader thread: no buffering surprises)."""
    found: dict[str, str] = {}
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            for prefix in prefixes:
                if line.startswith(prefix) and prefix not in found:
                    found[prefix] = line[len(prefix) :].strip()
            if len(found) == len(prefixes):
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    missing = [x for x in prefixes if x not in found]
    assert not missing, f"child printed no {missing} line (rc={proc.poll()})"
    return found


def test_sigkilled_process_spool_is_replayed_by_the_next_one(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}{PATH}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        "OTEL_LLM_STRICT": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CHILD), dead, str(tmp_path), "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = _read_lines(proc, ("IDS ", "STATS "), timeout=20.0)
        ids = lines["IDS "].split()
        child_stats: dict[str, Any] = ast.literal_eval(lines["STATS "])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(ids) == len(set(ids)) == 20
    assert child_stats["spooled"] == 20 and child_stats["dropped"] == 0, child_stats
    assert list(tmp_path.rglob("*.seg"))
    with FaultHTTPServer() as server:
        p = configure(http_dest(server.url), tmp_path, service="killed-app")
        assert server.wait_accepted(20, timeout=10.0)
        wait_stat(p, "replayed", 20)
        assert_exactly_once(server, ids)
        assert_counts(p, replayed=20, exported=20, spooled=0, failed=0, dropped=0)
        assert p.shutdown(5.0)
        assert_exactly_once(server, ids)
    assert not [f for f in tmp_path.rglob("*.seg") if f.stat().st_size]


# -- the spool under live traffic, and shared by two processes -------------------------------


def test_spool_drains_while_live_traffic_keeps_flowing(
    http: FaultHTTPServer, tmp_path: Path
) -> None:
    http.set_default(Fault(status=503))
    p = configure(http_dest(http.url, timeout=0.5, export_timeout=0.8), tmp_path)
    backlog = produce(5, "backlog")
    wait_stat(p, "spooled", 5, timeout=5.0)
    http.set_default(Fault())  # recovered
    live: list[str] = []
    started = time.monotonic()
    while time.monotonic() - started < 6.0:  # a steady trickle: one span every 0.1 s
        live += produce(1, "live")
        time.sleep(0.1)
        if set(backlog) <= set(http.accepted_ids()):
            break
    assert set(backlog) <= set(http.accepted_ids()), dstats(p)
    assert p.flush(5.0)
    assert_exactly_once(http, backlog + live)


_REPLAYER = """
import sys, time
import otel_llm
from otel_llm.export.otlp import OTLP

url, spool, who = sys.argv[1], sys.argv[2], sys.argv[3]
dest = OTLP(url, protocol="http/protobuf", timeout=2.0, headers={"x-replayer": who})
p = otel_llm.configure(destinations=[dest], spool_dir=spool, service_name="shared")
disk = dest._sender._spool
deadline = time.monotonic() + 20
while time.monotonic() < deadline and len(disk):
    time.sleep(0.05)
p.shutdown(5.0)
print("STATS", p.stats()["destinations"]["otlp"], flush=True)
"""


def test_two_processes_replaying_one_spool_send_each_span_once(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from otel_llm.export.sender import Batch
    from otel_llm.export.spool import DiskSpool

    # 24 spooled batches of 3 spans, one segment each (as many runs of an app would leave)
    writer = DiskSpool("otlp", service="shared", directory=tmp_path, segment_bytes=1)
    expected = []
    for b in range(24):
        request = ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add()
        for s in range(3):
            span = spans.spans.add(name=f"b{b}-s{s}")
            span.trace_id = os.urandom(16)
            span.span_id = os.urandom(8)
            expected.append(span.span_id.hex())
        assert writer.put(Batch(request.SerializeToString(), 3))
    writer.close()
    assert len(list(tmp_path.rglob("*.seg"))) == 24
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        "OTEL_LLM_STRICT": "1",
    }
    with FaultHTTPServer() as server:
        server.set_default(Fault("slow", delay=0.03))  # keep both replayers busy at once
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _REPLAYER, server.url + PATH, str(tmp_path), who],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for who in ("a", "b")
        ]
        outputs = [proc.communicate(timeout=30) for proc in procs]
        for proc, (_, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
        stats = [
            ast.literal_eval(line.removeprefix("STATS "))
            for out, _ in outputs
            for line in out.splitlines()
            if line.startswith("STATS ")
        ]
        assert_exactly_once(server, expected)
        assert sum(s.get("replayed", 0) for s in stats) == len(expected), stats
        assert all(s["dropped"] == 0 and s["failed"] == 0 for s in stats), stats
    assert not [f for f in tmp_path.rglob("*.seg") if f.stat().st_size]


# -- a full spool: the oldest batches are evicted ---------------------------------------------


def _overflow_the_spool(tmp_path: Path) -> tuple[otel_llm.Pipeline, int, list[list[str]]]:
    """15 batches of 10 spans (~15 kB gzipped each) to a dead port, spool bounded at 60 kB."""
    port = free_port()
    dest = http_dest(f"http://127.0.0.1:{port}", timeout=0.3, export_timeout=0.3)
    p = otel_llm.configure(
        destinations=[dest],
        tracer_provider=TracerProvider(),
        spool_dir=tmp_path,
        spool_max_bytes=60_000,
        service_name=SERVICE,
    )
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + " .,;"
    batches = []
    for b in range(15):
        ids = []
        for i in range(10):  # ~2 kB of incompressible text each (the spool gzips)
            noise = "".join(rng.choices(alphabet, k=2000))
            with otel_llm.start_observation(f"b{b}-{i}", input=noise) as obs:
                ids.append(obs.id)
        batches.append(ids)
        assert p.flush(5.0)
    wait_stat(p, "spooled", 150, timeout=5.0)
    return p, port, batches


def test_full_spool_evicts_oldest_batches_and_delivers_the_rest_once(tmp_path: Path) -> None:
    p, port, batches = _overflow_the_spool(tmp_path)
    with FaultHTTPServer(port=port) as server:
        assert wait_until(lambda: not len(p.destinations[0]._sender._spool), 10.0)  # type: ignore[attr-defined]
        assert p.flush(5.0)
        got = server.accepted_ids()
        assert len(got) == len(set(got)), "delivered twice"
        survivors = [b for b in batches if set(b) & set(got)]
        assert 0 < len(survivors) < len(batches)  # some were evicted, some kept
        assert all(set(b) <= set(got) for b in survivors)  # whole batches, never part of one
        assert survivors == batches[-len(survivors) :]  # oldest evicted first
        assert dstats(p)["replayed"] == len(got)


def test_evicted_spans_are_counted_in_pipeline_stats(tmp_path: Path) -> None:
    """Evicted spans must show in pipeline.stats() (they did not when this suite was
    written: only DiskSpool.stats() counted them; NetworkDestination.stats() now adds them
    to ``dropped``)."""
    p, port, _ = _overflow_the_spool(tmp_path)
    with FaultHTTPServer(port=port) as server:
        assert wait_until(lambda: not len(p.destinations[0]._sender._spool), 10.0)  # type: ignore[attr-defined]
        lost = 150 - len(server.accepted_ids())
        assert lost > 0
        stats = dstats(p)
        assert stats["dropped"] + stats.get("evicted", 0) == lost, stats
