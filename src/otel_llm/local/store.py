"""The local store's writer: processed spans, scores and media into SQLite, on its own thread.

The processor's worker hands records over (:meth:`StoreWriter.submit`) and returns at
once: a bounded queue sits between them, and what does not fit is counted ``dropped``.
The writer thread drains the queue and writes each batch in one transaction: span rows
(``INSERT OR IGNORE``: a span delivered twice is stored once), the per-trace totals by
upsert, scores, and media bytes (``media/<sha256[:2]>/<sha256>`` beside the db, written
once). Readers in other processes see whole batches or nothing (WAL).

Row shapes and the schema live in :mod:`.store_schema`; reading in :mod:`.store_queries`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from otel_llm import semconv
from otel_llm.diagnostics import log_once, report
from otel_llm.forking import after_fork_in_child
from otel_llm.local.store_schema import (
    INSERT_SCORE,
    INSERT_SPAN,
    SpanRow,
    as_text,
    connect,
    media_path,
    score_row,
    span_row,
)
from otel_llm.processing.media_model import MediaPayload
from otel_llm.processing.record import SpanRecord
from otel_llm.scores import Score

__all__ = ["StoreWriter"]

_PREVIEW_CHARS: Final = 500
_MAX_TRANSACTION_SPANS: Final = 4096
_EXPLICIT, _ROOT, _ENTRY, _ANY = 4, 3, 2, 1
"""Preview ranks: set on the trace > the root span's > the entry span's > the earliest span's."""

_Count = Callable[[str, int], None]
_Item = Sequence[SpanRecord] | Score


def _preview(value: object) -> str | None:
    text = as_text(value)
    return text if text is None or len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "…"


@dataclass(slots=True)
class _Pick:
    """The best candidate so far for one trace-level field (name, input or output)."""

    value: str | None = None
    rank: int = 0
    start: int | None = None

    def offer(self, value: object, rank: int, start: int) -> None:
        if value is None or value == "":
            return
        if rank > self.rank or (
            rank == self.rank and (rank == _EXPLICIT or self.start is None or start < self.start)
        ):
            self.value, self.rank, self.start = _preview(value), rank, start


@dataclass(slots=True)
class _TraceTotals:
    start: int
    end: int
    latest: dict[str, str | None]
    name: _Pick
    input: _Pick
    output: _Pick
    spans: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None


_LATEST: Final = {
    "user_id": semconv.USER_ID,
    "session_id": semconv.SESSION_ID,
    "environment": semconv.ENVIRONMENT,
    "release": semconv.RELEASE,
    "version": semconv.VERSION,
    "tags": semconv.TRACE_TAGS,
    "metadata": semconv.TRACE_METADATA,
}


def _totals(records: Iterable[SpanRecord], rows: Mapping[int, SpanRow]) -> list[Any]:
    """Per-trace aggregates of newly stored spans, as ``traces`` upsert parameters."""
    out: dict[int, _TraceTotals] = {}
    for record in records:
        row = rows[id(record)]
        a = record.attributes
        t = out.get(record.trace_id)
        if t is None:
            t = out[record.trace_id] = _TraceTotals(
                record.start_time, record.end_time, {}, _Pick(), _Pick(), _Pick()
            )
        t.start, t.end = min(t.start, record.start_time), max(t.end, record.end_time)
        for column, key in _LATEST.items():
            value = a.get(key)
            if value is not None:
                t.latest[column] = as_text(list(value) if isinstance(value, tuple) else value)
        root = record.parent_span_id is None or record.parent_is_remote
        rank = _ROOT if root else _ENTRY if row.is_entry else _ANY
        start = record.start_time
        t.name.offer(a.get(semconv.TRACE_NAME), _EXPLICIT, start)
        t.name.offer(record.name, rank, start)
        t.input.offer(a.get(semconv.TRACE_INPUT), _EXPLICIT, start)
        t.input.offer(a.get(semconv.OBSERVATION_INPUT), rank, start)
        t.output.offer(a.get(semconv.TRACE_OUTPUT), _EXPLICIT, start)
        t.output.offer(a.get(semconv.OBSERVATION_OUTPUT), rank, start)
        t.spans += 1
        t.errors += row.is_error
        t.input_tokens += row.input_tokens or 0
        t.output_tokens += row.output_tokens or 0
        if row.cost is not None:
            t.cost = (t.cost or 0.0) + row.cost
    return [
        (
            f"{trace_id:032x}",
            t.start,
            t.end,
            *(t.latest.get(column) for column in _LATEST),
            t.spans,
            t.errors,
            t.input_tokens,
            t.output_tokens,
            t.cost,
            *(
                x
                for pick in (t.name, t.input, t.output)
                for x in (pick.value, pick.rank, pick.start)
            ),
        )
        for trace_id, t in out.items()
    ]


