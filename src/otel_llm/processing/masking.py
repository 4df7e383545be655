"""The masking stage: secrets and user-masked content never reach a destination.

It runs last, after every stage that could add content, and before any destination,
so one pass covers our spans, third-party spans (``langfuse.*``, ``traceloop.*``,
OpenInference ``input.value``, ``gen_ai.prompt.N.content``…) and span events. Three
layers apply to every content value (see ``semconv.is_content_key``):

1. key rules: under a secret-looking dict key (``password``, ``api_key``,
   ``Authorization``, ``client_secret``… case-insensitive, ``-``/``_`` ignored) the whole
   value becomes ``[REDACTED:key]``; structural keys (``role``, ``id``,
   ``tool_call_id``, ``type``, ``name``) are never secret, so messages keep their shape.
   The same rule redacts any attribute whose own key looks secret (``db.password``,
   ``http.request.header.authorization``);
2. the built-in scrubbers (:mod:`otel_llm.processing.scrubbers`) on every string;
3. the user's ``mask=`` function, called like the Langfuse SDK calls it
   (``mask(data=value)``), on the whole value, then on every string nested inside it,
   including JSON text inside JSON (tool-call arguments), so a secret is reached
   wherever it sits.

JSON text is parsed, walked and re-serialized only when something changed. JSON that
does not parse (cut by an attribute length limit) still gets the user mask on each
string literal and the key rules on ``"key": "value"`` pairs.

Fail closed: if the mask function raises or returns something that is not JSON data,
or masking a value fails for any other reason, the whole value becomes
``MASK_FALLBACK_VALUE`` (the Langfuse SDK's text) and the failure is counted and
logged once, without the value. The raw value is never kept.

Free text that often echoes content (the status description, status-message
attributes, every string attribute of span events such as ``exception.message``) gets
the same treatment as a string inside content: key rules in JSON, scrubbers, user mask.
``gen_ai.*`` message events are content throughout. With ``capture_content`` off,
content attributes and message-event bodies are removed; usage, cost and model stay.
Bool and number values are never scanned.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event

from otel_llm import semconv
from otel_llm.diagnostics import log_once
from otel_llm.processing.masker import (
    CONTENT,
    SECRET,
    TEXT,
    Masker,
    MaskFailed,
    NestingTooDeep,
)
from otel_llm.processing.masking_options import compile_options, mask_call_style
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext
from otel_llm.serialize import to_json

__all__ = ["MASK_FALLBACK_VALUE", "Masker", "compile_masker", "mask_record"]

MASK_FALLBACK_VALUE: Final = "<fully masked due to failed mask function>"
"""What a value becomes when masking it failed (same text as the Langfuse SDK)."""

_MESSAGE_EVENT_PREFIX: Final = "gen_ai."
_EVENT_KEEP_WITHOUT_CONTENT: Final = frozenset(
    {
        "role",
        "index",
        "id",
        "finish_reason",
        "event.name",
        semconv.GEN_AI_SYSTEM,
        semconv.GEN_AI_PROVIDER_NAME,
        semconv.GEN_AI_OPERATION_NAME,
        semconv.GEN_AI_REQUEST_MODEL,
        semconv.GEN_AI_RESPONSE_MODEL,
        semconv.GEN_AI_RESPONSE_ID,
    }
)
"""Attributes of a ``gen_ai.*`` message event kept when ``capture_content`` is off."""
_DEFAULT_MASKER_KEY: Final = "otel_llm.masking.default_masker"
_SHAPES: Final = "otel_llm.masking.masked_keys"
"""``ctx.per_key_set`` slot: (key, kind) of the span's keys masking looks at."""
_SCREEN_MAX_CHARS: Final = 2048
"""Longer values are masked without screening: the screen spares per-value and
per-string costs, little next to a long text's own, while the gate fires more often on
long text (a URL or an identifier is a token-like run), and then screening was wasted."""
_REMOVE: Final = object()


def compile_masker(
    mask: Callable[..., Any] | None, masking: bool | Mapping[str, Any] | None
) -> Masker:
    """Validate ``mask=`` and ``masking=`` once, at configure time.

    ``masking``: None or True (default): built-in scrubbers and key rules on; False:
    both off (``mask=`` still applies); a mapping of options (all optional):

    - ``"scrubbers"``: a list of built-in rule names to enable (only those), or a
      mapping ``{name: bool}`` toggling rules over the defaults; True/False for all/none.
    - ``"extra_patterns"``: ``{name: regex}`` added to the scrubbers (turns off the
      fast pre-check, so every string of 8+ characters is scanned). Like the built-in
      rules they never see strings shorter than 8 characters; use ``(?i:...)`` rather
      than a global ``(?i)`` flag.
    - ``"key_rules"``: False turns the built-in secret key names off.
    - ``"redact_keys"``: more key names whose values are redacted (exact match,
      case-insensitive, ``-``/``_`` ignored); structural keys are refused.
    - ``"marker"``: the replacement text, ``{rule}`` naming the rule
      (default ``"[REDACTED:{rule}]"``).

    Raises:
        ConfigError: an unknown option, rule name or key, a bad regex or marker, or
            a ``mask`` that is not callable with one argument.
    """
    return Masker(compile_options(masking), _bind_mask(mask))


def _bind_mask(mask: Callable[..., Any] | None) -> Callable[[Any], Any] | None:
    if mask is None:
        return None
    if mask_call_style(mask) == "keyword":

        def call(value: Any) -> Any:
            return mask(data=value)

        return call
    return mask


