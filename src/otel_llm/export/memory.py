"""InMemory: keeps exported spans and scores in lists, for tests and notebooks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry.sdk.trace import ReadableSpan

from otel_llm.errors import ConfigError
from otel_llm.export.base import Destination
from otel_llm.processing.record import SpanRecord, record_to_readable
from otel_llm.scores import Score

__all__ = ["InMemory"]

_DIALECTS = ("genai",)


class InMemory(Destination):
    """Collects spans exactly as a destination of this dialect would export them.

    ``spans`` holds ``ReadableSpan`` objects rebuilt from the processed records;
    ``scores`` holds :class:`otel_llm.scores.Score` objects. Both only grow until
    :meth:`clear`.
    """

    kind = "inmemory"

    def __init__(
        self,
        dialect: str = "genai",
        *,
        name: str | None = None,
        block_scopes: Iterable[str] = (),
        allow_scopes: Iterable[str] | None = None,
        sample_rate: float | None = None,
        capture_content: bool | None = None,
    ) -> None:
        if dialect not in _DIALECTS:
            raise ConfigError("dialect", f"{dialect!r} is not one of {', '.join(_DIALECTS)}")
        super().__init__(
            name=name,
            block_scopes=block_scopes,
            allow_scopes=allow_scopes,
            sample_rate=sample_rate,
            capture_content=capture_content,
        )
        self.dialect = dialect
        self.spans: list[ReadableSpan] = []
        self.scores: list[Score] = []

    def _export(self, records: Sequence[SpanRecord]) -> bool:
        self.spans.extend(record_to_readable(r) for r in records)
        return True

    def _export_score(self, score: Score) -> bool:
        self.scores.append(score)
        return True

    def clear(self) -> None:
        self.spans.clear()
        self.scores.clear()
