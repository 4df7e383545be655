"""Flattened message attributes and deprecated message events → message dicts.

Why: OpenLLMetry (``gen_ai.prompt.N.role`` …) and OpenInference
(``llm.input_messages.N.message.role`` …) spread each conversation over one
attribute per field, and semconv before 1.37 put it in span events
(``gen_ai.user.message``, ``gen_ai.choice`` …). These functions rebuild the
OpenAI-shaped message dicts those libraries started from, so that
:mod:`otel_llm.processing.normalize_messages` converts every dialect the same
way. They are total: malformed keys are reported back, never raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from opentelemetry.sdk.trace import Event

from otel_llm.processing.normalize_messages import (
    Message,
    message,
    output_message,
)
from otel_llm.processing.normalize_parts import parse_json

__all__ = [
    "EVENT_NAMES",
    "EventMessages",
    "group_indexed",
    "openinference_message",
    "read_events",
    "traceloop_message",
]

_MAX_INDEX_DIGITS: Final = 6
"""Longer "indexes" are not indexes (and int() of 5000 digits raises)."""

_EVENT_ROLES: Final = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CHOICE: Final = "gen_ai.choice"
_PROMPT_EVENT: Final = "gen_ai.content.prompt"  # semconv ≤1.27, Semantic Kernel
_COMPLETION_EVENT: Final = "gen_ai.content.completion"
EVENT_NAMES: Final = frozenset({*_EVENT_ROLES, _CHOICE, _PROMPT_EVENT, _COMPLETION_EVENT})
"""Span events this module translates."""

_BODY_KEYS: Final = ("gen_ai.event.content", "event.body", "body")
"""Event attributes that carry the whole log-event body as JSON."""
_FIELD_KEYS: Final = ("role", "content", "tool_calls", "id", "tool_call_id", "name")
_CHOICE_KEYS: Final = (*_FIELD_KEYS, "finish_reason", "index", "message")


def group_indexed(
    attributes: Mapping[str, Any], keys: Iterable[str], prefix: str
) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """``<prefix><i>.<field>`` keys grouped by ``i`` (sorted), and the keys used.

    Keys without a small decimal index and a field are left out of both.
    """
    start = len(prefix)
    groups: dict[int, dict[str, Any]] = {}
    used: list[str] = []
    for key in keys:
        index, dot, field = key[start:].partition(".")
        if dot and field and _is_index(index):
            groups.setdefault(int(index), {})[field] = attributes[key]
            used.append(key)
    return {i: groups[i] for i in sorted(groups)}, used


def traceloop_message(fields: Mapping[str, Any], default_role: str) -> dict[str, Any]:
    """One OpenLLMetry ``gen_ai.prompt.N`` / ``gen_ai.completion.N`` group as a message."""
    role = fields.get("role")
    content = fields.get("content")
    if role is None and "user" in fields:  # the legacy completions API: gen_ai.prompt.0.user
        role, content = "user", fields["user"]
    item: dict[str, Any] = {
        "role": role if isinstance(role, str) else default_role,
        "content": _content_value(content),
    }
    calls = [
        {"id": c.get("id"), "name": c.get("name"), "arguments": c.get("arguments")}
        for c in _sub_groups(fields, "tool_calls.")
    ]
    if calls:
        item["tool_calls"] = calls
    if "function_call.name" in fields:
        item["function_call"] = {
            "name": fields["function_call.name"],
            "arguments": fields.get("function_call.arguments"),
        }
    _copy(fields, item, ("tool_call_id", "finish_reason", "name"))
    return item


def openinference_message(fields: Mapping[str, Any], default_role: str) -> dict[str, Any]:
    """One OpenInference ``llm.*_messages.N.message.*`` group as a message."""
    role = fields.get("message.role")
    item: dict[str, Any] = {"role": role if isinstance(role, str) else default_role}
    content = fields.get("message.content")
    if content is None:
        blocks = [_oi_block(c) for c in _sub_groups(fields, "message.contents.")]
        content = [b for b in blocks if b is not None] or None
    item["content"] = _content_value(content)
    calls = [
        {
            "id": c.get("tool_call.id"),
            "name": c.get("tool_call.function.name"),
            "arguments": c.get("tool_call.function.arguments"),
        }
        for c in _sub_groups(fields, "message.tool_calls.")
    ]
    if calls:
        item["tool_calls"] = calls
    if "message.function_call_name" in fields:
        item["function_call"] = {
            "name": fields["message.function_call_name"],
            "arguments": fields.get("message.function_call_arguments_json"),
        }
    for ours, theirs in (("tool_call_id", "message.tool_call_id"), ("name", "message.name")):
        if theirs in fields:
            item[ours] = fields[theirs]
    return item


class EventMessages:
    """What the deprecated message events of one span said."""

    __slots__ = ("inputs", "invalid", "outputs", "translated")

    def __init__(self) -> None:
        self.inputs: list[Message] = []
        """Input messages, in event order."""
        self.outputs: list[tuple[int, Message]] = []
        """(choice index, output message)."""
        self.translated: set[int] = set()
        """Positions (in the span's events) of the events read."""
        self.invalid = 0


def read_events(events: Sequence[Event]) -> EventMessages:
    """Read every message event; unreadable ones are counted and left alone."""
    found = EventMessages()
    for position, event in enumerate(events):
        name = event.name
        if name not in EVENT_NAMES:
            continue
        attributes = event.attributes or {}
        if name in (_PROMPT_EVENT, _COMPLETION_EVENT):
            ok = _legacy_event(name, attributes, found)
        else:
            ok = _message_event(name, attributes, found)
        if ok:
            found.translated.add(position)
        else:
            found.invalid += 1
    return found


# --- helpers -------------------------------------------------------------------------


def _is_index(text: str) -> bool:
    return 0 < len(text) <= _MAX_INDEX_DIGITS and text.isascii() and text.isdigit()


def _sub_groups(fields: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``<prefix><j>.<rest>`` fields of one message as a list of dicts, in index order."""
    start = len(prefix)
    groups: dict[int, dict[str, Any]] = {}
    for key, value in fields.items():
        if key.startswith(prefix):
            index, dot, rest = key[start:].partition(".")
            if dot and rest and _is_index(index):
                groups.setdefault(int(index), {})[rest] = value
    return [groups[i] for i in sorted(groups)]


def _copy(source: Mapping[str, Any], target: dict[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        if key in source:
            target[key] = source[key]


def _content_value(content: object) -> object:
    """A JSON-encoded list of content blocks is decoded; any other value kept."""
    if isinstance(content, str) and content[:1] == "[":
        parsed = parse_json(content)
        if (
            isinstance(parsed, list)
            and parsed
            and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in parsed)
        ):
            return parsed
    if isinstance(content, tuple):
        return list(content)
    return content


def _oi_block(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = fields.get("message_content.type")
    if kind == "text":
        return {"type": "text", "text": fields.get("message_content.text")}
    if kind == "image":
        return {
            "type": "image_url",
            "image_url": {"url": fields.get("message_content.image.image.url")},
        }
    return None


def _decoded(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("{", "["):
        parsed = parse_json(value)
        if parsed is not None:
            return parsed
    return value


def _event_body(attributes: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any] | None:
    """The event's body: a JSON body attribute, else its individual attributes."""
    for key in _BODY_KEYS:
        if key in attributes:
            raw = attributes[key]
            if not isinstance(raw, str):
                return None
            parsed = _decoded(raw)
            if isinstance(parsed, dict):
                return parsed
            return {"content": raw} if parsed is raw else None
    body: dict[str, Any] = {}
    for key in keys:
        if key in attributes:
            value = attributes[key]
            body[key] = _content_value(value) if key == "content" else _decoded(value)
    return body


def _message_event(name: str, attributes: Mapping[str, Any], found: EventMessages) -> bool:
    keys = _CHOICE_KEYS if name == _CHOICE else _FIELD_KEYS
    body = _event_body(attributes, keys)
    if body is None:
        return False
    if name != _CHOICE:
        converted = message(body, default_role=_EVENT_ROLES[name])
        if converted is None:
            return False
        found.inputs.append(converted)
        return True
    inner = body.get("message")
    source = inner if isinstance(inner, dict) else body
    converted = output_message(source, body.get("finish_reason"))
    if converted is None:
        return False
    index = body.get("index")
    position = index if type(index) is int else len(found.outputs)
    found.outputs.append((position, converted))
    return True


def _legacy_event(name: str, attributes: Mapping[str, Any], found: EventMessages) -> bool:
    key = "gen_ai.prompt" if name == _PROMPT_EVENT else "gen_ai.completion"
    raw = attributes.get(key)
    if not isinstance(raw, str):
        return False
    parsed = _decoded(raw)
    items = parsed if isinstance(parsed, list) else [raw]
    inputs: list[Message] = []
    outputs: list[Message] = []
    for item in items:
        body = item if isinstance(item, dict) else {"content": item}
        if name == _PROMPT_EVENT:
            converted = message(body, default_role="user")
            target = inputs
        else:
            converted = output_message(body)
            target = outputs
        if converted is None:
            return False
        target.append(converted)
    found.inputs.extend(inputs)
    found.outputs.extend((len(found.outputs) + i, m) for i, m in enumerate(outputs))
    return True
