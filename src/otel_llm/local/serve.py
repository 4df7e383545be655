"""``otel-llm serve``: the embedded OTLP receiver as a command, and as a gateway.

It listens for OTLP over HTTP and gRPC, runs every received span through the
processing stages and stores it in the local store. With ``--forward`` it is also
a gateway: the processed spans go to the destinations the environment configures
(``destinations_from_env()``: LANGFUSE_*, TENCENT_APM_*, OTEL_EXPORTER_OTLP_*), or
instead those of ``--config FILE`` when it has ``[destinations]``, each with its disk
spool, as ``configure()`` does; and to the local store unless ``--no-store``.

The config file is TOML with ``configure()``'s processing options at the top
(everything but ``mask``, a Python function) and one table (or array of tables)
per destination under ``[destinations]``::

    sample_rate = 1.0
    masking = true                  # or a table of scrubber options
    capture_content = true
    pricing = "prices.toml"         # or a table; paths are relative to this file
    spool_dir = "/var/spool/otel-llm"

    [destinations.langfuse]
    public_key = "pk-lf-..."
    secret_key = "sk-lf-..."
    host = "https://cloud.langfuse.com"

    [[destinations.otlp]]
    endpoint = "http://collector:4317"
    name = "collector"

Settings missing from the file come from the environment, then the defaults, as for
``configure()``. Secrets in the file are never printed: errors name the setting only.
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

from otel_llm import semconv
from otel_llm.config import (
    attach_spools,
    check_masking,
    check_pricing,
    check_resource_attributes,
)
from otel_llm.diagnostics import logger
from otel_llm.errors import ConfigError
from otel_llm.export.base import Destination
from otel_llm.local.destination import LocalStore
from otel_llm.local.receiver import (
    DEFAULT_MAX_BODY_BYTES,
    Receiver,
    ReceiverOptions,
    RecordWorker,
)
from otel_llm.processing.stages import build_stage_context
from otel_llm.settings import SETTINGS, resolve

__all__ = ["TOKEN_ENV_VAR", "ServeConfig", "ServeOptions", "load_config", "run"]

TOKEN_ENV_VAR: Final = "OTEL_LLM_SERVE_TOKEN"
_SHUTDOWN_TIMEOUT: Final = 10.0
_SPOOL_SERVICE: Final = "otel-llm-serve"
_PROCESSING: Final = frozenset(
    {
        "service_name",
        "environment",
        "release",
        "version",
        "sample_rate",
        "capture_content",
        "max_content_chars",
        "max_queue_size",
        "estimate_usage",
        "spool_dir",
        "spool_max_bytes",
        "masking",
        "pricing",
        "media",
        "resource_attributes",
    }
)


@dataclass
class ServeOptions:
    """The command line of ``otel-llm serve`` (see ``otel-llm serve --help``)."""

    db: str | None = None
    host: str = "127.0.0.1"
    http_port: int | None = 4318
    grpc_port: int | None = 4317
    token: str | None = None
    forward: bool = False
    store: bool = True
    config: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __repr__(self) -> str:  # the token is a secret
        return f"ServeOptions(host={self.host!r}, forward={self.forward}, token=[secure])"


@dataclass
class ServeConfig:
    """Processing settings (file > environment > default) and the file's destinations."""

    values: dict[str, Any] = field(default_factory=dict)
    explicit: set[str] = field(default_factory=set)
    destinations: list[Destination] | None = None


# -- the config file --------------------------------------------------------------------
def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as stream:
            data: dict[str, Any] = tomllib.load(stream)
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{str(path)!r} is not valid TOML: {exc}") from None
    return data


def load_config(path: str | os.PathLike[str] | None) -> ServeConfig:
    """Processing settings and destinations from a TOML file (None: environment only).

    Raises:
        ConfigError: unreadable file, unknown key, or a bad value (named, never shown
            when it may be a secret).
    """
    data: dict[str, Any] = {}
    source = "defaults"
    base = Path.cwd()
    if path is not None:
        file = Path(path).expanduser()
        data = _read_toml(file)
        source, base = str(file), file.parent
    config = ServeConfig()
    for key in data:
        if key == "mask":
            raise ConfigError(
                "mask", "is a Python function and cannot be set in a config file", source=source
            )
        if key != "destinations" and key not in _PROCESSING:
            known = ", ".join(sorted(_PROCESSING | {"destinations"}))
            raise ConfigError(key, f"is not a setting (known: {known})", source=source)
    for name in SETTINGS:
        if name in data:
            value = data[name]
            if name == "spool_dir" and isinstance(value, str):
                value = str(base / Path(value).expanduser())
            config.values[name] = SETTINGS[name].parse(value, name, source)
            config.explicit.add(name)
        else:
            config.values[name] = resolve(name, None)[0]
    masking = data.get("masking")
    check_masking(masking)
    pricing = data.get("pricing")
    if isinstance(pricing, str):
        pricing = str(base / Path(pricing).expanduser())
    check_pricing(pricing)
    media = data.get("media")
    if media is not None and not isinstance(media, (bool, Mapping)):
        raise ConfigError("media", "must be true, false or a table of limits", source=source)
    config.values.update(
        masking=masking,
        pricing=pricing,
        media=media,
        resource_attributes=check_resource_attributes(data.get("resource_attributes")),
    )
    if "destinations" in data:
        config.destinations = _destinations(data["destinations"], source)
    return config


