"""The media stage: base64 payloads in content become references, bytes go to extras."""

from __future__ import annotations

import base64
import copy
import hashlib
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_llm.errors import ConfigError
from otel_llm.processing import media
from otel_llm.processing.media import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MIN_BYTES,
    OMITTED_PATTERN,
    REFERENCE_PATTERN,
    MediaOptions,
    MediaPayload,
    MediaSink,
    compile_media_options,
    extract_media,
    format_reference,
    parse_reference,
)
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext

INPUT = "gen_ai.input.messages"
OUTPUT = "gen_ai.output.messages"
OBS_INPUT = "otel_llm.observation.input"
METADATA = "otel_llm.observation.metadata"

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def blob(magic: bytes = PNG_MAGIC, size: int = 4000, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return magic + rng.randbytes(size - len(magic))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{b64(data)}"


def dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def make_record(**attributes: Any) -> SpanRecord:
    return SpanRecord(
        trace_id=1, span_id=2, name="x", start_time=0, end_time=1, attributes=attributes
    )


def run(record: SpanRecord, **options: Any) -> StageContext:
    ctx = StageContext(media=MediaOptions(**options) if options else None)
    extract_media(record, ctx)
    return ctx


def payloads(record: SpanRecord) -> list[MediaPayload]:
    found = record.extras.get("media", [])
    assert all(isinstance(p, MediaPayload) for p in found)
    return list(found)


def assert_extracted(
    record: SpanRecord, ref_text: str, data: bytes, mime: str, source: str
) -> None:
    ref = parse_reference(ref_text)
    assert ref is not None, ref_text
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size == len(data)
    assert ref.mime_type == mime
    assert ref.source == source
    (payload,) = [p for p in payloads(record) if p.sha256 == ref.sha256]
    assert payload.data == data
    assert (payload.mime_type, payload.size) == (mime, len(data))


# -- each shape -------------------------------------------------------------------------------
def test_openai_image_url_data_uri() -> None:
    data = blob()
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": data_uri(data), "detail": "high"}},
            ],
        }
    ]
    record = make_record(**{INPUT: dumps(messages)})
    ctx = run(record)
    out = orjson.loads(record.attributes[INPUT])
    url = out[0]["content"][1]["image_url"]["url"]
    assert_extracted(record, url, data, "image/png", "base64_data_uri")
    # everything else unchanged
    messages[0]["content"][1]["image_url"]["url"] = url
    assert out == messages
    assert ctx.counters["media.extracted"] == 1
    assert ctx.counters["media.bytes"] == len(data)


def test_openai_input_audio_uses_format_and_raw_base64() -> None:
    wav = blob(b"RIFF\x00\x00\x00\x00WAVEfmt ", 3000)
    part = {"type": "input_audio", "input_audio": {"data": b64(wav), "format": "wav"}}
    record = make_record(**{INPUT: dumps([{"role": "user", "content": [part]}])})
    run(record)
    out = orjson.loads(record.attributes[INPUT])[0]["content"][0]
    assert out["input_audio"]["format"] == "wav"
    assert_extracted(record, out["input_audio"]["data"], wav, "audio/wav", "base64")


def test_input_audio_mp3_format_maps_to_audio_mpeg() -> None:
    mp3 = blob(b"ID3\x04", 2000)
    part = {"type": "input_audio", "input_audio": {"data": b64(mp3), "format": "mp3"}}
    record = make_record(**{INPUT: dumps([part])})
    run(record)
    ref = parse_reference(orjson.loads(record.attributes[INPUT])[0]["input_audio"]["data"])
    assert ref is not None and ref.mime_type == "audio/mpeg"


