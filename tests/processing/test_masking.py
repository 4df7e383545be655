"""The masking stage: scrubbers, key rules, the user's mask (fail-closed), capture_content."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event

from otel_llm.errors import ConfigError
from otel_llm.processing import scrubbers
from otel_llm.processing.masking import MASK_FALLBACK_VALUE, compile_masker, mask_record
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.scrubbers import BUILTIN_RULES, luhn_valid
from otel_llm.processing.stage import StageContext


def masking_function(data: Any) -> Any:
    """The seed's mask function."""
    return "REDACTED" if isinstance(data, str) and data.startswith("SECRET_") else data


def _record(
    attributes: dict[str, Any],
    events: Sequence[Event] = (),
    status: str | None = None,
) -> SpanRecord:
    return SpanRecord(
        trace_id=1,
        span_id=2,
        name="x",
        start_time=0,
        end_time=1,
        attributes=attributes,
        events=tuple(events),
        status_description=status,
    )


def _ctx(
    mask: Callable[..., Any] | None = None,
    masking: bool | Mapping[str, Any] | None = None,
    *,
    capture_content: bool = True,
) -> StageContext:
    return StageContext(masker=compile_masker(mask, masking), capture_content=capture_content)


def _masked(value: Any, key: str = "otel_llm.observation.input", **kw: Any) -> Any:
    record = _record({key: value})
    mask_record(record, _ctx(**kw))
    return record.attributes[key]


def _everything(record: SpanRecord) -> str:
    events = [(e.name, dict(e.attributes or {})) for e in record.events]
    return repr(record.attributes) + repr(events) + repr(record.status_description)


# --- scrubbers: hits ---------------------------------------------------------------

HITS = {
    "openai_key": "sk-proj-Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789",
    "anthropic_key": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
    "google_api_key": "AIzaSyD-1234567890abcdefghijklmnopqrstu",
    "langfuse_key": "sk-lf-12345678-1234-1234-1234-123456789012",
    "github_token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "slack_token": "xoxb-123456789012-1234567890123-abcdefghij",
    "stripe_key": "sk_live_abcdefghijklmnop1234",
    "huggingface_token": "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    "groq_key": "gsk_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "jwt": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    ),
    "private_key": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
    ),
    "email": "john.doe+tag@example.co.uk",
    "payment_card": "4111 1111 1111 1111",
}


def test_every_builtin_rule_has_a_hit_case() -> None:
    assert set(HITS) | {"aws_secret_key", "bearer_token"} == set(BUILTIN_RULES)


