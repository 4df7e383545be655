"""TencentAPM: the Tencent-style LLM observability APM (OTLP with a ``token`` resource).

From the vendor's guide for Langfuse users: OTLP/gRPC to the access point, and
the resource attributes ``service.name``, ``token`` and ``host.name``. The token
lives on this destination's copy of the resource only — never on the shared
provider resource, where other destinations (Langfuse stores every resource
attribute in trace metadata) would see it. The backend reads Langfuse-shaped
attributes as well as ``gen_ai.*``, so both dialects are sent.

Environment: ``TENCENT_APM_ENDPOINT``, ``TENCENT_APM_TOKEN``,
``TENCENT_APM_SERVICE_NAME`` (else ``OTEL_SERVICE_NAME``), ``TENCENT_APM_HOST_NAME``.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable

from otel_llm.errors import ConfigError
from otel_llm.export.http_transport import HttpTransport
from otel_llm.export.network import NetworkDestination
from otel_llm.export.retry import Transport

__all__ = ["SERVICE_NAME_RULE", "TencentAPM"]

SERVICE_NAME_RULE = (
    "at most 63 characters of lowercase letters, digits and '-', starting with a lowercase "
    "letter and ending with a lowercase letter or digit"
)
_SERVICE_NAME = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
_PROTOCOLS = ("grpc", "http/protobuf")


def _setting(value: str | None, *env_vars: str) -> tuple[str | None, str]:
    if value is not None:
        return value, "argument"
    for var in env_vars:
        found = os.environ.get(var, "").strip()
        if found:
            return found, f"environment variable {var}"
    return None, ""


class TencentAPM(NetworkDestination):
    """Send spans to a Tencent-style APM access point."""

    kind = "tencentapm"

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        *,
        service_name: str | None = None,
        host_name: str | None = None,
        protocol: str = "grpc",
        insecure: bool = False,
        block_scopes: Iterable[str] = (),
        allow_scopes: Iterable[str] | None = None,
        name: str | None = None,
        sample_rate: float | None = None,
        capture_content: bool | None = None,
        timeout: float = 10.0,
    ) -> None:
        endpoint, _ = _setting(endpoint, "TENCENT_APM_ENDPOINT")
        if not endpoint:
            raise ConfigError("endpoint", "is required: pass endpoint= or set TENCENT_APM_ENDPOINT")
        token, _ = _setting(token, "TENCENT_APM_TOKEN")
        if not token:
            raise ConfigError("token", "is required: pass token= or set TENCENT_APM_TOKEN")
        service, source = _setting(service_name, "TENCENT_APM_SERVICE_NAME", "OTEL_SERVICE_NAME")
        if not service:
            raise ConfigError(
                "service_name", "is required: pass service_name= or set TENCENT_APM_SERVICE_NAME"
            )
        if not _SERVICE_NAME.fullmatch(service):
            raise ConfigError(
                "service_name", f"{service!r} must be {SERVICE_NAME_RULE}", source=source
            )
        host, _ = _setting(host_name, "TENCENT_APM_HOST_NAME")
        if protocol not in _PROTOCOLS:
            raise ConfigError("protocol", f"{protocol!r} is not one of {', '.join(_PROTOCOLS)}")
        super().__init__(
            dialect="both",
            resource_attributes={
                "service.name": service,
                "token": token,
                "host.name": host or socket.gethostname(),
            },
            name=name,
            block_scopes=block_scopes,
            allow_scopes=allow_scopes,
            sample_rate=sample_rate,
            capture_content=capture_content,
        )
        self.endpoint = endpoint
        self.protocol = protocol
        self.service_name = service
        transport: Transport
        if protocol == "grpc":
            from otel_llm.export.grpc_transport import GrpcTransport  # grpc costs ~15 MiB

            transport = GrpcTransport(endpoint, insecure=insecure, secrets=(token,))
        else:
            transport = HttpTransport(endpoint, secrets=(token,), verify=not insecure)
        self._start_sender(transport, attempt_timeout=timeout)

    def __repr__(self) -> str:
        return (
            f"TencentAPM(name={self.name!r}, endpoint={self.endpoint!r}, "
            f"service_name={self.service_name!r}, token=[secure])"
        )
