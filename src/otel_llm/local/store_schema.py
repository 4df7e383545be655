"""The local store's SQLite schema: tables and migrations, connections, and the row shapes.

The schema version lives in ``PRAGMA user_version``. :data:`MIGRATIONS` lists the
steps from an empty file to :data:`SCHEMA_VERSION`; :func:`migrate` applies the
missing ones, each in its own ``BEGIN IMMEDIATE`` transaction (so two processes
opening an old file at once migrate it once). Steps only add: a reader or writer
built for an older version keeps working on a newer file, and a file newer than
this code refuses to open with :class:`StoreError` rather than be misread.

Every connection is in WAL mode with a ``busy_timeout``, so a CLI reading the
file while an app writes it neither blocks the writer nor sees a half batch.

Rows: a processed span is stored in the canonical dialect, every attribute as JSON,
with the facts the views filter, group and sort by promoted to columns (:class:`SpanRow`).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any, Final, NamedTuple

import orjson

from otel_llm import semconv
from otel_llm.processing.record import SpanRecord
from otel_llm.scores import Score
from otel_llm.serialize import to_json

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_ENV_VAR",
    "INSERT_SCORE",
    "INSERT_SPAN",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SpanRow",
    "StoreError",
    "as_text",
    "connect",
    "default_db_path",
    "media_path",
    "migrate",
    "open_for_reading",
    "resolve_db_path",
    "schema_version",
    "score_row",
    "span_row",
]

DB_ENV_VAR: Final = "OTEL_LLM_DB"
BUSY_TIMEOUT_MS: Final = 5000

_V1: Final = (
    """CREATE TABLE traces (
        trace_id TEXT PRIMARY KEY,
        name TEXT,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        user_id TEXT,
        session_id TEXT,
        environment TEXT,
        release TEXT,
        version TEXT,
        tags TEXT,
        metadata TEXT,
        input_preview TEXT,
        output_preview TEXT,
        span_count INTEGER NOT NULL DEFAULT 0,
        error_count INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        total_cost REAL,
        name_rank INTEGER NOT NULL DEFAULT 0,
        name_start INTEGER,
        input_rank INTEGER NOT NULL DEFAULT 0,
        input_start INTEGER,
        output_rank INTEGER NOT NULL DEFAULT 0,
        output_start INTEGER
    )""",
    "CREATE INDEX traces_by_start ON traces (start_ns)",
    "CREATE INDEX traces_by_user ON traces (user_id, start_ns)",
    "CREATE INDEX traces_by_session ON traces (session_id, start_ns)",
    """CREATE TABLE spans (
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_span_id TEXT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        type TEXT,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        status_code TEXT NOT NULL,
        status_message TEXT,
        level TEXT NOT NULL,
        model TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cost REAL,
        user_id TEXT,
        session_id TEXT,
        environment TEXT,
        release TEXT,
        version TEXT,
        is_entry INTEGER NOT NULL DEFAULT 0,
        scope TEXT,
        service_name TEXT,
        attributes TEXT NOT NULL,
        events TEXT,
        resource TEXT,
        PRIMARY KEY (trace_id, span_id)
    )""",
    "CREATE INDEX spans_by_start ON spans (start_ns)",
    "CREATE INDEX spans_by_user ON spans (user_id, start_ns)",
    "CREATE INDEX spans_by_session ON spans (session_id, start_ns)",
    """CREATE TABLE scores (
        id TEXT PRIMARY KEY,
        trace_id TEXT NOT NULL,
        observation_id TEXT,
        name TEXT NOT NULL,
        value REAL,
        string_value TEXT,
        data_type TEXT NOT NULL,
        comment TEXT,
        timestamp_ns INTEGER NOT NULL
    )""",
    "CREATE INDEX scores_by_trace ON scores (trace_id, observation_id)",
)
"""Version 1: traces, spans and scores, indexed for listing by time, user and session."""

_V2: Final = (
    """CREATE TABLE media (
        sha256 TEXT PRIMARY KEY,
        mime_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        path TEXT NOT NULL,
        trace_id TEXT,
        span_id TEXT,
        created_ns INTEGER NOT NULL
    )""",
    "CREATE INDEX spans_by_model ON spans (model, start_ns) WHERE model IS NOT NULL",
    "CREATE INDEX spans_generations ON spans (start_ns) WHERE type = 'generation'",
    "CREATE INDEX traces_by_release ON traces (release, start_ns)",
    "CREATE INDEX traces_by_version ON traces (version, start_ns)",
)
"""Version 2: media kept by content hash, and indexes for ``stats --by model|release|version``
and the dataset export."""

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1, _V2)
"""``MIGRATIONS[n - 1]`` takes a file from version ``n - 1`` to ``n``."""
SCHEMA_VERSION: Final = len(MIGRATIONS)


class StoreError(Exception):
    """The database can't be used: missing, not ours, newer than this code, unreadable."""