@pytest.mark.parametrize(("rule", "secret"), sorted(HITS.items()))
def test_each_scrubber_replaces_its_secret_by_a_marker_naming_the_rule(
    rule: str, secret: str
) -> None:
    ctx = _ctx()
    record = _record({"otel_llm.observation.input": f"please use {secret} now"})
    mask_record(record, ctx)
    assert record.attributes["otel_llm.observation.input"] == f"please use [REDACTED:{rule}] now"
    assert ctx.counters[f"masking.rule.{rule}"] == 1
    assert ctx.counters["masking.masked_values"] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Authorization: Bearer abcdef1234567890abcdef",
            "Authorization: Bearer [REDACTED:bearer_token]",
        ),
        (
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY done",
            "AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret_key] done",
        ),
        (
            'aws_secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
            'aws_secret_access_key: "[REDACTED:aws_secret_key]"',
        ),
        ("sk-svcacct-Zx9yW8vU7tS6rQ5pO4nM3lK2jI1h", "[REDACTED:openai_key]"),
        ("pk-lf-abcdef12-3456-7890-abcd-ef1234567890", "[REDACTED:langfuse_key]"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[REDACTED:github_token]"),
        ("rk_live_abcdefghijklmnop1234", "[REDACTED:stripe_key]"),
        ("ASIAY34FZKBOKMUTVV7A", "[REDACTED:aws_access_key_id]"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk cut here", "[REDACTED:private_key]"),
        (
            "cards 5500-0000-0000-0004 and 378282246310005",
            "cards [REDACTED:payment_card] and [REDACTED:payment_card]",
        ),
        ("4111111111111111 exp 12/29", "[REDACTED:payment_card] exp 12/29"),
    ],
)
def test_scrubber_variants(text: str, expected: str) -> None:
    assert _masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Paris is sunny; bring sunglasses, not an umbrella.",
        "call_abc123def456ghi789jkl toolu_01A09q90qw90lq917835lq9 chatcmpl-9xYzAbCdEf0123456789",
        "msg_01XFDUDYJgAACzvnptvVoYEL run-4f9c2a1e-5b6d-4c3e-8f7a-9b0c1d2e3f4a",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "uuid 123e4567-e89b-12d3-a456-426614174000 and 550e8400-e29b-41d4-a716-446655440000",
        "use sk-learn-compatible-estimators for everything",
        "The bearer of bad news brought authentication-strategies",
        "epoch ms 1700000000000, pi 3.14159265358979323846",
        "decimal trace id 85409434994488837557643013731547696719",
        "card 4111 1111 1111 1112 fails Luhn; 4111-1111-1111-1121 too",
        "icon@2x.png, @mention and user@localhost",
        "hf_hub_download and gsk_short and AKIA_not_a_key and ghp_short",
        "a long word: internationalization_responsibilities",
    ],
)
def test_ordinary_text_ids_and_numbers_are_not_scrubbed(text: str) -> None:
    ctx = _ctx()
    record = _record({"otel_llm.observation.output": text})
    mask_record(record, ctx)
    assert record.attributes["otel_llm.observation.output"] is text
    assert not ctx.counters


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111111111111111", True),
        ("4111 1111 1111 1111", True),
        ("5500-0000-0000-0004", True),
        ("378282246310005", True),
        ("6011111111111117", True),
        ("4111111111111112", False),
        ("1234567890123", False),
        ("411111111111", False),  # 12 digits: too short
        ("41111111111111111111", False),  # 20 digits: too long
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        # each escape hides the one character that the cheap document check looks for
        ('{"m":"ann\\u0040ex.io"}', {"m": "[REDACTED:email]"}),
        ('{"h":"Bearer abc123\\/def456\\/ghi789"}', {"h": "Bearer [REDACTED:bearer_token]"}),
        ('{"c":"4111 1111 \\u0031111 1111"}', {"c": "[REDACTED:payment_card]"}),
    ],
)
def test_json_escapes_cannot_hide_a_secret(document: str, expected: dict[str, str]) -> None:
    assert orjson.loads(_masked(document)) == expected


def test_lone_surrogates_do_not_break_scrubbing() -> None:
    assert _masked("\ud8004222222222222") == "\ud800[REDACTED:payment_card]"  # 14 chars
    assert _masked("\ud800 x ann@example.com sk-") == "\ud800 x [REDACTED:email] sk-"
    assert _masked("\ud800 just some words here") == "\ud800 just some words here"


def test_short_strings_are_never_scanned() -> None:
    assert _masked("a@b.io") == "a@b.io"  # documented: under 8 characters


def test_the_gate_never_hides_a_builtin_hit() -> None:
    scrubber = scrubbers.compile_scrubber(BUILTIN_RULES, {}, scrubbers.DEFAULT_MARKER)
    assert scrubber is not None
    for secret in HITS.values():
        assert scrubbers._may_match(f"x {secret} y")
    assert not scrubbers._may_match("What is the weather like in Paris today? 12 items.")


# --- key rules -------------------------------------------------------------------