@pytest.mark.parametrize(
    ("kind", "mime", "magic"),
    [("image", "image/jpeg", b"\xff\xd8\xff\xe0"), ("document", "application/pdf", b"%PDF-1.7")],
)
def test_anthropic_base64_source(kind: str, mime: str, magic: bytes) -> None:
    data = blob(magic, 5000)
    part = {"type": kind, "source": {"type": "base64", "media_type": mime, "data": b64(data)}}
    messages = [{"role": "user", "content": [part, {"type": "text", "text": "hi"}]}]
    record = make_record(**{INPUT: dumps(messages)})
    run(record)
    out = orjson.loads(record.attributes[INPUT])
    source = out[0]["content"][0]["source"]
    assert_extracted(record, source["data"], data, mime, "base64")
    assert source["media_type"] == mime and source["type"] == "base64"
    assert out[0]["content"][1] == {"type": "text", "text": "hi"}


def test_semconv_blob_part() -> None:
    data = blob()
    part = {"type": "blob", "modality": "image", "mime_type": "image/png", "content": b64(data)}
    messages = [{"role": "user", "parts": [{"type": "text", "content": "describe"}, part]}]
    record = make_record(**{INPUT: dumps(messages)})
    run(record)
    out = orjson.loads(record.attributes[INPUT])
    assert_extracted(record, out[0]["parts"][1]["content"], data, "image/png", "base64")
    assert out[0]["parts"][0] == {"type": "text", "content": "describe"}
    assert out[0]["parts"][1]["modality"] == "image"


def test_blob_part_without_mime_type_is_sniffed() -> None:
    data = blob(b"GIF89a")
    part = {"type": "blob", "modality": "image", "content": b64(data)}
    record = make_record(**{OUTPUT: dumps([{"role": "assistant", "parts": [part]}])})
    run(record)
    content = orjson.loads(record.attributes[OUTPUT])[0]["parts"][0]["content"]
    assert_extracted(record, content, data, "image/gif", "base64")


def test_gemini_inline_data_and_openai_output_audio() -> None:
    img, audio = blob(seed=1), blob(b"OggS", seed=2)
    doc = {
        "parts": [{"inline_data": {"mime_type": "image/png", "data": b64(img)}}],
        "message": {"role": "assistant", "audio": {"id": "a1", "data": b64(audio)}},
    }
    record = make_record(**{OUTPUT: dumps(doc)})
    run(record)
    out = orjson.loads(record.attributes[OUTPUT])
    assert_extracted(record, out["parts"][0]["inline_data"]["data"], img, "image/png", "base64")
    assert_extracted(record, out["message"]["audio"]["data"], audio, "audio/ogg", "base64")


def test_data_uri_embedded_in_plain_string_input() -> None:
    data = blob()
    text = f"Look at ![chart]({data_uri(data)}) and tell me.\nThanks"
    record = make_record(**{OBS_INPUT: text})
    run(record)
    new = record.attributes[OBS_INPUT]
    ref = REFERENCE_PATTERN.search(new)
    assert ref is not None
    assert new == text.replace(data_uri(data), ref[0])
    assert_extracted(record, ref[0], data, "image/png", "base64_data_uri")


def test_data_uri_nested_in_metadata() -> None:
    data = blob(b"%PDF-1.4")
    meta = {
        "a": {"b": [1, {"files": [{"name": "x.pdf", "uri": data_uri(data, "application/pdf")}]}]}
    }
    record = make_record(**{METADATA: dumps(meta)})
    run(record)
    out = orjson.loads(record.attributes[METADATA])
    uri = out["a"]["b"][1]["files"][0]["uri"]
    assert_extracted(record, uri, data, "application/pdf", "base64_data_uri")
    assert out["a"]["b"][0] == 1 and out["a"]["b"][1]["files"][0]["name"] == "x.pdf"


def test_raw_bytes_attribute() -> None:
    data = blob()
    record = make_record(**{OBS_INPUT: data})
    run(record)
    assert_extracted(record, record.attributes[OBS_INPUT], data, "image/png", "bytes")


