"""How one value is masked: key rules, scrubbers and the user's mask, over JSON or text.

The stage (:mod:`otel_llm.processing.masking`) decides which attributes and events to
mask and what happens on failure; this module only transforms values, and raises
:class:`MaskFailed` / :class:`NestingTooDeep` when it cannot do so safely so that the
stage replaces the whole value (fail closed).

Speed matters here (every span with content passes through). Without a user mask and
with only built-in scrubbers, the stage first screens a span's string values together
(:meth:`Masker.unsure`): one scrubber gate over their raw text, and for JSON a parse and
a look at its keys. Most content holds no secret-looking key and nothing the gate lets
through, and is then left as it is, without the walk's per-string work. Otherwise JSON
is walked copy-on-write, so an unchanged document is never re-serialized; numbers,
bools and, without a user mask, strings under 8 characters are never looked at; key
and attribute classifications are cached per masker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

from otel_llm import semconv
from otel_llm.processing.masking_options import MaskOptions
from otel_llm.processing.scrubbers import Scrubber

__all__ = ["CONTENT", "OTHER", "SECRET", "TEXT", "MaskFailed", "Masker", "NestingTooDeep"]

# Attribute kinds, as bit flags.
OTHER: Final = 0
CONTENT: Final = 1
"""User content (``semconv.is_content_key``): masked as a document, removable."""
SECRET: Final = 2
"""A secret-looking key: the whole value is redacted."""
TEXT: Final = 4
"""Free text that may echo content (status messages, exception messages)."""

_FREE_TEXT_KEYS: Final = frozenset(
    {
        semconv.OBSERVATION_STATUS_MESSAGE,
        "langfuse.observation.status_message",
        "exception.message",
        "exception.stacktrace",
        "error.message",
    }
)
_MAX_DEPTH: Final = 128
_CACHE_SIZE: Final = 4096
_SHORT: Final = 8  # no built-in rule or secret JSON fits in fewer characters
_JSON_START: Final = frozenset('{["')
_JSON_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_KEY_COLON: Final = re.compile(r"\s*:")
_NOT_JSON: Final = object()


class MaskFailed(Exception):
    """The user's mask raised, or a result is not JSON data."""


class NestingTooDeep(Exception):
    """Nesting beyond 128 levels: refused rather than recursed without bound."""


