"""The contract every processing stage follows.

A stage is a plain function ``stage(record, ctx) -> None`` run on the worker
thread: it changes only ``record``, reads settings and bumps counters through
``ctx``, does no I/O, takes no locks and never logs content. Adding a stage is one
function, one entry in the processor's tuple and one test file.

Stages run in this order: normalize → usage → cost → media → masking. Masking is
last so nothing a stage adds escapes it; media runs before it so large binary
payloads are not scanned by the scrubbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from otel_llm.processing.record import SpanRecord

if TYPE_CHECKING:
    from otel_llm.processing.cost import PriceBook
    from otel_llm.processing.masking import Masker
    from otel_llm.processing.media import MediaOptions

__all__ = ["Stage", "StageContext"]

T = TypeVar("T")
_MAX_SHAPES: Final = 256


@dataclass
class StageContext:
    """Settings and counters shared by the stages of one processor (worker thread only).

    Each stage owns the type of its own options (compiled once, at configure time,
    where a bad value raises ``ConfigError``); the context only carries them.
    """

    capture_content: bool = True
    """False: content attributes are removed after usage/cost were derived from them."""
    estimate_usage: bool = True
    """Estimate token counts with an offline tokenizer when a generation reports none."""
    max_content_chars: int = 1_000_000
    semconv_messages: bool = True
    """False: no destination reads the ``gen_ai.*`` messages normalize derives from our own
    input/output (``Destination.wants_semconv_messages``), so a generation of ours that
    has both gets none (the Langfuse dialect sends ``otel_llm.observation.*`` instead)."""
    masker: Masker | None = None
    prices: PriceBook | None = None
    media: MediaOptions | None = None
    counters: Counter[str] = field(default_factory=Counter)
    extras: dict[str, Any] = field(default_factory=dict)
    """Bounded worker-thread caches a stage keeps between records (keyed by its module)."""

    def count(self, key: str, n: int = 1) -> None:
        """Add to a counter shown in ``stats()["processing"]`` (worker thread only)."""
        self.counters[key] += n

    def per_key_set(
        self, slot: str, attributes: Mapping[str, Any], select: Callable[[tuple[str, ...]], T]
    ) -> T:
        """``select(keys)`` for the tuple of ``attributes``' keys, cached in ``extras[slot]``.

        Why: spans of one kind share their keys, so a stage that picks the keys it
        looks at (content, secret-looking) decides once per shape, not once per key
        per span. At most 256 shapes per slot (cleared when full).
        """
        cache: dict[tuple[str, ...], T] | None = self.extras.get(slot)
        if cache is None:
            cache = self.extras[slot] = {}
        keys = tuple(attributes)
        try:
            return cache[keys]
        except KeyError:
            pass
        found = select(keys)
        if len(cache) >= _MAX_SHAPES:
            cache.clear()
        cache[keys] = found
        return found


Stage = Callable[[SpanRecord, StageContext], None]
