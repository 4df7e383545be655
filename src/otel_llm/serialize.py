"""JSON serialization of user values (inputs, outputs, metadata) for span attributes.

It runs on the application thread for every traced call, so the common case is a single
``orjson.dumps``, its decode and two cheap checks: no Python walk, no lock, no counter. And it
is total: tracing must never break the traced app, so ``to_json``/``to_attribute`` never
raise, whatever they get (cycles, 10_000-deep nesting, 200-bit ints, lone surrogates, objects whose
``__getattribute__`` raises...). Values orjson refuses go to a pure-Python walker that builds
a JSON-safe copy, replacing what cannot be represented by a short marker and counting why.
Output is cut to about ``max_chars``; cutting costs O(max_chars), not O(len(value)).
Generators are never iterated; modules, classes, files, sockets, locks cost O(1).

NaN/±inf: orjson writes ``null``; like the Langfuse SDK we write "NaN", "Infinity",
"-Infinity". To keep the fast path fast we only look for them when orjson's output contains
``null`` (a C substring search); then a cheap scan of plain containers decides,
conservatively, whether the walker must run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import re
import socket
import sys
import threading
import types
from collections import deque
from collections.abc import Iterable, KeysView, Mapping, ValuesView
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

import orjson

__all__ = [
    "DEFAULT_MAX_CHARS",
    "TRUNCATION_MARKER",
    "UNSERIALIZABLE_MARKER",
    "replacement_counts",
    "to_attribute",
    "to_json",
]

DEFAULT_MAX_CHARS: int = 1_000_000
TRUNCATION_MARKER = "…[truncated {n} chars]"
UNSERIALIZABLE_MARKER = "<unserializable {type}>"

_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
)
_MAX_DEPTH = 64
_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1  # what orjson accepts
_SURROGATES = re.compile("[\ud800-\udfff]")
# Leaves orjson encodes natively and that cannot hide a float.
_LEAVES: frozenset[type] = frozenset({datetime, date, time, UUID})
_PLAIN: frozenset[type] = _LEAVES | {str, int, bool, type(None)}
_KEY_SCALARS: frozenset[type] = _LEAVES | {int, float, bool, type(None)}
# Replaced by "<TypeName>" without being looked into (plus any iterator, see _default).
_CODE = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.CodeType)
_RUNTIME = (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType, types.FrameType)
_RESOURCES = (io.IOBase, socket.socket, type(threading.Lock()), type(threading.RLock()))
_OPAQUE = (type, types.ModuleType, types.TracebackType, *_CODE, *_RUNTIME, *_RESOURCES)
_UNSET = object()
_REASONS = ("truncated", "unserializable", "cycle", "depth", "non_finite", "invalid_utf8")
_counts: dict[str, int] = dict.fromkeys(_REASONS, 0)
_counts_lock = threading.Lock()


def to_json(value: object, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Always returns a valid JSON document (str) no longer than about max_chars (+ marker)."""
    try:
        if type(value) is str and len(value) > max_chars:
            return _slow(value, max_chars)  # don't encode 10 MB just to cut it
        try:
            raw = orjson.dumps(value, default=_default, option=_OPTIONS)
        except Exception:
            return _slow(value, max_chars)
        text = raw.decode()
        # Searching the str, not the bytes: same answer (UTF-8), several times cheaper.
        if "null" in text and _may_hide_non_finite(value, '"null":' in text):
            return _slow(value, max_chars)
        if len(raw) <= max_chars or len(text) <= max_chars:  # bytes >= chars
            return text
        counts: dict[str, int] = {}
        text = _shrink(orjson.loads(raw), max_chars, counts)  # loads: a JSON-safe copy, in C
        _record(counts)
        return text
    except Exception:
        return _unserializable_json(value)