def test_key_rules_redact_whole_values_inside_nested_metadata() -> None:
    metadata = {
        "user": {"API-Key": "abc", "Password": {"v": 1}, "name": "ann", "id": "u1"},
        "list": [{"authorization": "Basic Zm9vOmJhcg=="}, {"client_secret": 42}],
        "db_password": "hunter2",
        "x-api-key": "k",
        "Set-Cookie": ["a=b"],
        "credentials": None,
        "has_api_key": True,
        "max_tokens": 256,
        "tokens": 10,
        "token_type": "bearer",
    }
    result = orjson.loads(_masked(json.dumps(metadata), key="otel_llm.observation.metadata"))
    key = "[REDACTED:key]"
    assert result == {
        "user": {"API-Key": key, "Password": key, "name": "ann", "id": "u1"},
        "list": [{"authorization": key}, {"client_secret": key}],
        "db_password": key,
        "x-api-key": key,
        "Set-Cookie": key,
        "credentials": None,
        "has_api_key": True,
        "max_tokens": 256,
        "tokens": 10,
        "token_type": "bearer",
    }


def test_key_rules_apply_to_model_parameters_and_secret_named_attributes() -> None:
    ctx = _ctx()
    record = _record(
        {
            "otel_llm.observation.model_parameters": '{"temperature":0.2,"api_key":"x"}',
            "http.request.header.authorization": ("Bearer abc",),
            "db.password": "hunter2",
            "langfuse.observation.metadata.access_token": "t0k3n",
            "gen_ai.request.max_tokens": 256,
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.request.model": "gpt-4o",
        }
    )
    mask_record(record, ctx)
    assert record.attributes == {
        "otel_llm.observation.model_parameters": '{"temperature":0.2,"api_key":"[REDACTED:key]"}',
        "http.request.header.authorization": "[REDACTED:key]",
        "db.password": "[REDACTED:key]",
        "langfuse.observation.metadata.access_token": "[REDACTED:key]",
        "gen_ai.request.max_tokens": 256,
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.request.model": "gpt-4o",
    }
    assert ctx.counters["masking.rule.key"] == 4
    assert ctx.counters["masking.masked_values"] == 4


MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
    {
        "role": "user",
        "parts": [{"type": "text", "content": "Mail me at ann@example.com, SECRET_user"}],
    },
    {
        "role": "assistant",
        "parts": [
            {
                "type": "tool_call",
                "id": "call_abc123def456",
                "name": "send_mail",
                "arguments": json.dumps(
                    {"to": "ann@example.com", "api_key": "x", "body": "SECRET_body"}
                ),
            }
        ],
    },
    {
        "role": "tool",
        "parts": [
            {"type": "tool_call_response", "id": "call_abc123def456", "response": "SECRET_sent"}
        ],
    },
]


def test_structure_survives_masking_of_chat_messages() -> None:
    masked = orjson.loads(_masked(json.dumps(MESSAGES), key="gen_ai.input.messages"))
    assert [m["role"] for m in masked] == ["system", "user", "assistant", "tool"]
    assert [p["type"] for m in masked for p in m["parts"]] == [
        "text",
        "text",
        "tool_call",
        "tool_call_response",
    ]
    assert masked[2]["parts"][0]["id"] == masked[3]["parts"][0]["id"] == "call_abc123def456"
    assert masked[2]["parts"][0]["name"] == "send_mail"
    assert masked[1]["parts"][0]["content"] == "Mail me at [REDACTED:email], SECRET_user"
    arguments = orjson.loads(masked[2]["parts"][0]["arguments"])  # JSON inside JSON
    assert arguments == {
        "to": "[REDACTED:email]",
        "api_key": "[REDACTED:key]",
        "body": "SECRET_body",
    }


def test_unchanged_json_is_not_reserialized() -> None:
    text = json.dumps(MESSAGES[:1], indent=2)
    assert _masked(text, key="gen_ai.input.messages") is text


# --- the user's mask ----------------------------------------------------------------

