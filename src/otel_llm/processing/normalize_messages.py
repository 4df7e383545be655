"""Chat messages in the shapes SDKs produce → the semconv v1.41 message schema.

Why a converter of its own: backends that read ``gen_ai.input.messages``,
``gen_ai.output.messages`` and ``gen_ai.system_instructions`` (APMs, the Langfuse
server, our evaluation export) expect the v1.41 "parts" schema, while what we get
are OpenAI chat messages (our generations, the Langfuse SDK, OpenLLMetry),
Anthropic messages, Gemini contents, LangChain message dicts or semconv messages
already. Every dialect of the normalize stage goes through these functions (and
:mod:`otel_llm.processing.normalize_parts` for the content blocks), so all of
them emit the same, schema-valid JSON.

The functions are total: a value they cannot read gives ``None`` (the caller
counts it), never an exception. They build plain dicts and lists; the caller
serializes them once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from otel_llm.processing.normalize_parts import Part, content_parts, text_part, tool_call_part

__all__ = [
    "Chat",
    "Message",
    "chat_messages",
    "finish_reason",
    "message",
    "output_message",
    "output_messages",
    "split_system",
]

Message = dict[str, Any]

_ROLES: Final = {
    "system": "system",
    "developer": "system",  # OpenAI's newer name for the system role
    "user": "user",
    "human": "user",  # LangChain
    "assistant": "assistant",
    "ai": "assistant",  # LangChain
    "model": "assistant",  # Gemini
    "tool": "tool",
    "function": "tool",  # OpenAI's legacy function role
}
"""Role spellings → semconv roles. Other strings are kept as they are."""

_FINISH_REASONS: Final = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "complete": "stop",
    "completed": "stop",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "model_length": "length",
    "tool_calls": "tool_call",
    "tool_call": "tool_call",
    "tool_use": "tool_call",
    "function_call": "tool_call",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "prohibited_content": "content_filter",
    "refusal": "content_filter",
    "error": "error",
}
"""OpenAI, Anthropic and Gemini finish reasons → semconv values (lower-cased first)."""


class Chat:
    """An input conversation split the way semconv records it."""

    __slots__ = ("messages", "system")

    def __init__(self, system: list[Part], messages: list[Message]) -> None:
        self.system = system
        """Parts of the leading system messages (→ ``gen_ai.system_instructions``)."""
        self.messages = messages
        """The rest, in order (→ ``gen_ai.input.messages``)."""


def chat_messages(value: object, *, system: bool = True) -> Chat | None:
    """A list of chat messages (or ``{"messages": [...]}``), else ``None``.

    Every item must be a message (a mapping with a role); otherwise the value is
    not a conversation and nothing is derived from it. Leading system messages
    become system instructions when ``system`` is true; a system message later in
    the history stays in place, as semconv asks for instructions that are part
    of the chat history.
    """
    if isinstance(value, dict):
        value = value.get("messages")
    if not isinstance(value, (list, tuple)) or not value:
        return None
    messages: list[Message] = []
    for item in value:
        converted = message(item)
        if converted is None:
            return None
        messages.append(converted)
    return split_system(messages) if system else Chat([], messages)


def split_system(messages: list[Message]) -> Chat:
    """Leading system messages → system instructions; the rest stays in order."""
    system: list[Part] = []
    lead = 0
    while lead < len(messages) and messages[lead]["role"] == "system":
        system.extend(messages[lead]["parts"])
        lead += 1
    return Chat(system, messages[lead:])


def message(item: object, default_role: str | None = None) -> Message | None:
    """One chat message in any supported shape, or ``None`` if it is not one."""
    if not isinstance(item, dict):
        return None
    if len(item) == 2:  # the common {"role": ..., "content": "text"}, without the general walk
        role = item.get("role")
        content = item.get("content")
        if type(role) is str and type(content) is str:
            known = _ROLES.get(role)
            if known is not None and known != "tool":
                return {"role": known, "parts": [text_part(content)] if content else []}
    role = _role(item, default_role)
    if role is None:
        return None
    given_parts = item.get("parts")
    if isinstance(given_parts, (list, tuple)):
        parts = content_parts(given_parts)  # semconv already; parts are re-checked
    elif role == "tool":
        parts = [_tool_response(item)]
    else:
        parts = content_parts(item.get("content"))
        calls = item.get("tool_calls")
        if calls:
            parts.extend(_tool_calls(calls))
        legacy = item.get("function_call")
        if isinstance(legacy, dict):
            parts.extend(_tool_calls([{"function": legacy}]))
    out: Message = {"role": role, "parts": parts}
    name = item.get("name")
    if isinstance(name, str):
        out["name"] = name
    return out


def output_message(item: object, reason: object = None) -> Message | None:
    """One output message (role defaults to assistant) with a finish reason."""
    converted = message(item, default_role="assistant")
    if converted is None:
        return None
    if reason is None and isinstance(item, dict):
        reason = item.get("finish_reason", item.get("stop_reason"))
    converted["finish_reason"] = finish_reason(reason, converted["parts"])
    return converted


def output_messages(value: object) -> list[Message] | None:
    """What a model returned, as output messages, or ``None`` if unreadable.

    Accepts a string, an assistant message, a list of messages, an OpenAI chat
    completion (``choices``) or an Anthropic message (``type: "message"``).
    """
    if isinstance(value, str):
        parts = [text_part(value)] if value else []
        return [{"role": "assistant", "parts": parts, "finish_reason": "stop"}]
    if isinstance(value, dict):
        choices = value.get("choices")
        if isinstance(choices, (list, tuple)) and choices:
            return _choices(choices)
        single = output_message(value) if _is_message(value) else None
        return [single] if single is not None else None
    if isinstance(value, (list, tuple)) and value and all(map(_is_message, value)):
        converted = [output_message(v) for v in value]
        return [m for m in converted if m is not None] or None
    return None


def finish_reason(reason: object, parts: Sequence[Part] = ()) -> str:
    """A semconv finish reason; inferred from the parts when none was reported."""
    if isinstance(reason, str) and reason:
        lowered = reason.lower()
        return _FINISH_REASONS.get(lowered, lowered)
    if any(part.get("type") == "tool_call" for part in parts):
        return "tool_call"
    return "stop"


# --- helpers -------------------------------------------------------------------------


def _role(item: dict[str, Any], default: str | None) -> str | None:
    role = item.get("role")
    if isinstance(role, str):
        return _ROLES.get(role) or _ROLES.get(role.lower(), role)
    role = item.get("type")  # LangChain message dicts: {"type": "human", ...}
    return _ROLES[role] if isinstance(role, str) and role in _ROLES else default


def _is_message(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    kind = value.get("type")
    return isinstance(value.get("role"), str) or (isinstance(kind, str) and kind in _ROLES)


def _choices(choices: Sequence[Any]) -> list[Message] | None:
    out: list[Message] = []
    for choice in choices:
        if not isinstance(choice, dict):
            return None
        item = choice.get("message")
        if not isinstance(item, dict):
            item = {"role": "assistant", "content": choice.get("text")}
        converted = output_message(item, choice.get("finish_reason"))
        if converted is None:
            return None
        out.append(converted)
    return out


def _tool_calls(calls: object) -> list[Part]:
    if not isinstance(calls, (list, tuple)):
        return []
    parts: list[Part] = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        source = function if isinstance(function, dict) else call
        arguments = source.get("arguments", source.get("args"))  # OpenAI; LangChain
        part = tool_call_part(call.get("id"), source.get("name"), arguments)
        if part is not None:
            parts.append(part)
    return parts


def _tool_response(item: dict[str, Any]) -> Part:
    call_id = item.get("tool_call_id", item.get("id"))
    return {
        "type": "tool_call_response",
        "id": call_id if isinstance(call_id, str) else None,
        "response": item.get("content"),
    }
