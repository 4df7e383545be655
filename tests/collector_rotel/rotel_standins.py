"""Stand-ins of rotel's Python span API (``rotel_sdk``), for tests without the agent.

These imitate rotel's classes, NOT otel-llm code. ``rotel_sdk`` exists only inside a
running rotel agent, so these small classes reproduce the behaviour the agent showed
when probed (PyPI ``rotel`` 0.0.1a15, agent 0.0.1-alpha10):

- attribute lists support ``len``, iteration, ``[i]``, ``[i] = kv``, ``del [i]`` and
  ``append``; an event's list cannot be replaced by assignment;
- a bytes value reads back as a list of ints;
- on the way out, every array of a list that was read from Python is reversed
  (:func:`exported` reproduces that, so tests can assert what leaves the agent).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_llm.collector.rotel_values import RotelTypes


class AnyValue:
    def __init__(self, value: Any = None) -> None:
        if isinstance(value, (list, tuple, dict)):
            raise TypeError("rotel's AnyValue takes ArrayValue / KeyValueList, not Python lists")
        self._value = value

    @property
    def value(self) -> Any:
        if isinstance(self._value, bytes):
            return list(self._value)  # as the agent does
        return self._value


class KeyValue:
    def __init__(self, key: str, value: AnyValue | None) -> None:
        self.key = key
        self.value = value


class _ListLike:
    def __init__(self, items: list[Any] | None = None) -> None:
        self.items: list[Any] = list(items or [])
        self.touched = False  # read from Python: rotel will re-encode (and reverse arrays)

    def __len__(self) -> int:
        self.touched = True
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        self.touched = True
        return iter(list(self.items))

    def __getitem__(self, index: int) -> Any:
        self.touched = True
        return self.items[index]

    def __setitem__(self, index: int, value: Any) -> None:
        self.touched = True
        self.items[index] = value

    def __delitem__(self, index: int) -> None:
        self.touched = True
        del self.items[index]

    def append(self, value: Any) -> None:
        self.touched = True
        self.items.append(value)


class ArrayValue(_ListLike):
    pass


class KeyValueList(_ListLike):
    pass


class AttributesList(_ListLike):
    pass


STANDIN_TYPES = RotelTypes(KeyValue, AnyValue, ArrayValue, KeyValueList)


@dataclass
class Event:
    name: str
    time_unix_nano: int
    _attributes: AttributesList

    @property
    def attributes(self) -> AttributesList:  # no setter, as in the agent
        return self._attributes


class Events(_ListLike):
    pass


@dataclass
class Status:
    code: int = 0
    message: str = ""


@dataclass
class Span:
    trace_id: bytes = bytes(range(1, 17))
    span_id: bytes = bytes(range(1, 9))
    parent_span_id: bytes = b""
    name: str = "span"
    kind: int = 1
    flags: int = 1
    start_time_unix_nano: int = 1_795_000_000_000_000_000
    end_time_unix_nano: int = 1_795_000_001_000_000_000
    attributes: AttributesList = field(default_factory=AttributesList)
    events: Events = field(default_factory=Events)
    status: Status | None = field(default_factory=Status)


@dataclass
class ScopeSpans:
    spans: list[Span]


@dataclass
class Resource:
    attributes: AttributesList = field(default_factory=AttributesList)


@dataclass
class ResourceSpans:
    scope_spans: list[ScopeSpans]
    resource: Resource | None = field(default_factory=Resource)


# -- building and reading back ----------------------------------------------------------
def value(python: Any) -> AnyValue:
    """A stand-in AnyValue from Python: lists → ArrayValue, dicts → KeyValueList."""
    if isinstance(python, (list, tuple)):
        array = ArrayValue([value(item) for item in python])
        return AnyValue(array)
    if isinstance(python, dict):
        return AnyValue(KeyValueList([KeyValue(k, value(v)) for k, v in python.items()]))
    return AnyValue(python)


def attributes(mapping: Mapping[str, Any]) -> AttributesList:
    return AttributesList([KeyValue(k, value(v)) for k, v in mapping.items()])


def event(name: str, attrs: Mapping[str, Any], time: int = 1_795_000_000_500_000_000) -> Event:
    return Event(name, time, attributes(attrs))


def make_span(attrs: Mapping[str, Any], **fields: Any) -> Span:
    return Span(attributes=attributes(attrs), **fields)


def batch(*spans: Span, resource: Mapping[str, Any] | None = None) -> ResourceSpans:
    return ResourceSpans([ScopeSpans(list(spans))], Resource(attributes(resource or {})))


def exported(attrs: AttributesList | Resource | Event | Span) -> dict[str, Any]:
    """The attributes as the agent would send them: arrays reversed if the list was read."""
    items = attrs.attributes if not isinstance(attrs, AttributesList) else attrs
    reverse = items.touched or isinstance(attrs, Resource)
    return {kv.key: _python(kv.value, reverse) for kv in items.items}


def _python(any_value: AnyValue | None, reverse: bool) -> Any:
    if any_value is None:
        return None
    inner = any_value._value
    if isinstance(inner, ArrayValue):
        items = [_python(v, reverse) for v in inner.items]
        return items[::-1] if reverse else items
    if isinstance(inner, KeyValueList):
        return {kv.key: _python(kv.value, reverse) for kv in inner.items}
    return inner