SEED_KEYS = [
    "otel_llm.observation.input",
    "otel_llm.observation.output",
    "otel_llm.observation.metadata",
    "otel_llm.trace.input",
    "langfuse.observation.input",
    "traceloop.entity.input",
    "input.value",
    "gen_ai.prompt.0.content",
    "gen_ai.tool.call.arguments",
]


@pytest.mark.parametrize("key", SEED_KEYS)
def test_seed_mask_function_masks_a_raw_string_under_every_content_key(key: str) -> None:
    assert _masked("SECRET_x", key=key, mask=masking_function) == "REDACTED"


@pytest.mark.parametrize("key", SEED_KEYS)
def test_seed_mask_function_reaches_nested_json_and_json_inside_json(key: str) -> None:
    value = {
        "question": "SECRET_q",
        "history": [{"role": "user", "content": "SECRET_h"}],
        "tool": {"arguments": json.dumps({"query": "SECRET_args", "n": 1})},
        "deep": [[[{"x": ["SECRET_deep"]}]]],
    }
    masked = _masked(json.dumps(value), key=key, mask=masking_function)
    assert "SECRET_" not in masked
    parsed = orjson.loads(masked)
    assert parsed["question"] == "REDACTED"
    assert parsed["history"] == [{"role": "user", "content": "REDACTED"}]
    assert orjson.loads(parsed["tool"]["arguments"]) == {"query": "REDACTED", "n": 1}


def test_mask_sees_the_whole_value_first_then_each_string() -> None:
    seen: list[Any] = []

    def mask(data: Any) -> Any:
        seen.append(data)
        if isinstance(data, dict):
            return {**data, "added": "by mask"}
        return data.upper() if isinstance(data, str) else data

    result = _masked('{"a":"b","n":1}', mask=mask)
    assert seen[0] == {"a": "b", "n": 1}
    assert orjson.loads(result) == {"a": "B", "n": 1, "added": "BY MASK"}


@pytest.mark.parametrize(
    ("mask", "calls"),
    [
        (lambda *, data: data, "keyword"),
        (lambda data: data, "keyword"),
        (lambda data, **kwargs: data, "keyword"),
        (lambda value: value, "positional"),
        (lambda value, /: value, "positional"),
    ],
)
def test_mask_is_called_with_data_keyword_when_it_can_be(
    mask: Callable[..., Any], calls: str
) -> None:
    from otel_llm.processing.masking_options import mask_call_style

    assert mask_call_style(mask) == calls
    assert _masked("hello world", mask=mask) == "hello world"


def test_mask_with_a_bad_signature_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mask"):
        compile_masker(lambda a, b: a, None)
    with pytest.raises(ConfigError, match="mask"):
        compile_masker("not callable", None)  # type: ignore[arg-type]


def _raising_mask(data: Any) -> Any:
    if isinstance(data, str) and "boom" in data:
        raise ValueError(f"cannot mask {data}")
    return data


def test_a_raising_mask_fails_closed_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    ctx = _ctx(_raising_mask)
    record = _record(
        {
            "otel_llm.observation.input": '{"messages":[{"content":"boom SECRET_1"}]}',
            "otel_llm.observation.output": "boom SECRET_2",
            "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"ok"}]}]',
            "gen_ai.usage.input_tokens": 5,
        },
        events=[
            Event("gen_ai.user.message", {"content": "boom SECRET_3"}, timestamp=5),
            Event("exception", {"exception.message": "boom SECRET_4"}, timestamp=6),
        ],
        status="boom SECRET_5",
    )
    with caplog.at_level(logging.DEBUG, logger="otel_llm"):
        mask_record(record, ctx)
    assert record.attributes["otel_llm.observation.input"] == MASK_FALLBACK_VALUE
    assert record.attributes["otel_llm.observation.output"] == MASK_FALLBACK_VALUE
    assert "SECRET_" not in _everything(record)
    assert record.attributes["gen_ai.usage.input_tokens"] == 5
    assert '"ok"' in record.attributes["gen_ai.input.messages"]
    assert record.events[0].attributes == {"content": MASK_FALLBACK_VALUE}
    assert record.events[0].timestamp == 5
    assert record.status_description == MASK_FALLBACK_VALUE
    assert ctx.counters["masking.mask_failed"] == 5
    assert "SECRET_" not in caplog.text and "boom" not in caplog.text
    assert caplog.text.count("ValueError") == 1  # logged once