def test_string_sequences_are_handled_per_element() -> None:
    data = blob()
    record = make_record(**{"llm.prompts": ("plain", f"see {data_uri(data)}")})
    run(record)
    value = record.attributes["llm.prompts"]
    assert isinstance(value, tuple) and value[0] == "plain" and value[1].startswith("see ")
    assert_extracted(record, value[1][4:], data, "image/png", "base64_data_uri")


def test_json_escaped_solidus_is_understood() -> None:
    data = bytes(range(256)) * 8  # contains "/" in base64
    assert "/" in b64(data)
    text = '{"url":"' + data_uri(data, "application/octet-stream").replace("/", "\\/") + '"}'
    record = make_record(**{INPUT: text})
    run(record)
    out = orjson.loads(record.attributes[INPUT])
    assert_extracted(record, out["url"], data, "application/octet-stream", "base64_data_uri")


def test_json_outside_the_payload_is_kept_byte_for_byte() -> None:
    data = blob()
    text = '{ "n": 1.0e5, "big": 123456789012345678901234567890, "s": "\\u00e9",\n  "p": ' + (
        '{"type": "blob", "modality": "image", "content": "' + b64(data) + '"} }'
    )
    record = make_record(**{INPUT: text})
    run(record)
    new = record.attributes[INPUT]
    ref = REFERENCE_PATTERN.search(new)
    assert ref is not None and new == text.replace(b64(data), ref[0])


def test_data_uri_followed_by_a_json_escape() -> None:
    data = blob()
    doc = {"text": f"see {data_uri(data)}\nthanks", "q": f'"{data_uri(data)}"'}
    record = make_record(**{INPUT: dumps(doc)})
    run(record)
    out = orjson.loads(record.attributes[INPUT])
    ref = payloads(record)[0].reference
    assert out == {"text": f"see {ref}\nthanks", "q": f'"{ref}"'}


def test_bytes_below_min_stay_and_over_limit_become_a_marker() -> None:
    small, large = blob(size=100), blob(size=5000)
    record = make_record(**{OBS_INPUT: small, "otel_llm.observation.output": large})
    ctx = run(record, max_bytes=4096)
    assert record.attributes[OBS_INPUT] == small
    marker = OMITTED_PATTERN.fullmatch(record.attributes["otel_llm.observation.output"])
    assert marker is not None and marker["source"] == "bytes" and int(marker["size"]) == 5000
    assert ctx.counters["media.over_limit"] == 1 and "media" not in record.extras


# -- references and payloads -----------------------------------------------------------------
def test_reference_round_trip_and_non_references() -> None:
    sha = "ab" * 32
    text = format_reference("image/png", sha, 12, "bytes")
    ref = parse_reference(text)
    assert ref is not None
    assert (ref.mime_type, ref.sha256, ref.size, ref.source) == ("image/png", sha, 12, "bytes")
    assert parse_reference("x" + text) is None
    assert parse_reference("@@@otel_llm.media:type=image/png@@@") is None
    assert parse_reference("@@@langfuseMedia:type=image/png|id=abc|source=bytes@@@") is None


def test_payload_repr_hides_bytes() -> None:
    payload = MediaPayload("ab" * 32, "image/png", 3, b"\x00secret", "bytes")
    assert "secret" not in repr(payload)
    assert parse_reference(payload.reference) is not None


def test_same_image_twice_is_kept_once() -> None:
    data = blob()
    part = {"type": "image_url", "image_url": {"url": data_uri(data)}}
    record = make_record(
        **{INPUT: dumps([{"role": "user", "content": [part, part]}]), OBS_INPUT: data_uri(data)}
    )
    ctx = run(record)
    assert len(payloads(record)) == 1
    content = orjson.loads(record.attributes[INPUT])[0]["content"]
    refs = {content[0]["image_url"]["url"], content[1]["image_url"]["url"]}
    refs.add(record.attributes[OBS_INPUT])
    assert len(refs) == 1
    assert ctx.counters["media.extracted"] == 1 and ctx.counters["media.deduplicated"] == 2


