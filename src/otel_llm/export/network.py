"""NetworkDestination: shape records for one backend, encode them, hand them to a Sender.

Runs on the processor's worker thread: per record, the destination's dialect
(which attribute vocabulary the backend reads) and its own resource (which may
hold a secret such as an APM token — on this destination's copy only); then our
encoder turns each chunk into one request. Delivery happens on the Sender's
thread, which counts exported / failed / spooled / dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource

from otel_llm.errors import ConfigError
from otel_llm.export.base import Destination
from otel_llm.export.dialects import DIALECTS, Dialect
from otel_llm.export.encoder import encode
from otel_llm.export.retry import Transport
from otel_llm.export.sender import Batch, Sender, Spool
from otel_llm.processing.record import ResourceMerger, SpanRecord

__all__ = ["NetworkDestination"]

_CHUNK_SPANS = 512
DEFAULT_MAX_REQUEST_BYTES = 3_000_000
"""Langfuse and most collectors accept 4 MB+; staying below leaves room for headers."""


class NetworkDestination(Destination):
    """Base of every destination that sends OTLP over the network."""

    def __init__(
        self,
        *,
        dialect: str = "genai",
        resource_attributes: Mapping[str, Any] | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        name: str | None = None,
        block_scopes: Iterable[str] = (),
        allow_scopes: Iterable[str] | None = None,
        sample_rate: float | None = None,
        capture_content: bool | None = None,
    ) -> None:
        super().__init__(
            name=name,
            block_scopes=block_scopes,
            allow_scopes=allow_scopes,
            sample_rate=sample_rate,
            capture_content=capture_content,
        )
        if dialect not in DIALECTS:
            raise ConfigError("dialect", f"{dialect!r} is not one of {', '.join(DIALECTS)}")
        self.dialect = dialect
        self._shape_attributes: Dialect = DIALECTS[dialect]
        self._merge_resource = ResourceMerger(resource_attributes)  # worker thread only
        self._max_request_bytes = max_request_bytes
        self._sender: Sender | None = None
        self._scope_rename: Callable[[str], str] | None = None

    def _start_sender(
        self, transport: Transport, spool: Spool | None = None, attempt_timeout: float = 10.0
    ) -> None:
        self._sender = Sender(
            self.name, transport, self._count, spool=spool, attempt_timeout=attempt_timeout
        )

    # -- worker thread ------------------------------------------------------------------
    def _export(self, records: Sequence[SpanRecord]) -> bool | None:
        sender = self._sender
        if sender is None:
            self._count("dropped", len(records))
            return None
        kept, attributes = self._shape(records)
        for start in range(0, len(kept), _CHUNK_SPANS):
            end = start + _CHUNK_SPANS
            chunk_attributes = None if attributes is None else attributes[start:end]
            self._submit(kept[start:end], chunk_attributes, sender)
        return None  # the sender counts delivery

    def _submit(
        self,
        chunk: Sequence[SpanRecord],
        attributes: Sequence[Mapping[str, Any]] | None,
        sender: Sender,
    ) -> None:
        body = encode(
            chunk,
            scope_rename=self._scope_rename,
            attributes=attributes,
            resource_for=self._resource_for,
        )
        if len(body) > self._max_request_bytes and len(chunk) > 1:
            middle = len(chunk) // 2
            self._submit(chunk[:middle], attributes and attributes[:middle], sender)
            self._submit(chunk[middle:], attributes and attributes[middle:], sender)
            return
        sender.submit(Batch(self._finish_body(body), len(chunk)))

    def _finish_body(self, body: bytes) -> bytes:
        """Hook for a wire format other than protobuf (OTLP/JSON)."""
        return body

    def _shape(
        self, records: Sequence[SpanRecord]
    ) -> tuple[Sequence[SpanRecord], list[dict[str, Any]] | None]:
        """The records to send and, unless they go as they are, each one's attributes in
        this backend's dialect (parallel to them; the shared records stay intact). The
        encoder takes both, and the resource from ``_resource_for``: nothing is copied."""
        if self.dialect == "genai":
            return records, None
        shape = self._shape_attributes
        return records, [shape(record.attributes) for record in records]

    @property
    def has_spool(self) -> bool:
        return self._sender is not None and self._sender.has_spool

    def use_spool(self, spool: Spool | None) -> None:
        """Keep undeliverable batches in ``spool`` (configure() passes a DiskSpool)."""
        if self._sender is not None:
            self._sender.set_spool(spool)

    def _resource_for(self, resource: Resource) -> Resource:
        """This destination's copy of a span's resource (its own attributes merged in)."""
        return self._merge_resource(resource)

    # -- any thread ---------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """Counters; spans the disk spool evicted at its size bound count as dropped."""
        counts = super().stats()
        spool = self._sender.spool_stats() if self._sender is not None else {}
        if spool:
            evicted = spool.get("evicted", 0)
            counts["spool_evicted"] = evicted
            counts["dropped"] = counts.get("dropped", 0) + evicted
            counts["spool_bytes"] = spool.get("bytes", 0)
            counts["spool_batches"] = spool.get("batches", 0)
        return counts

    def _force_flush(self, timeout: float) -> bool:
        return self._sender.flush(timeout) if self._sender is not None else True

    def _shutdown(self, timeout: float) -> bool:
        return self._sender.shutdown(timeout) if self._sender is not None else True
