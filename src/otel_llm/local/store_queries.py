"""Reading the local store: trace lists, one trace, per-group stats, generations for export.

:class:`StoreReader` opens an existing file (never creating one) next to any running
writer: WAL gives it a consistent snapshot per query, ``busy_timeout`` rides out a
checkpoint. Results are small frozen dataclasses; ``as_dict()`` gives their JSON shape
(times as ISO 8601 UTC, durations in milliseconds), which ``--json`` prints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import orjson

from otel_llm import semconv
from otel_llm.local.store_schema import SpanRow, StoreError, open_for_reading

__all__ = [
    "GROUPINGS",
    "Generation",
    "GroupStats",
    "Grouping",
    "ScoreView",
    "SpanView",
    "StoreReader",
    "TraceDetail",
    "TraceSummary",
    "iso_time",
    "parse_json",
]

Grouping = Literal["model", "user", "session", "release", "version"]
GROUPINGS: Final[tuple[Grouping, ...]] = ("model", "user", "session", "release", "version")
_TRACE_COLUMN: Final = {
    "user": "user_id",
    "session": "session_id",
    "release": "release",
    "version": "version",
}
_TRACE_ID: Final = re.compile(r"[0-9a-f]{4,32}")


def iso_time(ns: int | None) -> str | None:
    """Epoch nanoseconds as ISO 8601 UTC with microseconds and ``Z``."""
    if ns is None:
        return None
    moment = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_json(text: object) -> Any:
    """A stored JSON value parsed; text that is not JSON (a plain string input) as it is."""
    if not isinstance(text, str):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def _timed(value: TraceSummary | SpanView) -> dict[str, Any]:
    """``as_dict`` of a value with ``start_ns``/``end_ns``: ISO times and a duration instead."""
    out = dataclasses.asdict(value)
    del out["start_ns"], out["end_ns"]
    out["start_time"] = iso_time(value.start_ns)
    out["end_time"] = iso_time(value.end_ns)
    out["duration_ms"] = _ms(value.end_ns - value.start_ns)
    return out


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    name: str | None
    start_ns: int
    end_ns: int
    user_id: str | None
    session_id: str | None
    environment: str | None
    release: str | None
    version: str | None
    tags: list[str]
    metadata: Any
    input_preview: str | None
    output_preview: str | None
    span_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    total_cost: float | None

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def as_dict(self) -> dict[str, Any]:
        return _timed(self)


@dataclass(frozen=True)
class SpanView:
    """One stored span: the promoted columns plus every attribute, event and resource value."""

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
    is_entry: bool
    scope: str | None
    service_name: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def is_error(self) -> bool:
        return self.status_code == "ERROR" or self.level == "ERROR"

    @property
    def input(self) -> Any:
        """The observation's input (parsed when it is JSON), or None."""
        return parse_json(self.attributes.get(semconv.OBSERVATION_INPUT))

    @property
    def output(self) -> Any:
        return parse_json(self.attributes.get(semconv.OBSERVATION_OUTPUT))

    @property
    def metadata(self) -> Any:
        return parse_json(self.attributes.get(semconv.OBSERVATION_METADATA))

    def as_dict(self) -> dict[str, Any]:
        return _timed(self)


@dataclass(frozen=True)
class ScoreView:
    id: str
    trace_id: str
    observation_id: str | None
    name: str
    value: float | str | None
    data_type: str
    comment: str | None
    timestamp_ns: int

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["timestamp_ns"]
        out["timestamp"] = iso_time(self.timestamp_ns)
        return out


@dataclass(frozen=True)
class TraceDetail:
    trace: TraceSummary
    spans: list[SpanView]
    scores: list[ScoreView]

    def as_dict(self) -> dict[str, Any]:
        return {
            "trace": self.trace.as_dict(),
            "spans": [s.as_dict() for s in self.spans],
            "scores": [s.as_dict() for s in self.scores],
        }


@dataclass(frozen=True)
class GroupStats:
    """Totals of one group: traces (``--by user|session|release|version``) or model calls."""

    group: str | None
    count: int
    input_tokens: int
    output_tokens: int
    cost: float | None
    latency_p50_ms: float
    latency_p95_ms: float
    errors: int
    scores: dict[str, float] = field(default_factory=dict)
    """Mean of each numeric/boolean score over the group's traces."""

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "error_rate": round(self.error_rate, 4)}