def test_two_different_images_are_both_kept_in_order() -> None:
    a, b = blob(seed=1), blob(b"\xff\xd8\xff", seed=2)
    record = make_record(**{OBS_INPUT: f"{data_uri(a)} and {data_uri(b, 'image/jpeg')}"})
    run(record)
    assert [p.data for p in payloads(record)] == [a, b]


def test_over_limit_is_a_marker_without_bytes() -> None:
    data = blob(size=5000)
    record = make_record(**{OBS_INPUT: f"x {data_uri(data)} y"})
    ctx = run(record, max_bytes=4096)
    new = record.attributes[OBS_INPUT]
    marker = OMITTED_PATTERN.search(new)
    assert marker is not None and new == f"x {marker[0]} y"
    assert marker["mime_type"] == "image/png" and int(marker["size"]) == len(data)
    assert marker["reason"] == "over_limit"
    assert "media" not in record.extras
    assert ctx.counters["media.over_limit"] == 1 and ctx.counters["media.extracted"] == 0


def test_max_per_span_omits_the_rest() -> None:
    datas = [blob(seed=i) for i in range(3)]
    record = make_record(**{OBS_INPUT: " ".join(data_uri(d) for d in datas)})
    ctx = run(record, max_per_span=2)
    assert [p.data for p in payloads(record)] == datas[:2]
    assert len(REFERENCE_PATTERN.findall(record.attributes[OBS_INPUT])) == 2
    marker = OMITTED_PATTERN.search(record.attributes[OBS_INPUT])
    assert marker is not None and marker["reason"] == "max_per_span"
    assert ctx.counters["media.over_max_per_span"] == 1


def test_small_payloads_stay_inline() -> None:
    small = blob(size=DEFAULT_MIN_BYTES - 1)
    text = dumps([{"type": "image_url", "image_url": {"url": data_uri(small)}}] * 3)
    record = make_record(**{INPUT: text})
    run(record)
    assert record.attributes[INPUT] == text and "media" not in record.extras


@pytest.mark.parametrize(
    "bad",
    [
        "data:image/png;base64," + "A" * 2001,  # length not a multiple of 4
        "data:image/png;base64," + "A" * 1000 + "=" + "A" * 1003,  # padding in the middle
        "data:image/png;base64," + "-_" * 1000,  # url-safe alphabet
    ],
)
def test_invalid_base64_data_uri_is_left_and_counted(bad: str) -> None:
    text = f"look: {bad} end"
    record = make_record(**{OBS_INPUT: text})
    ctx = run(record)
    assert record.attributes[OBS_INPUT] == text
    assert ctx.counters["media.invalid_base64"] == 1 and "media" not in record.extras


def test_invalid_base64_in_a_slot_is_left_and_counted() -> None:
    source = {"type": "base64", "media_type": "image/png", "data": "A" * 3001}
    text = dumps({"type": "image", "source": source})
    record = make_record(**{INPUT: text})
    ctx = run(record)
    assert record.attributes[INPUT] == text
    assert ctx.counters["media.invalid_base64"] == 1


# -- what must stay untouched ----------------------------------------------------------------
def _text_only_attributes() -> dict[str, Any]:
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "You are helpful. " * 40}]},
        {"role": "user", "parts": [{"type": "text", "content": "Summarize the data. " * 40}]},
    ]
    return {
        "otel_llm.observation.type": "generation",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.cost": 0.0012,
        "otel_llm.trace.tags": ("a", "b"),
        INPUT: dumps(messages),
        OUTPUT: dumps([{"role": "assistant", "parts": [{"type": "text", "content": "ok " * 500}]}]),
        OBS_INPUT: 'The user wrote "data" and "blob" and base64 ' * 50,
        METADATA: dumps({"data": {"blob": "x" * 2000}}),
    }


