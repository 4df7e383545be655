from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import math
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_llm import serialize
from otel_llm.serialize import (
    DEFAULT_MAX_CHARS,
    TRUNCATION_MARKER,
    UNSERIALIZABLE_MARKER,
    replacement_counts,
    to_attribute,
    to_json,
)

# The longest a result may exceed max_chars by: two quotes and a marker with a large count.
SLACK = 2 + len(TRUNCATION_MARKER.format(n=10**12))
MARKER_PREFIX = TRUNCATION_MARKER.split("{", 1)[0]


def loads(text: str) -> Any:
    assert isinstance(text, str)
    return json.loads(text)


def counted(reason: str) -> int:
    return replacement_counts()[reason]


# --- public surface -------------------------------------------------------------------------


def test_public_names() -> None:
    assert sorted(serialize.__all__) == sorted(
        [
            "DEFAULT_MAX_CHARS",
            "TRUNCATION_MARKER",
            "UNSERIALIZABLE_MARKER",
            "replacement_counts",
            "to_attribute",
            "to_json",
        ]
    )
    assert DEFAULT_MAX_CHARS == 1_000_000


def test_replacement_counts_has_every_reason() -> None:
    counts = replacement_counts()
    assert set(counts) == {
        "truncated",
        "unserializable",
        "cycle",
        "depth",
        "non_finite",
        "invalid_utf8",
    }
    assert all(isinstance(n, int) and n >= 0 for n in counts.values())
    counts["cycle"] = -1  # a snapshot: mutating it changes nothing
    assert replacement_counts()["cycle"] >= 0


# --- ordinary values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"a": "x", "b": 1, "c": 1.5, "d": None, "e": True, "f": [1, "2", None]},
        [1, [2, [3, {"k": "v"}]], "é", "日本"],
        {},
        [],
        "plain",
        -(2**63),
        2**64 - 1,
    ],
)
def test_plain_values_round_trip(value: object) -> None:
    assert loads(to_json(value)) == value


def test_fast_path_counts_nothing_and_keeps_null() -> None:
    before = replacement_counts()
    assert to_json({"a": None, "b": [None, 1.0]}) == '{"a":null,"b":[null,1.0]}'
    assert to_json({"a": "b"}) == '{"a":"b"}'
    assert replacement_counts() == before


def test_shared_reference_is_not_a_cycle() -> None:
    shared = [1, 2]
    # The lone surrogate forces the slow walker, which must tell sharing from cycles.
    assert loads(to_json([shared, shared, "\ud800"])) == [[1, 2], [1, 2], "\ufffd"]


@dataclasses.dataclass
class Point:
    x: int
    y: float
    tags: list[str] = dataclasses.field(default_factory=list)


class Model(pydantic.BaseModel):
    name: str
    when: dt.datetime
    point: tuple[int, int]


class Color(enum.Enum):
    RED = "red"
    NAN = float("nan")


def test_dataclass() -> None:
    assert loads(to_json(Point(1, 2.5, ["a"]))) == {"x": 1, "y": 2.5, "tags": ["a"]}


def test_pydantic_v2_model() -> None:
    model = Model(name="n", when=dt.datetime(2024, 1, 2, 3, 4, 5), point=(1, 2))
    assert loads(to_json({"m": model})) == {
        "m": {"name": "n", "when": "2024-01-02T03:04:05", "point": [1, 2]}
    }


def test_datetimes() -> None:
    naive = dt.datetime(2024, 1, 2, 3, 4, 5)
    utc = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    plus2 = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert loads(to_json([naive, utc, plus2, dt.date(2024, 1, 2), dt.time(3, 4)])) == [
        "2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05+02:00",
        "2024-01-02",
        "03:04:00",
    ]


def test_sets() -> None:
    assert loads(to_json({3, 1, 2})) == [1, 2, 3]
    assert loads(to_json(frozenset({"b", "a"}))) == ["a", "b"]
    mixed = loads(to_json({1, "a", None}))
    assert sorted(mixed, key=str) == sorted([1, "a", None], key=str)


def test_bytes() -> None:
    assert loads(to_json(b"caf\xc3\xa9")) == "café"
    assert loads(to_json(bytearray(b"ab"))) == "ab"
    assert loads(to_json(memoryview(b"ab"))) == "ab"
    before = counted("invalid_utf8")
    bad = b"\xff\xfe\x00"
    digest = hashlib.sha256(bad).hexdigest()[:16]
    assert loads(to_json({"b": bad})) == {"b": f"<bytes len=3 sha256={digest}>"}
    assert counted("invalid_utf8") == before + 1


