"""configure(): settings from arguments > environment > defaults, and the Pipeline it returns.

Calling ``configure()`` again replaces the pipeline: the old processor is flushed
and shut down, and the new one takes its place in the same provider slot, so a
span is never processed (or exported) twice.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from otel_llm import runtime
from otel_llm.diagnostics import guard, logger
from otel_llm.errors import ConfigError
from otel_llm.export.base import Destination
from otel_llm.instrument.ids import SeededIdGenerator
from otel_llm.processing.processor import LLMSpanProcessor
from otel_llm.settings import resolve

__all__ = [
    "Pipeline",
    "attach_spools",
    "check_masking",
    "check_pricing",
    "check_resource_attributes",
    "configure",
    "flush",
    "shutdown",
]

_EXIT_TIMEOUT = 2.0
_configure_lock = threading.Lock()


class _ProcessorSlot(SpanProcessor):
    """The one processor we add to a provider; configure() swaps what it delegates to.

    OpenTelemetry providers cannot remove a processor, so re-configuring must not
    add a second one: every pipeline of the same provider reuses this slot.
    """

    def __init__(self) -> None:
        self._target: LLMSpanProcessor | None = None

    @property
    def target(self) -> LLMSpanProcessor | None:
        return self._target

    @target.setter
    def target(self, processor: LLMSpanProcessor | None) -> None:
        self._target = processor
        # The provider calls on_start/on_end for every span: point them straight at the
        # target's hooks, one call less per hook (the methods below are the fallback).
        if processor is None:
            vars(self).pop("on_start", None)
            vars(self).pop("on_end", None)
        else:
            self.on_start = processor.on_start  # type: ignore[method-assign]
            self.on_end = processor.on_end  # type: ignore[method-assign]

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        target = self._target
        if target is not None:
            target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        target = self._target
        if target is not None:
            target.on_end(span)

    def shutdown(self) -> None:
        target, self.target = self.target, None
        if target is not None:
            target.shutdown(_EXIT_TIMEOUT)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        target = self.target
        return target.flush(timeout_millis / 1000) if target is not None else True


_slots: weakref.WeakKeyDictionary[TracerProvider, _ProcessorSlot] = weakref.WeakKeyDictionary()
_made_provider: TracerProvider | None = None  # the provider configure() created, reused later


class Pipeline:
    """A configured processing and export pipeline (returned by :func:`configure`)."""

    def __init__(
        self,
        tracer_provider: TracerProvider,
        processor: LLMSpanProcessor,
        settings: Mapping[str, tuple[Any, str]],
        slot: _ProcessorSlot,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.processor = processor
        self.settings = dict(settings)
        self.arguments: dict[str, Any] = {}
        """The keyword arguments configure() was called with (to re-configure from)."""
        self._slot = slot
        self._closed = False

    @property
    def destinations(self) -> tuple[Destination, ...]:
        return self.processor.destinations

    def flush(self, timeout: float = 5.0) -> bool:
        """Deliver everything recorded so far; False if ``timeout`` (seconds) ran out."""
        with guard("pipeline.flush"):
            return self.processor.flush(timeout)
        return False

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush, then stop the worker and destinations. Idempotent; returns within timeout."""
        with guard("pipeline.shutdown"):
            if self._closed:
                return True
            self._closed = True
            if self._slot.target is self.processor:
                self._slot.target = None
            if runtime.current().pipeline is self:
                runtime.install(runtime.Runtime())
            return self.processor.shutdown(timeout)
        return False

    def stats(self) -> dict[str, Any]:
        """Counters: spans received/dropped (with reasons) and per-destination results."""
        return self.processor.stats()

    def __repr__(self) -> str:
        names = ", ".join(d.name for d in self.destinations)
        return f"Pipeline(destinations=[{names}])"