def default_db_path() -> Path:
    """``<user data dir>/otel-llm/traces.db`` (e.g. ``~/.local/share/otel-llm`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("otel-llm")) / "traces.db"


def resolve_db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The argument, else ``$OTEL_LLM_DB`` (empty = unset), else :func:`default_db_path`."""
    if path is not None and str(path):
        return Path(path).expanduser()
    env = os.environ.get(DB_ENV_VAR, "").strip()
    return Path(env).expanduser() if env else default_db_path()


def media_path(db_path: Path, sha256: str) -> Path:
    """Where the bytes of one media payload live: ``media/<sha256[:2]>/<sha256>`` beside the db."""
    return db_path.parent / "media" / sha256[:2] / sha256


def connect(path: Path) -> sqlite3.Connection:
    """A read-write connection in WAL mode, creating the file, migrated to the current schema."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def open_for_reading(path: Path) -> sqlite3.Connection:
    """A connection to an existing store (never creates one); older schemas are migrated.

    Raises:
        StoreError: no file there, not an otel-llm database, or a newer schema.
    """
    if not path.is_file():
        raise StoreError(f"no database at {path} (run your app or `otel-llm demo` first)")
    uri = path.resolve().as_uri()
    try:
        conn = sqlite3.connect(f"{uri}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.OperationalError:  # a read-only file or folder: read it as it is
        conn = _read_only(uri, path)
        _check_version(conn, path, migrate_ok=False)
        return conn
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _check_version(conn, path, migrate_ok=True)
    except BaseException:
        conn.close()
        raise
    return conn


def _read_only(uri: str, path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from None
    return conn


def _check_version(conn: sqlite3.Connection, path: Path, *, migrate_ok: bool) -> None:
    try:
        version = schema_version(conn)
        has_tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'traces'"
        ).fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not an otel-llm database ({exc})") from None
    if version == 0 or not has_tables:
        raise StoreError(f"{path} is not an otel-llm database")
    if version > SCHEMA_VERSION:
        raise StoreError(_newer(path, version))
    if version < SCHEMA_VERSION:
        if not migrate_ok:
            raise StoreError(f"{path} has schema {version} and is read-only: cannot upgrade it")
        try:
            migrate(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot upgrade {path}: {exc}") from None


def _newer(path: Path, version: int) -> str:
    return (
        f"{path} has schema version {version}, newer than this otel-llm supports "
        f"({SCHEMA_VERSION}); upgrade otel-llm"
    )


def schema_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the file to ``target`` (default: the current schema); return the version reached.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Each step runs in
    its own immediate transaction, re-reading the version inside it, so concurrent
    openers never apply a step twice.

    Raises:
        StoreError: the file's schema is newer than this code knows.
    """
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"target must be between 0 and {SCHEMA_VERSION}, got {target}")
    while True:
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(_newer(Path(_db_file(conn)), version))
        if version >= target:
            return version
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) == version:  # nobody migrated while we waited
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _db_file(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row and row[2] else "database"


# -- rows: how a processed record and a score are stored ---------------------------------
def _json(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return to_json(value, max_chars=2**31)


def as_text(value: object) -> str | None:
    """A value as stored in a text column: strings as they are, anything else as JSON."""
    if value is None:
        return None
    return value if isinstance(value, str) else _json(value)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class SpanRow(NamedTuple):
    """One ``spans`` row: promoted columns, then attributes, events and resource as JSON."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    type: str | None
    start_ns: int
    end_ns: int
    status_code: str
    status_message: str | None
    level: str
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    user_id: str | None
    session_id: str | None
    environment: str | None
    release: str | None
    version: str | None
    is_entry: int
    scope: str | None
    service_name: str | None
    attributes: str
    events: str | None
    resource: str | None

    @property
    def is_error(self) -> bool:
        return self.status_code == "ERROR" or self.level == "ERROR"


def span_row(record: SpanRecord) -> SpanRow:
    """The ``spans`` row for one record (the record is only read)."""
    a = record.attributes
    status = record.status_code.name
    level = a.get(semconv.OBSERVATION_LEVEL)
    if level not in semconv.LEVELS:
        level = "ERROR" if status == "ERROR" else "DEFAULT"
    model = a.get(semconv.GEN_AI_RESPONSE_MODEL) or a.get(semconv.GEN_AI_REQUEST_MODEL)
    # An agent's run sums its model calls: its own columns stay empty, so trace totals
    # and per-model stats count each call once (its attributes keep what it reported).
    aggregate = a.get(semconv.GEN_AI_OPERATION_NAME) in semconv.AGGREGATE_OPERATIONS
    events = [
        {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
        for e in record.events
    ]
    resource = dict(record.resource.attributes)
    parent = record.parent_span_id
    return SpanRow(
        trace_id=record.trace_id_hex,
        span_id=record.span_id_hex,
        parent_span_id=None if parent is None else f"{parent:016x}",
        name=record.name,
        kind=record.kind.name,
        type=as_text(a.get(semconv.OBSERVATION_TYPE)),
        start_ns=record.start_time,
        end_ns=record.end_time,
        status_code=status,
        status_message=record.status_description
        or as_text(a.get(semconv.OBSERVATION_STATUS_MESSAGE)),
        level=str(level),
        model=as_text(model) if model and not aggregate else None,
        input_tokens=None if aggregate else _int(a.get(semconv.GEN_AI_USAGE_INPUT_TOKENS)),
        output_tokens=None if aggregate else _int(a.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)),
        cost=None if aggregate else _float(a.get(semconv.GEN_AI_USAGE_COST)),
        user_id=as_text(a.get(semconv.USER_ID)),
        session_id=as_text(a.get(semconv.SESSION_ID)),
        environment=as_text(a.get(semconv.ENVIRONMENT)),
        release=as_text(a.get(semconv.RELEASE)),
        version=as_text(a.get(semconv.VERSION)),
        is_entry=1 if a.get(semconv.GEN_AI_IS_ENTRY) is True else 0,
        scope=record.scope.name if record.scope else None,
        service_name=as_text(resource.get("service.name")),
        attributes=_json(a),
        events=_json(events) if events else None,
        resource=_json(resource) if resource else None,
    )


INSERT_SPAN: Final = (
    f"INSERT OR IGNORE INTO spans ({', '.join(SpanRow._fields)}) "
    f"VALUES ({', '.join('?' * len(SpanRow._fields))})"
)


INSERT_SCORE: Final = (
    "INSERT OR REPLACE INTO scores (id, trace_id, observation_id, name, value, string_value, "
    "data_type, comment, timestamp_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def score_row(score: Score) -> tuple[Any, ...]:
    categorical = score.data_type == "CATEGORICAL"
    return (
        score.id or uuid.uuid4().hex,
        score.trace_id,
        score.observation_id,
        score.name,
        None if categorical else _float(score.value),
        str(score.value) if categorical else None,
        score.data_type,
        score.comment,
        int(score.timestamp * 1e9),
    )