class _Opaque:
    def __repr__(self) -> str:
        return "SECRET_in_repr"


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (0, "0"),
        (None, "null"),
        ({"masked": True}, '{"masked":true}'),
        (_Opaque(), MASK_FALLBACK_VALUE),
        ({1, 2}, MASK_FALLBACK_VALUE),
    ],
)
def test_mask_returning_non_strings(returned: Any, expected: str) -> None:
    ctx = _ctx(lambda data: returned if data == "SECRET_x" else data)
    record = _record({"otel_llm.observation.input": "SECRET_x"})
    mask_record(record, ctx)
    assert record.attributes["otel_llm.observation.input"] == expected
    assert ctx.counters["masking.mask_failed"] == (expected == MASK_FALLBACK_VALUE)


def test_truncated_json_still_gets_the_mask_and_key_rules() -> None:
    text = '{"a": "SECRET_1", "password": "hunter2", "b": ["x", "SECRET_2'  # cut mid-value
    masked = _masked(text, mask=masking_function)
    assert "SECRET_" not in masked and "hunter2" not in masked
    assert '"password": "[REDACTED:key]"' in masked


def test_pathologically_deep_json_fails_closed() -> None:
    ctx = _ctx()
    deep = "[" * 300 + '"ann@example.com"' + "]" * 300
    record = _record({"otel_llm.observation.input": deep})
    mask_record(record, ctx)
    assert record.attributes["otel_llm.observation.input"] == MASK_FALLBACK_VALUE
    assert ctx.counters["masking.too_deep"] == 1


def test_an_internal_error_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_LLM_STRICT", raising=False)

    def broken(self: object, text: str, hits: list[str]) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(scrubbers.Scrubber, "scrub", broken)
    ctx = _ctx()
    record = _record({"otel_llm.observation.input": "ann@example.com", "gen_ai.request.model": "m"})
    mask_record(record, ctx)
    assert record.attributes == {
        "otel_llm.observation.input": MASK_FALLBACK_VALUE,
        "gen_ai.request.model": "m",
    }
    assert ctx.counters["masking.internal_error"] == 1


