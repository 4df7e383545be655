"""A rotel trace processor that runs otel-llm's stages on every span rotel forwards.

Start the rotel agent (the ``rotel-agent`` binary in the PyPI ``rotel`` wheel) with this
file as its trace processor, and the environment's packages on ``PYTHONPATH``::

    PYTHONPATH=<site-packages> rotel-agent start --exporter otlp ... \
        --otlp-with-trace-processor <path of this file>

rotel loads the file by path and calls :func:`process_spans` with each
``ResourceSpans`` it receives. For every span: the span becomes a ``SpanRecord``
(:mod:`otel_llm.collector.rotel_convert`), the stages run (normalize → usage →
cost → media → masking, as in the in-process ``LLMSpanProcessor``), and what they
changed is written back to the rotel span in place. Settings come from environment
variables (:mod:`otel_llm.collector.rotel_config`); ``collector-config/rotel.md`` is
the recipe.

Nothing is ever raised into rotel. Failures are counted (:func:`stats`) and logged
once, and:

- a stage other than masking that fails is undone; the others still run;
- if masking fails, or a span cannot be read or written back, the span fails
  closed: every attribute masking covers (content, secret-looking keys, free text),
  every ``gen_ai.*`` message event and the status message are removed or replaced,
  rather than forwarded unmasked.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:  # rotel runs this file by path: make the package importable from where it lies
    import otel_llm  # noqa: F401
except ImportError:  # pragma: no cover - only inside a rotel agent without PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import os
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
from opentelemetry.sdk.trace import Event

from otel_llm.collector.rotel_config import RotelConfig, config_from_env
from otel_llm.collector.rotel_convert import (
    MESSAGE_EVENT_PREFIX,
    read_span,
    rewrite_arrays,
    strip_sensitive,
    write_span,
)
from otel_llm.collector.rotel_values import (
    ResourceSpansLike,
    RotelTypes,
    SpanLike,
    load_rotel_types,
)
from otel_llm.diagnostics import log_once
from otel_llm.processing.masking import MASK_FALLBACK_VALUE, mask_record
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import Stage
from otel_llm.processing.stages import DEFAULT_STAGES

__all__ = ["RotelProcessor", "process_spans", "reset", "stats"]


class RotelProcessor:
    """Runs the stages over rotel ``ResourceSpans``; :meth:`process` never raises.

    Args:
        config: compiled settings (:func:`~otel_llm.collector.rotel_config.config_from_env`).
        types: rotel's value classes (:func:`~otel_llm.collector.rotel_values.load_rotel_types`).
        stages: the stages, in order; a stage that is ``mask_record`` fails closed.
    """

    def __init__(
        self, config: RotelConfig, types: RotelTypes, stages: Sequence[Stage] = DEFAULT_STAGES
    ) -> None:
        self._config = config
        self._types = types
        self._stages = tuple(stages)
        self._lock = threading.Lock()  # rotel calls processors from several threads
        self._counts: Counter[str] = Counter()  # guarded by _lock
        for problem in config.problems:
            self._counts["config_errors"] += 1
            log_once("rotel", f"config.{problem}", f"bad setting, using a safe default: {problem}")
        if config.masking_fallback:
            log_once(
                "rotel",
                "masking_fallback",
                "masking settings unusable: content is removed from every span (fail closed)",
            )

    # -- entry points -----------------------------------------------------------------
    def process(self, resource_spans: ResourceSpansLike) -> None:
        """Process every span of one ``ResourceSpans`` in place."""
        with self._lock:
            self._counts["batches"] += 1
            try:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self._process_span(span)
            except Exception as exc:  # iterating rotel's containers failed
                self._failed("batch", exc)
            if self._config.reverse_arrays:
                self._fix_resource(resource_spans)
            if self._config.stats_file is not None:
                self._write_stats(self._config.stats_file)

    def stats(self) -> dict[str, Any]:
        """Counters: spans seen and changed, failures by kind, and the stages' own counts."""
        with self._lock:
            return self._stats()

    # -- one span -----------------------------------------------------------------------
    def _process_span(self, span: SpanLike) -> None:
        self._counts["spans"] += 1
        config = self._config
        try:
            record, snapshot = read_span(span, self._types, config.sensitive)
        except Exception as exc:
            self._failed("read", exc)
            self._fail_closed(span)
            return
        if not self._run_stages(record):
            self._strip_record(record)
        try:
            changes = write_span(
                span, snapshot, record, self._types, reverse_arrays=config.reverse_arrays
            )
        except Exception as exc:
            self._failed("write", exc)
            self._fail_closed(span)
            return
        if changes:
            self._counts["spans_changed"] += 1

    def _run_stages(self, record: SpanRecord) -> bool:
        """Run every stage; False when masking failed (the record must then be stripped)."""
        ctx = self._config.context
        for stage in self._stages:
            name = getattr(stage, "__name__", "stage")
            if stage is mask_record:
                try:
                    stage(record, ctx)
                except Exception as exc:
                    self._failed("masking", exc)
                    return False
                continue
            attributes, events = dict(record.attributes), record.events
            description = record.status_description
            try:
                stage(record, ctx)
            except Exception as exc:  # undo whatever the stage had done
                record.attributes = attributes
                record.events = events
                record.status_description = description
                self._failed(f"stage.{name}", exc)
        return True

    def _fix_resource(self, resource_spans: ResourceSpansLike) -> None:
        """rotel reverses the resource's arrays whenever a Python processor runs: undo it."""
        try:
            resource = resource_spans.resource
            if resource is not None:
                rewrite_arrays(resource.attributes, self._types)
        except Exception as exc:
            self._failed("resource", exc)

    def _strip_record(self, record: SpanRecord) -> None:
        """Masking failed: drop what it covers from the record (fail closed)."""
        self._counts["fail_closed"] += 1
        sensitive = self._config.sensitive
        for key in [key for key in record.attributes if sensitive(key)]:
            del record.attributes[key]
        events = []
        for event in record.events:
            if event.name.startswith(MESSAGE_EVENT_PREFIX):
                continue
            attributes = dict(event.attributes or {})
            if any(map(sensitive, attributes)):
                kept = {k: v for k, v in attributes.items() if not sensitive(k)}
                event = Event(event.name, kept, event.timestamp)
            events.append(event)
        record.events = tuple(events)
        if record.status_description:
            record.status_description = MASK_FALLBACK_VALUE

    def _fail_closed(self, span: SpanLike) -> None:
        """The span could not be read or written: strip it in place, if masking matters."""
        if not self._config.protects:
            return
        self._counts["fail_closed"] += 1
        try:
            strip_sensitive(span, self._config.sensitive, MASK_FALLBACK_VALUE)
        except Exception as exc:
            self._failed("fail_closed", exc)
            _clear(span)

    # -- bookkeeping --------------------------------------------------------------------
    def _failed(self, where: str, exc: BaseException) -> None:
        self._counts[f"errors.{where}"] += 1
        log_once("rotel", where, f"{where} failed ({type(exc).__name__}); see stats()")

    def _stats(self) -> dict[str, Any]:
        counts = dict(self._counts)
        return {
            "batches": counts.pop("batches", 0),
            "spans": counts.pop("spans", 0),
            "spans_changed": counts.pop("spans_changed", 0),
            "fail_closed": counts.pop("fail_closed", 0),
            "config_errors": counts.pop("config_errors", 0),
            "errors": {k.removeprefix("errors."): v for k, v in counts.items()},
            "problems": list(self._config.problems),
            "processing": dict(self._config.context.counters),
        }

    def _write_stats(self, path: Path) -> None:
        try:
            data = orjson.dumps(self._stats(), option=orjson.OPT_INDENT_2)
            fd, tmp = tempfile.mkstemp(prefix=".otel-llm-rotel-", dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except Exception as exc:
            self._failed("stats_file", exc)


def _clear(span: SpanLike) -> None:
    """Last resort of failing closed: remove every attribute and event of the span."""
    for container in (lambda: span.attributes, lambda: span.events):
        try:
            items = container()
            for i in range(len(items) - 1, -1, -1):
                del items[i]
        except Exception as exc:
            log_once("rotel", "clear", f"could not clear a span ({type(exc).__name__})")


# -- the module rotel loads ---------------------------------------------------------------
_lock = threading.Lock()
_processor: RotelProcessor | None = None


def _instance() -> RotelProcessor:
    global _processor
    with _lock:
        if _processor is None:
            _processor = RotelProcessor(config_from_env(), load_rotel_types())
        return _processor


def process_spans(resource_spans: ResourceSpansLike) -> None:
    """rotel's entry point: process one ``ResourceSpans`` in place. Never raises."""
    try:
        processor = _instance()
    except Exception as exc:  # cannot even start: forward nothing that masking covers
        log_once("rotel", "start", f"processor could not start ({type(exc).__name__})")
        _strip_batch(resource_spans)
        return
    processor.process(resource_spans)


def _strip_batch(resource_spans: ResourceSpansLike) -> None:
    """Fail closed without a processor: strip what the default masking covers."""
    try:
        from otel_llm.processing.masker import OTHER
        from otel_llm.processing.masking import compile_masker

        masker = compile_masker(None, None)

        def sensitive(key: str) -> bool:
            return masker.kind(key) != OTHER

        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                try:
                    strip_sensitive(span, sensitive, MASK_FALLBACK_VALUE)
                except Exception:
                    _clear(span)
    except Exception as exc:
        log_once("rotel", "strip_batch", f"could not strip a batch ({type(exc).__name__})")


def stats() -> dict[str, Any]:
    """The running processor's counters (empty before the first batch)."""
    processor = _processor
    return processor.stats() if processor is not None else {}


def reset() -> None:
    """Forget the processor, so the next batch re-reads the environment (tests)."""
    global _processor
    with _lock:
        _processor = None