def _destination_kinds() -> dict[str, Callable[..., Destination]]:
    from otel_llm.export.console import Console
    from otel_llm.export.langfuse import Langfuse
    from otel_llm.export.otlp import OTLP
    from otel_llm.export.tencent import TencentAPM

    return {"langfuse": Langfuse, "tencentapm": TencentAPM, "otlp": OTLP, "console": Console}


def _destinations(table: Any, source: str) -> list[Destination]:
    kinds = _destination_kinds()
    if not isinstance(table, Mapping):
        raise ConfigError("destinations", "must be a table of destination tables", source=source)
    found: list[Destination] = []
    for kind, entries in table.items():
        factory = kinds.get(kind)
        if factory is None:
            raise ConfigError(
                f"destinations.{kind}",
                f"is not a destination kind (known: {', '.join(kinds)})",
                source=source,
            )
        items = entries if isinstance(entries, list) else [entries]
        for options in items:
            if not isinstance(options, Mapping):
                raise ConfigError(f"destinations.{kind}", "must be a table", source=source)
            allowed = set(inspect.signature(factory).parameters)
            unknown = sorted(set(options) - allowed)
            if unknown:
                raise ConfigError(
                    f"destinations.{kind}",
                    f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})",
                    source=source,
                )
            try:
                found.append(factory(**options))
            except ConfigError:
                raise
            except (TypeError, ValueError) as exc:  # its text may quote a secret: not shown
                raise ConfigError(
                    f"destinations.{kind}",
                    f"invalid option value ({type(exc).__name__}); check the types",
                    source=source,
                ) from None
    return found


# -- checks -----------------------------------------------------------------------------
def _unique(destinations: list[Destination]) -> None:
    names: set[str] = set()
    for destination in destinations:
        if destination.name in names:
            raise ConfigError(
                "destinations",
                f"two destinations are named {destination.name!r}; give one a name=",
            )
        names.add(destination.name)