def test_text_only_record_is_untouched() -> None:
    attributes = _text_only_attributes()
    record = make_record(**copy.deepcopy(attributes))
    ctx = run(record)
    assert record.attributes == attributes
    assert record.extras == {}
    assert not +ctx.counters


def test_long_base64_outside_known_slots_is_untouched() -> None:
    noise = b64(blob(seed=9))
    attributes = {
        INPUT: dumps(
            [
                {"role": "assistant", "content": noise},  # message content, not a blob part
                {"type": "thinking", "thinking": "hm", "signature": noise},
                {"data": noise},  # "data" outside a known shape
                {"type": "text", "data": noise},
            ]
        ),
        OBS_INPUT: noise,
        OUTPUT: dumps({"embedding": noise, "content": noise}),
    }
    record = make_record(**copy.deepcopy(attributes))
    ctx = run(record)
    assert record.attributes == attributes and "media" not in record.extras
    assert not +ctx.counters


def test_record_without_content_is_untouched() -> None:
    attributes = {
        "gen_ai.request.model": "gpt-4o",
        "custom.image": data_uri(blob()),  # not a content attribute
        "custom.bytes": blob(),
        "gen_ai.usage.input_tokens": 3,
    }
    record = make_record(**copy.deepcopy(attributes))
    run(record)
    assert record.attributes == attributes and record.extras == {}


def test_disabled_or_content_not_captured_is_untouched() -> None:
    attributes = {OBS_INPUT: data_uri(blob())}
    off = make_record(**dict(attributes))
    extract_media(off, StageContext(media=compile_media_options(False)))
    uncaptured = make_record(**dict(attributes))
    extract_media(uncaptured, StageContext(capture_content=False))
    for record in (off, uncaptured):
        assert record.attributes == attributes and record.extras == {}


def test_running_twice_changes_nothing_more() -> None:
    source = {"type": "base64", "media_type": "image/png", "data": b64(blob(seed=3))}
    record = make_record(**{OBS_INPUT: data_uri(blob()), INPUT: dumps([{"source": source}])})
    run(record)
    assert len(payloads(record)) == 2
    attributes, media = dict(record.attributes), list(payloads(record))
    ctx = run(record, min_bytes=1)
    assert record.attributes == attributes and payloads(record) == media
    assert not +ctx.counters


def test_a_failing_attribute_is_kept_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(data: bytes) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(media, "_sniff", boom)
    text = data_uri(blob(), "")  # no declared type: sniffing is needed, and raises
    record = make_record(**{OBS_INPUT: text})
    ctx = run(record)
    assert record.attributes[OBS_INPUT] == text
    assert ctx.counters["media.error"] == 1 and "media" not in record.extras


# -- mime sniffing ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("magic", "mime"),
    [
        (PNG_MAGIC, "image/png"),
        (b"\xff\xd8\xff\xdb", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.5", "application/pdf"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"ID3\x03\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x00", "audio/mpeg"),
        (b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
        (b"\x00\x01\x02\x03", "application/octet-stream"),
    ],
)
def test_mime_is_sniffed_when_not_declared(magic: bytes, mime: str) -> None:
    data = blob(magic, 2000)
    record = make_record(**{OBS_INPUT: f"data:;base64,{b64(data)}"})
    run(record)
    assert_extracted(record, record.attributes[OBS_INPUT], data, mime, "base64_data_uri")


def test_declared_mime_wins_and_is_normalized() -> None:
    data = blob()
    record = make_record(**{OBS_INPUT: f"data:Image/PNG;name=a.png;base64,{b64(data)}"})
    run(record)
    assert_extracted(record, record.attributes[OBS_INPUT], data, "image/png", "base64_data_uri")


# -- options ---------------------------------------------------------------------------------
def test_compile_media_options() -> None:
    class Sink:
        def put(self, payload: MediaPayload) -> None:
            pass

    assert compile_media_options(None) == MediaOptions()
    assert compile_media_options(True).enabled
    assert not compile_media_options(False).enabled
    sink = Sink()
    assert isinstance(sink, MediaSink)
    options = compile_media_options({"min_bytes": 0, "max_per_span": 3, "sink": sink})
    assert (options.min_bytes, options.max_per_span, options.sink) == (0, 3, sink)
    assert options.max_bytes == DEFAULT_MAX_BYTES


@pytest.mark.parametrize(
    "bad",
    [
        {"min_bytes": -1},
        {"min_bytes": "1024"},
        {"min_bytes": True},
        {"max_bytes": 0},
        {"min_bytes": 100, "max_bytes": 10},
        {"max_per_span": 0},
        {"enabled": "yes"},
        {"sink": object()},
        {"min_size": 1},
        "on",
        3,
    ],
)
def test_bad_media_options_raise_config_error(bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        compile_media_options(bad)
    assert info.value.setting == "media"


# -- property --------------------------------------------------------------------------------
_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters=","), max_size=12)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


