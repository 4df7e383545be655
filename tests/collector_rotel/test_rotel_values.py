"""Value conversion between rotel's AnyValue model and plain Python (stand-in classes)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from otel_llm.collector.rotel_values import (
    KvList,
    has_array,
    is_attribute_value,
    json_text,
    make_value,
    read_value,
    same_value,
)
from tests.collector_rotel.rotel_standins import STANDIN_TYPES, AnyValue, ArrayValue, value


@pytest.mark.parametrize("scalar", ["text", "", True, False, 0, -5, 2**62, 1.5, 0.0])
def test_scalars_round_trip(scalar: Any) -> None:
    read = read_value(value(scalar), STANDIN_TYPES)
    assert read == scalar and type(read) is type(scalar)
    written = make_value(read, STANDIN_TYPES, reverse_arrays=False)
    assert written.value == scalar and type(written.value) is type(scalar)


def test_arrays_kvlists_bytes_and_empty_values() -> None:
    assert read_value(value(["a", "b"]), STANDIN_TYPES) == ("a", "b")
    assert read_value(value([["x"], 1]), STANDIN_TYPES) == (("x",), 1)
    assert read_value(value({"k": [1, 2], "j": None}), STANDIN_TYPES) == KvList(
        (("k", (1, 2)), ("j", None))
    )
    # the agent hands a bytes value back as a list of ints
    assert read_value(AnyValue(b"\x00\xff"), STANDIN_TYPES) == b"\x00\xff"
    assert read_value(None, STANDIN_TYPES) is None
    assert read_value(AnyValue(None), STANDIN_TYPES) is None


def test_unknown_value_types_raise() -> None:
    with pytest.raises(TypeError, match="unknown rotel value type"):
        read_value(AnyValue(object()), STANDIN_TYPES)
    with pytest.raises(TypeError, match="cannot write"):
        make_value({"a": 1}, STANDIN_TYPES, reverse_arrays=False)


@pytest.mark.parametrize("reverse", [False, True])
def test_make_value_writes_arrays_in_order_or_pre_reversed(reverse: bool) -> None:
    nested = ("a", KvList((("k", ("x", "y")),)), ("p", "q"))
    written = make_value(nested, STANDIN_TYPES, reverse_arrays=reverse)
    outer = written.value
    assert isinstance(outer, ArrayValue)
    read = read_value(written, STANDIN_TYPES)
    if reverse:  # every level reversed, so the agent's reversal restores the order
        assert read == (("q", "p"), KvList((("k", ("y", "x")),)), "a")
    else:
        assert read == nested


def test_is_attribute_value() -> None:
    for ok in ("s", 1, 1.0, True, (), ("a", "b"), (1, 2), (True,), (1.5, 2.5)):
        assert is_attribute_value(ok), ok
    for bad in (None, b"x", (1, "a"), (1, True), (("a",),), KvList(()), [1]):
        assert not is_attribute_value(bad), bad


def test_has_array_and_same_value() -> None:
    assert has_array(("a",)) and has_array(KvList((("k", (1,)),)))
    assert not has_array("a") and not has_array(KvList((("k", 1),)))
    assert same_value(("a", 1), ("a", 1)) and same_value(("a",), ["a"])
    assert not same_value(1, True) and not same_value(1, 1.0) and not same_value((1,), (True,))
    assert not same_value("a", ("a",))


def test_json_text_of_structured_values() -> None:
    text = json_text(KvList((("k", ("a", 1)), ("b", b"\x01\x02"), ("n", None))))
    assert orjson.loads(text) == {
        "k": ["a", 1],
        "b": base64.b64encode(b"\x01\x02").decode(),
        "n": None,
    }
