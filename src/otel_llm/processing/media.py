"""Media stage: base64 images, audio and documents in content become short references.

Why: people send images, audio and PDFs to models as base64 — data URIs, provider part
shapes, or raw bytes. Exported in span attributes, megabytes of base64 break backends
(Langfuse request limits, APM attribute limits) and cost memory in every queue and spool
on the way. Like the Langfuse SDK, we replace each payload with a reference string and keep
the decoded bytes beside the record (``record.extras["media"]``) for destinations that can
upload them. References carry the sha256, so identical payloads are kept once and a dialect
can derive its own token (see :mod:`otel_llm.processing.media_model` for the format).

What counts as media is decided by structure, never by how a string looks: a
``data:<mime>;base64,`` URI anywhere in a string; the payload field of a known part shape
(semconv ``blob`` parts, Anthropic ``{"type": "base64"}`` sources, Vertex ``media`` parts,
OpenAI ``input_audio`` and output ``audio``, Gemini ``inline_data``); or a ``bytes`` value.
A long random-looking string anywhere else is left alone.

JSON text is never re-serialized: replacements are spliced into the original text, so
everything else (key order, number spelling, escapes) stays byte for byte.

Cost: per span one lookup of its content keys (cached per set of keys); per content
attribute a type check and a length compare. A content string long enough to
hold a payload is then checked for a run of that many characters without a space or quote
(a few short ``rfind`` steps), and only then searched for ``base64,`` and part-shape markers;
JSON is parsed only when such a marker is present.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import sys
from collections.abc import Iterator
from typing import Any

import orjson

from otel_llm.diagnostics import log_once
from otel_llm.processing.media_model import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PER_SPAN,
    DEFAULT_MIN_BYTES,
    MIME_PATTERN,
    OMITTED_PATTERN,
    OMITTED_PREFIX,
    REFERENCE_PATTERN,
    REFERENCE_PREFIX,
    REFERENCE_SUFFIX,
    MediaOptions,
    MediaPayload,
    MediaReference,
    MediaSink,
    MediaSource,
    compile_media_options,
    format_omitted,
    format_reference,
    parse_reference,
)
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext
from otel_llm.semconv import is_content_key

__all__ = [  # the stage, and the vocabulary re-exported so one import serves callers
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PER_SPAN",
    "DEFAULT_MIN_BYTES",
    "OMITTED_PATTERN",
    "OMITTED_PREFIX",
    "REFERENCE_PATTERN",
    "REFERENCE_PREFIX",
    "REFERENCE_SUFFIX",
    "MediaOptions",
    "MediaPayload",
    "MediaReference",
    "MediaSink",
    "MediaSource",
    "compile_media_options",
    "extract_media",
    "format_reference",
    "parse_reference",
]

_OCTET_STREAM = "application/octet-stream"
_DATA_URI = re.compile(
    r"data:(?P<mime>[A-Za-z0-9][A-Za-z0-9.+_-]*\\?/[A-Za-z0-9][A-Za-z0-9.+_-]*)?"
    r"(?:;[A-Za-z0-9.+_-]+=[^;,\s\"'\\]*)*;base64,"
    # the whole run of base64-ish text (and JSON's escaped "\/"), validated strictly later
    r"(?P<b64>[A-Za-z0-9+/=_\\-]*)"
)
_JSON_MARKERS = ('"data"', '"blob"')
_JSON_START = re.compile(r"\s*[\[{]")
_MIN_RUN_CHECK = 256  # below this width, the run check costs more than it saves
_AUDIO_PARENTS = frozenset({"input_audio", "audio"})
_INLINE_PARENTS = frozenset({"inline_data", "inlineData"})
_AUDIO_FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm16": "audio/pcm", "m4a": "audio/mp4"}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_FTYP = {b"heic": "image/heic", b"heix": "image/heic", b"avif": "image/avif", b"M4A ": "audio/mp4"}
_STRICT_DECODE = sys.version_info >= (3, 11)


_DEFAULT_OPTIONS = MediaOptions()
_CONTENT_KEYS = "otel_llm.media.content_keys"
"""``ctx.per_key_set`` slot: the content keys among a span's keys."""