def _better(field: str) -> str:
    return (
        f"excluded.{field}_rank > {field}_rank OR (excluded.{field}_rank = {field}_rank "
        f"AND (excluded.{field}_rank = {_EXPLICIT} OR excluded.{field}_start < {field}_start))"
    )


def _pick_updates(field: str, column: str) -> str:
    better = _better(field)
    return ", ".join(
        f"{target} = CASE WHEN {better} THEN excluded.{target} ELSE {target} END"
        for target in (column, f"{field}_rank", f"{field}_start")
    )


_TRACE_COLUMNS: Final = (
    "trace_id",
    "start_ns",
    "end_ns",
    *_LATEST,
    "span_count",
    "error_count",
    "input_tokens",
    "output_tokens",
    "total_cost",
    *("name", "name_rank", "name_start"),
    *("input_preview", "input_rank", "input_start"),
    *("output_preview", "output_rank", "output_start"),
)
"""The order of the parameters ``_totals`` builds."""

_UPSERT_TRACE: Final = f"""
INSERT INTO traces ({", ".join(_TRACE_COLUMNS)})
VALUES ({", ".join("?" * len(_TRACE_COLUMNS))})
ON CONFLICT (trace_id) DO UPDATE SET
    start_ns = min(start_ns, excluded.start_ns),
    end_ns = max(end_ns, excluded.end_ns),
    {", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in _LATEST)},
    span_count = span_count + excluded.span_count,
    error_count = error_count + excluded.error_count,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    total_cost = CASE WHEN excluded.total_cost IS NULL THEN total_cost
        ELSE coalesce(total_cost, 0) + excluded.total_cost END,
    {_pick_updates("name", "name")},
    {_pick_updates("input", "input_preview")},
    {_pick_updates("output", "output_preview")}
"""


