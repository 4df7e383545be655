"""The rules every dialect of the normalize stage applies, in one place.

Why: "the canonical key wins", "translated content is removed", "malformed data
is counted, never raised" must mean exactly the same thing for the Langfuse,
OpenInference, OpenLLMetry and old-semconv translations; these helpers are the
only code that writes a translated value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

from otel_llm import semconv
from otel_llm.diagnostics import log_once
from otel_llm.processing.normalize_messages import Chat
from otel_llm.processing.normalize_parts import parse_json
from otel_llm.processing.stage import StageContext
from otel_llm.serialize import to_attribute, to_json

__all__ = [
    "Families",
    "invalid",
    "move_content",
    "parse_tags",
    "set_chat",
    "set_json",
    "set_type",
    "text_value",
    "token_count",
    "translate_metadata",
    "translate_tags",
]

_MAX_INT64: Final = 2**63 - 1
_LANGFUSE: Final = "langfuse."
_FLATTENED: Final = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
)


class Families:
    """The keys of one span's flattened foreign families, found in one pass."""

    __slots__ = ("langfuse", "oi_input", "oi_output", "tl_completion", "tl_prompt")

    def __init__(self) -> None:
        self.langfuse: list[str] = []
        self.tl_prompt: list[str] = []
        self.tl_completion: list[str] = []
        self.oi_input: list[str] = []
        self.oi_output: list[str] = []

    @classmethod
    def of(cls, attributes: Iterable[str]) -> Families:
        found = cls()
        targets = (found.tl_prompt, found.tl_completion, found.oi_input, found.oi_output)
        for key in attributes:
            if key.startswith(_LANGFUSE):
                found.langfuse.append(key)
            elif key.startswith(_FLATTENED):
                for prefix, target in zip(_FLATTENED, targets, strict=True):
                    # indexed keys only: "gen_ai.prompt.name" is not OpenLLMetry's
                    if key.startswith(prefix) and key[len(prefix) : len(prefix) + 1].isdigit():
                        target.append(key)
                        break
        return found


def invalid(ctx: StageContext, dialect: str, what: str, n: int = 1) -> None:
    """Count a malformed foreign value (left where it was) and log the kind once."""
    ctx.count(f"normalize.invalid.{dialect}", n)
    log_once(
        "normalize",
        f"invalid.{dialect}",
        f"malformed {dialect} {what} left untranslated (counted in normalize.invalid)",
    )


