"""Langfuse media uploads: create → PUT bytes → mark uploaded, from a thread of its own.

The media stage replaced base64 payloads by references and kept the bytes beside the
record; the Langfuse destination rewrites those references into Langfuse media tokens
(``@@@langfuseMedia:type=...|id=...|source=...@@@``) on the processor's worker and
queues one :class:`MediaJob` per (payload, trace, observation, field) here. This thread
then runs the flow of the Langfuse SDK (``reference/langfuse-sdk.md`` §6):

1. ``POST {host}/api/public/media`` ``{traceId, observationId, contentType,
   contentLength, sha256Hash, field}`` → ``{mediaId, uploadUrl}``; a null ``uploadUrl``
   means the server already holds these bytes (nothing to upload);
2. ``PUT uploadUrl`` with the bytes, ``Content-Type`` and ``x-amz-checksum-sha256`` —
   a presigned URL, usually on another host: it never gets the Langfuse credentials;
3. ``PATCH {host}/api/public/media/{mediaId}`` ``{uploadedAt, uploadHttpStatus,
   uploadHttpError, uploadTimeMs}`` (also after a failed PUT, as the SDK does).

Deduplication: a bounded memory of (sha256, trace) pairs already handled skips repeats
(the same image resent on every turn of a conversation) without any request; a repeat
in another trace still calls create, so the server links the media to that trace, and
the server's null ``uploadUrl`` spares the upload.

Nothing here raises into the caller: failures are counted (``media_failed``), logged
once without URLs, secrets or content; a full queue counts ``media_dropped``.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import orjson
import urllib3
from opentelemetry import context as otel_context

from otel_llm.diagnostics import log_once, report, strict
from otel_llm.export.http_transport import redact
from otel_llm.export.langfuse_media_refs import media_id as langfuse_media_id
from otel_llm.export.retry import RETRYABLE_HTTP_STATUS
from otel_llm.forking import after_fork_in_child
from otel_llm.processing.media_model import MediaPayload

__all__ = ["MEDIA_PATH", "MediaJob", "MediaUploader", "langfuse_media_id", "sha256_base64"]

MEDIA_PATH = "/api/public/media"
_MAX_QUEUE_JOBS = 1000
_MAX_QUEUE_BYTES = 64 * 2**20  # jobs hold decoded bytes: bound memory, not only count
_MAX_REMEMBERED = 4096
_ATTEMPTS = 3  # as the SDK (backoff.expo, max_tries=3)
_RETRY_DELAY = 0.5
_MAX_ERROR = 200

Counter = Callable[[str, int], None]


def sha256_base64(sha256_hex: str) -> str:
    """``sha256Hash`` / ``x-amz-checksum-sha256``: standard base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


@dataclass(frozen=True, slots=True)
class MediaJob:
    """One payload to register for one observation (``field``: input, output or metadata)."""

    payload: MediaPayload
    trace_id: str
    observation_id: str
    field: str