def test_numpy() -> None:
    assert loads(to_json(np.int64(7))) == 7
    assert loads(to_json(np.float32(1.5))) == 1.5
    assert loads(to_json(np.arange(6).reshape(2, 3))) == [[0, 1, 2], [3, 4, 5]]
    assert loads(to_json(np.arange(6.0).reshape(2, 3)[:, 1])) == [1.0, 4.0]  # not contiguous
    assert loads(to_json(np.array([1 + 2j]))) == ["(1+2j)"]  # dtype orjson refuses
    assert loads(to_json(np.array([1.0, np.nan, np.inf]))) == [1.0, "NaN", "Infinity"]


def test_decimal_enum_uuid_path_complex() -> None:
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = [decimal.Decimal("1.5"), Color.RED, uid, Path("/tmp/x"), 1 + 2j]
    assert loads(to_json(value)) == [1.5, "red", str(uid), "/tmp/x", "(1+2j)"]
    assert loads(to_json(decimal.Decimal("1e400"))) == "1E+400"  # would overflow a float
    assert loads(to_json([decimal.Decimal("NaN"), decimal.Decimal("-Infinity")])) == [
        "NaN",
        "-Infinity",
    ]


class WithDict:
    def __init__(self) -> None:
        self.a = 1
        self.b = "two"
        self._private = "hidden"


class WithSlots:
    __slots__ = ("_hidden", "unset", "x", "y")

    def __init__(self) -> None:
        self.x = 1
        self.y = [2]
        self._hidden = 3


def test_objects_with_dict_and_slots() -> None:
    assert loads(to_json(WithDict())) == {"a": 1, "b": "two"}
    assert loads(to_json(WithSlots())) == {"x": 1, "y": [2]}


def test_exception() -> None:
    assert loads(to_json({"error": ValueError("boom")})) == {
        "error": {"type": "ValueError", "message": "boom"}
    }


def test_big_ints_odd_keys_and_subclasses() -> None:
    class MyStr(str):
        pass

    class MyInt(int):
        pass

    value = {(1, 2): 2**100, 3: -(2**70), "s": MyStr("\ud800x"), "i": MyInt(5), Color.RED: 1}
    assert loads(to_json(value)) == {
        "(1, 2)": str(2**100),
        "3": str(-(2**70)),
        "s": "\ufffdx",
        "i": 5,
        "red": 1,
    }
    huge = 10**5000  # str() of it raises ValueError under the default digit limit
    assert loads(to_json(huge)) == hex(huge)


# --- cycles, depth, non-finite --------------------------------------------------------------


def test_cycles() -> None:
    before = counted("cycle")
    d: dict[str, Any] = {"name": "d"}
    d["self"] = d
    assert loads(to_json(d)) == {"name": "d", "self": "<cycle dict>"}
    lst: list[Any] = [1]
    lst.append(lst)
    assert loads(to_json(lst)) == [1, "<cycle list>"]
    obj = WithDict()
    obj.b = obj  # type: ignore[assignment]
    assert loads(to_json(obj)) == {"a": 1, "b": "<cycle WithDict>"}
    assert counted("cycle") == before + 3


def nest(kind: str, levels: int) -> Any:
    root: Any = "bottom"
    for _ in range(levels):
        if kind == "list":
            root = [root]
        elif kind == "dict":
            root = {"k": root}
        else:
            obj = WithDict()
            obj.a = root
            root = obj
    return root


@pytest.mark.parametrize(("kind", "step"), [("list", 0), ("dict", "k"), ("object", "a")])
def test_deep_nesting(kind: str, step: int | str) -> None:
    before = counted("depth")
    text = to_json(nest(kind, 10_000))
    data = loads(text)
    depth = 0
    while isinstance(data, (list, dict)):
        data = data[step]  # type: ignore[index]
        depth += 1
    assert 60 <= depth <= 70
    assert data == ("<WithDict>" if kind == "object" else f"<{kind}>")
    assert counted("depth") == before + 1
    assert len(text) < 10_000


