"""LocalStore: a real pipeline into a real SQLite file, schema, concurrency, media, lifecycle."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Callable
from pathlib import Path

import orjson
import platformdirs
import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm import semconv
from otel_llm.errors import ConfigError
from otel_llm.local.destination import LocalStore
from otel_llm.local.store_queries import StoreReader
from otel_llm.local.store_schema import (
    SCHEMA_VERSION,
    StoreError,
    default_db_path,
    media_path,
    migrate,
    resolve_db_path,
)
from otel_llm.scores import Score

from .conftest import dataset_records, make_record, names, span_hex, trace_hex


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


# -- a real pipeline ---------------------------------------------------------------------


def test_an_agent_run_reporting_summed_usage_is_counted_once(tmp_path: Path) -> None:
    store = LocalStore(path=tmp_path / "traces.db")
    memory = otel_llm.InMemory()
    pipeline = otel_llm.configure(destinations=[store, memory], tracer_provider=TracerProvider())

    @otel_llm.observe(as_type="agent")
    def agent() -> str:
        for tokens_in, tokens_out in ((100, 20), (50, 10)):
            with otel_llm.start_generation("call", model="gpt-4o-mini") as generation:
                generation.update(output="ok", usage={"input": tokens_in, "output": tokens_out})
        # as agent frameworks do: the run's total, with the agent's model, on the agent span
        otel_llm.update_current_observation(model="gpt-4o-mini", usage={"input": 150, "output": 30})
        return "done"

    agent()
    assert pipeline.flush(10.0)
    spans = {span.attributes["gen_ai.operation.name"]: span for span in memory.spans}
    run, call = spans["invoke_agent"], spans["chat"]
    assert run.attributes["gen_ai.usage.input_tokens"] == 150  # reported as given
    assert "gen_ai.usage.cost" not in run.attributes and call.attributes["gen_ai.usage.cost"] > 0
    calls_cost = sum(s.attributes["gen_ai.usage.cost"] for s in memory.spans if s is not run)
    with StoreReader(store.path) as reader:
        [summary] = reader.traces()
        [by_model] = reader.stats("model")
    assert (summary.input_tokens, summary.output_tokens) == (150, 30)
    assert summary.total_cost == pytest.approx(calls_cost)
    assert (by_model.group, by_model.count, by_model.input_tokens) == ("gpt-4o-mini", 2, 150)


def test_round_trip_through_pipeline(tmp_path: Path) -> None:
    store = LocalStore(path=tmp_path / "traces.db")
    pipeline = otel_llm.configure(destinations=[store], tracer_provider=TracerProvider())

    seen: list[str | None] = []

    @otel_llm.observe(as_type="agent")
    def assistant(question: str) -> str:
        seen.append(otel_llm.get_current_trace_id())
        with otel_llm.start_generation(
            "llm-call", model="gpt-4o-mini", input=[{"role": "user", "content": question}]
        ) as generation:
            generation.update(output="Paris", usage={"input": 12, "output": 3})
            otel_llm.score("correct", True)
        otel_llm.update_current_trace(name="qa", tags=["geo"])
        return "Paris"

    with otel_llm.propagate_attributes(user_id="u-1", session_id="s-1", release="2.0"):
        assistant("capital of France?")
    assert pipeline.flush(10.0)
    stats = pipeline.stats()["destinations"]["localstore"]
    assert stats["exported"] == 2 and stats["failed"] == stats["dropped"] == 0
    assert stats["scores_exported"] == 1

    with StoreReader(store.path) as reader:
        [summary] = reader.traces()
        detail = reader.trace(summary.trace_id)
    assert [summary.trace_id] == seen
    assert summary.name == "qa" and summary.tags == ["geo"]
    assert (summary.user_id, summary.session_id, summary.release) == ("u-1", "s-1", "2.0")
    assert (summary.span_count, summary.error_count) == (2, 0)
    assert (summary.input_tokens, summary.output_tokens) == (12, 3)
    assert summary.total_cost is not None and summary.total_cost > 0
    assert summary.input_preview == '{"question":"capital of France?"}'
    spans = {s.name: s for s in detail.spans}
    assert names(detail.spans) == {"assistant", "llm-call"}
    gen, agent = spans["llm-call"], spans["assistant"]
    assert gen.parent_span_id == agent.span_id
    assert (gen.type, gen.model, gen.input_tokens, gen.output_tokens) == (
        "generation",
        "gpt-4o-mini",
        12,
        3,
    )
    assert gen.cost == gen.attributes[semconv.GEN_AI_USAGE_COST] and gen.level == "DEFAULT"
    assert gen.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 12  # canonical dialect kept
    assert gen.output == "Paris" and gen.input == [
        {"role": "user", "content": "capital of France?"}
    ]
    assert agent.is_entry and not gen.is_entry
    [score] = detail.scores
    assert (score.name, score.value, score.data_type) == ("correct", 1.0, "BOOLEAN")
    assert score.observation_id == gen.span_id
    pipeline.shutdown(5.0)


def test_processed_records_are_not_mutated(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db")
    records = dataset_records()
    before = [(r.attributes.copy(), r.extras.copy()) for r in records]
    store.export(records)
    assert store.shutdown(10.0)
    assert [(r.attributes, r.extras) for r in records] == before


# -- schema --------------------------------------------------------------------------------


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db")
    store.shutdown()
    with _db(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"traces", "spans", "scores", "media"} <= tables


def _version_1_file(path: Path) -> None:
    """A store as the first schema wrote it, holding one trace."""
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=1) == 1
    conn.execute(
        "INSERT INTO traces (trace_id, name, start_ns, end_ns, span_count) "
        "VALUES (?, 'old', 1, 2, 1)",
        (trace_hex(7),),
    )
    conn.execute(
        "INSERT INTO spans (trace_id, span_id, name, kind, start_ns, end_ns, status_code, level, "
        "attributes) VALUES (?, ?, 'old', 'INTERNAL', 1, 2, 'UNSET', 'DEFAULT', '{}')",
        (trace_hex(7), span_hex(70)),
    )
    conn.close()


def test_migration_from_version_1_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _version_1_file(path)
    with _db(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "media" not in tables  # really the old shape
    store = LocalStore(path)
    store.export([make_record(8, 80, "new", 0, 1)])
    assert store.shutdown(10.0)
    with _db(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"spans_by_model", "traces_by_release", "traces_by_version"} <= indexes
    with StoreReader(path) as reader:
        assert [t.name for t in reader.traces()] == ["new", "old"]


def test_reader_migrates_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _version_1_file(path)
    with StoreReader(path) as reader:
        assert reader.trace(trace_hex(7)).trace.name == "old"
    with _db(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    LocalStore(path).shutdown()
    with _db(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match="newer than this otel-llm supports"):
        LocalStore(path)
    with pytest.raises(StoreError, match="newer"):
        StoreReader(path)


def test_bad_paths_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^path: cannot use .* it is a directory"):
        LocalStore(tmp_path)
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello, not a database" * 100)
    with pytest.raises(ConfigError, match="path"):
        LocalStore(not_db)
    with pytest.raises(ConfigError, match="max_queue_size"):
        LocalStore(tmp_path / "x.db", max_queue_size=0)


def test_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_db_path() == Path(platformdirs.user_data_dir("otel-llm")) / "traces.db"
    monkeypatch.delenv("OTEL_LLM_DB")  # conftest points it at a per-test file
    assert resolve_db_path() == default_db_path()
    monkeypatch.setenv("OTEL_LLM_DB", str(tmp_path / "env.db"))
    store = LocalStore()
    assert store.path == tmp_path / "env.db" and store.path.is_file()
    assert LocalStore(tmp_path / "arg.db").path == tmp_path / "arg.db"
    assert store._describe() == {
        "kind": "localstore",
        "name": "localstore",
        "path": str(store.path),
    }
    monkeypatch.setenv("OTEL_LLM_DB", str(tmp_path))
    with pytest.raises(
        ConfigError, match=r"^OTEL_LLM_DB \(from environment variable OTEL_LLM_DB\)"
    ):
        LocalStore()


# -- the trace table -------------------------------------------------------------------------


def test_trace_totals_and_previews(filled_db: Path) -> None:
    with StoreReader(filled_db) as reader:
        by_id = {t.trace_id: t for t in reader.traces()}
    t1, t2, t3 = (by_id[trace_hex(i)] for i in (1, 2, 3))
    assert (t1.name, t2.name, t3.name) == ("request", "request", "nightly-batch")
    assert (t1.span_count, t1.error_count, t2.span_count, t2.error_count) == (2, 0, 3, 1)
    assert (t2.input_tokens, t2.output_tokens, t2.total_cost) == (250, 50, pytest.approx(0.025))
    assert t3.total_cost is None  # unpriced stays unknown, never 0
    assert t1.input_preview == '{"q":"first"}'  # the root's, not the child's
    assert t3.input_preview == '[{"role":"user","content":"hi <b>there</b>"}]'  # the only one
    assert t1.duration_ns == 1000 * 10**6 and t1.tags == ["t", "alice"]


def test_span_delivered_twice_is_stored_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db")
    record = make_record(5, 50, "once", 0, 10)
    store.export([record])
    store.export([record, make_record(5, 51, "twice", 1, 2, parent=50)])
    assert store.shutdown(10.0)
    assert store.stats()["exported"] == 3
    with StoreReader(store.path) as reader:
        [trace] = reader.traces()
        assert trace.span_count == 2 and len(reader.trace(trace.trace_id).spans) == 2


def test_score_with_same_id_is_replaced(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db")
    store.export([make_record(5, 50, "x", 0, 10)])
    store.export_score(Score("s", 1.0, "NUMERIC", trace_hex(5), id="fixed"))
    store.export_score(Score("s", 0.0, "NUMERIC", trace_hex(5), id="fixed"))
    assert store.shutdown(10.0)
    with StoreReader(store.path) as reader:
        assert [s.value for s in reader.trace(trace_hex(5)).scores] == [0.0]


# -- lifecycle -------------------------------------------------------------------------------


def test_overflow_is_counted_dropped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db", max_queue_size=2)
    store.export([make_record(5, 50 + i, "x", 0, 1) for i in range(3)])
    assert store.force_flush(5.0) and store.shutdown(5.0)
    assert store.stats()["dropped"] == 3 and store.stats()["exported"] == 0


def test_shutdown_commits_then_refuses(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db")
    store.export(dataset_records())
    assert store.shutdown(10.0) and store.shutdown(10.0)
    store.export([make_record(9, 90, "late", 0, 1)])
    assert store.stats()["dropped"] == 1
    with StoreReader(store.path) as reader:
        assert len(reader.traces()) == 3


def test_force_flush_waits_for_the_writer(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db")
    for i in range(20):
        store.export([make_record(100 + i, 1000 + i, "x", 0, 1)])
    assert store.force_flush(10.0)
    with StoreReader(store.path) as reader:  # visible before shutdown
        assert len(reader.traces(limit=100)) == 20
    store.shutdown()


def _in_fork(child: Callable[[], int]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = child()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_writes_with_its_own_thread_and_connection(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db")
    store.export([make_record(1, 10, "parent-before", 0, 1)])
    assert store.force_flush(5.0)

    def child() -> int:
        store.export([make_record(2, 20, "child", 0, 1)])
        return 0 if store.force_flush(5.0) and store.shutdown(5.0) else 1

    assert _in_fork(child) == 0
    store.export([make_record(3, 30, "parent-after", 0, 1)])
    assert store.shutdown(5.0)
    with StoreReader(store.path) as reader:
        assert {t.name for t in reader.traces()} == {"parent-before", "child", "parent-after"}


# -- concurrency -----------------------------------------------------------------------------

_READER = """
import sys, time
from pathlib import Path
from otel_llm.local.store_queries import StoreReader
from otel_llm.local.store_schema import StoreError
path = Path(sys.argv[1])
seen = []
StoreReader(path).close()
print("ready", flush=True)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        with StoreReader(path) as reader:
            traces = reader.traces(limit=1000)
            spans = sum(len(reader.trace(t.trace_id).spans) for t in traces[:3])
    except StoreError as exc:
        print("ERROR", exc, flush=True)
        sys.exit(1)
    seen.append(len(traces))
    if len(traces) >= int(sys.argv[2]):
        break
