"""Protobuf wire primitives and OTLP ``common.v1`` values (``KeyValue``/``AnyValue``).

The low half of the encoder (``encoder.py`` and ``_span_wire.py`` have the trace
messages): varints from a precomputed table, fixed-width values from precompiled
``struct.Struct`` objects, and attribute lists encoded straight to bytes. Messages are
built bottom-up as lists of ``bytes`` chunks, joined once: a length prefix needs the
body's size first.

Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; a tag is the varint of
``field << 3 | wire_type``. Proto3: a scalar at its default is not written, a set oneof
member or submessage always is (so ``AnyValue(int_value=0)`` is two bytes, not zero).

Every function here that takes a record's value never raises: a fast path handles valid
values without counting; anything else makes it raise, and a careful path redoes that
attribute list, replacing or dropping what protobuf cannot carry and counting why.
"""

from __future__ import annotations

import math
import re
import struct
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "UINT64_MAX",
    "VARINT",
    "VARINT_TABLE_SIZE",
    "count",
    "counts",
    "encode_attributes",
    "get",
    "pack_double",
    "pack_fixed32",
    "tag",
    "text",
    "uint",
    "varint",
    "varint_size",
]

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1

VARINT_TABLE_SIZE = 1 << 14
"""Varints below this (one or two bytes) are precomputed: ``VARINT[n]``."""

VARINT: list[bytes] = [bytes((n,)) for n in range(0x80)] + [
    bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(0x80, VARINT_TABLE_SIZE)
]
_VN = VARINT_TABLE_SIZE

pack_double = struct.Struct("<d").pack
"""Little-endian IEEE-754 double (wire type 1); NaN payloads and -0.0 kept bit-exact."""
pack_fixed32 = struct.Struct("<I").pack
"""Little-endian unsigned 32-bit (wire type 5)."""

_SURROGATES = re.compile("[\ud800-\udfff]")
_MAX_DEPTH = 32  # nested sequences/mappings deeper than this become an empty AnyValue
_SHORT = 64  # str values up to this many chars are cached as whole attributes
_CACHE_LIMIT = 4096  # entries per cache; a full cache is cleared

_counts_lock = threading.Lock()
_counts: Counter[str] = Counter()  # guarded by _counts_lock