def test_an_internal_error_raises_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LLM_STRICT", "1")
    monkeypatch.setattr(scrubbers.Scrubber, "scrub", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        mask_record(_record({"otel_llm.observation.input": "ann@example.com"}), _ctx())


# --- events, status, free text ----------------------------------------------------


def test_events_and_status_are_masked() -> None:
    key = HITS["openai_key"]
    ctx = _ctx(masking_function)
    record = _record(
        {"otel_llm.observation.status_message": f"failed with {key}"},
        events=[
            Event(
                "gen_ai.user.message",
                {"gen_ai.system": "openai", "role": "user", "content": "SECRET_e"},
            ),
            Event("gen_ai.choice", {"index": 0, "message": '{"content":"SECRET_c"}'}),
            Event(
                "exception",
                {
                    "exception.type": "ValueError",
                    "exception.message": f"bad key {key}",
                    "exception.stacktrace": f'File "x.py"\nValueError: bad key {key}',
                    "exception.escaped": False,
                },
            ),
            Event("cache_hit", {"note": "SECRET_n"}),
            Event("no_attributes"),
        ],
        status=f"Error: {key}",
    )
    mask_record(record, ctx)
    assert record.attributes["otel_llm.observation.status_message"] == (
        "failed with [REDACTED:openai_key]"
    )
    user, choice, exception, cache, empty = record.events
    assert dict(user.attributes or {}) == {
        "gen_ai.system": "openai",
        "role": "user",
        "content": "REDACTED",
    }
    assert orjson.loads(str((choice.attributes or {})["message"])) == {"content": "REDACTED"}
    assert (exception.attributes or {})["exception.message"] == "bad key [REDACTED:openai_key]"
    assert (exception.attributes or {})["exception.type"] == "ValueError"
    assert (exception.attributes or {})["exception.escaped"] is False
    assert (cache.attributes or {})["note"] == "REDACTED"
    assert empty.name == "no_attributes"
    assert record.status_description == "Error: [REDACTED:openai_key]"
    assert key not in _everything(record) and "SECRET_" not in _everything(record)


def test_a_rebuilt_event_keeps_its_dropped_attribute_count() -> None:
    bounded = BoundedAttributes(maxlen=1, attributes={"a": 1, "exception.message": "x@ex.com!"})
    record = _record({}, events=[Event("exception", bounded, timestamp=7)])
    mask_record(record, _ctx())
    (event,) = record.events
    assert dict(event.attributes or {}) == {"exception.message": "[REDACTED:email]!"}
    assert event.dropped_attributes == 1 and event.timestamp == 7


def test_unchanged_events_are_kept_as_they_are() -> None:
    event = Event("exception", {"exception.message": "plain failure"})
    record = _record({}, events=[event])
    mask_record(record, _ctx())
    assert record.events[0] is event


# --- capture_content=False ----------------------------------------------------------


def test_capture_content_off_removes_content_but_keeps_usage_cost_and_model() -> None:
    ctx = _ctx(capture_content=False)
    record = _record(
        {
            "gen_ai.input.messages": json.dumps(MESSAGES),
            "gen_ai.output.messages": "[]",
            "otel_llm.observation.input": "hi",
            "otel_llm.observation.metadata": "{}",
            "gen_ai.prompt.0.content": "hi",
            "langfuse.observation.metadata.api_key": "x",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.usage.cost": 0.001,
            "otel_llm.usage.raw": '{"prompt_tokens":10}',
            "otel_llm.observation.type": "generation",
            "db.password": "hunter2",
        },
        events=[
            Event("gen_ai.user.message", {"gen_ai.system": "openai", "content": "hi", "role": "u"}),
            Event("exception", {"exception.message": "bad ann@example.com"}),
        ],
    )
    mask_record(record, ctx)
    assert record.attributes == {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.cost": 0.001,
        "otel_llm.usage.raw": '{"prompt_tokens":10}',
        "otel_llm.observation.type": "generation",
        "db.password": "[REDACTED:key]",
    }
    assert dict(record.events[0].attributes or {}) == {"gen_ai.system": "openai", "role": "u"}
    assert dict(record.events[1].attributes or {}) == {"exception.message": "bad [REDACTED:email]"}
    assert ctx.counters["masking.content_removed"] == 7


def test_capture_content_off_with_masking_off_still_removes_content() -> None:
    ctx = _ctx(masking=False, capture_content=False)
    record = _record({"otel_llm.observation.input": "hi", "gen_ai.usage.input_tokens": 1})
    mask_record(record, ctx)
    assert record.attributes == {"gen_ai.usage.input_tokens": 1}


# --- options ------------------------------------------------------------------------


def test_no_masker_in_context_means_default_scrubbers_and_key_rules() -> None:
    ctx = StageContext()
    record = _record({"otel_llm.observation.input": '{"token":"t","mail":"ann@example.com"}'})
    mask_record(record, ctx)
    assert orjson.loads(record.attributes["otel_llm.observation.input"]) == {
        "token": "[REDACTED:key]",
        "mail": "[REDACTED:email]",
    }


def test_masking_false_turns_scrubbers_and_key_rules_off_but_not_the_mask() -> None:
    value = '{"password":"hunter2","mail":"ann@example.com","s":"SECRET_x"}'
    assert _masked(value, masking=False) is value
    assert orjson.loads(_masked(value, masking=False, mask=masking_function)) == {
        "password": "hunter2",
        "mail": "ann@example.com",
        "s": "REDACTED",
    }


def test_option_mapping() -> None:
    masking = {
        "scrubbers": {"email": False},
        "extra_patterns": {"employee_id": r"EMP-\d{6}"},
        "redact_keys": ["Customer-Ref"],
        "marker": "<{rule}>",
    }
    value = '{"customer_ref":"c-1","token":"t","text":"EMP-123456 ann@example.com"}'
    assert orjson.loads(_masked(value, masking=masking)) == {
        "customer_ref": "<key>",
        "token": "<key>",
        "text": "<employee_id> ann@example.com",
    }
    only = compile_masker(None, {"scrubbers": ["email"], "key_rules": False})
    assert only.rules == ("email",) and not only.key_rules
    assert compile_masker(None, {"scrubbers": False}).rules == ()
    assert compile_masker(None, True).rules == tuple(BUILTIN_RULES)


@pytest.mark.parametrize(
    ("masking", "message"),
    [
        ({"scrubber": True}, "unknown option"),
        ({"scrubbers": ["emails"]}, "unknown rule"),
        ({"scrubbers": "email"}, "list of rule names"),
        ({"scrubbers": {"email": "no"}}, "True/False"),
        ({"extra_patterns": {"x": "("}}, "not a valid regex"),
        ({"extra_patterns": {"x": "a*"}}, "empty string"),
        ({"extra_patterns": {"x": "(?P<g>a)"}}, "named groups"),
        ({"extra_patterns": {"Bad Name": "a"}}, "lowercase"),
        ({"extra_patterns": {"email": "a"}}, "built-in rule name"),
        ({"extra_patterns": ["a"]}, "mapping"),
        ({"extra_patterns": {"x": "(?i)abc"}}, "combine"),
        ({"redact_keys": "token"}, "list of key names"),
        ({"redact_keys": ["role"]}, "structural"),
        ({"redact_keys": ["tool_call_id"]}, "structural"),
        ({"key_rules": "yes"}, "True or False"),
        ({"marker": "{value}"}, "placeholder"),
        ({"marker": ""}, "non-empty"),
        ("on", "mapping of options"),
    ],
)
def test_bad_masking_options_are_config_errors(masking: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        compile_masker(None, masking)
    assert error.value.setting == "masking"


def test_an_extra_pattern_that_can_match_nothing_does_not_loop() -> None:
    value = "a secret here, a secret there"
    assert _masked(value, masking={"extra_patterns": {"x": "(?=secret)"}}) is value


def test_masking_false_compiles_to_nothing_but_the_mask() -> None:
    off = compile_masker(None, False)
    assert off.rules == () and not off.key_rules and not off.has_mask and off.inert
    with_mask = compile_masker(masking_function, False)
    assert with_mask.has_mask and not with_mask.inert


def test_non_content_attributes_with_ordinary_keys_are_not_scanned() -> None:
    url = "https://api.example.com/v1?user=ann@example.com"
    record = _record({"http.url": url, "gen_ai.response.id": "chatcmpl-123"})
    mask_record(record, _ctx(masking_function))
    assert record.attributes == {"http.url": url, "gen_ai.response.id": "chatcmpl-123"}


def test_an_extra_pattern_turns_the_gate_off() -> None:
    value = "order ref zz9 plural z alpha"
    assert _masked(value, masking={"extra_patterns": {"ref": r"zz\d"}}) == (
        "order ref [REDACTED:ref] plural z alpha"
    )


# --- property: a secret anywhere never survives the seed mask ---------------------

_TEXT = st.text(max_size=12).filter(lambda s: "SECRET_" not in s)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_TREES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=20,
)


@st.composite
def _tree_with_secret(draw: st.DrawFn) -> Any:
    secret = "SECRET_" + draw(st.text(max_size=10))
    wrap = draw(st.sampled_from(["plain", "json_string", "tool_args"]))
    if wrap == "json_string":
        planted: Any = json.dumps([secret])
    elif wrap == "tool_args":
        planted = {"type": "tool_call", "arguments": json.dumps({"q": secret})}
    else:
        planted = secret
    return _plant(draw(_TREES), planted, draw)


def _plant(tree: Any, planted: Any, draw: Callable[..., Any]) -> Any:
    if isinstance(tree, dict) and tree and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(tree)))
        tree[key] = _plant(tree[key], planted, draw)
    elif isinstance(tree, list) and tree and draw(st.booleans()):
        index = draw(st.integers(0, len(tree) - 1))
        tree[index] = _plant(tree[index], planted, draw)
    elif isinstance(tree, dict):
        tree[draw(_TEXT)] = planted
    elif isinstance(tree, list):
        tree.insert(draw(st.integers(0, len(tree))), planted)
    else:
        return planted
    return tree


