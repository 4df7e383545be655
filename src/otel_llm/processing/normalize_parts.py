"""Message content blocks of every common provider → semconv v1.41 message parts.

Why: one message's content arrives as OpenAI parts (``text``, ``image_url``,
``input_audio``, ``file``), Anthropic blocks (``image``/``document`` sources,
``tool_use``, ``tool_result``, ``thinking``), LangChain standard blocks, Gemini
parts (``text``, ``inline_data``, ``function_call`` …) or semconv parts already.
Backends reading ``gen_ai.*.messages`` expect the semconv parts only: text,
tool_call, tool_call_response, blob (inline base64, which the media stage then
replaces by a reference), uri, file and reasoning. Unknown typed blocks are kept
as they are (the schema's GenericPart); anything else becomes text.

Total: never raises, whatever the block holds.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = ["Part", "content_parts", "parse_json", "text_part", "tool_call_part"]

Part = dict[str, Any]

_TEXT_TYPES: Final = frozenset({"text", "input_text", "output_text"})
_SEMCONV_TYPES: Final = frozenset(
    {
        "text",
        "tool_call",
        "tool_call_response",
        "server_tool_call",
        "server_tool_call_response",
        "blob",
        "uri",
        "file",
        "reasoning",
    }
)
_REQUIRED_STR: Final = {"blob": "content", "uri": "uri", "file": "file_id"}
"""Semconv media parts: the field each needs (as a string) besides ``modality``."""
_MEDIA_TYPES: Final = frozenset({"image", "document", "audio", "video"})


def parse_json(text: str) -> Any:
    """``orjson.loads`` that returns ``None`` instead of raising."""
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return None


def text_part(text: str) -> Part:
    return {"type": "text", "content": text}


def content_parts(content: object) -> list[Part]:
    """Message content (a string, one block or a list of blocks) as semconv parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)] if content else []
    if isinstance(content, dict):
        return [_part(content)]
    if isinstance(content, (list, tuple)):
        return [_part(item) for item in content]
    return [text_part(_json_text(content))]


def tool_call_part(call_id: object, name: object, arguments: object) -> Part | None:
    """A ``tool_call`` part; ``None`` without a string name (the schema needs it)."""
    if not isinstance(name, str):
        return None
    return {
        "type": "tool_call",
        "id": call_id if isinstance(call_id, str) else None,
        "name": name,
        "arguments": _arguments(arguments),
    }


