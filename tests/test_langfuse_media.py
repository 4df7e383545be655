"""Langfuse media: tokens in the exported spans, create → PUT → PATCH on a real loopback server."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm
from otel_llm.export import dialect_langfuse as dialect
from otel_llm.export.langfuse import Langfuse
from otel_llm.export.langfuse_media import MediaJob, MediaUploader
from otel_llm.export.langfuse_media_refs import media_token, replace_media_references
from otel_llm.processing.media_model import REFERENCE_PREFIX, MediaPayload, format_reference
from tests.otlp_http_server import DecodedSpan, OTLPHTTPServer, RecordedRequest

TRACES = "/api/public/otel/v1/traces"
MEDIA = "/api/public/media"
PK, SK = "pk-lf-test", "sk-lf-secret-value"
BASIC = "Basic " + base64.b64encode(f"{PK}:{SK}".encode()).decode()
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(4000)
OTHER_PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def media_id(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()[:22]


def token(data: bytes) -> str:
    return f"@@@langfuseMedia:type=image/png|id={media_id(data)}|source=base64_data_uri@@@"


@pytest.fixture(scope="module")
def _server() -> Iterator[OTLPHTTPServer]:
    with OTLPHTTPServer() as server:
        yield server


@pytest.fixture
def server(_server: OTLPHTTPServer) -> OTLPHTTPServer:
    _server.reset()
    return _server


def configure(server: OTLPHTTPServer, **kwargs: Any) -> tuple[otel_llm.Pipeline, Langfuse]:
    destination = otel_llm.Langfuse(PK, SK, server.url, **kwargs)
    pipeline = otel_llm.configure(destinations=[destination], tracer_provider=TracerProvider())
    return pipeline, destination


def generation(name: str, image: bytes) -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "url": data_uri(image)},
    ]
    with otel_llm.start_generation(
        name, model="gpt-4o", input=[{"role": "user", "content": content}]
    ) as gen:
        gen.update(output="a cat")


def spans(server: OTLPHTTPServer) -> dict[str, DecodedSpan]:
    return {s.name: s for s in server.spans(TRACES)}


def media_requests(server: OTLPHTTPServer, method: str) -> list[RecordedRequest]:
    return [r for r in server.requests if r.method == method and r.path != TRACES]


def stats(pipeline: otel_llm.Pipeline) -> dict[str, int]:
    return dict(pipeline.stats()["destinations"]["langfuse"])


# --- the flow ------------------------------------------------------------------------
def test_image_becomes_a_token_and_is_uploaded_create_put_patch(server: OTLPHTTPServer) -> None:
    pipeline, _ = configure(server)
    generation("llm", PNG)
    assert pipeline.flush()

    span = spans(server)["llm"]
    observed = span.attributes[dialect.LF_INPUT]
    assert token(PNG) in observed
    assert "base64," not in observed and REFERENCE_PREFIX not in observed
    assert all(
        REFERENCE_PREFIX not in v and "base64," not in v
        for v in span.attributes.values()
        if isinstance(v, str)
    )

    [create] = media_requests(server, "POST")
    assert create.path == MEDIA
    assert create.headers["authorization"] == BASIC
    assert create.json == {
        "traceId": span.trace_id,
        "observationId": span.span_id,
        "contentType": "image/png",
        "contentLength": len(PNG),
        "sha256Hash": base64.b64encode(hashlib.sha256(PNG).digest()).decode(),
        "field": "input",
    }

    [put] = media_requests(server, "PUT")
    assert put.path == f"/upload/{media_id(PNG)}"
    assert put.raw_body == PNG
    assert put.headers["content-type"] == "image/png"
    assert put.headers["x-amz-checksum-sha256"] == create.json["sha256Hash"]
    assert "authorization" not in put.headers  # the presigned URL never gets our keys

    [patch] = media_requests(server, "PATCH")
    assert patch.path == f"{MEDIA}/{media_id(PNG)}"
    assert patch.headers["authorization"] == BASIC
    assert patch.json["uploadHttpStatus"] == 200
    assert patch.json["uploadHttpError"] is None
    assert isinstance(patch.json["uploadTimeMs"], int)
    assert patch.json["uploadedAt"].endswith("Z")

    counts = stats(pipeline)
    assert counts["exported"] == 1 and counts["media_uploaded"] == 1
    assert counts.get("media_failed", 0) == 0 and counts.get("media_dropped", 0) == 0


def test_the_same_image_twice_is_uploaded_once_but_tokenized_twice(
    server: OTLPHTTPServer,
) -> None:
    pipeline, _ = configure(server)
    with otel_llm.start_observation("agent", as_type="agent"):
        generation("first", PNG)
        generation("second", PNG)
    generation("other trace", PNG)
    assert pipeline.flush()

    exported = spans(server)
    for name in ("first", "second", "other trace"):
        assert token(PNG) in exported[name].attributes[dialect.LF_INPUT]
    assert len(media_requests(server, "PUT")) == 1
    # The repeat in the same trace costs no request; another trace is linked on the
    # server (create) but its bytes are not sent again.
    assert len(media_requests(server, "POST")) <= 2
    counts = stats(pipeline)
    assert counts["media_uploaded"] == 1
    assert counts["media_deduplicated"] == 2


def test_server_already_holding_the_bytes_means_no_put(server: OTLPHTTPServer) -> None:
    server.known_media.add(media_id(PNG))
    pipeline, _ = configure(server)
    generation("llm", PNG)
    assert pipeline.flush()

    assert token(PNG) in spans(server)["llm"].attributes[dialect.LF_INPUT]
    assert len(media_requests(server, "POST")) == 1
    assert media_requests(server, "PUT") == [] and media_requests(server, "PATCH") == []
    assert stats(pipeline)["media_deduplicated"] == 1


def test_failed_upload_is_counted_and_the_span_still_exported(server: OTLPHTTPServer) -> None:
    server.respond(f"/upload/{media_id(OTHER_PNG)}", 500, body=b"storage down")
    pipeline, destination = configure(server)
    destination._media._retry_delay = 0.01
    generation("llm", OTHER_PNG)
    assert pipeline.flush()

    assert token(OTHER_PNG) in spans(server)["llm"].attributes[dialect.LF_INPUT]
    assert len(media_requests(server, "PUT")) == 3  # retried like the SDK (3 tries)
    [patch] = media_requests(server, "PATCH")
    assert patch.json["uploadHttpStatus"] == 500
    assert "storage down" in patch.json["uploadHttpError"]
    counts = stats(pipeline)
    assert counts["exported"] == 1 and counts["media_failed"] == 1
    assert counts.get("media_uploaded", 0) == 0


def test_create_refused_is_counted_without_retrying_a_4xx(server: OTLPHTTPServer) -> None:
    server.respond(MEDIA, 403, body=b'{"message": "forbidden"}')
    pipeline, _ = configure(server)
    generation("llm", PNG)
    assert pipeline.flush()
    assert len(media_requests(server, "POST")) == 1
    assert media_requests(server, "PUT") == []
    assert stats(pipeline)["media_failed"] == 1
    assert stats(pipeline)["exported"] == 1


def test_capture_content_false_uploads_nothing(server: OTLPHTTPServer) -> None:
    pipeline, _ = configure(server, capture_content=False)
    generation("llm", PNG)
    assert pipeline.flush()
    span = spans(server)["llm"]
    assert dialect.LF_INPUT not in span.attributes
    assert [r for r in server.requests if r.path != TRACES] == []
    assert "media_uploaded" not in stats(pipeline)


def test_shutdown_is_bounded_while_an_upload_backs_off(server: OTLPHTTPServer) -> None:
    pipeline, destination = configure(server)
    destination._media._retry_delay = 30.0  # the create retry would wait 30 s
    server.respond(MEDIA, 503, times=5)
    generation("llm", PNG)
    assert server.wait_for(lambda s: len(s.requests_to(MEDIA)) >= 1)
    started = time.monotonic()
    pipeline.shutdown(timeout=1.0)
    assert time.monotonic() - started < 5.0
    counts = stats(pipeline)
    assert counts["exported"] == 1 and counts["media_failed"] == 1
    assert media_requests(server, "PUT") == []


def test_jobs_after_shutdown_are_counted_dropped() -> None:
    counts: dict[str, int] = {}
    uploader = MediaUploader(
        "t", "http://127.0.0.1:9", {}, lambda k, n: counts.__setitem__(k, counts.get(k, 0) + n)
    )
    assert uploader.shutdown(1.0)
    sha = hashlib.sha256(PNG).hexdigest()
    payload = MediaPayload(sha, "image/png", len(PNG), PNG, "base64_data_uri")
    uploader.submit(MediaJob(payload, "1" * 32, "2" * 16, "input"))
    assert counts == {"media_dropped": 1}


# --- the dialect -----------------------------------------------------------------------
def test_references_in_every_attribute_become_tokens_with_their_field() -> None:
    sha = hashlib.sha256(PNG).hexdigest()
    ref = format_reference("image/png", sha, len(PNG), "base64")
    raw = format_reference("audio/wav", "0" * 64, 10, "bytes")
    attributes: dict[str, Any] = {
        dialect.LF_INPUT: json.dumps([{"url": ref}]),
        dialect.LF_OUTPUT: f"see {ref}",
        dialect.LF_METADATA: json.dumps({"a": ref, "b": raw}),
        "gen_ai.output.messages": (ref, "x"),
        "other": 1,
    }
    found = replace_media_references(attributes, {sha})
    want = f"@@@langfuseMedia:type=image/png|id={media_id(PNG)}|source=base64_data_uri@@@"
    assert json.loads(attributes[dialect.LF_INPUT]) == [{"url": want}]
    assert attributes[dialect.LF_OUTPUT] == f"see {want}"
    assert json.loads(attributes[dialect.LF_METADATA]) == {"a": want, "b": raw}  # unknown: kept
    assert attributes["gen_ai.output.messages"] == (want, "x")
    assert found == [(sha, "input"), (sha, "output"), (sha, "metadata")]
    assert media_token("image/png", sha, "bytes").endswith("|source=bytes@@@")