def configure(
    service_name: str | None = None,
    destinations: Sequence[Destination] | None = None,
    environment: str | None = None,
    release: str | None = None,
    version: str | None = None,
    mask: Callable[..., Any] | None = None,
    masking: bool | Mapping[str, Any] | None = None,
    capture_content: bool | None = None,
    sample_rate: float | None = 1.0,
    pricing: Mapping[str, Any] | str | Path | None = None,
    tracer_provider: TracerProvider | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    spool_dir: str | Path | bool | None = None,
    spool_max_bytes: int | None = 256 * 2**20,
    *,
    max_content_chars: int | None = None,
    max_queue_size: int | None = None,
    media: bool | Mapping[str, Any] | None = None,
    estimate_usage: bool | None = None,
) -> Pipeline:
    """Set up (or replace) the process-wide otel-llm pipeline.

    Each setting is taken from its argument, else its environment variable(s),
    else its default:

    - ``service_name``: ``OTEL_SERVICE_NAME``; default ``unknown_service``.
    - ``destinations``: default from the environment (see README), else ``LocalStore()``
      (the embedded default: a SQLite file in the user data dir, ``OTEL_LLM_DB``).
    - ``environment``: ``LANGFUSE_TRACING_ENVIRONMENT``, ``LANGFUSE_ENVIRONMENT``;
      default ``"default"``. Lowercase letters, digits, ``-``, ``_``; at most 40
      characters; must not start with ``langfuse``.
    - ``release``: ``LANGFUSE_RELEASE``. ``version``: ``OTEL_LLM_VERSION``.
    - ``sample_rate``: ``LANGFUSE_SAMPLE_RATE``; default 1.0; in [0, 1], per trace.
    - ``capture_content``: ``OTEL_LLM_CAPTURE_CONTENT``,
      ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``; default True.
    - ``mask``: ``mask(data) -> data`` applied to every input, output and metadata.
    - ``masking``: built-in scrubbers (False turns them off).
    - ``pricing``: extra/override prices, a dict or a JSON/TOML file path.
    - ``tracer_provider``: use this SDK provider; default the global SDK provider if
      one is registered, else a new one (registered globally only if none is set).
    - ``resource_attributes``: merged into the resource of every exported span.
    - ``spool_dir`` (``OTEL_LLM_SPOOL_DIR``), ``spool_max_bytes``
      (``OTEL_LLM_SPOOL_MAX_BYTES``): the disk spool; ``spool_dir=False`` disables.
    - ``max_content_chars`` (``OTEL_LLM_MAX_CONTENT_CHARS``, default 1,000,000):
      longer serialized values are truncated with a visible marker.
    - ``max_queue_size`` (``OTEL_LLM_MAX_QUEUE_SIZE``, default 16384).
    - ``media``: base64 payloads in content become references (False disables; a
      mapping sets ``min_bytes``, ``max_bytes``, ``max_per_span``).
    - ``estimate_usage`` (``OTEL_LLM_ESTIMATE_USAGE``, default True): estimate token
      counts with an offline tokenizer when a generation reports none (flagged).

    Raises:
        ConfigError: a setting is invalid; the message names it and the rule.
    """
    arguments = {
        key: val for key, val in locals().items() if val is not None and key != "destinations"
    }
    kwargs = {
        "service_name": service_name,
        "environment": environment,
        "release": release,
        "version": version,
        "sample_rate": sample_rate if sample_rate != 1.0 else None,
        "capture_content": capture_content,
        "max_content_chars": max_content_chars,
        "max_queue_size": max_queue_size,
        "estimate_usage": estimate_usage,
        "spool_dir": spool_dir,
        "spool_max_bytes": spool_max_bytes if spool_max_bytes != 256 * 2**20 else None,
    }
    settings = {name: resolve(name, value) for name, value in kwargs.items()}
    _check_callable("mask", mask)
    check_masking(masking)
    check_pricing(pricing)
    resource_overrides = check_resource_attributes(resource_attributes)
    if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
        raise ConfigError(
            "tracer_provider",
            "must be an opentelemetry.sdk.trace.TracerProvider (processors can't be "
            f"added to {type(tracer_provider).__name__})",
        )
    chosen = _check_destinations(destinations)

    def value(name: str) -> Any:
        return settings[name][0]

    if service_name is not None:
        resource_overrides = {"service.name": service_name, **resource_overrides}

    with _configure_lock:
        provider = _choose_provider(tracer_provider, value("service_name"))
        processor = LLMSpanProcessor(
            chosen,
            mask=mask,
            masking=masking,
            capture_content=value("capture_content"),
            sample_rate=value("sample_rate"),
            pricing=pricing,
            media=media,
            estimate_usage=value("estimate_usage"),
            environment=value("environment"),
            release=value("release"),
            version=value("version"),
            resource_attributes=resource_overrides,
            max_content_chars=value("max_content_chars"),
            max_queue_size=value("max_queue_size"),
        )
        slot = _slots.get(provider)
        if slot is None:
            slot = _ProcessorSlot()
            _slots[provider] = slot
            provider.add_span_processor(slot)
            generator: IdGenerator = provider.id_generator
            if not isinstance(generator, SeededIdGenerator):
                provider.id_generator = SeededIdGenerator(generator)  # type: ignore[assignment]
        previous = runtime.current().pipeline
        old_target, slot.target = slot.target, processor
        pipeline = Pipeline(provider, processor, settings, slot)
        pipeline.arguments = arguments
        runtime.install(
            runtime.Runtime(pipeline, value("capture_content"), value("max_content_chars"))
        )
    retired = {id(p): p for p in (previous and previous.processor, old_target) if p}
    for old_processor in retired.values():
        if old_processor is not processor:
            # Destinations carried into the new pipeline stay open.
            old_processor.shutdown(_EXIT_TIMEOUT, keep=chosen)
    if previous is not None and previous is not pipeline:
        previous._closed = True
    attach_spools(chosen, value("spool_dir"), value("spool_max_bytes"), value("service_name"))
    if not chosen:
        logger.info("otel-llm: no destinations: spans are processed but not exported")
    return pipeline