class _Failed(Exception):
    """One step failed for good; ``kind`` names it for the once-only log."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.message = message


class MediaUploader:
    """Uploads media payloads to a Langfuse server from its own thread.

    Args:
        name: destination name (thread name and log component).
        host: Langfuse base URL (``https://cloud.langfuse.com``).
        auth_headers: ``Authorization`` for the Langfuse API calls only.
        count: the destination's counter (``media_uploaded``, ``media_deduplicated``,
            ``media_failed``, ``media_dropped``).
        secrets: strings redacted from anything logged.
        timeout: seconds per request (connect capped at 5).
    """

    def __init__(
        self,
        name: str,
        host: str,
        auth_headers: Mapping[str, str],
        count: Counter,
        *,
        secrets: Iterable[str] = (),
        timeout: float = 10.0,
        max_queue_jobs: int = _MAX_QUEUE_JOBS,
        max_queue_bytes: int = _MAX_QUEUE_BYTES,
        retry_delay: float = _RETRY_DELAY,
        verify: bool = True,
    ) -> None:
        self._name = name
        self._create_url = host + MEDIA_PATH
        self._api_headers = {
            **auth_headers,
            "Content-Type": "application/json",
            "User-Agent": "otel-llm",
        }
        self._count = count
        self._secrets = tuple(secrets)
        self._timeout = timeout
        self._max_jobs = max_queue_jobs
        self._max_bytes = max_queue_bytes
        self._retry_delay = retry_delay
        self._cert_reqs = "CERT_REQUIRED" if verify else "CERT_NONE"
        self._pool = self._new_pool()
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()  # uploader thread
        self._closed = False
        self._start()
        after_fork_in_child(self._after_fork_in_child)

    def _start(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[MediaJob] = deque()  # guarded by _cond
        self._queued_bytes = 0  # guarded by _cond
        self._busy = False  # guarded by _cond: a job is being processed
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"otel-llm-media-{self._name}", daemon=True
        )
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        lost = len(self._queue)
        if lost:
            self._count("media_dropped", lost)
        self._pool = self._new_pool()  # never share the parent's sockets
        self._start()

    def _new_pool(self) -> urllib3.PoolManager:
        return urllib3.PoolManager(num_pools=4, maxsize=1, retries=False, cert_reqs=self._cert_reqs)

    # -- processor worker thread ------------------------------------------------------
    def submit(self, job: MediaJob) -> None:
        """Queue ``job`` (never blocks); counted ``media_dropped`` when full or closed."""
        size = job.payload.size
        with self._cond:
            full = (
                self._closed
                or len(self._queue) >= self._max_jobs
                or (bool(self._queue) and self._queued_bytes + size > self._max_bytes)
            )
            if not full:
                self._queue.append(job)
                self._queued_bytes += size
                self._cond.notify_all()
        if full:
            self._count("media_dropped", 1)
            log_once(
                f"destination.{self._name}.media",
                "dropped",
                "media upload queue full or closed; payloads dropped (their tokens stay)",
            )

    # -- uploader thread ----------------------------------------------------------------
    def _run(self) -> None:
        # Our own HTTP calls must not be traced, by us or any instrumentation.
        otel_context.attach(
            otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        )
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(1.0)
                if self._stop.is_set():
                    return
                job = self._queue.popleft()
                self._queued_bytes -= job.payload.size
                self._busy = True
            try:
                self._process(job)
            except Exception as exc:  # a bug here must not kill the thread
                report(f"destination.{self._name}.media", exc)
                self._count("media_failed", 1)
                if strict():
                    raise
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _process(self, job: MediaJob) -> None:
        payload = job.payload
        key = (payload.sha256, job.trace_id)
        if key in self._done:
            self._done.move_to_end(key)
            self._count("media_deduplicated", 1)
            return
        try:
            self._upload(job)
        except _Failed as failure:
            self._count("media_failed", 1)
            log_once(
                f"destination.{self._name}.media",
                failure.kind,
                f"media upload failed ({failure.kind}): "
                f"{redact(failure.message, self._secrets)[:_MAX_ERROR]}",
                level=logging.WARNING,
            )
            return
        self._done[key] = None
        while len(self._done) > _MAX_REMEMBERED:
            self._done.popitem(last=False)

    def _upload(self, job: MediaJob) -> None:
        payload = job.payload
        media_id = langfuse_media_id(payload.sha256)
        checksum = sha256_base64(payload.sha256)
        body = {
            "traceId": job.trace_id,
            "observationId": job.observation_id,
            "contentType": payload.mime_type,
            "contentLength": payload.size,
            "sha256Hash": checksum,
            "field": job.field,
        }
        data = self._request("POST", self._create_url, orjson.dumps(body), "create")
        answer = _json_object(data)
        if answer is None or answer.get("mediaId") != media_id:
            # Our token already names media_id: another id would leave it dangling.
            raise _Failed("create_id", "create answered without the expected mediaId")
        upload_url = answer.get("uploadUrl")
        if upload_url is None:
            self._count("media_deduplicated", 1)  # the server already has these bytes
            return
        if not isinstance(upload_url, str) or urlsplit(upload_url).scheme not in (
            "http",
            "https",
        ):
            raise _Failed("create_url", "create answered with an unusable uploadUrl")
        headers = {"Content-Type": payload.mime_type}
        if urlsplit(upload_url).hostname != "storage.googleapis.com":
            headers["x-amz-checksum-sha256"] = checksum
            headers["x-ms-blob-type"] = "BlockBlob"
        started = time.monotonic()
        put_status, put_error = self._put(upload_url, payload.data, headers)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        if put_status is not None:  # the server wants the outcome, failed or not
            patch = {
                "uploadedAt": _utc_now(),
                "uploadHttpStatus": put_status,
                "uploadHttpError": put_error,
                "uploadTimeMs": elapsed_ms,
            }
            self._request("PATCH", f"{self._create_url}/{media_id}", orjson.dumps(patch), "patch")
        if put_status is None or not 200 <= put_status < 300:
            raise _Failed("upload", put_error or "upload failed")
        self._count("media_uploaded", 1)

    def _request(self, method: str, url: str, body: bytes, step: str) -> bytes:
        """A Langfuse API call with our credentials; retried; raises _Failed."""
        for attempt in range(_ATTEMPTS):
            try:
                response = self._send(method, url, body, self._api_headers)
            except urllib3.exceptions.HTTPError as exc:
                failure = _Failed(step, f"{step} request failed: {type(exc).__name__}")
                retry = True
            else:
                status = response.status
                if 200 <= status < 300:
                    return response.data or b""
                hint = " (check the destination's keys)" if status in (401, 403) else ""
                failure = _Failed(f"{step}.{status}", f"{step} answered {status}{hint}")
                retry = status in RETRYABLE_HTTP_STATUS
            if not retry or attempt + 1 == _ATTEMPTS or self._wait(attempt):
                raise failure
        raise AssertionError("unreachable")

    def _put(
        self, url: str, data: bytes, headers: Mapping[str, str]
    ) -> tuple[int | None, str | None]:
        """PUT to the presigned URL (no Langfuse credentials): (status, error text)."""
        status: int | None = None
        error: str | None = None
        for attempt in range(_ATTEMPTS):
            try:
                response = self._send("PUT", url, data, {**headers, "User-Agent": "otel-llm"})
            except urllib3.exceptions.HTTPError as exc:
                status, error, retry = None, f"upload request failed: {type(exc).__name__}", True
            else:
                status = response.status
                if 200 <= status < 300:
                    return status, None
                text = (response.data or b"")[:_MAX_ERROR].decode("utf-8", "replace").strip()
                error = f"upload answered {status}" + (f": {text}" if text else "")
                retry = status in RETRYABLE_HTTP_STATUS
            if not retry or attempt + 1 == _ATTEMPTS or self._wait(attempt):
                break
        return status, error

    def _send(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> urllib3.BaseHTTPResponse:
        return self._pool.request(
            method,
            url,
            body=body,
            headers=dict(headers),
            timeout=urllib3.Timeout(connect=min(5.0, self._timeout), read=self._timeout),
            preload_content=True,
            redirect=False,  # never follow a redirect with (or without) credentials
        )

    def _wait(self, attempt: int) -> bool:
        """Back off before the next attempt; True when stopping (give up now)."""
        return self._stop.wait(self._retry_delay * 2**attempt)

    # -- any thread ---------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        """Wait until every queued job was attempted, at most ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
        return True

    def shutdown(self, timeout: float) -> bool:
        """Upload what can be within ``timeout``; count the rest ``media_dropped``; stop."""
        deadline = time.monotonic() + max(0.0, timeout)
        done = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._stop.set()
            leftover = len(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            self._cond.notify_all()
        # A job backing off stops at once; a short floor lets it count its outcome.
        self._thread.join(max(0.2, deadline - time.monotonic()))
        if leftover:
            self._count("media_dropped", leftover)
        self._pool.clear()
        return done and not leftover


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _utc_now() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