def _json_text(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


def _arguments(arguments: object) -> object:
    """Tool arguments as an object when they are a JSON object/array string."""
    if isinstance(arguments, str) and arguments[:1] in ("{", "["):
        parsed = parse_json(arguments)
        if isinstance(parsed, (dict, list)):
            return parsed
    return arguments


def _part(block: object) -> Part:
    """One content block as a part."""
    if isinstance(block, str):
        return text_part(block)
    if not isinstance(block, dict):
        return text_part(_json_text(block))
    kind = block.get("type")
    if not isinstance(kind, str) or not kind:
        converted = _untyped_part(block)
        return converted if converted is not None else text_part(_json_text(block))
    if kind in _TEXT_TYPES:
        text = block.get("text", block.get("content"))
        return text_part("" if text is None else _json_text(text))
    converted = _media_part(kind, block) or _call_part(kind, block)
    if converted is not None:
        return converted
    if kind in _SEMCONV_TYPES:  # claims a semconv type but lacks its required fields
        return text_part(_json_text(block))
    return dict(block)  # a type semconv does not define: its GenericPart keeps it


def _call_part(kind: str, block: dict[str, Any]) -> Part | None:
    if kind == "tool_call":  # semconv, LangChain ("args")
        arguments = block.get("arguments", block.get("args"))
        return tool_call_part(block.get("id"), block.get("name"), arguments)
    if kind == "tool_use":  # Anthropic
        return tool_call_part(block.get("id"), block.get("name"), block.get("input"))
    if kind == "tool_result":  # Anthropic
        return _tool_response(block.get("tool_use_id"), block.get("content"))
    if kind in ("thinking", "reasoning"):  # Anthropic extended thinking; semconv
        text = block.get("thinking", block.get("content"))
        return {"type": "reasoning", "content": text} if isinstance(text, str) else None
    if kind == "tool_call_response" and "response" in block:
        return dict(block)
    if kind == "server_tool_call" and isinstance(block.get("name"), str):
        return dict(block) if _is_typed(block.get("server_tool_call")) else None
    if kind == "server_tool_call_response":
        return dict(block) if _is_typed(block.get("server_tool_call_response")) else None
    return None


def _is_typed(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("type"), str)


def _media_part(kind: str, block: dict[str, Any]) -> Part | None:
    if kind == "image_url":  # OpenAI chat
        image = block.get("image_url")
        return _from_url(image.get("url") if isinstance(image, dict) else image, "image", None)
    if kind == "input_image":  # OpenAI responses
        return _from_url(block.get("image_url"), "image", None)
    if kind == "input_audio":  # OpenAI chat
        audio = block.get("input_audio")
        if isinstance(audio, dict) and isinstance(audio.get("data"), str):
            fmt = audio.get("format")
            return _blob("audio", f"audio/{fmt}" if isinstance(fmt, str) else None, audio["data"])
        return None
    if kind in _MEDIA_TYPES:  # Anthropic sources, LangChain standard blocks
        return _source_part(kind, block)
    if kind == "file":
        file = block.get("file")
        if isinstance(file, dict):  # OpenAI chat
            if isinstance(file.get("file_id"), str):
                return {"type": "file", "modality": "document", "file_id": file["file_id"]}
            return _from_url(file.get("file_data"), "document", None)
    field = _REQUIRED_STR.get(kind)
    if field and isinstance(block.get("modality"), str) and isinstance(block.get(field), str):
        return dict(block)  # semconv already
    return None


def _untyped_part(block: dict[str, Any]) -> Part | None:
    """Gemini parts: ``text``, ``inline_data``, ``file_data``, function call/response."""
    text = block.get("text")
    if isinstance(text, str):
        return {"type": "reasoning", "content": text} if block.get("thought") else text_part(text)
    inline = block.get("inline_data", block.get("inlineData"))
    if isinstance(inline, dict) and isinstance(inline.get("data"), str):
        mime = _mime(inline)
        return _blob(_modality(mime), mime, inline["data"])
    file = block.get("file_data", block.get("fileData"))
    if isinstance(file, dict):
        mime = _mime(file)
        return _from_url(file.get("file_uri", file.get("fileUri")), _modality(mime), mime)
    call = block.get("function_call", block.get("functionCall"))
    if isinstance(call, dict):
        return tool_call_part(call.get("id"), call.get("name"), call.get("args"))
    response = block.get("function_response", block.get("functionResponse"))
    if isinstance(response, dict):
        return _tool_response(response.get("id"), response.get("response"))
    return None


def _tool_response(call_id: object, response: object) -> Part:
    return {
        "type": "tool_call_response",
        "id": call_id if isinstance(call_id, str) else None,
        "response": response,
    }


def _mime(fields: dict[str, Any]) -> str | None:
    mime = fields.get("mime_type", fields.get("mimeType"))
    return mime if isinstance(mime, str) else None


def _modality(mime: str | None) -> str:
    kind = mime.partition("/")[0] if mime else ""
    return kind if kind in ("image", "audio", "video") else "document"


def _source_part(modality: str, block: dict[str, Any]) -> Part | None:
    source = block.get("source")
    fields: dict[str, Any] = source if isinstance(source, dict) else block
    mime = fields.get("media_type", fields.get("mime_type"))
    mime = mime if isinstance(mime, str) else None
    data = fields.get("data")
    if isinstance(data, str) and fields.get("type", fields.get("source_type")) != "url":
        return _blob(modality, mime, data)
    return _from_url(fields.get("url"), modality, mime)


def _from_url(url: object, modality: str, mime: str | None) -> Part | None:
    """A base64 data URL becomes a blob part, any other URL a uri part."""
    if not isinstance(url, str) or not url:
        return None
    if url.startswith("data:"):
        header, sep, payload = url[5:].partition(",")
        media, _, encoding = header.partition(";")
        if sep and encoding == "base64":
            return _blob(modality, media or mime, payload)
    part: Part = {"type": "uri", "modality": modality, "uri": url}
    if mime is not None:
        part["mime_type"] = mime
    return part


def _blob(modality: str, mime: str | None, data: str) -> Part:
    part: Part = {"type": "blob", "modality": modality, "content": data}
    if mime:
        part["mime_type"] = mime
    return part