def test_non_finite_floats() -> None:
    before = counted("non_finite")
    value = {"n": math.nan, "l": [math.inf, -math.inf, 1.0, None], math.nan: "key"}
    assert loads(to_json(value)) == {
        "n": "NaN",
        "l": ["Infinity", "-Infinity", 1.0, None],
        "NaN": "key",
    }
    assert counted("non_finite") == before + 4
    assert loads(to_json(Point(1, math.nan))) == {"x": 1, "y": "NaN", "tags": []}
    assert loads(to_json(np.float64("nan"))) == "NaN"
    assert loads(to_json(Color.NAN)) == "NaN"
    assert loads(to_json(math.inf)) == "Infinity"
    assert loads(to_json({math.inf: None, "a": [None]})) == {"Infinity": None, "a": [None]}


# --- size limits ----------------------------------------------------------------------------


def test_huge_string_is_cut_fast() -> None:
    before = counted("truncated")
    big = "abc" * 3_400_000  # ~10 MB
    start = time.perf_counter()
    text = to_json(big, max_chars=1000)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.1
    out = loads(text)
    assert out.startswith(big[:1000])
    assert out.endswith(TRUNCATION_MARKER.format(n=len(big) - 1000))
    assert len(text) <= 1000 + SLACK
    assert counted("truncated") == before + 1
    start = time.perf_counter()
    assert len(to_json(big)) <= DEFAULT_MAX_CHARS + SLACK
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize("char", ["\x00", "\n", '"', "é"])
def test_escapes_do_not_break_the_bound(char: str) -> None:
    text = to_json(char * 50_000, max_chars=1000)
    out = loads(text)
    assert len(text) <= 1000 + SLACK
    assert out.startswith(char * 100) and MARKER_PREFIX in out


def test_many_big_strings_are_cut_each() -> None:
    value = {"docs": ["x" * 100_000, "y" * 100_000, "short"], "n": 1}
    text = to_json(value, max_chars=200_000)
    assert len(text) <= 200_000
    out = loads(text)
    budget = 200_000 // 8
    assert out["n"] == 1 and out["docs"][2] == "short"
    assert out["docs"][0] == "x" * budget + TRUNCATION_MARKER.format(n=100_000 - budget)
    assert out["docs"][1].startswith("y" * budget)


def test_structure_too_big_even_after_cutting_strings() -> None:
    value = {"docs": ["x" * 5000] * 100, "nums": list(range(1000))}
    text = to_json(value, max_chars=10_000)
    assert len(text) <= 10_000 + SLACK
    out = loads(text)
    assert isinstance(out, str)
    assert out.startswith('{"docs":["xxx') and MARKER_PREFIX in out


def test_slow_path_values_are_cut_too() -> None:
    value = {"s": "\ud800" + "z" * 50_000, "cycle": [], "big": 2**80}
    value["cycle"].append(value)  # type: ignore[attr-defined]
    text = to_json(value, max_chars=20_000)
    assert len(text) <= 20_000 + SLACK
    out = loads(text)
    assert out["s"].startswith("\ufffdzzz") and MARKER_PREFIX in out["s"]
    assert out["cycle"] == ["<cycle dict>"] and out["big"] == str(2**80)


# --- things that must not be walked or trusted ---------------------------------------------


def test_opaque_objects() -> None:
    def gen() -> Iterator[int]:
        yield 1
        yield 2

    g = gen()
    lock = threading.Lock()
    with socket.socket() as sock, open(__file__) as fh:
        value = {"mod": sys, "gen": g, "cls": Model, "fn": test_opaque_objects, "lock": lock}
        value.update({"sock": sock, "file": fh, "it": iter([1, 2])})
        before = counted("unserializable")
        out = loads(to_json(value))
        assert fh.tell() == 0
    assert out == {
        "mod": "<module>",
        "gen": "<generator>",
        "cls": f"<{type(Model).__name__}>",
        "fn": "<function>",
        "lock": f"<{type(lock).__name__}>",
        "sock": "<socket>",
        "file": "<TextIOWrapper>",
        "it": "<list_iterator>",
    }
    assert counted("unserializable") == before + 8
    assert next(g) == 1  # the generator was not consumed


def test_module_is_constant_time() -> None:
    start = time.perf_counter()
    for _ in range(100):
        assert to_json(np) == '"<module>"'
    assert time.perf_counter() - start < 0.5


