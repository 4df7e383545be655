"""Langfuse: LLM spans as OTLP/HTTP protobuf, in the dialect the Langfuse server reads.

What the server needs (``reference/langfuse-server-otel.md``): ``POST
{host}/api/public/otel/v1/traces``, gzip, ``Authorization: Basic b64(pk:sk)``,
``x-langfuse-ingestion-version: 4``; a batch is accepted or rejected whole, so
spans with bad ids are dropped (and counted) before sending. Scores go to
``POST {host}/api/public/scores`` as JSON.

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
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest

from otel_llm import runtime
from otel_llm.diagnostics import guard, log_once
from otel_llm.errors import ConfigError
from otel_llm.export import dialect_langfuse as dialect
from otel_llm.export.base import Destination
from otel_llm.processing.entry import is_llm_related
from otel_llm.processing.record import SpanRecord, record_to_readable
from otel_llm.scores import Score

__all__ = ["DEFAULT_HOST", "Langfuse"]

DEFAULT_HOST = "https://cloud.langfuse.com"
_TRACES_PATH = "/api/public/otel/v1/traces"
_SCORES_PATH = "/api/public/scores"
_INGESTION_VERSION = "4"
_MASK = "[secure]"
_MAX_REQUEST_BYTES = 3 * 2**20  # uncompressed estimate; proxies in front of Langfuse cut ~4 MB
_MEMORY = 8192  # filtered-out spans and trace environments remembered across batches
_SECRET_RESOURCE_KEYS = frozenset({"token"})  # an APM's token must never reach Langfuse
_TRANSPORT_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "transfer-encoding",
        "user-agent",
    }
)


class Langfuse(Destination):
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
        self._environments: OrderedDict[str, str] = OrderedDict()
        self._renamed_scopes: dict[int, tuple[InstrumentationScope, InstrumentationScope]] = {}
        self._resources: dict[int, tuple[Resource, Resource]] = {}
        self._open_transport()
        os.register_at_fork(after_in_child=_weak_call(self._open_transport))

    # -- transport (one place: a later version swaps in our encoder and retry loop) ----
    def _open_transport(self) -> None:
        session = _pinned_session(self._headers)
        self._exporter: SpanExporter = OTLPSpanExporter(
            endpoint=self._host + _TRACES_PATH,
            headers=self._headers,
            timeout=self._timeout,
            compression=Compression.Gzip,
            session=session,
        )
        # The stock exporter applies OTEL_EXPORTER_OTLP_*CERTIFICATE / CLIENT_* files
        # meant for another OTLP endpoint; Langfuse gets the default TLS settings.
        session.verify = True
        session.cert = None
        self._scores_session = requests.Session()
        # Also run in a forked child: the parent's pooled connections stay the parent's.

    def _send(self, spans: Sequence[ReadableSpan]) -> bool:
        """Deliver a batch in requests of at most a few MB; True when all were accepted.

        Stops at the first failure (the stock exporter has already retried it).
        """
        with _suppressed():
            for chunk in _chunks(spans, _MAX_REQUEST_BYTES):
                if self._exporter.export(chunk) is not SpanExportResult.SUCCESS:
                    return False
        return True

    # -- worker thread --------------------------------------------------------------
    def select(self, records: Sequence[SpanRecord]) -> Sequence[SpanRecord]:
        """LLM-only filter, then the base filters, then the id check.

        Kept spans whose parent was filtered out (in this batch or a recent one)
        are re-attached to their nearest ancestor that was not.
        """
        candidates: list[SpanRecord] = []
        for record in records:
            if self._export_all or is_llm_related(record.attributes):
                candidates.append(record)
            else:
                self._remember_removed(record)
        allowed = super().select(candidates)  # scopes, sampling, content (maybe copies)
        if len(allowed) < len(candidates):
            keys = {(r.trace_id, r.span_id) for r in allowed}
            for record in candidates:
                if (record.trace_id, record.span_id) not in keys:
                    self._remember_removed(record)
        kept: list[SpanRecord] = []
        for record in allowed:
            if _valid_ids(record):
                kept.append(record)
            else:
                self._count("dropped")
                log_once(
                    f"destination.{self.name}",
                    "bad_ids",
                    "span with a zero or out-of-range trace/span id dropped (Langfuse would "
                    "reject the whole batch)",
                )
        removed = self._removed
        while len(removed) > _MEMORY:
            removed.popitem(last=False)
        return [self._reparent(r) for r in kept] if removed else kept

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

    def _export(self, records: Sequence[SpanRecord]) -> bool:
        prepared: list[tuple[SpanRecord, dict[str, Any]]] = []
        for record in records:
            attributes = self._attributes(record)
            if attributes is not None:
                prepared.append((record, attributes))
        dialect.share_trace_fields([(r.trace_id, a) for r, a in prepared])
        spans = [self._readable(r, a) for r, a in prepared]
        self._remember_environments(prepared)
        return self._send(spans) if spans else True

    def _attributes(self, record: SpanRecord) -> dict[str, Any] | None:
        with guard(f"destination.{self.name}.dialect"):
            return dialect.to_langfuse(record.attributes)
        self._count("dropped")
        return None

    def _readable(self, record: SpanRecord, attributes: dict[str, Any]) -> ReadableSpan:
        scope = self._scope_for(record.scope)
        if scope is not record.scope:
            record = dataclasses.replace(record, scope=scope)
        return record_to_readable(
            record, attributes=attributes, resource=self._resource_for(record.resource)
        )

    def _scope_for(self, scope: InstrumentationScope | None) -> InstrumentationScope | None:
        if scope is None:
            return None
        cache = self._renamed_scopes
        cached = cache.get(id(scope))
        if cached is not None and cached[0] is scope:
            return cached[1]
        renamed = dialect.langfuse_scope(scope) or scope
        if len(cache) >= 256:
            cache.clear()
        cache[id(scope)] = (scope, renamed)
        return renamed

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

    def _remember_environments(self, prepared: list[tuple[SpanRecord, dict[str, Any]]]) -> None:
        environments = self._environments
        for record, attributes in prepared:
            environment = attributes.get(dialect.LF_ENVIRONMENT)
            if isinstance(environment, str):
                key = record.trace_id_hex
                environments[key] = environment
                environments.move_to_end(key)
        while len(environments) > _MEMORY:
            environments.popitem(last=False)

    def _export_score(self, score: Score) -> bool:
        status = "no response"
        delivered = False
        try:
            with _suppressed():
                response = self._scores_session.post(
                    self._host + _SCORES_PATH,
                    data=orjson.dumps(self._score_body(score)),
                    headers={**self._auth, "Content-Type": "application/json"},
                    timeout=self._timeout,
                )
            status = f"HTTP {response.status_code}"
            delivered = 200 <= response.status_code < 300
        except requests.RequestException as exc:
            status = type(exc).__name__
        finally:
            if not delivered:
                self._count("scores_failed")
                log_once(
                    f"destination.{self.name}",
                    f"score.{status}",
                    f"score not delivered ({status})",
                )
        return delivered

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
        environment = self._environments.get(score.trace_id) or _pipeline_environment()
        if environment is not None:
            body["environment"] = environment
        return body

    # -- any thread -----------------------------------------------------------------
    def _force_flush(self, timeout: float) -> bool:
        return self._exporter.force_flush(int(timeout * 1000))

    def _shutdown(self, timeout: float) -> bool:
        self._exporter.shutdown()
        self._scores_session.close()
        return True

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
def _valid_ids(record: SpanRecord) -> bool:
    """Ids the server accepts: non-zero, 128-bit trace id, 64-bit span/parent ids."""
    parent = record.parent_span_id
    return (
        0 < record.trace_id < 1 << 128
        and 0 < record.span_id < 1 << 64
        and (parent is None or 0 < parent < 1 << 64)
    )


def _chunks(spans: Sequence[ReadableSpan], limit: int) -> Iterator[Sequence[ReadableSpan]]:
    """Consecutive runs of spans whose estimated encoded size stays under ``limit``."""
    start, size = 0, 0
    for index, span in enumerate(spans):
        estimate = _estimated_size(span)
        if size + estimate > limit and index > start:
            yield spans[start:index]
            start, size = index, 0
        size += estimate
    if start < len(spans):
        yield spans[start:] if start else spans


def _estimated_size(span: ReadableSpan) -> int:
    """Roughly the span's protobuf size: its text plus a fixed overhead per value."""
    size = 128 + len(span.name)
    for attributes in (span.attributes, *(event.attributes for event in span.events)):
        for key, value in (attributes or {}).items():
            size += 16 + len(key)
            if isinstance(value, str):
                size += len(value)
            elif isinstance(value, (list, tuple)):
                size += sum(len(v) if isinstance(v, str) else 8 for v in value)
    return size


