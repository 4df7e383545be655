"""The normalize stage: foreign dialects → the canonical attributes later stages read.

Why: usage, cost, masking, media and every destination speak one vocabulary —
semconv v1.41 ``gen_ai.*`` plus our ``otel_llm.*`` — but spans also arrive from
the Langfuse SDK (v3+), OpenLLMetry/Traceloop, OpenInference and
instrumentations on older semconv (``gen_ai.system``,
``gen_ai.usage.prompt_tokens``, message events). Translating them once, first,
keeps every other stage and dialect free of foreign keys.

Rules, for every dialect:

- a canonical key that is already present wins (nothing is overwritten);
- foreign *content* (input, output, messages, metadata) that was translated, or
  whose canonical key already existed, is removed so content is never sent (or
  masked) twice; other foreign keys stay for their own backends, except
  ``langfuse.*`` ones, which the Langfuse dialect writes again from ours;
- malformed foreign data is counted as ``normalize.invalid.<dialect>`` and left
  where it was; nothing raises (a bug of ours is counted as
  ``normalize.error.<part>`` and logged once);
- a span whose keys are all known not to be foreign costs one set check (plus,
  for a generation, deriving its messages from its input/output).

Also: a span with ``gen_ai.operation.name`` but none of our types gets the
matching type (``chat`` → generation, …), so third-party generations are
estimated and priced like ours; and every generation whose input/output is a
chat (OpenAI, Anthropic, Gemini, LangChain shapes) gets semconv messages —
unless no destination reads them (``ctx.semconv_messages`` False) and the
generation came with both ``otel_llm.observation.input`` and ``.output`` of ours
(not translated from a foreign dialect): the Langfuse dialect then sends those and
drops the messages, so deriving them (and masking them) would be work thrown away.
Token estimation derives them on demand (:func:`generation_messages`), so estimates
do not depend on it.

Running the stage twice gives the same record. Provider names follow semconv:
see :mod:`otel_llm.processing.normalize_providers` for the value table and the
model-name inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter, methodcaller
from typing import Any, Final

from otel_llm import semconv
from otel_llm.diagnostics import guard
from otel_llm.instrument.fields import MODEL_PARAMETER_KEYS
from otel_llm.processing import normalize_dialects as dialects
from otel_llm.processing.normalize_common import Families, invalid, set_chat, set_json
from otel_llm.processing.normalize_langfuse import langfuse
from otel_llm.processing.normalize_messages import (
    Chat,
    chat_messages,
    output_messages,
    split_system,
)
from otel_llm.processing.normalize_parts import parse_json
from otel_llm.processing.normalize_providers import infer_provider
from otel_llm.processing.normalize_sources import EVENT_NAMES, read_events
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext

__all__ = ["generation_messages", "normalize"]

_FOREIGN_PREFIXES: Final = (
    "langfuse.",
    "traceloop.",
    "openinference.",
    "llm.",
    "gen_ai.prompt",
    "gen_ai.completion",
)
_FOREIGN_KEYS: Final = frozenset(
    {
        *dialects.OLD_SEMCONV_KEYS,
        "input.value",
        "output.value",
        "tag.tags",
        "metadata",
        "embedding.model_name",
    }
)
_is_foreign: Final = methodcaller("startswith", _FOREIGN_PREFIXES)
_OURS: Final = frozenset(
    key
    for key in (
        *(v for k, v in vars(semconv).items() if k.isupper() and isinstance(v, str)),
        *MODEL_PARAMETER_KEYS.values(),
    )
    if key not in _FOREIGN_KEYS and not _is_foreign(key)
)
"""Keys we write ourselves: never foreign."""
_SEEN_KEYS: Final = "otel_llm.normalize.seen_keys"
"""``ctx.extras`` slot: keys already found not to be foreign, so a span whose keys
were all seen before is checked with one C-level ``issuperset``."""
_MAX_SEEN_KEYS: Final = 8192

_DIALECTS: Final = (
    ("langfuse", langfuse),
    ("openinference", dialects.openinference),
    ("traceloop", dialects.traceloop),
    ("semconv", dialects.old_semconv),
)
"""In precedence order: when two dialects name the same thing, the first one wins."""

_TYPE_BY_OPERATION: Final = {
    "chat": "generation",
    "text_completion": "generation",
    "generate_content": "generation",
    "completion": "generation",
    "embeddings": "embedding",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "execute_tool": "tool",
    "retrieval": "retriever",
}
"""``gen_ai.operation.name`` of a span without our type → our observation type."""


def normalize(record: SpanRecord, ctx: StageContext) -> None:
    """Translate foreign dialects on ``record`` into canonical attributes, in place.

    Args:
        record: the span being processed (worker thread); its attributes change
            in place and its events tuple may be replaced.
        ctx: counters (``normalize.invalid.<dialect>``) and ``max_content_chars``.
    """
    attributes = record.attributes
    # Ours before any translation: a foreign dialect's input/output keeps its messages.
    skip_messages = not ctx.semconv_messages and _has_own_io(attributes)
    if _has_foreign_key(attributes, ctx):
        families = Families.of(attributes)
        for part, translate in _DIALECTS:
            try:
                translate(record, ctx, families)
            except Exception:
                _bug(ctx, part)
    if record.events and any(event.name in EVENT_NAMES for event in record.events):
        try:
            _translate_events(record, ctx)
        except Exception:
            _bug(ctx, "events")
    if semconv.OBSERVATION_TYPE not in attributes:
        _type_from_operation(attributes)
    if attributes.get(semconv.OBSERVATION_TYPE) == "generation" and not skip_messages:
        try:
            _derive_messages(attributes, ctx)
        except Exception:
            _bug(ctx, "generation")
    if semconv.GEN_AI_PROVIDER_NAME not in attributes:
        infer_provider(attributes)


def generation_messages(attributes: Mapping[str, Any], ctx: StageContext) -> Mapping[str, Any]:
    """A generation's ``gen_ai.*`` message attributes as :func:`normalize` would write them.

    Why: normalize skips them when no destination reads them (``ctx.semconv_messages``),
    but the token estimate counts messages; this derives them again, into a new mapping
    (the record is not changed), so an estimate never depends on the destinations.
    Returns ``attributes`` itself when normalize always derives them (deriving again
    where it did is a no-op: present keys win).
    """
    if ctx.semconv_messages or attributes.get(semconv.OBSERVATION_TYPE) != "generation":
        return attributes
    view = {key: attributes[key] for key in _MESSAGE_SOURCES if key in attributes}
    try:
        _derive_messages(view, ctx)
    except Exception:
        _bug(ctx, "generation")
    return view


_MESSAGE_SOURCES: Final = (
    semconv.OBSERVATION_INPUT,
    semconv.OBSERVATION_OUTPUT,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
)
"""What ``_derive_messages`` reads and writes."""


def _has_own_io(attributes: Mapping[str, Any]) -> bool:
    """Both our input and output are set: what the Langfuse dialect sends instead of messages."""
    return (
        attributes.get(semconv.OBSERVATION_INPUT) is not None
        and attributes.get(semconv.OBSERVATION_OUTPUT) is not None
    )


def _has_foreign_key(attributes: dict[str, Any], ctx: StageContext) -> bool:
    """Whether any key is foreign; remembers (bounded) the keys that are not."""
    seen: set[str] | None = ctx.extras.get(_SEEN_KEYS)
    if seen is None:
        seen = ctx.extras[_SEEN_KEYS] = set(_OURS)
    if seen.issuperset(attributes):
        return False
    found = False
    for key in attributes:
        if key in seen or type(key) is not str:
            continue
        if key in _FOREIGN_KEYS or _is_foreign(key):
            found = True
        elif len(seen) < _MAX_SEEN_KEYS:
            seen.add(key)
    return found


def _bug(ctx: StageContext, part: str) -> None:
    """Called from an ``except`` block: count our bug, log it once, go on with the span."""
    ctx.count(f"normalize.error.{part}")
    with guard(f"normalize.{part}"):  # re-raises only in strict mode (our own tests)
        raise


def _translate_events(record: SpanRecord, ctx: StageContext) -> None:
    """Deprecated message events → message attributes; translated events are dropped."""
    found = read_events(record.events)
    if found.invalid:
        invalid(ctx, "semconv", "message event", found.invalid)
    attributes = record.attributes
    if found.inputs:
        chat = (
            split_system(found.inputs)
            if semconv.GEN_AI_SYSTEM_INSTRUCTIONS not in attributes
            else Chat([], found.inputs)
        )
        set_chat(attributes, chat, ctx)
    if found.outputs:
        outputs = [m for _, m in sorted(found.outputs, key=itemgetter(0))]
        set_json(attributes, semconv.GEN_AI_OUTPUT_MESSAGES, outputs, ctx)
    if found.translated:
        record.events = tuple(
            event for i, event in enumerate(record.events) if i not in found.translated
        )


def _type_from_operation(attributes: dict[str, Any]) -> None:
    operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
    if isinstance(operation, str):
        as_type = _TYPE_BY_OPERATION.get(operation)
        if as_type is not None:
            attributes[semconv.OBSERVATION_TYPE] = as_type


def _derive_messages(attributes: dict[str, Any], ctx: StageContext) -> None:
    """A generation's chat input/output (ours, or the Langfuse SDK's) as semconv messages."""
    if semconv.GEN_AI_INPUT_MESSAGES not in attributes:
        raw = attributes.get(semconv.OBSERVATION_INPUT)
        if isinstance(raw, str) and raw:
            chat = _chat_of(raw, semconv.GEN_AI_SYSTEM_INSTRUCTIONS not in attributes)
            if chat is not None:
                set_chat(attributes, chat, ctx)
    if semconv.GEN_AI_OUTPUT_MESSAGES not in attributes:
        raw = attributes.get(semconv.OBSERVATION_OUTPUT)
        if isinstance(raw, str) and raw:
            value = parse_json(raw) if raw[:1] in ("{", "[") else None
            outputs = output_messages(raw if value is None else value)
            if outputs:
                set_json(attributes, semconv.GEN_AI_OUTPUT_MESSAGES, outputs, ctx)


def _chat_of(raw: str, system: bool) -> Chat | None:
    """A chat-message list (JSON), or a plain prompt string as one user message."""
    if raw[:1] in ("{", "["):
        value = parse_json(raw)
        if value is not None:
            return chat_messages(value, system=system)
    return Chat([], [{"role": "user", "parts": [{"type": "text", "content": raw}]}])
