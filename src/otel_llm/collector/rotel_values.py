"""rotel's span API as our code sees it, and its attribute values as plain Python.

rotel (``streamfold/rotel``) hands a Python trace processor PyO3 views over its own
Rust data (module ``rotel_sdk``, which exists only inside the agent). The protocols
below name exactly the parts of that API we touch, so the conversion code type-checks
and can be tested against small stand-ins without the agent. They describe rotel's
classes, not ours.

What the PyPI agent (``rotel`` 0.0.1a15, agent 0.0.1-alpha10) does, checked by running it:

- An attribute list (``span.attributes``, ``event.attributes``) supports ``len``,
  iteration, ``[i]``, ``[i] = KeyValue(...)``, ``del [i]`` and ``append``; an event's
  list cannot be replaced by a Python list, so every write here is done in place.
- ``KeyValue(key, AnyValue(v))`` builds an attribute; ``AnyValue`` takes ``str``,
  ``bool``, ``int``, ``float``, ``bytes``, an ``ArrayValue`` or a ``KeyValueList``
  (both built empty, then ``append``-ed to). Reading a bytes value returns a list of ints.
- **Arrays come out reversed.** rotel converts arrays back from its Python model with a
  ``pop()`` loop, so each array — at every nesting level — leaves the agent in reverse
  order. That happens to every array of the resource as soon as any Python processor
  runs, and to every array of a span's (or an event's) attributes once that list has
  been read from Python. Writing each such array pre-reversed cancels it out
  (``reverse_arrays``).
"""

from __future__ import annotations

import base64
import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

__all__ = [
    "AnyValueLike",
    "AttributeListLike",
    "EventLike",
    "EventListLike",
    "KeyValueLike",
    "KvList",
    "ResourceLike",
    "ResourceSpansLike",
    "RotelTypes",
    "ScopeSpansLike",
    "SpanLike",
    "StatusLike",
    "has_array",
    "is_attribute_value",
    "json_text",
    "load_rotel_types",
    "make_value",
    "read_value",
    "same_value",
]


# -- rotel's API (implemented by rotel_sdk inside the agent, or by test stand-ins) ------
class AnyValueLike(Protocol):
    @property
    def value(self) -> Any: ...


class KeyValueLike(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def value(self) -> AnyValueLike | None: ...


class AttributeListLike(Protocol):
    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[KeyValueLike]: ...

    def __getitem__(self, index: int) -> KeyValueLike: ...

    def __setitem__(self, index: int, value: Any) -> None: ...

    def __delitem__(self, index: int) -> None: ...

    def append(self, value: Any) -> None: ...


class EventLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def time_unix_nano(self) -> int: ...

    @property
    def attributes(self) -> AttributeListLike: ...


class EventListLike(Protocol):
    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[EventLike]: ...

    def __getitem__(self, index: int) -> EventLike: ...

    def __delitem__(self, index: int) -> None: ...


class StatusLike(Protocol):
    code: int
    message: str


class SpanLike(Protocol):
    @property
    def trace_id(self) -> bytes: ...

    @property
    def span_id(self) -> bytes: ...

    @property
    def parent_span_id(self) -> bytes: ...

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> int: ...

    @property
    def flags(self) -> int: ...

    @property
    def start_time_unix_nano(self) -> int: ...

    @property
    def end_time_unix_nano(self) -> int: ...

    @property
    def attributes(self) -> AttributeListLike: ...

    @property
    def events(self) -> EventListLike: ...

    @property
    def status(self) -> StatusLike | None: ...


class ScopeSpansLike(Protocol):
    @property
    def spans(self) -> Iterable[SpanLike]: ...


class ResourceLike(Protocol):
    @property
    def attributes(self) -> AttributeListLike: ...


class ResourceSpansLike(Protocol):
    @property
    def resource(self) -> ResourceLike | None: ...

    @property
    def scope_spans(self) -> Iterable[ScopeSpansLike]: ...


@dataclass(frozen=True)
class RotelTypes:
    """The four value classes of ``rotel_sdk.open_telemetry.common.v1`` (or stand-ins).

    Each is called to build a value and used with ``isinstance`` to recognize one.
    """

    key_value: type[Any]
    any_value: type[Any]
    array_value: type[Any]
    kv_list: type[Any]


def load_rotel_types() -> RotelTypes:
    """The agent's own classes; raises ImportError outside a rotel agent."""
    common = importlib.import_module("rotel_sdk.open_telemetry.common.v1")
    return RotelTypes(common.KeyValue, common.AnyValue, common.ArrayValue, common.KeyValueList)


# -- values --------------------------------------------------------------------------
@dataclass(frozen=True)
class KvList:
    """A ``KeyValueList`` value: its pairs in order (duplicates kept, as on the wire)."""

    items: tuple[tuple[str, Any], ...]


_SCALARS = (str, bool, int, float)


def read_value(any_value: AnyValueLike | None, types: RotelTypes) -> Any:
    """A rotel ``AnyValue`` as Python: scalar, ``tuple`` (array), :class:`KvList`, ``bytes``
    or None. Raises TypeError on a value type this code does not know."""
    if any_value is None:
        return None
    value = any_value.value
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, types.array_value):
        return tuple(read_value(item, types) for item in value)
    if isinstance(value, types.kv_list):
        return KvList(tuple((kv.key, read_value(kv.value, types)) for kv in value))
    if isinstance(value, (bytes, bytearray, list)):  # the agent returns bytes as list[int]
        return bytes(value)
    raise TypeError(f"unknown rotel value type {type(value).__name__}")


def make_value(value: Any, types: RotelTypes, *, reverse_arrays: bool) -> Any:
    """A rotel ``AnyValue`` holding ``value`` (arrays pre-reversed when asked)."""
    if value is None or isinstance(value, (*_SCALARS, bytes)):
        return types.any_value(value)
    if isinstance(value, (tuple, list)):
        array = types.array_value()
        for item in reversed(value) if reverse_arrays else value:
            array.append(make_value(item, types, reverse_arrays=reverse_arrays))
        return types.any_value(array)
    if isinstance(value, KvList):
        kv_list = types.kv_list()
        for key, item in value.items:
            kv_list.append(
                types.key_value(key, make_value(item, types, reverse_arrays=reverse_arrays))
            )
        return types.any_value(kv_list)
    raise TypeError(f"cannot write a {type(value).__name__} attribute value")


def is_attribute_value(value: Any) -> bool:
    """True for what an OpenTelemetry SDK span may hold: a scalar or a homogeneous tuple."""
    if isinstance(value, _SCALARS):
        return True
    if not isinstance(value, tuple):
        return False
    if not value:
        return True
    first = type(value[0])
    return first in _SCALARS and all(type(item) is first for item in value)


def has_array(value: Any) -> bool:
    """True when ``value`` holds an array at any depth."""
    if isinstance(value, (tuple, list)):
        return True
    if isinstance(value, KvList):
        return any(has_array(item) for _, item in value.items)
    return False


def same_value(a: Any, b: Any) -> bool:
    """Equal with equal types (``True`` is not ``1``, ``1`` is not ``1.0``), element-wise."""
    if type(a) is not type(b):
        if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
            return len(a) == len(b) and all(map(same_value, a, b))
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(map(same_value, a, b))
    return bool(a == b)


def json_text(value: Any) -> str:
    """A structured value as JSON text, so masking can read it (bytes become base64)."""
    return orjson.dumps(_jsonable(value)).decode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    if isinstance(value, KvList):
        return {key: _jsonable(item) for key, item in value.items}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value
