"""OTLP: any OTLP/gRPC or OTLP/HTTP endpoint or collector.

Settings follow the stock exporters: an explicit argument, else the per-signal
variable (``OTEL_EXPORTER_OTLP_TRACES_*``), else the generic one
(``OTEL_EXPORTER_OTLP_*``), else the default. A per-signal endpoint is used as
given; a generic HTTP endpoint gets ``/v1/traces`` appended, as the spec says.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlparse

import orjson

from otel_llm.errors import ConfigError
from otel_llm.export.http_transport import HttpTransport
from otel_llm.export.network import NetworkDestination
from otel_llm.export.retry import Transport

__all__ = ["OTLP", "PROTOCOLS", "parse_headers"]

PROTOCOLS = ("grpc", "http/protobuf", "http/json")
_COMPRESSIONS = ("gzip", "none")


def _env(name: str) -> str | None:
    for var in (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


def parse_headers(text: str, setting: str = "headers") -> dict[str, str]:
    """``k1=v1,k2=v2`` (URL-encoded values), the format of OTEL_EXPORTER_OTLP_HEADERS."""
    headers: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(setting, "must be comma-separated key=value pairs")
        headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


class OTLP(NetworkDestination):
    """Send spans to an OTLP endpoint.

    Args:
        endpoint: for gRPC ``host:port`` or ``http(s)://host:port``; for HTTP the full
            URL including the path (``.../v1/traces``), like the stock exporter.
        protocol: ``grpc`` (default), ``http/protobuf`` or ``http/json``.
        headers: sent with every request (e.g. an API key); never logged.
        resource: attributes merged into the resource of this destination's spans only.
        dialect: ``genai`` (default), ``langfuse`` or ``both``.
        insecure: plaintext gRPC for a bare ``host:port`` endpoint.
        compression: ``gzip`` (default) or ``none``.
    """

    kind = "otlp"

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        protocol: str | None = None,
        headers: Mapping[str, str] | None = None,
        resource: Mapping[str, Any] | None = None,
        dialect: str = "genai",
        insecure: bool | None = None,
        compression: str | None = None,
        timeout: float | None = None,
        block_scopes: Iterable[str] = (),
        allow_scopes: Iterable[str] | None = None,
        name: str | None = None,
        sample_rate: float | None = None,
        capture_content: bool | None = None,
    ) -> None:
        super().__init__(
            dialect=dialect,
            resource_attributes=resource,
            name=name,
            block_scopes=block_scopes,
            allow_scopes=allow_scopes,
            sample_rate=sample_rate,
            capture_content=capture_content,
        )
        self.protocol = protocol or _env("PROTOCOL") or "grpc"
        if self.protocol not in PROTOCOLS:
            raise ConfigError("protocol", f"{self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        self.endpoint = self._endpoint(endpoint)
        all_headers = dict(headers) if headers is not None else parse_headers(_env("HEADERS") or "")
        self._secret_values = tuple(v for v in all_headers.values() if len(v) >= 4)
        self._compression = (compression or _env("COMPRESSION") or "gzip").lower()
        if self._compression not in _COMPRESSIONS:
            raise ConfigError("compression", f"must be one of {', '.join(_COMPRESSIONS)}")
        if insecure is None and (value := _env("INSECURE")) is not None:
            insecure = value.lower() in ("1", "true", "yes")
        self._timeout = _timeout(timeout)
        self._start_sender(self._transport(all_headers, insecure), attempt_timeout=self._timeout)

    def _endpoint(self, given: str | None) -> str:
        if given is not None:
            endpoint = given
        elif per_signal := os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
            endpoint = per_signal
        elif generic := os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
            endpoint = generic
            if self.protocol != "grpc":
                endpoint = endpoint.rstrip("/") + "/v1/traces"
        else:
            endpoint = (
                "http://localhost:4317"
                if self.protocol == "grpc"
                else ("http://localhost:4318/v1/traces")
            )
        if self.protocol != "grpc":
            parsed = urlparse(endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ConfigError("endpoint", f"{endpoint!r} is not an http(s) URL")
        return endpoint

    def _transport(self, headers: dict[str, str], insecure: bool | None) -> Transport:
        if self.protocol == "grpc":
            from otel_llm.export.grpc_transport import GrpcTransport  # grpc costs ~15 MiB

            return GrpcTransport(
                self.endpoint,
                headers=headers,
                insecure=insecure,
                compression=self._compression,
                secrets=self._secret_values,
            )
        content_type = (
            "application/json" if self.protocol == "http/json" else ("application/x-protobuf")
        )
        return HttpTransport(
            self.endpoint,
            headers=headers,
            compression=self._compression,
            content_type=content_type,
            secrets=self._secret_values,
        )

    def _finish_body(self, body: bytes) -> bytes:
        if self.protocol != "http/json":
            return body
        return protobuf_to_otlp_json(body)

    def __repr__(self) -> str:
        return f"OTLP(name={self.name!r}, endpoint={self.endpoint!r}, protocol={self.protocol!r})"


def _timeout(value: float | None) -> float:
    if value is None:
        raw = _env("TIMEOUT")
        if raw is None:
            return 10.0
        try:
            return float(raw) / 1000  # the spec's unit is milliseconds
        except ValueError:
            raise ConfigError(
                "timeout", f"OTEL_EXPORTER_OTLP_TIMEOUT {raw!r} is not a number"
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError("timeout", "must be a positive number of seconds")
    return float(value)


_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def protobuf_to_otlp_json(body: bytes) -> bytes:
    """OTLP/JSON: the protobuf JSON mapping, with ids as hex (not base64) and enums as ints."""
    import base64

    # Only the HTTP/JSON protocol needs the protobuf runtime (~3 MiB): loaded on first use.
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest.FromString(body)
    data = json_format.MessageToDict(message, use_integers_for_enums=True)

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_FIELDS and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    fix(value)
        elif isinstance(node, list):
            for item in node:
                fix(item)

    fix(data)
    return orjson.dumps(data)