def varint(n: int) -> bytes:
    """Base-128 varint of ``n``; a negative as 64-bit two's complement (ten bytes), as int64.

    Raises ``ValueError`` outside [-2**63, 2**64): callers check ranges first.
    """
    if 0 <= n < _VN:
        return VARINT[n]
    if n < 0:
        if n < INT64_MIN:
            raise ValueError("varint below int64 range")
        n += 1 << 64
    elif n > UINT64_MAX:
        raise ValueError("varint above uint64 range")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varint_size(n: int) -> int:
    """Length in bytes of ``varint(n)`` for ``n >= 0``."""
    return max(1, (n.bit_length() + 6) // 7)


def tag(field: int, wire_type: int) -> bytes:
    """The encoded key of ``field`` with ``wire_type``."""
    return varint(field << 3 | wire_type)


# -- counting and repairs -------------------------------------------------------------


def count(reason: str) -> None:
    """Count one replaced or dropped value (rare paths only: it locks)."""
    with _counts_lock:
        _counts[reason] += 1


def counts() -> dict[str, int]:
    with _counts_lock:
        return dict(_counts)


def get(obj: Any, name: str) -> Any:
    """``obj.name``, or ``None`` (counted) when it is missing or raises."""
    try:
        return getattr(obj, name)
    except Exception:
        count("field_repaired")
        return None


def uint(v: Any, bits: int, *, clamp: bool = False) -> int:
    """``v`` as an unsigned ``bits``-wide int: masked (ids, times) or clamped (counts)."""
    limit = (1 << bits) - 1
    if isinstance(v, int) and 0 <= v <= limit:
        return int(v)
    count("field_repaired")
    if isinstance(v, float) and math.isfinite(v):
        v = int(v)
    if not isinstance(v, int):
        return 0
    return min(max(int(v), 0), limit) if clamp else int(v) & limit


def text(v: Any) -> bytes:
    """UTF-8 of a str, lone surrogates → U+FFFD (counted); ``str(v)`` of others (counted)."""
    if v is None:
        return b""
    if isinstance(v, str):
        try:
            return str.encode(v, "utf-8")
        except UnicodeEncodeError:
            count("string_replaced")
            return _SURROGATES.sub("\ufffd", v).encode("utf-8")
    count("field_repaired")
    try:
        return text(str(v))
    except Exception:
        return b""


# -- attributes: repeated KeyValue{1 key, 2 value: AnyValue} ----------------------------

_KV_KEY, _KV_VALUE = tag(1, 2), tag(2, 2)
# AnyValue oneof {1 string, 2 bool, 3 int, 4 double, 5 array, 6 kvlist, 7 bytes}
_AV_STR, _AV_INT, _AV_DOUBLE = tag(1, 2), tag(3, 0), tag(4, 1)
_AV_ARRAY, _AV_KVLIST, _AV_BYTES = tag(5, 2), tag(6, 2), tag(7, 2)
_AV_TRUE, _AV_FALSE = tag(2, 0) + b"\x01", tag(2, 0) + b"\x00"
_AV_DOUBLE_HEAD = VARINT[9] + _AV_DOUBLE  # AnyValue length, then the double's tag
_ITEM = tag(1, 2)  # ArrayValue.values / KeyValueList.values

_TRUE, _FALSE = object(), object()  # cache keys of bool values: equal to nothing else
_KEYS: dict[str, bytes] = {}  # key -> KeyValue key field + value tag
_KV_CACHES: dict[bytes, dict[tuple[str, object], bytes]] = {}  # field -> (k, v) -> chunk
_HEADS: dict[bytes, dict[str, tuple[bytes, ...]]] = {}  # field -> k -> _num_heads(field, k)
_DOUBLE = 11  # _num_heads index of the double head (0..10: int heads by varint length)


class _Slow(Exception):
    """The fast path met a value only the careful (counting) path may handle."""


def encode_attributes(attrs: Any, field: bytes) -> list[bytes]:
    """Chunks of the repeated ``KeyValue`` field tagged ``field`` for the mapping ``attrs``.

    Like stock ``_encode_attributes``, with the differences listed in ``encoder.py``.
    Never raises.
    """
    try:
        if not attrs:
            return []
        cache = _KV_CACHES.get(field)
        if cache is None:
            cache = _KV_CACHES.setdefault(field, {})
        heads = _HEADS.get(field)
        if heads is None:
            heads = _HEADS.setdefault(field, {})
        return _attributes_fast(attrs, field, cache, heads)
    except Exception:
        return _attributes_safe(attrs, field)


def _attributes_fast(
    attrs: Mapping[str, Any],
    field: bytes,
    cache: dict[tuple[str, object], bytes],
    heads: dict[str, tuple[bytes, ...]],
) -> list[bytes]:
    """Valid attributes only (raises on anything else); never counts."""
    out: list[bytes] = []
    keys = _KEYS
    for k, v in attrs.items():
        t = type(v)
        if (t is str and len(v) <= _SHORT) or (
            t is tuple and all(type(x) is str for x in v)  # not (1,): it == (True,), (1.0,)
        ):
            chunk = cache.get((k, v))
            if chunk is None:
                chunk = _short_chunk(field, keys.get(k) or _key(k), v)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[(k, v)] = chunk
            out.append(chunk)
        elif t is int:
            if 0 <= v < _VN:
                vb = VARINT[v]
            elif INT64_MIN <= v <= INT64_MAX:
                vb = varint(v)
            else:
                raise _Slow
            out += ((heads.get(k) or _num_heads(heads, field, k))[len(vb)], vb)
        elif t is str:
            b = v.encode()
            n = len(b)
            kp = keys.get(k) or _key(k)
            head = VARINT[n] if n < _VN else varint(n)
            an = 1 + len(head) + n
            ahead = VARINT[an] if an < _VN else varint(an)
            kn = len(kp) + len(ahead) + an
            out += (field, VARINT[kn] if kn < _VN else varint(kn), kp, ahead, _AV_STR, head, b)
        elif t is float:
            out += ((heads.get(k) or _num_heads(heads, field, k))[_DOUBLE], pack_double(v))
        elif t is bool:
            # Not in ``cache``: (k, True) == (k, 1) there. Keyed apart, by identity.
            chunk = cache.get((k, _TRUE if v else _FALSE))
            if chunk is None:
                chunk = _kv_chunk(field, keys.get(k) or _key(k), _AV_TRUE if v else _AV_FALSE)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[(k, _TRUE if v else _FALSE)] = chunk
            out.append(chunk)
        elif v is None:
            raise _Slow
        else:
            out.append(_kv_chunk(field, keys.get(k) or _key(k), _any_value(v, 0, False)))
    return out


def _attributes_safe(attrs: Any, field: bytes) -> list[bytes]:
    """Every attribute, invalid ones replaced or dropped and counted."""
    try:
        items = list(attrs.items()) if attrs else []
    except Exception:
        count("field_repaired")
        return []
    out: list[bytes] = []
    for item in items:
        try:
            k, v = item
            if not isinstance(k, str):
                count("invalid_key_dropped")
            elif v is None:
                count("none_dropped")
            else:
                body = _any_value(v, 0, True)
                if body:  # else an unsupported type: dropped at top level (counted)
                    out.append(_kv_chunk(field, _key_field(text(k)), body))
        except Exception:
            count("unsupported_value")
    return out


def _key(k: str) -> bytes:
    """``KeyValue`` key field plus value tag for ``k``, cached; raises on surrogates."""
    kp = _key_field(k.encode())
    if len(_KEYS) >= _CACHE_LIMIT:
        _KEYS.clear()
    _KEYS[k] = kp
    return kp


def _short_chunk(field: bytes, kp: bytes, v: str | tuple[str, ...]) -> bytes:
    """A whole ``KeyValue`` field for a short str (built inline: many are seen once, such
    as ids) or a tuple of strs; raises on surrogates."""
    if type(v) is not str:
        return _kv_chunk(field, kp, _any_value(v, 0, False))
    b = v.encode()
    n = len(b)  # at most 4 * _SHORT: every length here is a one- or two-byte varint
    an = 1 + len(VARINT[n]) + n
    return b"".join(
        (field, VARINT[len(kp) + len(VARINT[an]) + an], kp, VARINT[an], _AV_STR, VARINT[n], b)
    )


def _num_heads(heads: dict[str, tuple[bytes, ...]], field: bytes, k: str) -> tuple[bytes, ...]:
    """Everything of a ``KeyValue`` with key ``k`` before its number, cached per key: at
    index ``n`` for an int value whose varint is ``n`` bytes, at ``_DOUBLE`` for a double."""
    kp = _KEYS.get(k) or _key(k)
    ints = [field + varint(len(kp) + 2 + n) + kp + VARINT[1 + n] + _AV_INT for n in range(11)]
    double = field + varint(len(kp) + 10) + kp + _AV_DOUBLE_HEAD
    if len(heads) >= _CACHE_LIMIT:
        heads.clear()
    found = heads[k] = (*ints, double)
    return found


def _key_field(key: bytes) -> bytes:
    return (_KV_KEY + varint(len(key)) + key if key else b"") + _KV_VALUE


def _kv_chunk(field: bytes, kp: bytes, body: bytes) -> bytes:
    n = len(body)
    head = varint(n)
    return b"".join((field, varint(len(kp) + len(head) + n), kp, head, body))


def _any_value(v: Any, depth: int, safe: bool) -> bytes:
    """``AnyValue`` body for ``v``, dispatched like stock; unsafe, raises where safe counts."""
    if v is None:
        return b""
    if isinstance(v, bool):
        return _AV_TRUE if v else _AV_FALSE
    if isinstance(v, str):
        b = text(v) if safe else v.encode()
        return _AV_STR + varint(len(b)) + b
    if isinstance(v, int):
        if INT64_MIN <= v <= INT64_MAX:
            return _AV_INT + varint(int(v))
        if not safe:
            raise _Slow
        count("int_overflow_stringified")
        b = _int_text(v)
        return _AV_STR + varint(len(b)) + b
    if isinstance(v, float):
        return _AV_DOUBLE + pack_double(v)
    if isinstance(v, bytes):
        return _AV_BYTES + varint(len(v)) + v
    if not isinstance(v, (Sequence, Mapping)):
        if not safe:
            raise _Slow
        count("unsupported_value")
        return b""
    if depth >= _MAX_DEPTH:
        if not safe:
            raise _Slow
        count("depth_exceeded")
        return b""
    parts: list[bytes] = []
    if isinstance(v, Sequence):
        for item in v:
            body = _any_value(item, depth + 1, safe)
            parts += (_ITEM, varint(len(body)), body)
        head = _AV_ARRAY
    else:
        for key, item in v.items():
            kb = _nested_key(key, safe)
            if kb is not None:
                body = _any_value(item, depth + 1, safe)
                kv = _key_field(kb) + varint(len(body)) + body
                parts += (_ITEM, varint(len(kv)), kv)
        head = _AV_KVLIST
    inner = b"".join(parts)
    return head + varint(len(inner)) + inner


def _nested_key(key: Any, safe: bool) -> bytes | None:
    """A mapping key as stock sends it, ``str(key)``; ``None``: skip the entry (counted)."""
    if not safe:
        return (key if type(key) is str else str(key)).encode()
    try:
        return text(key if isinstance(key, str) else str(key))
    except Exception:
        count("invalid_key_dropped")
        return None


def _int_text(v: int) -> bytes:
    try:
        return str(int(v)).encode()
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        return hex(int(v)).encode()