class StoreWriter:
    """A bounded queue and the one thread that writes it into the database at ``path``.

    ``count(key, n)`` reports ``exported``/``failed``/``dropped`` spans and
    ``scores_failed``, ``media_written``, ``media_failed`` (the destination's stats).
    """

    def __init__(
        self,
        path: Path,
        count: _Count,
        *,
        name: str = "localstore",
        max_queue_size: int = 16384,
        conn: sqlite3.Connection | None = None,
        keep_media: bool = True,
    ) -> None:
        self.path = path
        self._count = count
        self._name = name
        self._max_queue = max_queue_size
        self._conn = conn  # the writer thread's alone once it runs
        self._keep_media = keep_media
        self._closing = False
        self._start()
        after_fork_in_child(self._after_fork_in_child)

    def _start(self) -> None:
        self._cond = threading.Condition()
        self._items: deque[_Item] = deque()  # guarded by _cond, like the three below
        self._queued_spans = 0
        self._submitted = 0
        self._done = 0
        self._thread = threading.Thread(
            target=self._run, name=f"otel-llm-{self._name}-writer", daemon=True
        )
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The parent's queue is the parent's to write; its connection must not cross a fork.
        lost = self._queued_spans
        self._conn = None
        if not self._closing:
            self._start()
        if lost:
            self._count("dropped", lost)

    # -- the processor's worker thread ---------------------------------------------------
    def submit(self, records: Sequence[SpanRecord]) -> bool:
        """Queue ``records`` for writing; False (counted ``dropped``) when the queue is full."""
        with self._cond:
            if self._closing or self._queued_spans + len(records) > self._max_queue:
                full = not self._closing
            else:
                self._items.append(records)
                self._queued_spans += len(records)
                self._submitted += 1
                self._cond.notify()
                return True
        self._count("dropped", len(records))
        if full:
            log_once(self._name, "queue_full", "store queue full: spans dropped")
        return False

    def submit_score(self, score: Score) -> bool:
        with self._cond:
            if self._closing or len(self._items) >= self._max_queue:
                return False
            self._items.append(score)
            self._submitted += 1
            self._cond.notify()
            return True

    # -- any thread -----------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        """Wait until everything queued before this call is committed (or failed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float) -> bool:
        """Write what is queued, commit, close the database; True when done within timeout."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    # -- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                batch = self._take()
            if batch:
                self._write(batch)
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()
                if self._closing and not self._items:
                    break
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                report(f"{self._name}.close", exc)

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        spans = 0
        items = self._items
        while items and spans < _MAX_TRANSACTION_SPANS:
            item = items.popleft()
            batch.append(item)
            if not isinstance(item, Score):
                spans += len(item)
        self._queued_spans -= spans
        return batch

    def _write(self, batch: list[_Item]) -> None:
        records = [r for item in batch if not isinstance(item, Score) for r in item]
        scores = [item for item in batch if isinstance(item, Score)]
        for attempt in (1, 2):
            try:
                self._transaction(records, scores)
            except sqlite3.OperationalError as exc:
                if attempt == 1 and "locked" in str(exc):
                    continue  # another writer held the lock past busy_timeout: once more
                self._failed(records, scores, exc)
            except Exception as exc:
                self._failed(records, scores, exc)
            else:
                self._count("exported", len(records))
            return

    def _failed(self, records: list[SpanRecord], scores: list[Score], exc: Exception) -> None:
        self._count("failed", len(records))
        self._count("scores_failed", len(scores))
        kind = type(exc).__name__
        log_once(self._name, f"write.{kind}", f"writing {self.path} failed ({kind}: {exc})")
        if not isinstance(exc, sqlite3.Error):
            report(f"{self._name}.writer", exc)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(self.path)
        return self._conn

    def _transaction(self, records: list[SpanRecord], scores: list[Score]) -> None:
        conn = self._connection()
        rows = {id(r): span_row(r) for r in records}
        conn.execute("BEGIN IMMEDIATE")
        try:
            stored = [r for r in records if conn.execute(INSERT_SPAN, rows[id(r)]).rowcount]
            conn.executemany(_UPSERT_TRACE, _totals(stored, rows))
            conn.executemany(INSERT_SCORE, [score_row(s) for s in scores])
            for record in records if self._keep_media else ():
                for payload in record.extras.get("media") or ():
                    if isinstance(payload, MediaPayload):
                        self._store_media(conn, payload, record)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _store_media(
        self, conn: sqlite3.Connection, payload: MediaPayload, rec: SpanRecord
    ) -> None:
        sha = payload.sha256
        if conn.execute("SELECT 1 FROM media WHERE sha256 = ?", (sha,)).fetchone():
            return
        target = media_path(self.path, sha)
        try:
            if not target.is_file():
                if hashlib.sha256(payload.data).hexdigest() != sha:
                    raise ValueError("payload bytes do not match their sha256")
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{sha}.{os.getpid()}.{threading.get_ident()}")
                partial.write_bytes(payload.data)
                os.replace(partial, target)
                self._count("media_written", 1)
        except (OSError, ValueError) as exc:
            self._count("media_failed", 1)
            log_once(self._name, "media", f"media not stored ({type(exc).__name__})")
            return
        conn.execute(
            "INSERT INTO media (sha256, mime_type, size, path, trace_id, span_id, created_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                sha,
                payload.mime_type,
                payload.size,
                target.relative_to(self.path.parent).as_posix(),
                rec.trace_id_hex,
                rec.span_id_hex,
                time.time_ns(),
            ),
        )