def _choose_provider(given: TracerProvider | None, service_name: str | None) -> TracerProvider:
    """The given provider, else the registered SDK one, else one we make (and keep)."""
    global _made_provider
    if given is not None:
        return given
    registered = trace_api.get_tracer_provider()
    if isinstance(registered, TracerProvider):
        return registered
    if _made_provider is not None:
        return _made_provider
    attributes = {"service.name": service_name} if service_name else {}
    provider = TracerProvider(resource=Resource.create(attributes))
    _made_provider = provider
    if isinstance(registered, trace_api.ProxyTracerProvider):
        trace_api.set_tracer_provider(provider)
    return provider


def attach_spools(
    destinations: Sequence[Destination],
    spool_dir: Path | bool | None,
    max_bytes: int,
    service_name: str | None,
) -> None:
    """Give each network destination its disk spool (per service and destination)."""
    if spool_dir is False:
        return
    from otel_llm.export.network import NetworkDestination
    from otel_llm.export.spool import DiskSpool

    directory = spool_dir if isinstance(spool_dir, Path) else None
    for destination in destinations:
        if isinstance(destination, NetworkDestination) and not destination.has_spool:
            destination.use_spool(
                DiskSpool(
                    destination.name,
                    service=service_name or "unknown_service",
                    directory=directory,
                    max_bytes=max_bytes,
                )
            )


def _check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigError(name, f"must be a function, got {type(value).__name__}")


def check_masking(value: object) -> None:
    """Raise ConfigError for a ``masking=`` the masking stage would refuse (its own rules)."""
    from otel_llm.processing.masking import compile_masker

    compile_masker(None, value)  # type: ignore[arg-type]


def check_pricing(value: object) -> None:
    """Raise ConfigError for a ``pricing=`` the cost stage would refuse (its own rules)."""
    from otel_llm.processing.cost import compile_prices

    compile_prices(value)  # type: ignore[arg-type]


_ATTRIBUTE_TYPES = (str, bool, int, float)


def check_resource_attributes(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("resource_attributes", "must be a mapping of names to values")
    for key, item in value.items():
        ok = isinstance(item, _ATTRIBUTE_TYPES) or (
            isinstance(item, (list, tuple)) and all(isinstance(v, _ATTRIBUTE_TYPES) for v in item)
        )
        if not isinstance(key, str) or not key or not ok:
            raise ConfigError(
                "resource_attributes",
                f"{key!r} must be a non-empty string mapped to a str, bool, int, float or a "
                "list of them",
            )
    return dict(value)


def _check_destinations(value: Iterable[Destination] | None) -> list[Destination]:
    if value is None:
        from otel_llm.export.from_env import destinations_from_env

        return destinations_from_env() or _default_destinations()
    if isinstance(value, Destination):
        value = [value]
    chosen: list[Destination] = []
    names: set[str] = set()
    for item in value:
        if not isinstance(item, Destination):
            raise ConfigError(
                "destinations",
                f"{item!r} is not a destination (use otel_llm.Langfuse, OTLP, Console, ...)",
            )
        if item.name in names:
            raise ConfigError(
                "destinations",
                f"two destinations are named {item.name!r}; pass name= to tell them apart",
            )
        names.add(item.name)
        chosen.append(item)
    return chosen


def _default_destinations() -> list[Destination]:
    """The embedded default when the environment names no destination: ``LocalStore()``."""
    from otel_llm.local.destination import LocalStore

    try:
        store = LocalStore()
    except ConfigError as exc:
        if os.environ.get("OTEL_LLM_DB", "").strip():
            raise  # set explicitly: a configuration error like any other
        logger.warning("otel-llm: spans are processed but not exported: %s", exc)
        return []
    logger.info(
        "otel-llm: no destination configured; traces are stored in %s (run `otel-llm traces`)",
        store.path,
    )
    return [store]


def flush(timeout: float = 5.0) -> bool:
    """Flush the current pipeline (True when there is none)."""
    pipeline = runtime.current().pipeline
    return pipeline.flush(timeout) if pipeline is not None else True


def shutdown(timeout: float = 5.0) -> bool:
    """Shut the current pipeline down (True when there is none)."""
    pipeline = runtime.current().pipeline
    return pipeline.shutdown(timeout) if pipeline is not None else True


def _at_exit() -> None:
    deadline = time.monotonic() + _EXIT_TIMEOUT
    with guard("pipeline.atexit"):
        pipeline = runtime.current().pipeline
        if pipeline is not None:
            pipeline.shutdown(max(0.0, deadline - time.monotonic()))


atexit.register(_at_exit)
logging.getLogger("otel_llm").addHandler(logging.NullHandler())
