"""The processing stages in their order, and the context they share, built once.

Building compiles every stage's options (masking rules, price book, media limits),
so a bad option raises ``ConfigError`` at configure time, never on the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from otel_llm.processing.cost import compile_prices, derive_cost
from otel_llm.processing.masking import compile_masker, mask_record
from otel_llm.processing.media import compile_media_options, extract_media
from otel_llm.processing.normalize import normalize
from otel_llm.processing.stage import Stage, StageContext
from otel_llm.processing.usage import derive_usage

__all__ = ["DEFAULT_STAGES", "build_stage_context"]

DEFAULT_STAGES: tuple[Stage, ...] = (
    normalize,
    derive_usage,
    derive_cost,
    extract_media,
    mask_record,
)
"""normalize → usage → cost → media → masking: masking last, so nothing escapes it."""


def build_stage_context(
    *,
    mask: Callable[..., Any] | None = None,
    masking: bool | Mapping[str, Any] | None = None,
    pricing: Mapping[str, Any] | str | Path | None = None,
    media: bool | Mapping[str, Any] | None = None,
    capture_content: bool = True,
    estimate_usage: bool = True,
    max_content_chars: int = 1_000_000,
    semconv_messages: bool = True,
) -> StageContext:
    """Compile every stage's options; raises ``ConfigError`` naming a bad one."""
    return StageContext(
        capture_content=capture_content,
        estimate_usage=estimate_usage,
        max_content_chars=max_content_chars,
        semconv_messages=semconv_messages,
        masker=compile_masker(mask, masking),
        prices=compile_prices(pricing),
        media=compile_media_options(media),
    )