@dataclass(frozen=True)
class Generation:
    """A generation with its trace and the scores that judge it.

    ``scores`` pairs each score with what it was given on: ``"observation"`` (this
    generation), ``"ancestor"`` (an observation this generation ran inside) or ``"trace"``.
    """

    span: SpanView
    trace: TraceSummary
    scores: list[tuple[str, ScoreView]]


_SPAN_SELECT: Final = f"SELECT {', '.join(SpanRow._fields)} FROM spans"
_TRACE_SELECT: Final = (
    "SELECT trace_id, name, start_ns, end_ns, user_id, session_id, environment, release, "
    "version, tags, metadata, input_preview, output_preview, span_count, error_count, "
    "input_tokens, output_tokens, total_cost FROM traces"
)
_SCORE_SELECT: Final = (
    "SELECT id, trace_id, observation_id, name, value, string_value, data_type, comment, "
    "timestamp_ns FROM scores"
)


def _trace(row: sqlite3.Row) -> TraceSummary:
    values = dict(row)
    tags = parse_json(values["tags"])
    values["tags"] = [str(t) for t in tags] if isinstance(tags, list) else []
    values["metadata"] = parse_json(values["metadata"])
    return TraceSummary(**values)


def _span(row: sqlite3.Row) -> SpanView:
    values = dict(row)
    values["is_entry"] = bool(values["is_entry"])
    attributes = parse_json(values["attributes"])
    values["attributes"] = attributes if isinstance(attributes, dict) else {}
    values["events"] = parse_json(values["events"]) or []
    values["resource"] = parse_json(values["resource"]) or {}
    return SpanView(**values)


def _score(row: sqlite3.Row) -> ScoreView:
    values = dict(row)
    string_value = values.pop("string_value")
    if values["data_type"] == "CATEGORICAL":
        values["value"] = string_value
    return ScoreView(**values)