def _insert(doc: Any, value: str, draw: st.DrawFn) -> Any:
    """Put ``value`` at a random place inside ``doc``: a leaf, a new item, a new key."""
    if isinstance(doc, list) and doc and draw(st.booleans()):
        i = draw(st.integers(0, len(doc) - 1))
        return [*doc[:i], _insert(doc[i], value, draw), *doc[i + 1 :]]
    if isinstance(doc, dict) and doc and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(doc)))
        return {**doc, key: _insert(doc[key], value, draw)}
    if isinstance(doc, list):
        return [*doc, value]
    if isinstance(doc, dict):
        return {**doc, draw(_TEXT): value}
    return value


@st.composite
def _docs_with_media(draw: st.DrawFn, min_size: int = 1) -> tuple[Any, Any, bytes]:
    data = draw(st.binary(min_size=min_size, max_size=3000))
    mime = draw(st.sampled_from(["image/png", "audio/wav", "application/pdf", ""]))
    # a payload directly followed by base64 characters is ambiguous: keep a delimiter
    before, after = draw(_TEXT), " " + draw(_TEXT)
    placeholder = "\x00PLACEHOLDER\x00"
    doc = _insert(draw(_JSON), f"{before}{placeholder}{after}", draw)
    return doc, (placeholder, data_uri(data, mime)), data


@settings(max_examples=200, deadline=None)
@given(_docs_with_media(), st.sampled_from([INPUT, OUTPUT, METADATA, OBS_INPUT]))
def test_property_no_base64_payload_survives(case: Any, key: str) -> None:
    doc, (placeholder, uri), data = case
    text = dumps(doc).replace(placeholder.replace("\x00", "\\u0000"), uri)
    record = make_record(**{key: text, "other": "keep"})
    run(record, min_bytes=1)
    new = record.attributes[key]
    assert all("base64," not in str(v) for v in record.attributes.values())
    (payload,) = payloads(record)
    assert payload.data == data
    expected = dumps(doc).replace(placeholder.replace("\x00", "\\u0000"), payload.reference)
    assert orjson.loads(new) == orjson.loads(expected)
    assert record.attributes["other"] == "keep"


@settings(max_examples=50, deadline=None)
@given(_docs_with_media(min_size=DEFAULT_MIN_BYTES), st.sampled_from([INPUT, OBS_INPUT]))
def test_property_default_options_find_large_payloads(case: Any, key: str) -> None:
    doc, (placeholder, uri), data = case
    text = dumps(doc).replace(placeholder.replace("\x00", "\\u0000"), uri)
    record = make_record(**{key: text})
    run(record)
    assert "base64," not in record.attributes[key]
    assert [p.data for p in payloads(record)] == [data]


@settings(max_examples=300)
@given(st.text(st.sampled_from('ab "'), max_size=60), st.integers(1, 12))
def test_run_check_agrees_with_brute_force(text: str, width: int) -> None:
    runs = text.replace('"', " ").split(" ")
    assert media._has_run(text, width) == any(len(r) >= width for r in runs)
