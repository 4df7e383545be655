"""Langfuse: LLM spans as OTLP/HTTP protobuf, in the dialect the Langfuse server reads.

What the server needs (``reference/langfuse-server-otel.md``): ``POST
{host}/api/public/otel/v1/traces``, gzip, ``Authorization: Basic b64(pk:sk)``,
``x-langfuse-ingestion-version: 4``; a batch is accepted or rejected whole, so
spans with bad ids are dropped (and counted) before sending. Scores go to
``POST {host}/api/public/scores`` as JSON. Media payloads the media stage took out of
the content become Langfuse media tokens in the exported attributes; their bytes are
uploaded from a thread of their own (:mod:`otel_llm.export.langfuse_media`).

By default only LLM-related spans are sent (ours, and any carrying ``gen_ai.*``,
``langfuse.*``, ``traceloop.*``, ``llm.*`` or ``openinference.*`` attributes);
a kept span whose parent was left out is re-attached to its nearest kept
ancestor, so the tree stays connected.

Threading: ``select``, ``_export`` and ``_export_score`` run on the processor's
worker thread (the only thread touching the ``# worker thread`` fields);
``force_flush`` and ``shutdown`` may come from any thread after the worker is done.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource

from otel_llm import runtime
from otel_llm.diagnostics import guard, handled, log_once
from otel_llm.errors import ConfigError
from otel_llm.export import dialect_langfuse as dialect
from otel_llm.export.http_transport import HttpTransport
from otel_llm.export.langfuse_media import MediaJob, MediaUploader
from otel_llm.export.langfuse_media_refs import replace_media_references
from otel_llm.export.network import NetworkDestination
from otel_llm.export.sender import Batch, Sender
from otel_llm.processing.entry import is_llm_related, is_llm_scope
from otel_llm.processing.media_model import MediaPayload
from otel_llm.processing.record import SpanRecord
from otel_llm.scores import Score
from otel_llm.serialize import to_json

__all__ = ["DEFAULT_HOST", "Langfuse"]

DEFAULT_HOST = "https://cloud.langfuse.com"
_TRACES_PATH = "/api/public/otel/v1/traces"
_SCORES_PATH = "/api/public/scores"
_INGESTION_VERSION = "4"
_MASK = "[secure]"
_MAX_REQUEST_BYTES = 3 * 2**20  # proxies in front of Langfuse cut requests at ~4 MB
_MEMORY = 8192  # filtered-out spans and trace environments remembered across batches
_SECRET_RESOURCE_KEYS = frozenset({"token"})  # an APM's token must never reach Langfuse


class Langfuse(NetworkDestination):
    """Send LLM spans and scores to a Langfuse server.

    Args:
        public_key: ``LANGFUSE_PUBLIC_KEY``; required.
        secret_key: ``LANGFUSE_SECRET_KEY``; required; never shown in reprs or logs.
        host: ``LANGFUSE_HOST``, then ``LANGFUSE_BASE_URL``; default
            ``https://cloud.langfuse.com``. An http(s) base URL, without the
            ``/api/public/otel`` path.
        block_scopes: instrumentation scopes never sent (exact or ``prefix*``).
        allow_scopes: if given, only these scopes are sent.
        export_all_spans: send every span, not only LLM-related ones.
        capture_content: False drops inputs, outputs, messages and metadata for
            this destination; None/True send what the pipeline captured.
        name: key in ``stats()``; default ``"langfuse"``.
        timeout: seconds per export request (retries included).
        sample_rate: fraction of traces this destination keeps (after the
            pipeline's own sampling); None keeps all.

    Raises:
        ConfigError: a key is missing or the host is not an http(s) URL.
    """

    kind = "langfuse"
    wants_semconv_messages = False  # sends otel_llm.observation.input/output instead

    def __init__(
        self,
        public_key: str | None = None,
        secret_key: str | None = None,
        host: str | None = None,
        *,
        block_scopes: Iterable[str] = (),
        allow_scopes: Iterable[str] | None = None,
        export_all_spans: bool = False,
        capture_content: bool | None = None,
        name: str | None = None,
        timeout: float = 10.0,
        sample_rate: float | None = None,
    ) -> None:
        super().__init__(
            dialect="langfuse",
            max_request_bytes=_MAX_REQUEST_BYTES,
            name=name,
            block_scopes=block_scopes,
            allow_scopes=allow_scopes,
            sample_rate=sample_rate,
            capture_content=capture_content,
        )
        self._public_key = _key("public_key", public_key, "LANGFUSE_PUBLIC_KEY", "sk-lf-")
        secret = _key("secret_key", secret_key, "LANGFUSE_SECRET_KEY", "pk-lf-")
        self._host = _host(host)
        if not isinstance(export_all_spans, bool):
            raise ConfigError("export_all_spans", "must be True or False")
        self._export_all = export_all_spans
        self._timeout = _timeout(timeout)
        credentials = base64.b64encode(f"{self._public_key}:{secret}".encode()).decode("ascii")
        self._auth = {"Authorization": f"Basic {credentials}"}
        self._headers = {**self._auth, "x-langfuse-ingestion-version": _INGESTION_VERSION}
        # worker thread: what earlier batches taught us (bounded)
        self._removed: OrderedDict[tuple[int, int], tuple[int | None, bool]] = OrderedDict()
        self._environments: OrderedDict[int, str] = OrderedDict()  # trace id -> environment
        self._resources: dict[int, tuple[Resource, Resource]] = {}
        self._scope_rename = dialect.langfuse_scope_name
        # Only our headers: never OTEL_EXPORTER_OTLP_HEADERS, which belong to another
        # destination (often with its token). HttpTransport reads no environment.
        secrets = (secret, credentials)
        self._start_sender(
            HttpTransport(self._host + _TRACES_PATH, headers=self._headers, secrets=secrets),
            attempt_timeout=self._timeout,
        )
        self._score_counts: Counter[str] = Counter()
        self._score_lock = threading.Lock()
        self._scores = Sender(
            f"{self.name}-scores",
            HttpTransport(
                self._host + _SCORES_PATH,
                headers=self._auth,
                compression="none",
                content_type="application/json",
                secrets=secrets,
            ),
            self._count_score,
            attempt_timeout=self._timeout,
            export_timeout=self._timeout,
        )
        self._media = MediaUploader(
            self.name, self._host, self._auth, self._count, secrets=secrets, timeout=self._timeout
        )

    # -- worker thread --------------------------------------------------------------
    def select(self, records: Sequence[SpanRecord]) -> Sequence[SpanRecord]:
        """LLM-only filter, then the base filters (ids are checked when shaping).

        Kept spans whose parent was filtered out (in this batch or a recent one)
        are re-attached to their nearest ancestor that was not.
        """
        candidates: list[SpanRecord] = []
        export_all = self._export_all
        for record in records:
            if (
                export_all
                or is_llm_related(record.attributes)
                or is_llm_scope(record.scope.name if record.scope is not None else "")
            ):
                candidates.append(record)
            else:
                self._remember_removed(record)
        allowed = super().select(candidates)  # scopes, sampling, content (maybe copies)
        if len(allowed) < len(candidates):
            keys = {(r.trace_id, r.span_id) for r in allowed}
            for record in candidates:
                if (record.trace_id, record.span_id) not in keys:
                    self._remember_removed(record)
        removed = self._removed
        while len(removed) > _MEMORY:
            removed.popitem(last=False)
        if not removed:
            return list(allowed)
        out: list[SpanRecord] = []
        for record in allowed:
            parent = record.parent_span_id
            if parent is not None and (record.trace_id, parent) in removed:
                record = self._reparent(record)
            out.append(record)
        return out

    def _remember_removed(self, record: SpanRecord) -> None:
        self._removed[(record.trace_id, record.span_id)] = (
            record.parent_span_id,
            record.parent_is_remote,
        )

    def _reparent(self, record: SpanRecord) -> SpanRecord:
        """The record, or a copy whose parent is its nearest ancestor not filtered out."""
        parent, remote = record.parent_span_id, record.parent_is_remote
        removed = self._removed
        for _ in range(len(removed)):  # bounded: ids can't chain longer than the memory
            if parent is None:
                break
            link = removed.get((record.trace_id, parent))
            if link is None:
                break
            parent, remote = link
        if parent == record.parent_span_id:
            return record
        return dataclasses.replace(
            record, parent_span_id=parent, parent_is_remote=remote and parent is not None
        )

    def _shape(
        self, records: Sequence[SpanRecord]
    ) -> tuple[Sequence[SpanRecord], list[dict[str, Any]] | None]:
        """Langfuse attributes, trace fields shared within the batch; the records that
        go, each with its attributes (no record is copied; secret resource keys are
        left out by ``_resource_for`` when encoding)."""
        kept: list[SpanRecord] = []
        shaped: list[dict[str, Any]] = []
        media = self._capture_content is not False
        for record in records:
            if not _valid_ids(record):
                self._count("dropped")
                log_once(
                    f"destination.{self.name}",
                    "bad_ids",
                    "span with a zero or out-of-range trace/span id dropped (Langfuse would "
                    "reject the whole batch)",
                )
                continue
            attributes = self._attributes(record)
            if attributes is not None:
                if media and record.extras.get("media"):
                    self._media_tokens(record, attributes)
                kept.append(record)
                shaped.append(attributes)
        if len(kept) > 1:
            dialect.share_trace_fields([(r.trace_id, a) for r, a in zip(kept, shaped, strict=True)])
        self._remember_environments(kept, shaped)
        return kept, shaped

    def _attributes(self, record: SpanRecord) -> dict[str, Any] | None:
        # A plain try rather than guard(): this runs for every span (same handling).
        try:
            return dialect.to_langfuse(record.attributes)
        except Exception as exc:
            handled(f"destination.{self.name}.dialect", exc)
        self._count("dropped")
        return None

    def _media_tokens(self, record: SpanRecord, attributes: dict[str, Any]) -> None:
        """Our media references → Langfuse tokens; their bytes queued for upload."""
        payloads: dict[str, MediaPayload] = {}
        for payload in record.extras["media"]:
            if isinstance(payload, MediaPayload):
                payloads[payload.sha256] = payload
        if not payloads:
            return
        with guard(f"destination.{self.name}.media"):
            found = replace_media_references(attributes, payloads)
            trace_id, span_id = record.trace_id_hex, f"{record.span_id:016x}"
            for sha256, field in found:
                self._media.submit(MediaJob(payloads[sha256], trace_id, span_id, field))

    def _resource_for(self, resource: Resource) -> Resource:
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        attributes = resource.attributes
        clean = resource
        if any(key in attributes for key in _SECRET_RESOURCE_KEYS):
            kept = {k: v for k, v in attributes.items() if k not in _SECRET_RESOURCE_KEYS}
            clean = Resource(kept, resource.schema_url)
        if len(self._resources) >= 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, clean)
        return clean

    def _remember_environments(
        self, records: Sequence[SpanRecord], shaped: Sequence[dict[str, Any]]
    ) -> None:
        environments = self._environments
        for record, attributes in zip(records, shaped, strict=True):
            environment = attributes.get(dialect.LF_ENVIRONMENT)
            if isinstance(environment, str):
                key = record.trace_id  # an int: formatting 128-bit hex per span costs
                environments[key] = environment
                environments.move_to_end(key)
        while len(environments) > _MEMORY:
            environments.popitem(last=False)

    def _export_score(self, score: Score) -> bool:
        """Queue the score for the public scores API (delivered from the scores sender)."""
        # to_json never raises (a lone surrogate in a name or comment is replaced, counted)
        self._scores.submit(Batch(to_json(self._score_body(score)).encode(), 1))
        return False  # counted on delivery as scores_exported / scores_failed

    def _count_score(self, key: str, n: int) -> None:
        # Scores are not spooled: undeliverable ones are failures of the scores API.
        self._count(f"scores_{'failed' if key == 'dropped' else key}", n)

    def _score_body(self, score: Score) -> dict[str, Any]:
        body: dict[str, Any] = {
            "traceId": score.trace_id,
            "name": score.name,
            "value": score.value,
            "dataType": score.data_type,
        }
        if score.id is not None:
            body["id"] = score.id
        if score.observation_id is not None:
            body["observationId"] = score.observation_id
        if score.comment is not None:
            body["comment"] = score.comment
        environment = self._trace_environment(score.trace_id) or _pipeline_environment()
        if environment is not None:
            body["environment"] = environment
        return body

    def _trace_environment(self, trace_id: str) -> str | None:
        """The environment spans of the trace with this hex id were exported with."""
        try:
            key = int(trace_id, 16)
        except (TypeError, ValueError):
            return None
        if f"{key:032x}" != trace_id:  # only the exact form spans are exported with
            return None
        return self._environments.get(key)

    # -- any thread -----------------------------------------------------------------
    def _force_flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        spans_done = super()._force_flush(timeout) and self._scores.flush(timeout)
        return self._media.flush(max(0.0, deadline - time.monotonic())) and spans_done

    def _shutdown(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        spans_done = super()._shutdown(timeout)
        scores_done = self._scores.shutdown(max(0.1, timeout / 4))
        # Media last and bounded: a token already exported is worth its bytes, but
        # never at the cost of the spans' own shutdown budget.
        media_done = self._media.shutdown(max(0.1, deadline - time.monotonic()))
        return spans_done and scores_done and media_done

    def __repr__(self) -> str:
        return (
            f"Langfuse(name={self.name!r}, host={self._host!r}, "
            f"public_key={self._public_key!r}, secret_key={_MASK!r})"
        )

    def _describe(self) -> dict[str, Any]:
        return {
            **super()._describe(),
            "host": self._host,
            "public_key": self._public_key,
            "secret_key": _MASK,
            "export_all_spans": self._export_all,
            "capture_content": self._capture_content,
            "timeout": self._timeout,
        }


# --- settings ------------------------------------------------------------------------
def _setting(name: str, value: object, env_vars: tuple[str, ...]) -> tuple[str | None, str]:
    """(value, source): the argument, else the first non-empty variable, else None."""
    if value is not None:
        source = f"Langfuse({name}=...)"
        if not isinstance(value, str):
            raise ConfigError(name, f"must be a string, got {type(value).__name__}", source=source)
        return value.strip() or None, source
    for var in env_vars:
        raw = os.environ.get(var, "").strip()
        if raw:
            return raw, f"environment variable {var}"
    return None, "default"


def _key(name: str, value: object, env_var: str, other_prefix: str) -> str:
    key, source = _setting(name, value, (env_var,))
    if key is None:
        raise ConfigError(name, f"is required: pass {name}= or set {env_var}")
    if key.startswith(other_prefix):
        other = "secret" if other_prefix.startswith("sk") else "public"
        raise ConfigError(
            name,
            f"looks like a {other} key ({other_prefix}…); are the keys swapped?",
            source=source,
        )
    return key


def _host(value: object) -> str:
    host, source = _setting("host", value, ("LANGFUSE_HOST", "LANGFUSE_BASE_URL"))
    if host is None:
        return DEFAULT_HOST
    rule = "must be an http:// or https:// URL like https://cloud.langfuse.com"
    try:
        parts = urlsplit(host)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ConfigError("host", f"{host!r} {rule}", source=source) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigError("host", f"{host!r} {rule}", source=source)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(
            "host", "must not contain credentials, a query or a fragment", source=source
        )
    base = host.rstrip("/")
    if base.endswith(("/api/public/otel", _TRACES_PATH)):
        raise ConfigError(
            "host", "is the Langfuse base URL, without the /api/public/otel path", source=source
        )
    return base


def _timeout(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError("timeout", "must be a positive number of seconds")
    return float(value)


# --- helpers -------------------------------------------------------------------------
_TRACE_ID_END = 1 << 128
_SPAN_ID_END = 1 << 64


def _valid_ids(record: SpanRecord) -> bool:
    """Ids the server accepts: non-zero, 128-bit trace id, 64-bit span/parent ids."""
    parent = record.parent_span_id
    return (
        0 < record.trace_id < _TRACE_ID_END
        and 0 < record.span_id < _SPAN_ID_END
        and (parent is None or 0 < parent < _SPAN_ID_END)
    )


def _pipeline_environment() -> str | None:
    pipeline = runtime.current().pipeline
    if pipeline is None:
        return None
    value = pipeline.settings.get("environment", (None, ""))[0]
    return value if isinstance(value, str) else None