def text_value(value: object) -> str | None:
    """An identifier-like value (name, id, version) as text; None if it is not one."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def token_count(value: object) -> int | None:
    """A count that fits an int64 attribute (int, integral float, digits), else None."""
    if isinstance(value, bool):
        return None
    if (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and _is_digits(value)
    ):
        value = int(value)
    if isinstance(value, int) and 0 <= value <= _MAX_INT64:
        return value
    return None


def _is_digits(text: str) -> bool:
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()


def set_type(attributes: dict[str, Any], as_type: str, operation: str | None = None) -> None:
    """Our observation type and its ``gen_ai.operation.name`` (absent keys only)."""
    current = attributes.setdefault(semconv.OBSERVATION_TYPE, as_type)
    if not isinstance(current, str):
        return
    if current != as_type or operation is None:
        operation = semconv.OPERATION_BY_TYPE.get(current)
    if operation is not None:
        attributes.setdefault(semconv.GEN_AI_OPERATION_NAME, operation)


def set_json(attributes: dict[str, Any], key: str, value: object, ctx: StageContext) -> None:
    """``key`` = JSON of ``value``, unless ``key`` is already there.

    Messages are plain JSON-safe data, so one ``orjson.dumps`` almost always
    does; the total serializer takes what it refuses (lone surrogates, huge
    ints) or what is over ``max_content_chars`` (cut, still valid JSON).
    """
    if key in attributes:
        return
    limit = ctx.max_content_chars
    try:
        raw = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        raw = None
    if raw is not None and len(raw) <= limit:
        attributes[key] = raw.decode()
    else:
        attributes[key] = to_json(value, max_chars=limit)


def set_chat(attributes: dict[str, Any], chat: Chat, ctx: StageContext) -> None:
    """System instructions and input messages of one conversation (absent keys only).

    The input messages are written even when only instructions were sent (``[]``):
    their presence is what tells a second run that this conversation was done.
    """
    if chat.system:
        set_json(attributes, semconv.GEN_AI_SYSTEM_INSTRUCTIONS, chat.system, ctx)
    set_json(attributes, semconv.GEN_AI_INPUT_MESSAGES, chat.messages, ctx)


def move_content(
    attributes: dict[str, Any], ctx: StageContext, theirs: str, ours: str, dialect: str
) -> None:
    """Move an input/output value: a str as it is (our convention), else as JSON."""
    if theirs not in attributes:
        return
    value = attributes[theirs]
    if not isinstance(value, (str, list, tuple, int, float)):
        invalid(ctx, dialect, "input/output value")
        return
    if ours not in attributes:  # cut and cleaned like our own content (lone surrogates)
        attributes[ours] = to_attribute(
            list(value) if isinstance(value, tuple) else value, max_chars=ctx.max_content_chars
        )
    del attributes[theirs]


def parse_tags(value: object) -> tuple[str, ...] | None:
    """A string array, a JSON-array string or a comma-separated string as tags."""
    if isinstance(value, str):
        text = value.strip()
        parsed = parse_json(text) if text[:1] == "[" else None
        if not isinstance(parsed, list):
            return tuple(t for t in (p.strip() for p in text.split(",")) if t)
        value = parsed
    if isinstance(value, (list, tuple)):
        return tuple(
            t if isinstance(t, str) else str(t)
            for t in value
            if isinstance(t, (str, int, float)) and not isinstance(t, bool)
        )
    return None


def translate_tags(
    attributes: dict[str, Any],
    ctx: StageContext,
    keys: Iterable[str],
    dialect: str,
    *,
    remove: bool,
) -> None:
    """The first readable tag key → ``otel_llm.trace.tags`` (absent key only)."""
    for key in keys:
        if key not in attributes:
            continue
        tags = parse_tags(attributes[key])
        if tags is None:
            invalid(ctx, dialect, "tags")
            continue
        if tags:
            attributes.setdefault(semconv.TRACE_TAGS, tags)
        if remove:
            del attributes[key]


def translate_metadata(
    attributes: dict[str, Any],
    ctx: StageContext,
    bases: Iterable[str],
    flattened: Mapping[str, str],
    target: str,
    dialect: str,
) -> None:
    """Whole-object metadata keys plus ``<prefix>.<k>`` keys → one JSON object at ``target``.

    Flattened values that are valid JSON are decoded (Langfuse v5 encodes every
    value, strings included); others are kept as they are. A canonical object
    already at ``target`` wins key by key; one that is not an object is kept
    and the foreign keys are left alone.
    """
    merged: dict[str, Any] = {}
    used: list[str] = []
    for key, name in flattened.items():
        merged[name] = _decoded(attributes[key])
        used.append(key)
    lone: object = None
    lone_key = ""
    for key in bases:
        if key not in attributes:
            continue
        value = attributes[key]
        parsed = parse_json(value) if isinstance(value, str) else None
        if isinstance(parsed, dict):
            for name, item in parsed.items():
                merged.setdefault(name, item)
            used.append(key)
        elif lone is None and isinstance(value, (str, list, tuple)):
            lone, lone_key = (parsed if parsed is not None else _decoded(value)), key
        else:
            invalid(ctx, dialect, "metadata")
    if lone is not None:
        if merged:
            invalid(ctx, dialect, "metadata")  # a non-object next to keys: nothing to merge into
        else:
            _set_metadata(attributes, ctx, target, lone, [lone_key])
            return
    if used:
        _set_metadata(attributes, ctx, target, merged, used)


def _set_metadata(
    attributes: dict[str, Any], ctx: StageContext, target: str, value: object, used: list[str]
) -> None:
    existing = attributes.get(target)
    if existing is not None:
        current = parse_json(existing) if isinstance(existing, str) else None
        if not isinstance(current, dict) or not isinstance(value, dict):
            return  # the canonical value wins and cannot be merged into
        value = {**value, **current}
    attributes[target] = to_json(value, max_chars=ctx.max_content_chars)
    for key in used:
        del attributes[key]


def _decoded(value: object) -> object:
    if isinstance(value, str):
        parsed = parse_json(value)
        return value if parsed is None else parsed
    if isinstance(value, tuple):
        return list(value)
    return value
