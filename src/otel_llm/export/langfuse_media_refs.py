"""Langfuse media tokens: our media references rewritten into what the server links.

One job: the ``@@@langfuseMedia:...@@@`` token format, the Langfuse SDK's media id,
which upload ``field`` (input, output or metadata) an attribute belongs to, and the
rewrite of our ``otel_llm`` media references into tokens. The Langfuse exporter runs
it after ``to_langfuse``; ``langfuse_media`` uploads the payloads the tokens name.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Container, MutableMapping
from typing import Any, Final

from otel_llm import semconv
from otel_llm.export.dialect_langfuse import LF_INPUT, LF_OUTPUT, LF_TRACE_INPUT, LF_TRACE_OUTPUT
from otel_llm.processing.media_model import REFERENCE_PATTERN, REFERENCE_PREFIX

__all__ = ["media_field", "media_id", "media_token", "replace_media_references"]

_MEDIA_TOKEN: Final = "@@@langfuseMedia:type={}|id={}|source={}@@@"
_MEDIA_SOURCES: Final = {
    "base64_data_uri": "base64_data_uri",
    "base64": "base64_data_uri",
    "bytes": "bytes",
}
_MEDIA_INPUT_KEYS: Final = (
    LF_INPUT,
    LF_TRACE_INPUT,
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    "gen_ai.prompt",
    "llm.input_messages",
    "input.value",
    "ai.prompt",
    "traceloop.entity.input",
)
_MEDIA_OUTPUT_KEYS: Final = (
    LF_OUTPUT,
    LF_TRACE_OUTPUT,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    "gen_ai.completion",
    "llm.output_messages",
    "output.value",
    "ai.response",
    "traceloop.entity.output",
)


def media_id(sha256_hex: str) -> str:
    """The Langfuse SDK's media id: the first 22 characters of the URL-safe base64 of
    the raw sha256 digest (identical content, identical id)."""
    digest = bytes.fromhex(sha256_hex)
    return base64.urlsafe_b64encode(digest).decode("ascii")[:22]


def media_token(mime_type: str, sha256_hex: str, source: str) -> str:
    """``@@@langfuseMedia:type=<mime>|id=<id>|source=<base64_data_uri|bytes|file>@@@``."""
    lf_source = _MEDIA_SOURCES.get(source, "bytes")
    return _MEDIA_TOKEN.format(mime_type, media_id(sha256_hex), lf_source)


def media_field(key: str) -> str:
    """The upload ``field`` for a reference found under attribute ``key``."""
    if key.startswith(_MEDIA_INPUT_KEYS):
        return "input"
    if key.startswith(_MEDIA_OUTPUT_KEYS):
        return "output"
    return "metadata"


def replace_media_references(
    attributes: MutableMapping[str, Any], known: Container[str]
) -> list[tuple[str, str]]:
    """Rewrite our media references (whose sha256 is in ``known``) into Langfuse tokens.

    Every string and string-sequence attribute is searched; references to payloads we
    do not hold stay as they are (a token without an upload would dangle).

    Returns:
        The distinct ``(sha256, field)`` pairs rewritten, in order of appearance.
    """
    found: dict[tuple[str, str], None] = {}

    def rewrite(text: str, field: str) -> str:
        def token(m: re.Match[str]) -> str:
            sha = m["sha256"]
            if sha not in known:
                return m[0]
            found[(sha, field)] = None
            return media_token(m["mime_type"], sha, m["source"])

        return REFERENCE_PATTERN.sub(token, text)

    for key, value in list(attributes.items()):
        if isinstance(value, str):
            if REFERENCE_PREFIX in value:
                attributes[key] = rewrite(value, media_field(key))
        elif isinstance(value, (list, tuple)) and any(
            isinstance(v, str) and REFERENCE_PREFIX in v for v in value
        ):
            field = media_field(key)
            attributes[key] = tuple(rewrite(v, field) if isinstance(v, str) else v for v in value)
    return list(found)
