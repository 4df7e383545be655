"""Console: prints each finished trace as an indented tree, for local debugging.

Spans of a trace arrive in any order (children end first), so they are held
until the trace's local root arrives, then printed together. Whatever is still
held when the pipeline flushes is printed then, so nothing is silently kept.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from opentelemetry.trace.status import StatusCode

from otel_llm import semconv
from otel_llm.export.base import Destination
from otel_llm.processing.record import SpanRecord
from otel_llm.scores import Score

__all__ = ["Console", "format_tree"]

_MAX_PENDING_TRACES = 1000


class Console(Destination):
    """Print traces to ``stream`` (default: standard output)."""

    kind = "console"

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
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
        self._stream = stream
        self._pending: dict[int, list[SpanRecord]] = {}  # worker thread only

    def _export(self, records: Sequence[SpanRecord]) -> bool:
        done: list[int] = []
        for record in records:
            self._pending.setdefault(record.trace_id, []).append(record)
            if record.parent_span_id is None or record.parent_is_remote:
                done.append(record.trace_id)
        for trace_id in done:
            self._print(self._pending.pop(trace_id, []))
        while len(self._pending) > _MAX_PENDING_TRACES:
            self._print(self._pending.pop(next(iter(self._pending))))
        return True

    def _export_score(self, score: Score) -> bool:
        target = f"{score.trace_id}" + (f"/{score.observation_id}" if score.observation_id else "")
        self._write(f"score {score.name}={score.value!r} ({score.data_type}) on {target}\n")
        return True

    def _force_flush(self, timeout: float) -> bool:
        pending, self._pending = self._pending, {}
        for spans in pending.values():
            self._print(spans)
        return True

    def _print(self, spans: list[SpanRecord]) -> None:
        if spans:
            self._write(format_tree(spans))

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text)
        stream.flush()


def format_tree(spans: Sequence[SpanRecord]) -> str:
    """Render one trace's spans as text, children under parents in start order."""
    ids = {s.span_id for s in spans}
    children: dict[int | None, list[SpanRecord]] = {}
    for span in sorted(spans, key=lambda s: s.start_time):
        parent = span.parent_span_id if span.parent_span_id in ids else None
        children.setdefault(parent, []).append(span)
    lines = [f"trace {spans[0].trace_id_hex}"]

    def walk(parent: int | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for i, span in enumerate(kids):
            last = i == len(kids) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{_describe(span)}")
            walk(span.span_id, prefix + ("   " if last else "│  "))

    walk(None, "")
    return "\n".join(lines) + "\n"


def _describe(span: SpanRecord) -> str:
    attrs: dict[str, Any] = span.attributes
    parts = [span.name]
    kind = attrs.get(semconv.OBSERVATION_TYPE)
    if kind:
        parts.append(f"[{kind}]")
    model = attrs.get(semconv.GEN_AI_REQUEST_MODEL)
    if model:
        parts.append(str(model))
    parts.append(f"{(span.end_time - span.start_time) / 1e6:.1f} ms")
    tokens_in = attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS)
    tokens_out = attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)
    if tokens_in is not None or tokens_out is not None:
        parts.append(f"tokens {tokens_in or 0}→{tokens_out or 0}")
    cost = attrs.get(semconv.GEN_AI_USAGE_COST)
    if cost is not None:
        parts.append(f"${cost:.6f}")
    if attrs.get(semconv.GEN_AI_IS_ENTRY) is True:
        parts.append("(entry)")
    if span.status_code is StatusCode.ERROR:
        parts.append(f"ERROR: {span.status_description or ''}".rstrip(": "))
    return " ".join(parts)