def _is_local(host: str) -> bool:
    if host in ("localhost", "0.0.0.0", "::", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _loop_problem(destination: Destination, host: str, ports: set[int]) -> str | None:
    """Why ``destination`` would send back into this receiver (None: it does not)."""
    for attribute in ("endpoint", "host"):
        target = getattr(destination, attribute, None)
        if not isinstance(target, str) or not target:
            continue
        parsed = urlsplit(target if "://" in target else f"//{target}")
        try:
            port = parsed.port
        except ValueError:
            continue
        same_host = parsed.hostname == host or (
            _is_local(parsed.hostname or "") and _is_local(host)
        )
        if port in ports and same_host:
            return f"{destination.name} sends to {target}, this receiver: spans would loop"
    return None


# -- running ----------------------------------------------------------------------------
def _setup_logging() -> None:
    if not any(not isinstance(h, logging.NullHandler) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("otel-llm serve: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = {semconv.ENVIRONMENT: values["environment"] or "default"}
    if values["release"] is not None:
        defaults[semconv.RELEASE] = values["release"]
    if values["version"] is not None:
        defaults[semconv.VERSION] = values["version"]
    return defaults


def _build(options: ServeOptions) -> tuple[RecordWorker, LocalStore | None, list[Destination]]:
    config = load_config(options.config)
    values = config.values
    if not options.store and not options.forward:
        raise ConfigError("--no-store", "needs --forward (otherwise spans would go nowhere)")
    if not options.store and options.db:
        raise ConfigError("--no-store", "contradicts --db")
    forwarded: list[Destination] = []
    if options.forward:
        if config.destinations is not None:
            forwarded = config.destinations
        else:
            from otel_llm.export.from_env import destinations_from_env

            forwarded = destinations_from_env()
        if not forwarded:
            raise ConfigError(
                "--forward",
                "no destination configured: set LANGFUSE_*, TENCENT_APM_* or "
                "OTEL_EXPORTER_OTLP_* in the environment, or [destinations] in --config",
            )
    elif config.destinations:
        raise ConfigError(
            "destinations", f"are set in {options.config}; pass --forward to send to them"
        )
    store = LocalStore(options.db) if options.store else None
    chosen = [d for d in (store, *forwarded) if d is not None]
    _unique(chosen)
    service = values["service_name"] or _SPOOL_SERVICE
    attach_spools(forwarded, values["spool_dir"], values["spool_max_bytes"], service)
    overrides = dict(values["resource_attributes"])
    if "service_name" in config.explicit:
        overrides = {"service.name": values["service_name"], **overrides}
    context = build_stage_context(
        masking=values["masking"],
        pricing=values["pricing"],
        media=values["media"],
        capture_content=values["capture_content"],
        estimate_usage=values["estimate_usage"],
        max_content_chars=values["max_content_chars"],
    )
    worker = RecordWorker(
        chosen,
        context,
        sample_rate=values["sample_rate"],
        defaults=_defaults(values),
        resource_attributes=overrides,
        max_queue_spans=values["max_queue_size"],
    )
    return worker, store, forwarded


def _wait_for_signal(stop: threading.Event | None) -> None:
    """Block until SIGTERM/SIGINT (main thread) or ``stop`` is set."""
    event = stop or threading.Event()
    if threading.current_thread() is not threading.main_thread():
        event.wait()
        return
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal(signum: int, frame: object) -> None:
        event.set()
        for sig in signals:  # a second signal stops at once
            signal.signal(
                sig, signal.SIG_DFL if sig == signal.SIGTERM else signal.default_int_handler
            )

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        while not event.wait(0.5):
            pass
    finally:
        if not event.is_set():
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run(
    options: ServeOptions, *, out: TextIO | None = None, stop: threading.Event | None = None
) -> int:
    """Run the receiver until SIGTERM/Ctrl-C (or ``stop``); returns the exit code.

    0 when everything received was processed and handed over in time, 1 otherwise.

    Raises:
        ConfigError: bad options, config file or environment (nothing was started).
        OSError: a port could not be bound (nothing keeps running).
    """
    out = out or sys.stdout
    _setup_logging()
    token = options.token or os.environ.get(TOKEN_ENV_VAR, "").strip() or None
    worker, store, forwarded = _build(options)
    receiver = Receiver(
        worker,
        ReceiverOptions(
            host=options.host,
            http_port=options.http_port,
            grpc_port=options.grpc_port,
            token=token,
            max_body_bytes=options.max_body_bytes,
        ),
    )
    try:
        receiver.start()
        ports = receiver.ports
        for destination in forwarded:
            problem = _loop_problem(destination, options.host, ports)
            if problem:
                raise ConfigError("--forward", problem)
    except BaseException:
        receiver.stop(1.0)
        worker.shutdown(2.0)
        raise
    print(_start_line(receiver, store, forwarded, token), file=out, flush=True)
    if token is None and not _is_local(options.host):
        print(
            f"otel-llm serve: warning: listening on {options.host} without a token; "
            f"anyone who can reach it can write traces (set {TOKEN_ENV_VAR})",
            file=sys.stderr,
            flush=True,
        )
    _wait_for_signal(stop)
    deadline = time.monotonic() + _SHUTDOWN_TIMEOUT
    receiver.stop(min(5.0, _SHUTDOWN_TIMEOUT / 2))
    ok = worker.shutdown(max(0.0, deadline - time.monotonic()))
    print(_stop_line(receiver, worker, ok), file=out, flush=True)
    return 0 if ok else 1


def _start_line(
    receiver: Receiver, store: LocalStore | None, forwarded: list[Destination], token: str | None
) -> str:
    listening = []
    if receiver.http_url:
        listening.append(f"OTLP/HTTP {receiver.http_url}")
    if receiver.grpc_address:
        listening.append(f"OTLP/gRPC {receiver.grpc_address}")
    parts = [f"otel-llm serve: listening on {', '.join(listening)}"]
    parts.append(f"storing in {store.path}" if store is not None else "not storing locally")
    if forwarded:
        parts.append(f"forwarding to {', '.join(d.name for d in forwarded)}")
    if token:
        parts.append("bearer token required")
    return "; ".join(parts)


def _stop_line(receiver: Receiver, worker: RecordWorker, ok: bool) -> str:
    stats = worker.stats()
    counts = receiver.stats()
    parts = [
        f"{stats['spans_received']} spans received",
        f"{counts.get('spans_rejected', 0)} rejected",
        f"{stats['spans_refused']} refused (busy)",
    ]
    for name, result in stats["destinations"].items():
        delivered = ", ".join(f"{k} {v}" for k, v in sorted(result.items()) if v)
        parts.append(f"{name}: {delivered or 'nothing'}")
    state = "stopped" if ok else "stopped before everything was delivered"
    return f"otel-llm serve: {state}; " + "; ".join(parts)