def to_attribute(value: object, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """What goes into an input/output attribute.

    A str passes through unquoted (the Langfuse SDK convention), cut with the marker if
    longer than max_chars and with lone surrogates replaced (exporters reject them);
    anything else is ``to_json(value)``.
    """
    try:
        if not isinstance(value, str):
            return to_json(value, max_chars=max_chars)
        text = value if type(value) is str else str.__str__(value)
        if len(text) <= max_chars and (text.isascii() or _is_utf8(text)):
            return text
        walker = _Walker()
        text = walker.text(text)
        if len(text) > max_chars:
            _bump(walker.counts, "truncated")
            text = _cut(text, max(max_chars, 0))
        _record(walker.counts)
        return text
    except Exception:
        return to_json(value, max_chars=max_chars)


def replacement_counts() -> dict[str, int]:
    """Snapshot of how many values were replaced or cut since process start, by reason."""
    with _counts_lock:
        return dict(_counts)


class _Replaced(Exception):
    """Raised by ``_default`` with (reason, text): the walker puts text there, counted."""


def _default(v: object) -> object:
    """orjson's ``default``: map one non-native value to something encodable."""
    cls = type(v)
    if isinstance(v, _OPAQUE) or hasattr(cls, "__next__"):  # never iterate an iterator
        raise _Replaced("unserializable", f"<{_type_name(v)}>")
    model: Any = v
    if hasattr(cls, "model_dump") and hasattr(cls, "model_fields"):  # pydantic v2
        try:
            return model.model_dump(mode="json")
        except Exception:
            return model.model_dump()  # the walker deals with what json mode refused
    if hasattr(cls, "__fields__") and callable(getattr(cls, "dict", None)):  # pydantic v1
        return model.dict()
    if isinstance(v, BaseException):
        return {"type": _type_name(v), "message": str(v)}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _bytes(v)
    if isinstance(v, (set, frozenset)):
        return _sorted_list(v)
    if isinstance(v, Decimal):
        return _decimal(v)
    if isinstance(v, (PurePath, complex, UUID)):
        return str(v)
    if isinstance(v, (datetime, date, time)):  # subclasses orjson did not take
        return v.isoformat()
    if isinstance(v, Enum):
        return v.value
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(v, (numpy.ndarray, numpy.generic)):
        return v.tolist()  # dtypes or layouts orjson refused
    if isinstance(v, Mapping):
        return dict(v.items())
    if isinstance(v, (tuple, deque, KeysView, ValuesView, range)):
        return list(v)
    attrs = _public_attrs(v)
    if attrs is None:
        raise _Replaced("unserializable", UNSERIALIZABLE_MARKER.format(type=_type_name(v)))
    return attrs


def _bytes(v: bytes | bytearray | memoryview) -> str:
    data = v.tobytes() if isinstance(v, memoryview) else bytes(v)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        digest = hashlib.sha256(data).hexdigest()[:16]
        raise _Replaced("invalid_utf8", f"<bytes len={len(data)} sha256={digest}>") from None


def _sorted_list(v: set[Any] | frozenset[Any]) -> list[Any]:
    items = list(v)
    try:
        return sorted(items)
    except Exception:  # mixed or unorderable types
        return items


def _decimal(v: Decimal) -> float | str:
    if v.is_finite():
        f = float(v)
        return f if math.isfinite(f) else str(v)
    text = "NaN" if v.is_nan() else "-Infinity" if v.is_signed() else "Infinity"
    raise _Replaced("non_finite", text)


def _public_attrs(v: object) -> dict[str, object] | None:
    """Public attributes from ``__dict__`` and ``__slots__``; None if the object has neither."""
    found = False
    out: dict[str, object] = {}
    attrs = getattr(v, "__dict__", None)
    if isinstance(attrs, dict):
        found = True
        out.update((k, x) for k, x in attrs.items() if type(k) is str and not k.startswith("_"))
    for klass in type(v).__mro__:
        slots = klass.__dict__.get("__slots__")
        if slots is None:
            continue
        found = True
        for name in (slots,) if isinstance(slots, str) else slots:
            if type(name) is str and not name.startswith("_") and name not in out:
                x = getattr(v, name, _UNSET)
                if x is not _UNSET:
                    out[name] = x
    return out if found else None


def _may_hide_non_finite(value: object, keys: bool) -> bool:
    """Could orjson have written a NaN/inf as null? Exact for plain containers, else True."""
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is dict:
            if keys:  # a NaN key is written "null" too
                stack.extend(v)
            children: Iterable[object] = v.values()
        elif type(v) is list or type(v) is tuple:
            children = v
        elif type(v) is float:
            if not math.isfinite(v):
                return True
            continue
        elif type(v) in _PLAIN:
            continue
        else:
            return True
        for child in children:
            if type(child) is not str and child is not None:  # skip the commonest leaves early
                stack.append(child)
    return False


class _Walker:
    """Builds a JSON-safe copy of a value that orjson refused, counting replacements."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._path: set[int] = set()  # ids of the containers being walked (cycle check)

    def walk(self, v: object, depth: int) -> object:
        try:
            return self._walk(v, depth)
        except _Replaced as r:
            _bump(self.counts, r.args[0])
            return r.args[1]
        except Exception:
            _bump(self.counts, "unserializable")
            return UNSERIALIZABLE_MARKER.format(type=_type_name(v))

    def text(self, s: str) -> str:
        if s.isascii() or _is_utf8(s):
            return s
        _bump(self.counts, "invalid_utf8")
        return _SURROGATES.sub("\ufffd", s)

    def _walk(self, v: object, depth: int) -> object:
        if type(v) is str:
            return self.text(v)
        if type(v) is int:
            if _MIN_INT <= v <= _MAX_INT:
                return v
            return str(v) if v.bit_length() < 2000 else hex(v)  # str(): 640+ digits may raise
        if type(v) is float:
            return v if math.isfinite(v) else self._non_finite(v)
        if v is None or type(v) is bool or type(v) in _LEAVES:
            return v
        if isinstance(v, Enum):
            return self.walk(v.value, depth)
        if isinstance(v, str):  # subclasses: read the underlying str, not their methods
            return self.text(str.__str__(v))
        if isinstance(v, int):
            return self._walk(int.__index__(v), depth)
        if isinstance(v, float):
            return self._walk(float.__float__(v), depth)
        if depth >= _MAX_DEPTH:
            _bump(self.counts, "depth")
            return f"<{_type_name(v)}>"
        if id(v) in self._path:
            _bump(self.counts, "cycle")
            return f"<cycle {_type_name(v)}>"
        self._path.add(id(v))
        try:
            return self._compound(v, depth + 1)
        finally:
            self._path.discard(id(v))

    def _compound(self, v: object, depth: int) -> object:
        if isinstance(v, dict):
            return {self._key(k): self.walk(x, depth) for k, x in list(dict.items(v))}
        if isinstance(v, list) or type(v) is tuple:
            return [self.walk(x, depth) for x in list(v)]
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            fields = [f.name for f in dataclasses.fields(v) if not f.name.startswith("_")]
            return {name: self.walk(getattr(v, name), depth) for name in fields}
        return self.walk(_default(v), depth - 1)  # a fresh dict/list standing in for v

    def _key(self, k: object) -> object:
        try:
            if isinstance(k, Enum):
                k = k.value
            if type(k) is str:
                return self.text(k)
            if type(k) in _KEY_SCALARS:
                return self.walk(k, 0)  # big ints and NaN become strings
            return self.text(str(k))
        except Exception:
            _bump(self.counts, "unserializable")
            return UNSERIALIZABLE_MARKER.format(type=_type_name(k))

    def _non_finite(self, x: float) -> str:
        _bump(self.counts, "non_finite")
        return "NaN" if x != x else "Infinity" if x > 0 else "-Infinity"


def _slow(value: object, max_chars: int) -> str:
    walker = _Walker()
    try:
        safe = walker.walk(value, 0)
        if type(safe) is str and len(safe) > max_chars:
            return _shrink(safe, max_chars, walker.counts)
        text = orjson.dumps(safe, option=_OPTIONS).decode()
        return text if len(text) <= max_chars else _shrink(safe, max_chars, walker.counts)
    finally:
        _record(walker.counts)


def _shrink(safe: object, max_chars: int, counts: dict[str, int]) -> str:
    """JSON for a JSON-safe value whose encoding is over max_chars."""
    max_chars = max(max_chars, 0)
    if type(safe) is str:
        _bump(counts, "truncated")
        return _json_string_cut(safe, max_chars)
    budget = max(max_chars // 8, 1000)
    text = orjson.dumps(_cut_strings(safe, budget, counts), option=_OPTIONS).decode()
    if len(text) <= max_chars:
        return text
    _bump(counts, "truncated")
    return _json_string_cut(text, max_chars)


def _cut_strings(v: object, budget: int, counts: dict[str, int]) -> object:
    if type(v) is str:
        if len(v) <= budget:
            return v
        _bump(counts, "truncated")
        return _cut(v, budget)
    if type(v) is dict:
        return {k: _cut_strings(x, budget, counts) for k, x in v.items()}
    if type(v) is list:
        return [_cut_strings(x, budget, counts) for x in v]
    return v


def _json_string_cut(s: str, max_chars: int) -> str:
    """A JSON string literal of a prefix of ``s`` whose encoded body fits in max_chars."""
    keep = min(len(s), max_chars)
    for _ in range(4):  # escapes can inflate the prefix: shrink it proportionally
        body = orjson.dumps(s[:keep]).decode()
        if len(body) - 2 <= max_chars:
            break
        keep = keep * max_chars // (len(body) - 2)
    else:  # no char encodes to more than 6 ("\\u001f"), so this always fits
        keep = max_chars // 6
        body = orjson.dumps(s[:keep]).decode()
    return body[:-1] + TRUNCATION_MARKER.format(n=len(s) - keep) + '"'


def _cut(s: str, keep: int) -> str:
    return s[:keep] + TRUNCATION_MARKER.format(n=len(s) - keep)


def _is_utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def _type_name(v: object) -> str:
    try:
        name = type(v).__name__
    except Exception:
        return "object"
    return _SURROGATES.sub("\ufffd", name) if type(name) is str else "object"


def _bump(counts: dict[str, int], reason: str) -> None:
    counts[reason] = counts.get(reason, 0) + 1


def _record(counts: dict[str, int]) -> None:
    if counts:
        with _counts_lock:
            for reason, n in counts.items():
                _counts[reason] += n


def _unserializable_json(value: object) -> str:
    try:
        _record({"unserializable": 1})
        return orjson.dumps(UNSERIALIZABLE_MARKER.format(type=_type_name(value))).decode()
    except Exception:
        return '"<unserializable object>"'