def _as_attribute(tree: Any) -> str:
    return tree if isinstance(tree, str) else json.dumps(tree)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tree_with_secret(), st.sampled_from([*SEED_KEYS, "gen_ai.input.messages"]))
def test_property_a_planted_secret_never_survives_the_seed_mask(tree: Any, key: str) -> None:
    text = _as_attribute(tree)
    record = _record(
        {key: text, "otel_llm.observation.metadata": text, "gen_ai.usage.input_tokens": 3},
        events=[Event("gen_ai.user.message", {"content": text})],
    )
    mask_record(record, _ctx(masking_function))
    assert "SECRET_" not in _everything(record)
    assert record.attributes["gen_ai.usage.input_tokens"] == 3


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


_ESCAPABLE = "@/-_. ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # never part of an escape json.dumps writes


def _encode(value: Any, escape: str, ascii_only: bool) -> str:
    """JSON like json.dumps, but each character of ``escape`` in strings written as \\uXXXX."""
    if isinstance(value, str):
        body = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        return '"' + "".join(f"\\u{ord(c):04x}" if c in escape else c for c in body) + '"'
    if isinstance(value, dict):
        items = (
            f"{_encode(k, escape, ascii_only)}:{_encode(v, escape, ascii_only)}"
            for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_encode(v, escape, ascii_only) for v in value) + "]"
    return json.dumps(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _TREES,
    st.sampled_from([*sorted(HITS.values()), "Bearer abc123/def456/ghi789"]),
    st.booleans(),
    st.text(alphabet=_ESCAPABLE, max_size=4),
    st.data(),
)
def test_property_builtin_scrubbers_find_a_secret_however_the_json_is_written(
    tree: Any, secret: str, ascii_only: bool, escape: str, data: st.DataObject
) -> None:
    planted = _plant(tree, f"see {secret} ok", data.draw)
    text = _encode(planted, escape, ascii_only)
    assert json.loads(text) == planted
    masked = _masked(text, key="gen_ai.input.messages")
    assert not any(secret in s for s in _strings(orjson.loads(masked)))


def test_structured_content_values_are_masked_not_skipped() -> None:
    """A dict or bytes under a content key (another exporter's kvlist/bytes) is examined too."""
    from otel_llm.processing.masking import compile_masker, mask_record
    from otel_llm.processing.record import SpanRecord
    from otel_llm.processing.stage import StageContext

    key = "sk-proj-AbCdEf0123456789AbCdEf0123456789"
    record = SpanRecord(
        trace_id=1,
        span_id=2,
        name="x",
        start_time=0,
        end_time=1,
        attributes={
            "gen_ai.input.messages": {"role": "user", "content": f"my key {key}"},
            "input.value": f"use {key}".encode(),
        },
    )
    mask_record(record, StageContext(masker=compile_masker(None, None)))
    dumped = repr(record.attributes)
    assert key not in dumped
    assert "REDACTED" in dumped