def extract_media(record: SpanRecord, ctx: StageContext) -> None:
    """Replace base64 media in content attributes with references; bytes go to extras."""
    opts = ctx.media or _DEFAULT_OPTIONS
    if not opts.enabled or not ctx.capture_content:
        return  # content that is not captured is never handed to a sink
    min_chars = 4 * ((max(opts.min_bytes, 1) + 2) // 3)  # base64 of min_bytes
    attrs = record.attributes
    extractor: _Extractor | None = None
    for key in ctx.per_key_set(_CONTENT_KEYS, attrs, _content_keys):
        value = attrs[key]
        cls = type(value)
        if cls is str:
            if len(value) < min_chars or not _may_hold_media(value, min_chars):
                continue
        elif cls is not bytes and cls is not tuple and cls is not list:
            continue
        if extractor is None:
            extractor = _Extractor(opts, ctx, min_chars, record.extras.get("media"))
        extractor.attribute(attrs, key, value)  # same keys: safe while iterating
    if extractor is not None:
        extractor.finish(record)


def _content_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(key for key in keys if is_content_key(key))


def _may_hold_media(text: str, width: int) -> bool:
    if width >= _MIN_RUN_CHECK and not _has_run(text, width):
        return False
    return "base64," in text or _may_hold_parts(text)


def _has_run(text: str, width: int) -> bool:
    """False when every ``width`` characters of ``text`` hold a space or a quote, so no base64
    payload that long fits. Prose and JSON pass in ~len/width steps of two short ``rfind``s,
    several times faster than one substring search over the whole text."""
    start, end = 0, len(text)
    while start + width <= end:
        stop = start + width
        cut = max(text.rfind(" ", start, stop), text.rfind('"', start, stop))
        if cut < 0:
            return True
        start = cut + 1
    return False


def _may_hold_parts(text: str) -> bool:
    """JSON text with a marker of a known part shape (plain text is never parsed)."""
    first = text[:1]
    if first != "{" and first != "[" and not (first.isspace() and _JSON_START.match(text)):
        return False
    return _JSON_MARKERS[0] in text or _JSON_MARKERS[1] in text


class _Extractor:
    """Per-record state: payloads by sha256 (dedup), options, counters."""

    def __init__(
        self, opts: MediaOptions, ctx: StageContext, min_chars: int, existing: object
    ) -> None:
        self._opts = opts
        self._ctx = ctx
        self._min_chars = min_chars
        self._payloads: dict[str, MediaPayload] = {}
        if isinstance(existing, list):  # the stage ran before on this record
            self._payloads.update((p.sha256, p) for p in existing if isinstance(p, MediaPayload))
        self._existing = len(self._payloads)

    def attribute(self, attrs: dict[str, Any], key: str, value: object) -> None:
        mark = len(self._payloads)
        try:
            new = self._value(value)
        except Exception as exc:  # a bug or a hostile value: keep the attribute, count it
            for sha in list(self._payloads)[mark:]:
                del self._payloads[sha]
            self._ctx.count("media.error")
            kind = type(exc).__name__
            log_once("media", kind, f"media extraction failed ({kind}); attribute left as is")
            return
        if new is not value:
            attrs[key] = new

    def finish(self, record: SpanRecord) -> None:
        new = list(self._payloads.values())[self._existing :]
        if new:
            record.extras["media"] = list(self._payloads.values())
            self._ctx.count("media.extracted", len(new))
            self._ctx.count("media.bytes", sum(p.size for p in new))

    # -- values ---------------------------------------------------------------------------
    def _value(self, value: object) -> object:
        if type(value) is str:
            return self._text(value)
        if type(value) is bytes:
            return self._bytes(value)
        if isinstance(value, (tuple, list)):
            items = [self._value(v) if type(v) in (str, bytes) else v for v in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return tuple(items) if isinstance(value, tuple) else items
        return value

    def _text(self, text: str) -> str:
        if len(text) < self._min_chars:
            return text
        if _may_hold_parts(text):
            text = self._json_slots(text)
        if "base64," in text:
            text = _DATA_URI.sub(self._on_data_uri, text)
        return text

    def _bytes(self, data: bytes) -> object:
        size = len(data)
        if size < max(self._opts.min_bytes, 1):
            return data
        if size > self._opts.max_bytes:
            return self._over_limit(_mime(None, data), size, "bytes")
        return self._keep(data, None, "bytes")

    # -- part shapes in JSON --------------------------------------------------------------
    def _json_slots(self, text: str) -> str:
        """Splice references over the payload strings of known part shapes."""
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text  # plain text that merely mentions "data"
        slots: dict[str, str | None] = {}
        for payload, declared in _slot_payloads(doc):
            if len(payload) >= self._min_chars and not payload.startswith(("data:", "@@@")):
                slots.setdefault(payload, declared)
        for payload, declared in slots.items():
            # as the JSON text spells it: plain, or with every "/" escaped
            spans = _find_all(text, f'"{payload}"')
            if not spans and "/" in payload:
                spans = _find_all(text, '"{}"'.format(payload.replace("/", "\\/")))
            if not spans:
                continue  # some other escaping: leave it rather than guess
            ref = self._base64(payload, declared, "base64")
            if ref is not None:
                text = _splice(text, spans, f'"{ref}"')
        return text

    # -- payloads -------------------------------------------------------------------------
    def _on_data_uri(self, m: re.Match[str]) -> str:
        b64, tail = m["b64"], ""
        if "\\" in b64:
            b64, tail = _cut_at_escape(b64)
        mime = m["mime"]
        ref = self._base64(b64, mime and mime.replace("\\", ""), "base64_data_uri")
        return m[0] if ref is None else ref + tail

    def _base64(self, b64: str, declared: str | None, source: MediaSource) -> str | None:
        """The reference for a base64 payload, or None to leave it as it is."""
        size = len(b64) * 3 // 4 - (2 if b64.endswith("==") else 1 if b64.endswith("=") else 0)
        if size < max(self._opts.min_bytes, 1):
            return None
        if size > self._opts.max_bytes:  # not decoded: never hold it twice
            return self._over_limit(_mime(declared, _head(b64)), size, source)
        data = _decode(b64)
        if data is None:
            self._ctx.count("media.invalid_base64")
            return None
        return self._keep(data, declared, source)

    def _keep(self, data: bytes, declared: str | None, source: MediaSource) -> str:
        sha = hashlib.sha256(data).hexdigest()
        payload = self._payloads.get(sha)
        if payload is not None:
            self._ctx.count("media.deduplicated")
            return format_reference(payload.mime_type, sha, payload.size, source)
        mime = _mime(declared, data)
        if len(self._payloads) >= self._opts.max_per_span:
            self._ctx.count("media.over_max_per_span")
            return format_omitted(mime, len(data), source, "max_per_span")
        payload = MediaPayload(sha, mime, len(data), data, source)
        self._payloads[sha] = payload
        return payload.reference

    def _over_limit(self, mime: str, size: int, source: MediaSource) -> str:
        self._ctx.count("media.over_limit")
        return format_omitted(mime, size, source, "over_limit")


def _slot_payloads(doc: object) -> Iterator[tuple[str, str | None]]:
    """(payload string, declared mime) of every known part shape in a parsed JSON document."""
    stack: list[tuple[object, object]] = [(doc, None)]
    while stack:
        value, parent = stack.pop()
        if isinstance(value, dict):
            slot = _slot(value, parent)
            if slot is not None and type(value.get(slot[0])) is str:
                yield value[slot[0]], slot[1]
            stack.extend((v, k) for k, v in value.items() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, None) for v in value if isinstance(v, (dict, list)))


def _slot(part: dict[str, Any], parent: object) -> tuple[str, str | None] | None:
    """The field of a known part shape that holds base64, and the mime type it declares."""
    kind = part.get("type")
    if kind == "blob":  # semconv BlobPart
        return "content", _clean_mime(part.get("mime_type"))
    if kind == "base64":  # Anthropic source
        return "data", _clean_mime(part.get("media_type"))
    if kind == "media" or parent in _INLINE_PARENTS:  # Vertex part, Gemini inline_data
        return "data", _clean_mime(part.get("mime_type") or part.get("mimeType"))
    if parent in _AUDIO_PARENTS:  # OpenAI input_audio part, assistant audio output
        fmt = part.get("format")
        fmt = fmt.lower() if isinstance(fmt, str) else ""
        return "data", _AUDIO_FORMATS.get(fmt) or _clean_mime(f"audio/{fmt}")
    return None


# -- text ---------------------------------------------------------------------------------------
def _find_all(text: str, literal: str) -> list[tuple[int, int]]:
    """Where ``literal`` occurs, without overlaps (a short probe, then a memcmp per hit:
    ``str.find`` and ``str.replace`` with a megabyte needle are several times slower)."""
    probe = literal[:64]
    spans: list[tuple[int, int]] = []
    i = text.find(probe)
    while i != -1:
        if text.startswith(literal, i):
            spans.append((i, i + len(literal)))
            i = text.find(probe, i + len(literal))
        else:
            i = text.find(probe, i + 1)
    return spans


def _splice(text: str, spans: list[tuple[int, int]], replacement: str) -> str:
    parts: list[str] = []
    pos = 0
    for start, end in spans:
        parts += (text[pos:start], replacement)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


# -- bytes and types --------------------------------------------------------------------------
def _cut_at_escape(run: str) -> tuple[str, str]:
    """Split a run of JSON text at its first escape other than "\\/" (which is unescaped)."""
    i = run.find("\\")
    while i != -1 and run.startswith("/", i + 1):
        i = run.find("\\", i + 2)
    head, tail = (run, "") if i == -1 else (run[:i], run[i:])
    return head.replace("\\/", "/"), tail


def _decode(b64: str) -> bytes | None:
    try:
        if _STRICT_DECODE:
            return binascii.a2b_base64(b64, strict_mode=True)
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None


def _head(b64: str) -> bytes:
    try:
        return binascii.a2b_base64(b64[:24])
    except (binascii.Error, ValueError):
        return b""


def _clean_mime(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    mime = value.split(";", 1)[0].strip().lower()
    return mime if MIME_PATTERN.fullmatch(mime) else None


def _mime(declared: str | None, head: bytes) -> str:
    """The declared type when it is a clean one, else magic bytes, else octet-stream."""
    return _clean_mime(declared) or _sniff(head) or _OCTET_STREAM


def _sniff(head: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF":
        return _RIFF.get(head[8:12])
    if head[4:8] == b"ftyp":
        return _FTYP.get(head[8:12], "video/mp4")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio/mpeg"  # MPEG audio frame sync, layer I-III (not AAC, whose layer is 0)
    return None