print(" ".join(map(str, seen)))
"""


def test_reader_process_while_the_app_writes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db")
    batches = 60
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_READER), str(store.path), str(batches)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
    for i in range(batches):
        root = make_record(1000 + i, 1, f"t{i}", i, i + 5)
        kids = [make_record(1000 + i, 2 + k, "child", i, i + 1, parent=1) for k in range(20)]
        store.export([*kids, root])
        assert store.force_flush(10.0)
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    counts = [int(n) for n in out.split()]
    assert counts == sorted(counts) and counts[-1] == batches  # whole batches, never less
    assert store.stats()["exported"] == batches * 21
    store.shutdown()


def test_reader_thread_while_the_writer_thread_writes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db")
    store.export([make_record(1, 1, "first", 0, 1)])
    assert store.force_flush(5.0)
    with StoreReader(store.path) as reader:
        for i in range(30):
            store.export([make_record(10 + i, 1, f"t{i}", 0, 1)])
            count = len(reader.traces(limit=100))
            assert 1 <= count <= i + 2
    store.shutdown()


# -- media -----------------------------------------------------------------------------------


def test_media_bytes_are_written_once_by_hash(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db")
    pipeline = otel_llm.configure(destinations=[store], tracer_provider=TracerProvider())
    image = os.urandom(4096)
    uri = "data:image/png;base64," + base64.b64encode(image).decode()
    for name in ("first", "second"):
        with otel_llm.start_generation(
            name, model="gpt-4o", input=[{"role": "user", "content": uri}]
        ):
            pass
    assert pipeline.flush(10.0)
    stats = pipeline.stats()["destinations"]["localstore"]
    assert stats["media_written"] == 1 and "media_failed" not in stats
    sha = hashlib.sha256(image).hexdigest()
    target = media_path(store.path, sha)
    assert target == tmp_path / "media" / sha[:2] / sha
    assert target.read_bytes() == image
    files = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert files == [target]
    with _db(store.path) as conn:
        rows = conn.execute("SELECT sha256, mime_type, size, path FROM media").fetchall()
        attrs = [orjson.loads(r[0]) for r in conn.execute("SELECT attributes FROM spans")]
    assert rows == [(sha, "image/png", 4096, f"media/{sha[:2]}/{sha}")]
    for a in attrs:  # the span keeps the reference, not the base64
        assert (
            f"sha256={sha}" in a[semconv.OBSERVATION_INPUT]
            and "base64," not in a[semconv.OBSERVATION_INPUT]
        )
    pipeline.shutdown(5.0)


def test_no_media_bytes_without_content(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t.db", capture_content=False)
    pipeline = otel_llm.configure(destinations=[store], tracer_provider=TracerProvider())
    uri = "data:image/png;base64," + base64.b64encode(os.urandom(4096)).decode()
    with otel_llm.start_generation("g", model="gpt-4o", input=[{"role": "user", "content": uri}]):
        pass
    assert pipeline.flush(10.0)
    assert "media_written" not in pipeline.stats()["destinations"]["localstore"]
    assert not (tmp_path / "media").exists()
    with _db(store.path) as conn:
        [attributes] = [orjson.loads(r[0]) for r in conn.execute("SELECT attributes FROM spans")]
    assert semconv.OBSERVATION_INPUT not in attributes
    pipeline.shutdown(5.0)