class Hostile:
    def __init__(self) -> None:
        self.fine = 1

    def __repr__(self) -> str:
        raise RuntimeError("repr")

    @property
    def bad(self) -> int:
        raise RuntimeError("property")


class VeryHostile:
    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError(name)

    def __str__(self) -> str:
        raise RuntimeError("str")


class BadDict:
    @property
    def __dict__(self) -> Any:  # type: ignore[override]
        raise RuntimeError("no dict")


class BadMessage(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str")


def test_hostile_objects() -> None:
    assert loads(to_json(Hostile())) == {"fine": 1}
    before = counted("unserializable")
    out = loads(to_json({"a": VeryHostile(), "b": BadDict(), "c": BadMessage(), "ok": 1}))
    assert out == {
        "a": UNSERIALIZABLE_MARKER.format(type="VeryHostile"),
        "b": UNSERIALIZABLE_MARKER.format(type="BadDict"),
        "c": UNSERIALIZABLE_MARKER.format(type="BadMessage"),
        "ok": 1,
    }
    assert counted("unserializable") == before + 3
    assert loads(to_json({VeryHostile(): 1})) == {
        UNSERIALIZABLE_MARKER.format(type="VeryHostile"): 1
    }
    assert loads(to_attribute(VeryHostile())) == UNSERIALIZABLE_MARKER.format(type="VeryHostile")


def test_unsortable_set_of_hostile_comparisons() -> None:
    class Cmp:
        __slots__ = ("v",)

        def __init__(self, v: int) -> None:
            self.v = v

        def __lt__(self, other: object) -> bool:
            raise RuntimeError("lt")

    out = loads(to_json({Cmp(1), Cmp(2)}))
    assert sorted(item["v"] for item in out) == [1, 2]


# --- to_attribute ---------------------------------------------------------------------------


def test_to_attribute() -> None:
    assert to_attribute('hello "world"\n') == 'hello "world"\n'
    assert to_attribute({"a": [1, "b"]}) == '{"a":[1,"b"]}'
    assert to_attribute(5) == "5"
    assert to_attribute(None) == "null"
    cut = to_attribute("é" * 5000, max_chars=100)
    assert cut == "é" * 100 + TRUNCATION_MARKER.format(n=4900)
    assert to_attribute("a\ud800b") == "a\ufffdb"


# --- counters -------------------------------------------------------------------------------


def test_every_reason_is_counted() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    deep = nest("list", 300)  # past orjson's own limit (254), so the walker runs
    triggers = {
        "truncated": "x" * 5000,
        "unserializable": object(),
        "cycle": cyclic,
        "depth": deep,
        "non_finite": math.nan,
        "invalid_utf8": "\udfff",
    }
    for reason, value in triggers.items():
        before = replacement_counts()
        loads(to_json(value, max_chars=1000))
        after = replacement_counts()
        assert after[reason] == before[reason] + 1, reason


def test_counters_are_thread_safe() -> None:
    before = counted("non_finite")
    threads = [
        threading.Thread(target=lambda: [to_json(math.nan) for _ in range(500)]) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted("non_finite") == before + 4000


# --- properties -----------------------------------------------------------------------------

alphabet = st.one_of(st.characters(codec=None), st.characters(categories=["Cs"]))
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**60, max_value=2**200)
    | st.floats()
    | st.text(alphabet)
    | st.binary()
)
json_ish = st.recursive(
    leaves,
    lambda children: (
        st.lists(children) | st.dictionaries(st.text(alphabet) | st.integers(), children)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(json_ish, st.integers(min_value=0, max_value=3000))
def test_never_raises_always_json(value: object, max_chars: int) -> None:
    text = to_json(value)
    loads(text)
    small = to_json(value, max_chars=max_chars)
    loads(small)
    assert len(small) <= max_chars + SLACK
    attribute = to_attribute(value)
    assert isinstance(attribute, str)
    if not isinstance(value, str):
        loads(attribute)


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None)
@given(plain)
def test_plain_round_trip_property(value: object) -> None:
    assert loads(to_json(value)) == value


def test_null_in_text_or_values_keeps_the_fast_path_exact() -> None:
    value = {"text": "null → ünïcode", "none": None, "nested": [None, {"null": 1.5}]}
    assert to_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert loads(to_json({"x": [None, math.nan], "é": "null"})) == {"x": [None, "NaN"], "é": "null"}