def _percentile(ordered: Sequence[int], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), in milliseconds."""
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return _ms(round(value))


class StoreReader:
    """Queries over an existing store file.

    Raises:
        StoreError: at construction when the file is missing or not a usable store; from
            :meth:`trace` when no trace matches.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = open_for_reading(path)
        self._conn.row_factory = sqlite3.Row

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None

    # -- traces -----------------------------------------------------------------------
    def traces(
        self, limit: int = 50, user: str | None = None, session: str | None = None
    ) -> list[TraceSummary]:
        """The latest traces first, optionally only one user's or one session's."""
        where, params = [], []
        if user is not None:
            where.append("user_id = ?")
            params.append(user)
        if session is not None:
            where.append("session_id = ?")
            params.append(session)
        sql = _TRACE_SELECT + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self._rows(sql + " ORDER BY start_ns DESC LIMIT ?", [*params, limit])
        return [_trace(r) for r in rows]

    def resolve_trace_id(self, text: str) -> str:
        """A full trace id from itself or a unique prefix (at least 4 hex digits)."""
        wanted = text.strip().lower().replace("-", "")
        if not _TRACE_ID.fullmatch(wanted):
            raise StoreError(f"{text!r} is not a trace id (32 hex digits, or a prefix of one)")
        upper = wanted + "g"  # every id with this prefix sorts below it
        rows = self._rows(
            "SELECT trace_id FROM traces WHERE trace_id >= ? AND trace_id < ? LIMIT 2",
            (wanted, upper),
        )
        if not rows:
            raise StoreError(f"no trace {text!r} in {self.path}")
        if len(rows) > 1:
            raise StoreError(f"trace id prefix {text!r} is ambiguous; give more digits")
        found: str = rows[0][0]
        return found

    def trace(self, trace_id: str) -> TraceDetail:
        """One trace with its spans (by start time) and scores (by time)."""
        full = self.resolve_trace_id(trace_id)
        trace = _trace(self._rows(_TRACE_SELECT + " WHERE trace_id = ?", (full,))[0])
        spans = self._rows(_SPAN_SELECT + " WHERE trace_id = ? ORDER BY start_ns", (full,))
        scores = self._rows(_SCORE_SELECT + " WHERE trace_id = ? ORDER BY timestamp_ns", (full,))
        return TraceDetail(trace, [_span(r) for r in spans], [_score(r) for r in scores])

    # -- stats ------------------------------------------------------------------------
    def stats(self, by: Grouping = "model") -> list[GroupStats]:
        """Tokens, cost, latency p50/p95, errors and mean scores per group.

        ``model`` groups model calls (spans with a model); the others group traces.
        """
        if by == "model":
            rows = self._rows(
                "SELECT model, end_ns - start_ns, input_tokens, output_tokens, cost, "
                "status_code = 'ERROR' OR level = 'ERROR' FROM spans WHERE model IS NOT NULL "
                "ORDER BY model"
            )
            score_rows = self._rows(
                "SELECT m.model, sc.name, avg(sc.value) FROM scores sc JOIN (SELECT DISTINCT "
                "trace_id, model FROM spans WHERE model IS NOT NULL) m USING (trace_id) "
                "WHERE sc.value IS NOT NULL GROUP BY 1, 2"
            )
        elif by in _TRACE_COLUMN:
            column = _TRACE_COLUMN[by]
            rows = self._rows(
                f"SELECT {column}, end_ns - start_ns, input_tokens, output_tokens, total_cost, "
                f"error_count > 0 FROM traces ORDER BY {column}"
            )
            score_rows = self._rows(
                f"SELECT t.{column}, sc.name, avg(sc.value) FROM scores sc JOIN traces t "
                "USING (trace_id) WHERE sc.value IS NOT NULL GROUP BY 1, 2"
            )
        else:
            raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
        groups: dict[str | None, list[sqlite3.Row]] = {}
        for row in rows:
            groups.setdefault(row[0], []).append(row)
        scores: dict[str | None, dict[str, float]] = {}
        for group, name, mean in score_rows:
            scores.setdefault(group, {})[name] = round(mean, 4)
        out = []
        for group, members in groups.items():
            durations = sorted(r[1] for r in members)
            costs = [r[4] for r in members if r[4] is not None]
            out.append(
                GroupStats(
                    group=group,
                    count=len(members),
                    input_tokens=sum(r[2] or 0 for r in members),
                    output_tokens=sum(r[3] or 0 for r in members),
                    cost=sum(costs) if costs else None,
                    latency_p50_ms=_percentile(durations, 0.5),
                    latency_p95_ms=_percentile(durations, 0.95),
                    errors=sum(bool(r[5]) for r in members),
                    scores=scores.get(group, {}),
                )
            )
        out.sort(key=lambda g: (g.group is None, g.group or ""))
        return out

    # -- dataset ----------------------------------------------------------------------
    def generations(self) -> Iterator[Generation]:
        """Every generation by start time, with its trace and the scores that apply to it."""
        context: dict[str, tuple[TraceSummary, list[ScoreView], dict[str, str | None]]] = {}
        try:
            cursor = self._conn.execute(
                _SPAN_SELECT + " WHERE type = 'generation' ORDER BY start_ns"
            )
            for row in cursor:
                span = _span(row)
                found = context.get(span.trace_id)
                if found is None:
                    if len(context) >= 256:
                        context.pop(next(iter(context)))
                    found = context[span.trace_id] = self._trace_context(span.trace_id)
                trace, scores, parents = found
                yield Generation(span, trace, _scores_for(span, scores, parents))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None

    def _trace_context(
        self, trace_id: str
    ) -> tuple[TraceSummary, list[ScoreView], dict[str, str | None]]:
        trace = _trace(self._rows(_TRACE_SELECT + " WHERE trace_id = ?", (trace_id,))[0])
        scores = [
            _score(r)
            for r in self._rows(
                _SCORE_SELECT + " WHERE trace_id = ? ORDER BY timestamp_ns", (trace_id,)
            )
        ]
        parents: dict[str, str | None] = {}
        if any(s.observation_id for s in scores):
            rows = self._rows(
                "SELECT span_id, parent_span_id FROM spans WHERE trace_id = ?", (trace_id,)
            )
            parents = {r[0]: r[1] for r in rows}
        return trace, scores, parents


def _scores_for(
    span: SpanView, scores: list[ScoreView], parents: dict[str, str | None]
) -> list[tuple[str, ScoreView]]:
    ancestors: set[str] = set()
    current = parents.get(span.span_id)
    while current is not None and current not in ancestors:
        ancestors.add(current)
        current = parents.get(current)
    out: list[tuple[str, ScoreView]] = []
    for score in scores:
        if score.observation_id is None:
            out.append(("trace", score))
        elif score.observation_id == span.span_id:
            out.append(("observation", score))
        elif score.observation_id in ancestors:
            out.append(("ancestor", score))
    return out
