"""The installed ``otel-llm`` command against databases filled by the test.

The filled database (conftest.dataset_records) holds three traces:

1. alice, s1, r1, v1: ``request`` 1000 ms > ``answer`` gpt-a 300 ms, 100→20 tokens, $0.01.
   Scores: quality=1 on ``answer``, helpful=1 on the trace.
2. alice, s2, r2, v2: ``request`` 2000 ms > ``answer`` gpt-b 500 ms, 200→40, $0.02, and
   ``retry`` gpt-a 100 ms, 50→10, $0.005, ERROR. Scores: helpful=0 on the trace,
   label=meh on ``request``.
3. bob, s3, r1, v1: ``batch`` 500 ms (trace name "nightly-batch") > ``answer`` gpt-b 200 ms,
   10→1, unpriced.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from otel_llm.local.destination import LocalStore
from otel_llm.local.store_queries import StoreReader
from otel_llm.local.store_schema import SCHEMA_VERSION

from .conftest import fill, make_record, one_line, run_cli, span_hex, trace_hex


def test_traces_lists_latest_first(filled_db: Path) -> None:
    r = run_cli("traces", "--db", filled_db, "--json")
    assert r.code == 0, r.err
    traces = json.loads(r.out)
    assert [t["trace_id"] for t in traces] == [trace_hex(3), trace_hex(2), trace_hex(1)]
    t2 = traces[1]
    assert (t2["user_id"], t2["session_id"], t2["span_count"], t2["error_count"]) == (
        "alice",
        "s2",
        3,
        1,
    )
    assert (t2["input_tokens"], t2["output_tokens"]) == (250, 50)
    assert t2["total_cost"] == pytest.approx(0.025) and t2["duration_ms"] == 2000.0
    assert t2["start_time"].endswith("Z") and t2["tags"] == ["t", "alice"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--user", "alice"], [2, 1]),
        (["--user", "bob"], [3]),
        (["--session", "s1"], [1]),
        (["--user", "alice", "--session", "s2"], [2]),
        (["--user", "nobody"], []),
        (["--limit", "1"], [3]),
    ],
)
def test_traces_filters(filled_db: Path, args: list[str], expected: list[int]) -> None:
    r = run_cli("traces", "--db", filled_db, "--json", *args)
    assert r.code == 0, r.err
    assert [t["trace_id"] for t in json.loads(r.out)] == [trace_hex(i) for i in expected]


def test_traces_table(filled_db: Path) -> None:
    r = run_cli("traces", "--db", filled_db)
    assert r.code == 0, r.err
    for text in (trace_hex(1), "nightly-batch", "alice", "bob", "250→50", "$0.025000"):
        assert text in r.out


def test_db_from_environment(filled_db: Path) -> None:
    r = run_cli("traces", "--json", env={"OTEL_LLM_DB": str(filled_db)})
    assert r.code == 0, r.err
    assert len(json.loads(r.out)) == 3


def test_show_tree(filled_db: Path) -> None:
    r = run_cli("show", trace_hex(2), "--db", filled_db)
    assert r.code == 0, r.err
    for text in (
        "request",
        "answer",
        "retry",
        "gpt-b",
        "tokens 200→40",
        "$0.020000",
        "ERROR",
        "answer from gpt-b",
        "helpful",
        "label",
    ):
        assert text in r.out
    assert r.out.index("answer") < r.out.index("retry")  # children by start time


def test_show_accepts_a_unique_prefix(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    store = LocalStore(db)
    store.export(
        [make_record(0xABCD << 112, 1, "abcd", 0, 1), make_record(0xABCE << 112, 1, "abce", 0, 1)]
    )
    assert store.shutdown(5.0)
    r = run_cli("show", "ABCD", "--db", db, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["trace"]["name"] == "abcd"
    r = run_cli("show", "abc", "--db", db)
    assert r.code == 2 and one_line(r.err) and "not a trace id" in r.err  # too short
    r = run_cli("show", "0000", "--db", db)
    assert r.code == 2 and one_line(r.err) and "no trace" in r.err
    r = run_cli("show", "abcd", "--db", db.parent / "x.db")
    assert r.code == 2


def test_show_ambiguous_prefix_exits_2(filled_db: Path) -> None:
    r = run_cli("show", "0000", "--db", filled_db)
    assert r.code == 2 and one_line(r.err) and "ambiguous" in r.err


def test_show_json(filled_db: Path) -> None:
    r = run_cli("show", trace_hex(1), "--db", filled_db, "--json")
    assert r.code == 0, r.err
    detail = json.loads(r.out)
    assert detail["trace"]["name"] == "request"
    spans = {s["name"]: s for s in detail["spans"]}
    answer = spans["answer"]
    assert answer["parent_span_id"] == spans["request"]["span_id"] == span_hex(10)
    assert (answer["model"], answer["input_tokens"], answer["cost"]) == ("gpt-a", 100, 0.01)
    assert answer["attributes"]["gen_ai.request.model"] == "gpt-a"
    assert answer["duration_ms"] == 300.0 and spans["request"]["is_entry"] is True
    assert {(s["name"], s["observation_id"]) for s in detail["scores"]} == {
        ("quality", span_hex(11)),
        ("helpful", None),
    }


def test_show_html_is_one_self_contained_file(filled_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "trace.html"
    r = run_cli("show", trace_hex(2), "--db", filled_db, "--html", out)
    assert r.code == 0, r.err
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    for name in ("request", "answer", "retry"):
        assert f'<span class="name">{name}</span>' in html
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", html)
    assert "<style>" in html and "<script>" in html  # inline CSS and JS
    assert "hi &lt;b&gt;there&lt;/b&gt;" in html and "<b>there</b>" not in html  # escaped
    bars = re.findall(r'class="bar" style="left:([0-9.]+)%;width:([0-9.]+)%"', html)
    assert [(float(a), float(b)) for a, b in bars] == [(0.0, 100.0), (4.5, 25.0), (34.5, 5.0)]
    assert html.count('<details class="span') == 3


def test_stats_by_model(filled_db: Path) -> None:
    r = run_cli("stats", "--db", filled_db, "--by", "model", "--json")
    assert r.code == 0, r.err
    groups = {g["group"]: g for g in json.loads(r.out)["groups"]}
    a, b = groups["gpt-a"], groups["gpt-b"]
    assert (a["count"], a["input_tokens"], a["output_tokens"], a["errors"]) == (2, 150, 30, 1)
    assert a["cost"] == pytest.approx(0.015) and a["error_rate"] == 0.5
    assert (a["latency_p50_ms"], a["latency_p95_ms"]) == (200.0, 290.0)
    assert a["scores"] == {"quality": 1.0, "helpful": 0.5}
    assert (b["count"], b["input_tokens"], b["output_tokens"], b["cost"]) == (2, 210, 41, 0.02)
    assert (b["latency_p50_ms"], b["latency_p95_ms"], b["error_rate"]) == (350.0, 485.0, 0.0)


def test_stats_by_user(filled_db: Path) -> None:
    r = run_cli("stats", "--db", filled_db, "--by", "user", "--json")
    assert r.code == 0, r.err
    groups = {g["group"]: g for g in json.loads(r.out)["groups"]}
    alice, bob = groups["alice"], groups["bob"]
    assert (alice["count"], alice["input_tokens"], alice["output_tokens"]) == (2, 350, 70)
    assert alice["cost"] == pytest.approx(0.035) and alice["error_rate"] == 0.5
    assert (alice["latency_p50_ms"], alice["latency_p95_ms"]) == (1500.0, 1950.0)
    assert (bob["count"], bob["cost"], bob["latency_p50_ms"], bob["error_rate"]) == (
        1,
        None,
        500.0,
        0,
    )


@pytest.mark.parametrize(
    ("by", "groups"),
    [
        ("release", {"r1": 2, "r2": 1}),
        ("version", {"v1": 2, "v2": 1}),
        ("session", {"s1": 1, "s2": 1, "s3": 1}),
    ],
)
def test_stats_by_trace_fields(filled_db: Path, by: str, groups: dict[str, int]) -> None:
    r = run_cli("stats", "--db", filled_db, "--by", by, "--json")
    assert r.code == 0, r.err
    assert {g["group"]: g["count"] for g in json.loads(r.out)["groups"]} == groups


def test_stats_table(filled_db: Path) -> None:
    r = run_cli("stats", "--db", filled_db)
    assert r.code == 0, r.err
    for text in ("gpt-a", "gpt-b", "50.0%", "290.0 ms", "helpful=0.5"):
        assert text in r.out


def test_export_jsonl(filled_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    r = run_cli("export", "--db", filled_db, "--format", "jsonl", "-o", out)
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4  # one per generation, none for the agent spans
    keys = {
        "trace_id",
        "observation_id",
        "name",
        "model",
        "input",
        "output",
        "usage",
        "cost",
        "scores",
        "metadata",
        "user_id",
        "session_id",
        "start_time",
        "end_time",
    }
    assert all(keys <= line.keys() for line in lines)
    by_id = {line["observation_id"]: line for line in lines}
    first = by_id[span_hex(11)]
    assert first["trace_id"] == trace_hex(1) and first["model"] == "gpt-a"
    assert first["input"] == [{"role": "user", "content": "hi <b>there</b>"}]
    assert first["output"] == "answer from gpt-a"
    assert first["usage"] == {"input": 100, "output": 20, "total": 120}
    assert first["cost"] == {"total": 0.01}
    assert (first["user_id"], first["session_id"]) == ("alice", "s1")
    assert {(s["name"], s["on"]) for s in first["scores"]} == {
        ("quality", "observation"),
        ("helpful", "trace"),
    }
    retry = by_id[span_hex(22)]
    assert {(s["name"], s["value"], s["on"]) for s in retry["scores"]} == {
        ("helpful", 0.0, "trace"),
        ("label", "meh", "ancestor"),
    }
    assert retry["level"] == "ERROR" and retry["latency_ms"] == 100.0
    assert by_id[span_hex(31)]["scores"] == [] and by_id[span_hex(31)]["cost"] is None
    assert "4 generations" in r.out


def test_export_to_stdout(filled_db: Path) -> None:
    r = run_cli("export", "--db", filled_db, "--format", "jsonl")
    assert r.code == 0, r.err
    assert len([json.loads(line) for line in r.out.splitlines()]) == 4


# -- errors: exit 2, one line on stderr, no traceback ----------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "0" * 32], "no trace"),
        (["show", "not-hex"], "is not a trace id"),
        (["traces", "--limit", "0"], "--limit"),
        (["traces", "--limit", "x"], "--limit"),
        (["stats", "--by", "colour"], "--by"),
        (["export"], "--format"),
        (["export", "--format", "csv"], "--format"),
        (["frobnicate"], "frobnicate"),
        ([], "COMMAND"),
    ],
)
def test_bad_input_exits_2_with_one_line(filled_db: Path, args: list[str], message: str) -> None:
    r = run_cli(*args, "--db", filled_db) if args and args[0] != "frobnicate" else run_cli(*args)
    assert r.code == 2 and one_line(r.err), r.err
    assert message in r.err and r.out == ""


@pytest.mark.parametrize(
    "command", [["traces"], ["show", trace_hex(1)], ["stats"], ["export", "--format", "jsonl"]]
)
def test_missing_db_exits_2(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nope.db"
    r = run_cli(*command, "--db", missing)
    assert r.code == 2 and one_line(r.err) and "no database at" in r.err and str(missing) in r.err
    assert not missing.exists()  # reading never creates a database


def test_unreadable_db_exits_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 200)
    r = run_cli("traces", "--db", junk)
    assert r.code == 2 and one_line(r.err) and "not an otel-llm database" in r.err
    newer = tmp_path / "newer.db"
    fill(newer)
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    r = run_cli("traces", "--db", newer)
    assert r.code == 2 and one_line(r.err) and "newer than this otel-llm supports" in r.err


def test_html_into_missing_folder_exits_2(filled_db: Path, tmp_path: Path) -> None:
    r = run_cli("show", trace_hex(1), "--db", filled_db, "--html", tmp_path / "no" / "x.html")
    assert r.code == 2 and one_line(r.err) and "cannot write" in r.err


# -- check-config ----------------------------------------------------------------------------


def test_check_config_clean_environment(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    r = run_cli("check-config", "--json", env={"OTEL_LLM_DB": str(db)})
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["ok"] is True and report["problems"] == []
    assert report["destinations"] == [
        {"kind": "localstore", "name": "localstore", "path": str(db), "default": True}
    ]
    assert report["settings"]["environment"] == {
        "value": "default",
        "source": "default",
        "env": ["LANGFUSE_TRACING_ENVIRONMENT", "LANGFUSE_ENVIRONMENT"],
    }
    assert not db.exists()  # describing the default never creates it


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_check_config_bad_environment_name(json_flag: list[str]) -> None:
    r = run_cli("check-config", *json_flag, env={"LANGFUSE_TRACING_ENVIRONMENT": "Prod!"})
    assert r.code == 2 and one_line(r.err), r.err
    assert "LANGFUSE_TRACING_ENVIRONMENT" in r.err and "environment" in r.err
    if json_flag:
        report = json.loads(r.out)
        assert report["ok"] is False and report["settings"]["environment"]["source"] == "invalid"
        assert any("LANGFUSE_TRACING_ENVIRONMENT" in p for p in report["problems"])
    else:
        assert "LANGFUSE_TRACING_ENVIRONMENT" in r.out


SECRET = "sk-lf-0123456789-very-secret"
TOKEN = "apm-token-abcdef123456"
HEADER = "Bearer hdr-secret-987654"


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_check_config_never_prints_secrets(json_flag: list[str]) -> None:
    env = {
        "LANGFUSE_PUBLIC_KEY": "pk-lf-public-1",
        "LANGFUSE_SECRET_KEY": SECRET,
        "LANGFUSE_HOST": "http://127.0.0.1:9",
        "TENCENT_APM_TOKEN": TOKEN,  # endpoint missing: a problem, named
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization={HEADER}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
    }
    r = run_cli("check-config", *json_flag, env=env)
    for secret in (SECRET, TOKEN, HEADER, "hdr-secret-987654"):
        assert secret not in r.out and secret not in r.err
    assert r.code == 2 and one_line(r.err)
    assert "TENCENT_APM_ENDPOINT" in r.out and "[secure]" in r.out
    assert "pk-lf-public-1" in r.out and "langfuse" in r.out


def test_check_config_half_langfuse_is_a_problem() -> None:
    r = run_cli("check-config", "--json", env={"LANGFUSE_PUBLIC_KEY": "pk-lf-1"})
    assert r.code == 2
    assert any(p.startswith("LANGFUSE_SECRET_KEY") for p in json.loads(r.out)["problems"])


# -- demo --------------------------------------------------------------------------------------


def test_demo_stores_and_prints(tmp_path: Path) -> None:
    db = tmp_path / "demo" / "traces.db"
    r = run_cli("demo", "--db", db)
    assert r.code == 0, r.err
    with StoreReader(db) as reader:
        [trace] = reader.traces()
        detail = reader.trace(trace.trace_id)
    assert trace.span_count == len(detail.spans) == 8 and trace.user_id == "demo-user"
    assert {"travel-assistant", "chat", "flaky_translation"} <= {s.name for s in detail.spans}
    assert [s.name for s in detail.scores] == ["helpful"]
    for text in (
        trace.trace_id,
        "travel-assistant",
        "flaky_translation",
        "tokens and cost",
        "gpt-4o-mini",
        "localstore: exported 8, failed 0",
        str(db),
    ):
        assert text in r.out
    r = run_cli("show", trace.trace_id, "--db", db)
    assert r.code == 0 and "travel-assistant" in r.out


def test_demo_bad_db_exits_2(tmp_path: Path) -> None:
    r = run_cli("demo", "--db", tmp_path)
    assert r.code == 2 and one_line(r.err) and "directory" in r.err
