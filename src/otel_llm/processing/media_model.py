"""The media vocabulary: options, payloads, the sink protocol and the reference format.

Shared by the media stage (which writes references and payloads), the processor (which
hands payloads to destinations) and dialects (which turn a reference into their own token,
e.g. Langfuse's ``@@@langfuseMedia:type=...|id=...|source=...@@@``, whose id is derived from
the sha256). The format is defined once, here, so writer and readers cannot drift apart.

A reference names bytes that were kept; an *omitted* marker names a payload that was
dropped (too large, or too many in one span) and has no bytes behind it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal, Protocol, cast, runtime_checkable

from otel_llm.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PER_SPAN",
    "DEFAULT_MIN_BYTES",
    "MIME_PATTERN",
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
    "format_omitted",
    "format_reference",
    "parse_reference",
]

MediaSource = Literal["base64_data_uri", "base64", "bytes"]

DEFAULT_MIN_BYTES: Final = 1024
"""Smaller payloads stay inline: a reference is ~130 characters, and a separate upload (three
requests for Langfuse) costs more than the ~1.4 KB of base64 it would save."""
DEFAULT_MAX_BYTES: Final = 20 * 2**20
"""Larger payloads are dropped (marker only): providers cap inline media around 20 MB too."""
DEFAULT_MAX_PER_SPAN: Final = 50

REFERENCE_PREFIX: Final = "@@@otel_llm.media:"
REFERENCE_SUFFIX: Final = "@@@"
_REFERENCE = REFERENCE_PREFIX + "type={}|sha256={}|size={}|source={}" + REFERENCE_SUFFIX
_MIME_TEXT = r"[a-z0-9][a-z0-9.+_-]*/[a-z0-9][a-z0-9.+_-]*"
MIME_PATTERN: Final = re.compile(_MIME_TEXT)
"""A clean, lowercase mime type without parameters (what references carry)."""
REFERENCE_PATTERN: Final = re.compile(
    r"@@@otel_llm\.media:type=(?P<mime_type>" + _MIME_TEXT + r")\|sha256=(?P<sha256>[0-9a-f]{64})"
    r"\|size=(?P<size>[0-9]+)\|source=(?P<source>base64_data_uri|base64|bytes)@@@"
)
"""Finds references inside larger text (a dialect rewrites them into its own tokens)."""

OMITTED_PREFIX: Final = "@@@otel_llm.media-omitted:"
_OMITTED = OMITTED_PREFIX + "type={}|size={}|source={}|reason={}" + REFERENCE_SUFFIX
OMITTED_PATTERN: Final = re.compile(
    r"@@@otel_llm\.media-omitted:type=(?P<mime_type>" + _MIME_TEXT + r")\|size=(?P<size>[0-9]+)"
    r"\|source=(?P<source>[a-z0-9_]+)\|reason=(?P<reason>over_limit|max_per_span)@@@"
)
"""A payload replaced without keeping its bytes (too large, or too many in one span)."""


@dataclass(frozen=True)
class MediaPayload:
    """Decoded bytes of one media payload, named by their sha256 (hex)."""

    sha256: str
    mime_type: str
    size: int
    data: bytes = field(repr=False)
    source: MediaSource

    @property
    def reference(self) -> str:
        """The reference string that replaced this payload in the attributes."""
        return format_reference(self.mime_type, self.sha256, self.size, self.source)


@runtime_checkable
class MediaSink(Protocol):
    """Where payloads go (a destination's uploader). Called off the app thread; may do I/O."""

    def put(self, payload: MediaPayload) -> None: ...


@dataclass(frozen=True)
class MediaReference:
    """What a reference string says (see :func:`parse_reference`)."""

    mime_type: str
    sha256: str
    size: int
    source: MediaSource


@dataclass(frozen=True)
class MediaOptions:
    """Media handling settings, validated on construction (``ConfigError("media", ...)``)."""

    enabled: bool = True
    min_bytes: int = DEFAULT_MIN_BYTES
    """Decoded payloads smaller than this stay inline."""
    max_bytes: int = DEFAULT_MAX_BYTES
    """Larger payloads become an omitted marker; their bytes are not kept."""
    max_per_span: int = DEFAULT_MAX_PER_SPAN
    """Distinct payloads kept per span; later ones become an omitted marker."""
    sink: MediaSink | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError("media", f"enabled must be a bool, got {type(self.enabled).__name__}")
        _check_int("min_bytes", self.min_bytes, 0)
        _check_int("max_bytes", self.max_bytes, max(self.min_bytes, 1))
        _check_int("max_per_span", self.max_per_span, 1)
        if self.sink is not None and not callable(getattr(self.sink, "put", None)):
            raise ConfigError("media", "sink must have a put(payload) method")


def _check_int(name: str, value: object, minimum: int) -> None:
    if type(value) is not int or value < minimum:
        raise ConfigError("media", f"{name} must be an int >= {minimum}, got {value!r}")


_DEFAULT_OPTIONS: Final = MediaOptions()
_OPTION_NAMES: Final = frozenset(f.name for f in fields(MediaOptions))


def compile_media_options(options: Mapping[str, Any] | MediaOptions | bool | None) -> MediaOptions:
    """``None``/``True``: defaults; ``False``: off; a mapping of :class:`MediaOptions` fields."""
    if options is None or options is True:
        return _DEFAULT_OPTIONS
    if options is False:
        return MediaOptions(enabled=False)
    if isinstance(options, MediaOptions):
        return options
    if not isinstance(options, Mapping):
        kind = type(options).__name__
        raise ConfigError("media", f"expected True, False or a mapping of options, got {kind}")
    unknown = sorted(repr(k) for k in options if k not in _OPTION_NAMES)
    if unknown:
        expected = ", ".join(sorted(_OPTION_NAMES))
        raise ConfigError("media", f"unknown option {', '.join(unknown)}; expected {expected}")
    return MediaOptions(**options)


def format_reference(mime_type: str, sha256: str, size: int, source: str) -> str:
    return _REFERENCE.format(mime_type, sha256, size, source)


def format_omitted(mime_type: str, size: int, source: str, reason: str) -> str:
    return _OMITTED.format(mime_type, size, source, reason)


def parse_reference(text: str) -> MediaReference | None:
    """The parts of a whole reference string, or None if ``text`` is not exactly one."""
    m = REFERENCE_PATTERN.fullmatch(text)
    if m is None:
        return None
    source = cast(MediaSource, m["source"])
    return MediaReference(m["mime_type"], m["sha256"], int(m["size"]), source)