def mask_record(record: SpanRecord, ctx: StageContext) -> None:
    """Mask content, secret-keyed attributes, span events and the status description.

    Counts ``masking.masked_values`` (values changed), ``masking.rule.<name>`` per hit
    (``key`` for key rules), ``masking.content_removed``, and the fail-closed reasons
    ``masking.mask_failed``, ``masking.too_deep`` and ``masking.internal_error``.
    """
    masker = ctx.masker or _default_masker(ctx)
    if masker.inert and ctx.capture_content:
        return
    hits: list[str] = []
    attributes = record.attributes
    updates: dict[str, Any] = {}
    texts: list[tuple[str, int, str]] | None = [] if masker.screens else None
    for key, kind in ctx.per_key_set(_SHAPES, attributes, masker.kinds_of):
        value = attributes[key]
        if kind & CONTENT and not ctx.capture_content:
            updates[key] = _REMOVE
        elif (
            texts is not None
            and type(value) is str
            and not kind & SECRET
            and len(value) <= _SCREEN_MAX_CHARS
        ):
            texts.append((key, kind, value))  # screened together below
        elif isinstance(value, (str, list, tuple)) or kind & SECRET:
            new = _guarded(masker, kind, value, hits, ctx, key)
            if new is not value:
                updates[key] = new
        elif kind & CONTENT and value is not None and not isinstance(value, (bool, int, float)):
            # Structured content (a dict or bytes from another exporter's kvlist/bytes
            # value): mask it as JSON text rather than let it pass unexamined.
            updates[key] = _guarded(masker, kind, to_json(value), hits, ctx, key)
    if texts:
        # Screening pays by sparing per-value costs: a lone value is just masked.
        unsure = masker.unsure([v for _, _, v in texts]) if len(texts) > 1 else [True]
        for (key, kind, value), walk in zip(texts, unsure, strict=True):
            if walk:
                new = _guarded(masker, kind, value, hits, ctx, key)
                if new is not value:
                    updates[key] = new
    changed = _apply(attributes, updates, ctx)
    if record.events:
        changed += _mask_events(record, masker, hits, ctx)
    if record.status_description:
        new = _guarded(masker, TEXT, record.status_description, hits, ctx, "status")
        if new is not record.status_description:
            record.status_description = new
            changed += 1
    if changed:
        ctx.count("masking.masked_values", changed)
    for rule in hits:
        ctx.count(f"masking.rule.{rule}")


def _apply(attributes: dict[str, Any], updates: dict[str, Any], ctx: StageContext) -> int:
    changed = 0
    for key, new in updates.items():
        if new is _REMOVE:
            del attributes[key]
            ctx.count("masking.content_removed")
        else:
            attributes[key] = new
            changed += 1
    return changed


def _mask_events(record: SpanRecord, masker: Masker, hits: list[str], ctx: StageContext) -> int:
    total = 0
    events: list[Event] = []
    for event in record.events:
        attributes = event.attributes
        if attributes:
            changed, out = _mask_event(event.name, attributes, masker, hits, ctx)
            if changed or len(out) != len(attributes):
                event = _rebuilt(event, out)
            total += changed
        events.append(event)
    record.events = tuple(events)
    return total


def _rebuilt(event: Event, attributes: dict[str, Any]) -> Event:
    """A new event (SDK events are immutable) keeping name, time and dropped count."""
    dropped = event.dropped_attributes
    if not dropped:
        return Event(event.name, attributes=attributes, timestamp=event.timestamp)
    bounded = BoundedAttributes(attributes=attributes)
    bounded.dropped = dropped
    return Event(event.name, attributes=bounded, timestamp=event.timestamp)


def _mask_event(
    name: str, attributes: Mapping[str, Any], masker: Masker, hits: list[str], ctx: StageContext
) -> tuple[int, dict[str, Any]]:
    """A ``gen_ai.*`` event's attributes are all content; other events' are free text."""
    message = name.startswith(_MESSAGE_EVENT_PREFIX)
    changed = 0
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        kind = masker.kind(key)
        if message or not kind:
            kind |= CONTENT if message else TEXT
        if kind & CONTENT and not ctx.capture_content and key not in _EVENT_KEEP_WITHOUT_CONTENT:
            ctx.count("masking.content_removed")
            continue
        new = value
        if isinstance(value, (str, list, tuple)) or kind & SECRET:
            new = _guarded(masker, kind, value, hits, ctx, f"event {name}")
        changed += new is not value
        out[key] = new
    return changed, out


def _guarded(
    masker: Masker, kind: int, value: Any, hits: list[str], ctx: StageContext, where: str
) -> Any:
    """Mask one value; on any failure return the fixed marker (fail closed)."""
    try:
        return masker.mask_value(kind, value, hits)
    except MaskFailed as exc:
        reason = "mask_failed" if masker.has_mask else "internal_error"
        return _failed(ctx, reason, str(exc), where)
    except NestingTooDeep:
        return _failed(ctx, "too_deep", "nesting too deep", where)
    except Exception as exc:
        _failed(ctx, "internal_error", f"internal error {type(exc).__name__}", where)
        if os.environ.get("OTEL_LLM_STRICT") == "1":
            raise  # our own bug: fail our tests (the processor then drops the record)
        return MASK_FALLBACK_VALUE


def _failed(ctx: StageContext, reason: str, detail: str, where: str) -> str:
    ctx.count(f"masking.{reason}")
    log_once(
        "masking",
        reason,
        f"{detail} while masking {where}; the value was replaced by {MASK_FALLBACK_VALUE!r}",
    )
    return MASK_FALLBACK_VALUE


def _default_masker(ctx: StageContext) -> Masker:
    masker = ctx.extras.get(_DEFAULT_MASKER_KEY)
    if not isinstance(masker, Masker):
        masker = ctx.extras[_DEFAULT_MASKER_KEY] = compile_masker(None, None)
    return masker