def _pipeline_environment() -> str | None:
    pipeline = runtime.current().pipeline
    if pipeline is None:
        return None
    value = pipeline.settings.get("environment", (None, ""))[0]
    return value if isinstance(value, str) else None


class _PinnedHeaders(HTTPAdapter):
    """Sends exactly our headers plus transport ones.

    The stock OTLP exporter merges ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`` into every
    request. Those configure another OTLP destination (often with its token) and
    must never reach Langfuse.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__()
        self._pinned = dict(headers)

    def add_headers(self, request: PreparedRequest, **kwargs: Any) -> None:
        for key in [k for k in request.headers if k.lower() not in _TRANSPORT_HEADERS]:
            del request.headers[key]
        request.headers.update(self._pinned)


def _pinned_session(headers: Mapping[str, str]) -> requests.Session:
    session = requests.Session()
    adapter = _PinnedHeaders(headers)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@contextmanager
def _suppressed() -> Iterator[None]:
    """Our own HTTP calls are not traced (by us or by a requests instrumentation)."""
    ctx = otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
    ctx = otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, ctx)
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def _weak_call(method: Callable[[], None]) -> Callable[[], None]:
    ref = weakref.WeakMethod(method)

    def call() -> None:
        bound = ref()
        if bound is not None:
            bound()

    return call
