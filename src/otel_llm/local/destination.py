"""LocalStore: the embedded default destination, a SQLite file the ``otel-llm`` command reads.

With nothing else configured, traces land here, offline, with no account: run the
app, then ``otel-llm traces`` / ``show`` / ``stats`` / ``export``. The destination
itself only queues: a :class:`~otel_llm.local.store.StoreWriter` thread does the
writing, so neither the app thread nor the processor's worker waits on the disk.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from otel_llm.errors import ConfigError
from otel_llm.export.base import Destination
from otel_llm.local.store import StoreWriter
from otel_llm.local.store_schema import DB_ENV_VAR, StoreError, connect, resolve_db_path
from otel_llm.processing.record import SpanRecord
from otel_llm.scores import Score

__all__ = ["LocalStore"]

_DEFAULT_QUEUE_SIZE = 16384


class LocalStore(Destination):
    """Store every span, score and media payload in a local SQLite database.

    Args:
        path: the database file; default ``$OTEL_LLM_DB``, else ``traces.db`` in the
            user data dir (``platformdirs.user_data_dir("otel-llm")``). Its folder is
            created; media bytes go to ``media/`` beside it.
        max_queue_size: spans waiting for the writer; beyond it spans are dropped and
            counted (``stats()["destinations"][name]["dropped"]``).
        name, block_scopes, allow_scopes, sample_rate, capture_content: as for every
            destination.

    Raises:
        ConfigError: the file can't be created or opened as an otel-llm database
            (e.g. a folder, another kind of file, a schema newer than this code).
    """

    kind = "localstore"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_queue_size: int = _DEFAULT_QUEUE_SIZE,
        name: str | None = None,
        block_scopes: Iterable[str] = (),
        allow_scopes: Iterable[str] | None = None,
        sample_rate: float | None = None,
        capture_content: bool | None = None,
    ) -> None:
        super().__init__(
            name=name,
            block_scopes=block_scopes,
            allow_scopes=allow_scopes,
            sample_rate=sample_rate,
            capture_content=capture_content,
        )
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ConfigError("path", f"must be a file path, got {type(path).__name__}")
        if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, int):
            raise ConfigError("max_queue_size", "must be a positive integer")
        if max_queue_size <= 0:
            raise ConfigError("max_queue_size", "must be a positive integer")
        self._path = resolve_db_path(path)
        if path is not None and str(path):
            setting, source = "path", None
        elif os.environ.get(DB_ENV_VAR, "").strip():
            setting, source = DB_ENV_VAR, f"environment variable {DB_ENV_VAR}"
        else:
            setting, source = DB_ENV_VAR, "the default location"
        self._writer = StoreWriter(
            self._path,
            self._count,
            name=self.name,
            max_queue_size=max_queue_size,
            conn=_open(self._path, setting, source),
            keep_media=capture_content is not False,  # media bytes are content too
        )

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def _export(self, records: Sequence[SpanRecord]) -> bool | None:
        self._writer.submit(records)
        return None  # the writer counts exported / failed / dropped

    def _export_score(self, score: Score) -> bool:
        if self._writer.submit_score(score):
            return True
        self._count("scores_dropped")
        return False

    def _force_flush(self, timeout: float) -> bool:
        return self._writer.flush(timeout)

    def _shutdown(self, timeout: float) -> bool:
        return self._writer.close(timeout)

    def __repr__(self) -> str:
        return f"LocalStore(name={self.name!r}, path={str(self._path)!r})"

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "path": str(self._path)}


def _open(path: Path, setting: str, source: str | None) -> sqlite3.Connection:
    """Create the folder and open (creating or migrating) the file, or raise ConfigError."""
    try:
        if path.is_dir():
            raise StoreError("it is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        return connect(path)
    except (OSError, sqlite3.Error, StoreError) as exc:
        rule = f"cannot use {str(path)!r} as the local store database: {exc}"
        raise ConfigError(setting, rule, source=source) from None
