"""Offline token estimates for generations that report no usage.

Some calls never get usage back (streams without ``include_usage``, providers that
omit it, hand-written generations). An estimate, clearly flagged, beats a missing
count: cost and dashboards stay usable. Three constraints shape this module:

- **Offline.** tiktoken downloads its BPE files at first use and fails without a
  network. ``splintr-rs`` (MIT, one abi3 wheel per platform, no dependencies) ships
  ``o200k_base`` and ``cl100k_base`` inside its extension module; its counts equal
  tiktoken's on a mixed corpus when both use the same (hash-checked) vocabulary.
- **Cheap and bounded.** A vocabulary is loaded on first use, on the worker thread,
  and kept by the estimator (one per processor). Past ``MAX_EXACT_CHARS`` of text per
  call the rest is counted with the heuristic, so a huge prompt costs O(len).
- **Never fails.** Without the package, or if it refuses a text, we fall back to
  ``ceil(utf8 bytes / 4)`` — OpenAI's rule of thumb for English — and say so.

OpenAI models map to their encoding the way tiktoken does (``cl100k_base`` for
gpt-4 / gpt-3.5 / text-embedding-*, ``o200k_base`` for gpt-4o, gpt-4.1, gpt-4.5,
gpt-5 and the o-series). Every other model is counted with ``o200k_base`` as an
approximation: other vocabularies differ by roughly ±20% on English text.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from otel_llm.diagnostics import log_once

__all__ = [
    "HEURISTIC",
    "MAX_EXACT_CHARS",
    "Estimate",
    "TokenEstimator",
    "encoding_for_model",
    "heuristic_tokens",
]

HEURISTIC = "heuristic"
"""The ``Estimate.encoding`` of counts made without a tokenizer."""
MAX_EXACT_CHARS = 200_000
"""Characters per estimate counted with the tokenizer; the rest uses the heuristic."""

_O200K = "o200k_base"
_CL100K = "cl100k_base"
_CL100K_PREFIXES = (
    "gpt-4-",
    "gpt-3.5",
    "gpt-35",
    "text-embedding-",
    "davinci-002",
    "babbage-002",
    "ft:gpt-4:",
    "ft:gpt-4-",
    "ft:gpt-3.5",
    "ft:davinci-002",
    "ft:babbage-002",
)
# Tokens the chat format adds per message and to prime the reply (OpenAI cookbook).
_PER_MESSAGE = 3
_REPLY_PRIMING = 3
# Structure, not text the model reads as tokens.
_SKIPPED_KEYS = frozenset({"type", "finish_reason", "mime_type", "modality"})
_MEDIA_PART_TYPES = frozenset(
    {"blob", "file", "uri", "image", "image_url", "input_image", "input_audio", "input_file"}
)


class _Encoder(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


Loader = Callable[[str], _Encoder]


@dataclass(frozen=True, slots=True)
class Estimate:
    """Estimated token counts; None where there was no content to count."""

    input_tokens: int | None
    output_tokens: int | None
    encoding: str
    """The vocabulary used, or ``HEURISTIC`` when the tokenizer was unavailable."""


def encoding_for_model(model: str | None) -> str:
    """The tiktoken encoding name for ``model`` (``o200k_base`` when unknown)."""
    if not model:
        return _O200K
    name = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4" and Azure-style prefixes
    if name == "gpt-4" or name.startswith(_CL100K_PREFIXES):
        return _CL100K
    return _O200K


def heuristic_tokens(text: str) -> int:
    """``ceil(len(utf8 bytes) / 4)``: the fallback when no tokenizer can count."""
    return (len(text.encode("utf-8", "surrogatepass")) + 3) // 4


def _load_splintr(name: str) -> _Encoder:
    module: Any = importlib.import_module("splintr")
    encoder: _Encoder = module.Tokenizer.from_pretrained(name)
    return encoder


class TokenEstimator:
    """Counts tokens of span content with lazily loaded vocabularies.

    One per processor, used by the worker thread only (it is not thread-safe).

    Args:
        loader: builds the encoder for an encoding name; the default loads
            ``splintr``. Raising makes that encoding fall back to the heuristic.
        max_exact_chars: characters per :meth:`estimate` given to the tokenizer.
    """

    def __init__(
        self, loader: Loader | None = None, *, max_exact_chars: int = MAX_EXACT_CHARS
    ) -> None:
        self._loader: Loader = loader or _load_splintr
        self._max_exact_chars = max_exact_chars
        self._encoders: dict[str, _Encoder | None] = {}

    def estimate(
        self, inputs: Sequence[object], output: object | None, model: str | None
    ) -> Estimate:
        """Estimate input tokens of ``inputs`` and output tokens of ``output``.

        Values are span attribute values: chat message lists as JSON text are
        counted message by message (text only, plus the chat format's per-message
        tokens); any other value is counted as the text it is.
        """
        name = encoding_for_model(model)
        encoder = self._encoder(name)
        count = _Count(encoder, self._max_exact_chars)
        input_tokens = messages = None
        for value in inputs:
            if value is not None:
                tokens, n = _value_tokens(value, count)
                input_tokens = (input_tokens or 0) + tokens
                messages = (messages or 0) + n
        if input_tokens is not None and messages:
            input_tokens += _PER_MESSAGE * messages + _REPLY_PRIMING
        output_tokens = None if output is None else _value_tokens(output, count)[0]
        return Estimate(input_tokens, output_tokens, name if encoder is not None else HEURISTIC)

    def _encoder(self, name: str) -> _Encoder | None:
        if name in self._encoders:
            return self._encoders[name]
        encoder: _Encoder | None
        try:
            encoder = self._loader(name)
        except Exception as exc:  # ImportError, or a broken/incompatible wheel
            encoder = None
            log_once(
                "usage",
                f"tokenizer_unavailable.{type(exc).__name__}",
                f"offline tokenizer (splintr-rs) unavailable for {name}; token estimates "
                "use ceil(utf8 bytes / 4)",
            )
        self._encoders[name] = encoder
        return encoder


class _Count:
    """Counts text with ``encoder`` until the exact-character budget is spent."""

    __slots__ = ("_budget", "_encoder")

    def __init__(self, encoder: _Encoder | None, budget: int) -> None:
        self._encoder = encoder
        self._budget = budget

    @property
    def remaining(self) -> int:
        return self._budget

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        encoder = self._encoder
        if encoder is None or len(text) > self._budget:
            return heuristic_tokens(text)
        self._budget -= len(text)
        try:
            return len(encoder.encode_ordinary(text))
        except Exception:  # e.g. lone surrogates the Rust side cannot take
            return heuristic_tokens(text)


def _value_tokens(value: object, count: _Count) -> tuple[int, int]:
    """Tokens of one attribute value, and how many chat messages it held."""
    if not isinstance(value, str):
        value = str(value)
    if len(value) > count.remaining:
        return heuristic_tokens(value), 0  # too big to parse and tokenize cheaply
    text = value.lstrip()
    if not text.startswith(("[", "{")):
        return count(value), 0
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return count(value), 0
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list) or not parsed or not all(isinstance(m, dict) for m in parsed):
        return count(value), 0
    messages = sum(1 for m in parsed if "role" in m)
    if not messages and not all("content" in m or "parts" in m for m in parsed):
        return count(value), 0  # JSON, but not chat content: count it as written
    # A list of parts without roles (system instructions) is one message.
    return sum(_leaves_tokens(m, count) for m in parsed), messages or 1


def _leaves_tokens(root: object, count: _Count) -> int:
    """Tokens of the text in one message: string leaves, minus structure and media."""
    total = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if not node.startswith("data:"):  # inline media is not text tokens
                total += count(node)
        elif isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and kind in _MEDIA_PART_TYPES:
                continue
            stack.extend(v for k, v in node.items() if k not in _SKIPPED_KEYS)
        elif isinstance(node, list):
            stack.extend(node)
    return total
