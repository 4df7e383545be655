"""The masking stage's text screen: values it lets through unparsed are exactly those
the full walk would leave unchanged (same attributes, same rule counts)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_llm.processing.masker import CONTENT, NestingTooDeep
from otel_llm.processing.masking import (
    MASK_FALLBACK_VALUE,
    Masker,
    compile_masker,
    mask_record,
)
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext

_KEYS = (
    "otel_llm.observation.input",
    "otel_llm.observation.output",
    "otel_llm.observation.metadata",
    "gen_ai.input.messages",
)
_CLEAN_CHAT = json.dumps(
    {
        "messages": [
            {"role": "system", "content": "You are a concise assistant for a travel site."},
            {"role": "user", "content": "I land in Lisbon at 23:40. Is the metro running?"},
        ]
    }
)
_CLEAN_PARAMS = '{"temperature":0.2,"max_tokens":256,"top_p":1}'
_CLEAN_TEXT = "The metro closes at 01:00, so take the red line to Alameda (about 2 EUR)."


def _reference(masker: Masker, value: str) -> tuple[str, list[str]]:
    """The full path, value by value: what masking gives without the screen."""
    hits: list[str] = []
    try:
        return masker.mask_value(CONTENT, value, hits), hits
    except NestingTooDeep:
        return MASK_FALLBACK_VALUE, []


def _check(values: list[str], masking: Mapping[str, Any] | None = None) -> bool:
    """Mask ``values`` as one span (screened together) and compare with the reference.

    Every value the screen skips must be one the full path leaves unchanged. Returns
    whether the screen skipped them all (nothing parsed).
    """
    ctx = StageContext(masker=compile_masker(None, masking))
    masker = ctx.masker
    assert masker is not None
    attributes = dict(zip(_KEYS, values, strict=False))
    record = SpanRecord(1, 2, "x", 0, 1, attributes=dict(attributes))
    mask_record(record, ctx)
    expected_hits: list[str] = []
    unsure = masker.unsure(list(attributes.values()))
    for (key, value), walked in zip(attributes.items(), unsure, strict=True):
        new, hits = _reference(masker, value)
        assert record.attributes[key] == new, (key, value)
        assert walked or (new is value and not hits), (key, value)
        expected_hits += hits
    rules = {k.removeprefix("masking.rule."): v for k, v in ctx.counters.items() if "rule." in k}
    assert rules == {rule: expected_hits.count(rule) for rule in set(expected_hits)}
    return not any(unsure)


def test_ordinary_content_is_screened_through_without_parsing() -> None:
    assert _check([_CLEAN_CHAT, _CLEAN_TEXT, _CLEAN_PARAMS])
    assert _check(['{"note": "caf\\u00e9 cr\\u00e8me, na\\u00efve"}'])  # non-ASCII escapes


def test_only_the_values_that_may_change_are_walked() -> None:
    masker = compile_masker(None, None)
    ids = '{"id": "call_Vv7Yl0nB9a1vH2Zq3Xk8Jw4P"}'  # a token-like run: the gate fires
    assert masker.unsure([_CLEAN_CHAT, ids, _CLEAN_TEXT]) == [False, True, False]
    assert masker.unsure([_CLEAN_CHAT, '{"api_key": 1}', _CLEAN_TEXT]) == [False, True, False]
    assert masker.unsure(["mail ann@example.com", _CLEAN_PARAMS]) == [True, False]
    assert masker.unsure(['{"api_key": 1}', "mail ann@example.com"]) == [True, True]
    assert masker.unsure(['{"api_key": 1}', _CLEAN_TEXT]) == [True, False]
    _check([_CLEAN_CHAT, ids, _CLEAN_TEXT])


@pytest.mark.parametrize(
    "value",
    [
        # escapes hiding what the gate or the key screen look for
        '{"m":"write to ann\\u0040example.io please"}',
        '{"h":"Bearer abcdefgh\\/ijklmn12"}',
        '{"c":"card 4111\\u00201111 1111 1111 ok"}',
        '{"api\\u005fkey":"x"}',
        '{"api\\u212aey":"x"}',
        '{"api\u212aey":"x"}',  # the Kelvin sign lowercases to "k": apikey
        '{"api\\u212Aey":"x"}',
        # secret keys, spelled every way
        '{"api_key":"x"}',
        '{"X-Api-Key":"x"}',
        '{"Authorization":"Basic Zm9v"}',
        '{"db.password":"hunter2"}',
        '{"user":{"Client_Secret":{"v":1}}}',
        '{"token":"t"}',
        '{"a.token":"t"}',
        '{"refresh-token ":"t"}',
        '{"x\\"password":"p"}',
        '{"Set-Cookie":["a=b"]}',
        '{"password" : "p"}',
        '{"password"\n:"p"}',
        '{"password"\t\r: "p"}',
        # ... and inside JSON inside JSON (tool-call arguments), at two levels
        json.dumps({"tool_calls": [{"function": {"arguments": json.dumps({"api_key": "zz"})}}]}),
        json.dumps({"a": json.dumps({"b": json.dumps({"Password": "p"})})}),
        json.dumps({"a": json.dumps({"q": "mail bob@example.com"})}),
        json.dumps({"a": json.dumps({"password": "p"}, indent=1)}),
        # broken (cut) JSON: key rules on "key": "value" pairs, scrubbers on the text
        '{"password": "abc',
        '["password"\u00a0: "abc", "x',
        '{"q": "sk-proj-Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789',
        # long strings between few quotes: only what precedes a quote is searched
        json.dumps(
            {"note": "long prose " * 60, "Proxy Authorization": "x", "z": "more prose " * 30}
        ),
        json.dumps({"note": "long prose " * 60, "a": json.dumps({"id_token": "x"})}),
        # near misses: no secret, the screen may still say "parse"
        '{"max_tokens":256,"tokens":10,"token_type":"bearer","has_api_key":true}',
        '{"id":"call_abc123","type":"function","name":"password"}',
        '{"text":"my token and my password and the secret"}',
        '{"password":null,"token":true}',
        # a JSON string is parsed too, and JSON inside it
        '"write to ann\\u0040example.io"',
        json.dumps(json.dumps({"password": "p"})),
        # secrets in plain text (not JSON)
        "mail ann@example.com",
        "[not json] Bearer abcdefghij1234567890",
    ],
)
def test_the_screen_matches_the_full_walk(value: str) -> None:
    _check([value])
    _check([_CLEAN_CHAT, value, _CLEAN_PARAMS])


@pytest.mark.parametrize("depth", [120, 126, 127, 128, 129, 130])
def test_nesting_depth_is_decided_like_the_walk(depth: int) -> None:
    _check(["[" * depth + '"x"' + "]" * depth])
    _check(["[" * depth + "]" * depth, _CLEAN_TEXT])
    inner = "[" * (depth // 2) + '"x"' + "]" * (depth // 2)  # JSON inside JSON: one level more
    outer = depth - depth // 2
    _check(["[" * outer + json.dumps(inner) + "]" * outer])
    _check(['{"a":' * outer + json.dumps(json.dumps(inner)) + "}" * outer])


@pytest.mark.parametrize(
    "masking",
    [
        {"redact_keys": ["ssn", "Card-Number", 'we"ird\\key']},
        {"key_rules": False},
        {"key_rules": False, "redact_keys": ["ssn"]},
        {"scrubbers": False},
        {"scrubbers": ["email"]},
    ],
)
def test_options_are_screened_exactly(masking: Mapping[str, Any]) -> None:
    for value in (
        '{"SSN":"078-05-1120"}',
        '{"x.card_number":"4111"}',
        '{"We\\"ird\\\\Key":"v"}',
        '{"ssn_note":"x","api_key":"k"}',
        '{"m":"ann@example.com"}',
        _CLEAN_CHAT,
    ):
        _check([value, _CLEAN_TEXT], masking)


def test_the_screen_is_off_where_it_cannot_decide() -> None:
    assert not compile_masker(lambda data: data, None).screens
    assert not compile_masker(None, {"extra_patterns": {"ref": r"zz\d"}}).screens
    assert compile_masker(lambda data: data, None).unsure(["plain", "{}"]) == [True, True]
    assert compile_masker(None, {"redact_keys": ['a"b']}).screens
    assert compile_masker(None, False).screens
    assert compile_masker(None, False).unsure(['{"password": 1}', "a@b.io"]) == [False, False]


def test_long_values_are_walked_beside_screened_ones() -> None:
    _check([_CLEAN_CHAT, json.dumps({"a": "long prose " * 500}), _CLEAN_PARAMS])
    _check([_CLEAN_CHAT, json.dumps({"a": "long prose " * 500 + "ann@example.com"})])
    _check(["x" * 5000 + ' "api_key": 1', json.dumps({"password": "p" * 3000})])


# --- property: screened or walked, the result is the same ---------------------------

_NAMES = st.sampled_from(
    [
        "role",
        "content",
        "api_key",
        "X-Api-Key",
        "apiKey",
        "Authorization",
        "db.password",
        "token",
        "max_tokens",
        "Access-Token",
        "credentials",
        "cookie",
        "secret_sauce",
        "name",
        "id",
        "ssn",
    ]
)
_LEAVES = st.sampled_from(
    [
        "plain words here and there",
        "ann@example.com",
        "Bearer abcdefgh/ijklmn12",
        "sk-proj-Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789",
        "4111 1111 1111 1111",
        "call_abc123",
        "short",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
        "café crème",
    ]
) | st.text(max_size=20)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | _LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_NAMES | st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _documents(draw: st.DrawFn) -> str:
    value = draw(_VALUES)
    for _ in range(draw(st.integers(0, 2))):  # JSON inside JSON
        value = {draw(_NAMES): json.dumps(value, ensure_ascii=draw(st.booleans()))}
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    escape = draw(st.sampled_from(["", "@", "/", "_", "k", " ", "1"]))
    if escape:  # write one character as \uXXXX (or "/" as "\/") everywhere in strings
        text = text.replace(escape, "\\/" if escape == "/" else f"\\u{ord(escape):04x}")
        try:
            json.loads(text)
        except ValueError:
            text = json.dumps(value)
    if draw(st.booleans()):
        text = text[: draw(st.integers(1, max(1, len(text))))]  # cut, as a length limit does
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_documents(), min_size=1, max_size=3),
    st.sampled_from([None, {"redact_keys": ["ssn"]}, {"scrubbers": False}, {"key_rules": False}]),
)
def test_property_screened_masking_equals_the_full_walk(
    values: list[str], masking: Mapping[str, Any] | None
) -> None:
    _check(values, masking)