class Masker:
    """Compiled masking settings (built once by ``compile_masker``).

    Used by the processor's worker thread only: its small name caches are unlocked.
    """

    __slots__ = (
        "_is_secret",
        "_key_marker",
        "_kinds",
        "_mask",
        "_names",
        "_screened",
        "_scrub",
        "_scrubber",
    )

    def __init__(self, options: MaskOptions, mask: Callable[[Any], Any] | None) -> None:
        self._scrubber: Scrubber | None = options.scrubber
        self._scrub = options.scrubber.scrub if options.scrubber is not None else None
        self._is_secret = options.is_secret_key
        self._key_marker = options.key_marker
        self._mask = mask
        self._kinds: dict[str, int] = {}
        self._names: dict[Any, bool] = {}
        self._screened = mask is None and (options.scrubber is None or options.scrubber.gated)

    @property
    def rules(self) -> tuple[str, ...]:
        """Names of the scrubber rules in effect (built-in and extra)."""
        return self._scrubber.rules if self._scrubber is not None else ()

    @property
    def key_rules(self) -> bool:
        """True when secret-looking keys are redacted."""
        return self._is_secret is not None

    @property
    def has_mask(self) -> bool:
        """True when a user ``mask=`` function is applied."""
        return self._mask is not None

    @property
    def screens(self) -> bool:
        """True when :meth:`unsure` can tell anything (no user mask, no extra pattern)."""
        return self._screened

    @property
    def inert(self) -> bool:
        """True when masking changes nothing (only ``capture_content`` can act)."""
        return self._scrubber is None and self._is_secret is None and self._mask is None

    def kind(self, key: str) -> int:
        """The kind flags (CONTENT | SECRET | TEXT) of an attribute key."""
        kind = self._kinds.get(key)
        if kind is None:
            kind = CONTENT if semconv.is_content_key(key) else OTHER
            if self._secret(key):
                kind |= SECRET
            if key in _FREE_TEXT_KEYS:
                kind |= TEXT
            if len(self._kinds) < _CACHE_SIZE:
                self._kinds[key] = kind
        return kind

    def kinds_of(self, keys: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
        """(key, kind) of the ``keys`` masking looks at (kind not OTHER), in order."""
        return tuple((key, kind) for key in keys if (kind := self.kind(key)) != OTHER)

    def mask_value(self, kind: int, value: Any, hits: list[str]) -> Any:
        """The masked attribute value, an OTel attribute value again.

        Appends each rule that hit to ``hits``. Returns ``value`` itself when nothing
        changed. Raises MaskFailed or NestingTooDeep (the caller fails closed).
        """
        if kind & SECRET:
            if value is None or isinstance(value, bool):
                return value
            hits.append("key")
            return self._key_marker
        if isinstance(value, str):
            result = self._document(value, hits) if kind & CONTENT else self._text(value, hits, 0)
            return result if isinstance(result, str) else _dumps(result)
        if isinstance(value, (list, tuple)):
            items = [self.mask_value(kind, v, hits) if isinstance(v, str) else v for v in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return tuple(items)
        return value

    def unsure(self, texts: Sequence[str]) -> list[bool]:
        """For each of ``texts`` (attribute values, JSON or not): False when masking it
        surely changes nothing (skip it), True when it must be masked.

        Exact, not a heuristic. Scrubbers: their gate is a necessary condition for a hit
        in any string, and what it looks for passes through JSON encoding (at any depth
        of JSON inside JSON) unchanged unless escaped, so one gate on the raw text of all
        values joined by newlines (which adds no hit a value has not) answers for every
        string in them; when it fires, each value is gated on its own. Key rules: a JSON
        value is parsed and its keys checked as the walk would, without its per-string
        work.
        """
        count = len(texts)
        scrubber = self._scrubber
        if not self._screened:
            return [True] * count
        if scrubber is None or not scrubber.may_hit_inside_json(
            texts[0] if count == 1 else "\n".join(texts)
        ):
            unsure = [False] * count
        elif count == 1:
            return [True]
        else:
            unsure = [scrubber.may_hit_inside_json(text) for text in texts]
        if self._is_secret is not None:
            for i, text in enumerate(texts):
                if not unsure[i] and text[:1] in _JSON_START:
                    unsure[i] = self._keys_in_text(text, 0)
        return unsure

    # Key rules only, visiting what the walk visits without a user mask (``_text``,
    # ``_walk``, ``_walk_dict``, ``_walk_list``); True also where only the walk can tell.
    def _keys_in_text(self, text: str, depth: int) -> bool:
        if depth >= _MAX_DEPTH - 1:
            return True  # the walk refuses to go deeper: let it decide
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return True  # read otherwise by the walk (big ints, broken JSON's literals)
        return self._keys_inside(value, depth + 1)

    def _keys_inside(self, value: Any, depth: int) -> bool:
        if depth >= _MAX_DEPTH - 1:
            return True
        kind = type(value)
        if kind is dict:
            names = self._names
            for key in value:
                secret = names.get(key)
                if secret or (secret is None and self._secret(key)):
                    return True
            value = value.values()
        elif kind is not list:
            return kind is str and value[:1] in _JSON_START and self._keys_in_text(value, depth)
        for item in value:
            kind = type(item)
            if kind is dict or kind is list:
                if self._keys_inside(item, depth + 1):
                    return True
            elif (
                kind is str
                and len(item) >= _SHORT
                and item[0] in _JSON_START
                and self._keys_in_text(item, depth)
            ):
                return True
        return False

    # -- internals ---------------------------------------------------------------
    def _secret(self, key: Any) -> bool:
        rule = self._is_secret
        if rule is None:
            return False
        secret = self._names.get(key)
        if secret is None:
            secret = isinstance(key, str) and rule(key)
            if len(self._names) < _CACHE_SIZE:
                self._names[key] = secret
        return secret

    def _document(self, text: str, hits: list[str]) -> Any:
        """A whole content value: JSON is masked as a whole, then walked."""
        parsed = _loads(text) if text and text[0] in _JSON_START else _NOT_JSON
        if parsed is _NOT_JSON:
            return self._text(text, hits, 0)
        if self._mask is not None and isinstance(parsed, (dict, list)):
            # the mask may change the object in place: always re-serialize
            return _dumps(self._walk(self._call(parsed), hits, 1))
        result = self._walk(parsed, hits, 1)
        return text if result is parsed else _dumps(result)

    def _walk(self, value: Any, hits: list[str], depth: int) -> Any:
        """``value`` with every nested string masked; the same object if unchanged."""
        if isinstance(value, dict):
            return self._walk_dict(value, hits, depth)
        if isinstance(value, (list, tuple)):
            return self._walk_list(value, hits, depth)
        if isinstance(value, str):
            return self._text(value, hits, depth)
        return value

    def _walk_dict(self, value: dict[Any, Any], hits: list[str], depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise NestingTooDeep
        names = self._names if self._is_secret is not None else None
        skip_short = self._mask is None
        scrub = self._scrub
        out: dict[Any, Any] | None = None
        for key, item in value.items():
            if names is not None:
                secret = names.get(key)
                if secret is None:
                    secret = self._secret(key)
                if secret:
                    new = self.mask_value(SECRET, item, hits)
                    if new is not item:
                        if out is None:
                            out = dict(value)
                        out[key] = new
                    continue
            kind = type(item)
            if kind is str:
                if skip_short:  # no user mask: skip what cannot hold a secret, and a frame
                    if len(item) < _SHORT:
                        continue
                    if item[0] in _JSON_START:
                        new = self._text(item, hits, depth)
                    elif scrub is None:
                        continue
                    else:
                        new = scrub(item, hits)
                else:
                    new = self._text(item, hits, depth)
            elif kind is dict:
                new = self._walk_dict(item, hits, depth + 1)
            elif kind is list:
                new = self._walk_list(item, hits, depth + 1)
            elif kind is int or kind is float or kind is bool or item is None:
                continue
            else:
                new = self._walk(item, hits, depth + 1)
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
        return value if out is None else out

    # _walk_list repeats _walk_dict's leaf handling on purpose: a helper call per string
    # would cost more than the checks it holds.
    def _walk_list(self, value: list[Any] | tuple[Any, ...], hits: list[str], depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise NestingTooDeep
        skip_short = self._mask is None
        scrub = self._scrub
        items: list[Any] | None = None
        for i, item in enumerate(value):
            kind = type(item)
            if kind is str:
                if skip_short:  # no user mask: skip what cannot hold a secret, and a frame
                    if len(item) < _SHORT:
                        continue
                    if item[0] in _JSON_START:
                        new = self._text(item, hits, depth)
                    elif scrub is None:
                        continue
                    else:
                        new = scrub(item, hits)
                else:
                    new = self._text(item, hits, depth)
            elif kind is dict:
                new = self._walk_dict(item, hits, depth + 1)
            elif kind is list:
                new = self._walk_list(item, hits, depth + 1)
            elif kind is int or kind is float or kind is bool or item is None:
                continue
            else:
                new = self._walk(item, hits, depth + 1)
            if new is not item:
                if items is None:
                    items = list(value)
                items[i] = new
        return value if items is None else items

    def _text(self, text: str, hits: list[str], depth: int) -> Any:
        """One string: user mask, then nested JSON (walked) or the scrubbers."""
        if self._mask is not None:
            masked = self._call(text)
            if not isinstance(masked, str):
                return masked
            text = masked
        if text and text[0] in _JSON_START:
            parsed = _loads(text) if depth < _MAX_DEPTH else _NOT_JSON
            if parsed is not _NOT_JSON:
                result = self._walk(parsed, hits, depth + 1)
                return text if result is parsed else _dumps(result)
            text = self._literals(text, hits)
        return self._scrubber.scrub(text, hits) if self._scrubber is not None else text

    def _literals(self, text: str, hits: list[str]) -> str:
        """Broken JSON: key rules on ``"key": "value"`` pairs, the mask on each literal."""
        if self._mask is None and self._is_secret is None:
            return text
        parts: list[str] = []
        done = 0
        secret_key = False
        for match in _JSON_STRING.finditer(text):
            literal = _decode_literal(match.group())
            if _KEY_COLON.match(text, match.end()):
                secret_key = self._secret(literal)
                continue
            if secret_key:
                new: Any = self._key_marker
                hits.append("key")
            elif self._mask is not None:
                new = self._call(literal)
            else:
                continue
            secret_key = False
            if new != literal:
                parts.append(text[done : match.start()])
                parts.append(_dumps(new))
                done = match.end()
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)

    def _call(self, value: Any) -> Any:
        mask = self._mask
        if mask is None:
            return value
        try:
            return mask(value)
        except Exception as exc:
            raise MaskFailed(f"the mask function raised {type(exc).__name__}") from None


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:  # what orjson refuses but most readers accept: ints over 64 bits, NaN
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        pass
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        raise MaskFailed("a masked value is not JSON data") from None


def _decode_literal(literal: str) -> str:
    closed = literal if len(literal) > 1 and literal.endswith('"') else literal + '"'
    try:
        decoded = orjson.loads(closed)
    except orjson.JSONDecodeError:
        return literal[1:]
    return decoded if isinstance(decoded, str) else literal[1:]
