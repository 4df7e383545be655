"""The callback handler's engine: start, finish and annotate one observation per LangChain run.

:class:`Tracer` owns the open runs (:class:`~._langchain_runs.Runs`) and the
handler's trace-level settings. The public ``CallbackHandler`` only unpacks
LangChain's callback arguments and calls it inside a guard.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.outputs import LLMResult
from opentelemetry import trace as trace_api

from otel_llm import runtime, semconv
from otel_llm.context import trace_attributes
from otel_llm.diagnostics import log_once
from otel_llm.instrument.ids import create_trace_id
from otel_llm.instrument.observation import UNSET, Observation, start_observation
from otel_llm.integrations import _langchain_convert as convert
from otel_llm.integrations._langchain_runs import Run, Runs
from otel_llm.serialize import to_json

__all__ = ["Tracer", "content_limit", "control_flow", "error_attributes", "finish"]


class Tracer:
    """Observations for the runs of one handler; safe to use from many threads and tasks."""

    def __init__(
        self,
        *,
        user_id: str | None,
        session_id: str | None,
        trace_name: str | None,
        tags: tuple[str, ...],
        fixed: dict[str, Any],
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.trace_name = trace_name
        self.tags = tags
        self.fixed = fixed
        """Trace attributes that never change (environment, release, version, metadata)."""
        self.runs = Runs()

    # -- starting ----------------------------------------------------------------------------------
    def start_generation(
        self,
        serialized: Any,
        input_: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: Mapping[str, Any],
        kwargs: Mapping[str, Any],
    ) -> None:
        invocation = kwargs.get("invocation_params")
        invocation = invocation if isinstance(invocation, Mapping) else {}
        attrs: dict[str, Any] = {}
        provider = convert.provider_name(metadata)
        if provider is not None:
            attrs[semconv.GEN_AI_PROVIDER_NAME] = provider
        tools = convert.tool_definitions(invocation.get("tools") or invocation.get("functions"))
        if tools:
            attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = to_json(tools, max_chars=content_limit())
        self.start(
            run_id,
            parent_run_id,
            convert.run_name(serialized, kwargs, "llm"),
            "generation",
            tags=tags,
            metadata=metadata,
            input=input_,
            model=convert.model_name(invocation, serialized, metadata),
            model_parameters=convert.model_parameters(invocation, metadata),
            # the Langfuse SDK's way to link a managed prompt to the generations of a call
            prompt=metadata.get("langfuse_prompt"),
            attributes=attrs,
        )

    def start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        as_type: str,
        *,
        tags: list[str] | None,
        metadata: Mapping[str, Any],
        input: Any = UNSET,
        model: str | None = None,
        model_parameters: Mapping[str, Any] | None = None,
        prompt: Any = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        parent = self.runs.get(parent_run_id)
        hidden = bool(tags) and convert.HIDDEN_TAG in (tags or ())
        if hidden and parent is not None:
            self.runs.add(run_id, parent, owned=False)  # its children attach to the parent
            return
        attrs = attributes if attributes is not None else {}
        thread_id = metadata.get("thread_id")
        if isinstance(thread_id, (str, int)) and not isinstance(thread_id, bool):
            attrs[semconv.GEN_AI_CONVERSATION_ID] = str(thread_id)
        common: dict[str, Any] = {
            "input": input,
            "metadata": convert.observation_metadata(metadata) or None,
            "model": model,
            "model_parameters": model_parameters or None,
            "level": "DEBUG" if hidden else None,
            "prompt": prompt,
        }
        if parent is None:
            self.runs.sweep()
            trace_attrs = self._trace_attributes(name, tags, metadata)
            current = trace_api.get_current_span().get_span_context()
            observation = start_observation(
                name,
                as_type,
                # A root inside a span (observe, web request) nests; otherwise the
                # trace id is the run id's, so users find the trace from their id.
                trace_id=None if current.is_valid else create_trace_id(seed=str(run_id)),
                attributes={**attrs, **trace_attrs},
                **common,
            )
            run = Run(observation, trace_attrs, None)
        else:
            observation = start_observation(
                name,
                as_type,
                parent=parent.observation,
                attributes={**attrs, **parent.trace_attributes},
                **common,
            )
            run = Run(observation, parent.trace_attributes, parent.root)
        self.runs.add(run_id, run)

    def _trace_attributes(
        self, name: str, tags: list[str] | None, metadata: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A new trace's attributes: the handler's, per-call overrides, the root run's tags."""
        user_id = _text(metadata.get("langfuse_user_id")) or self.user_id
        session_id = _text(metadata.get("langfuse_session_id")) or self.session_id
        trace_name = _text(metadata.get("langfuse_trace_name")) or self.trace_name or name
        merged = convert.trace_tags(self.tags, metadata.get("langfuse_tags"), tags)
        attrs = dict(self.fixed)
        attrs.update(
            trace_attributes(
                user_id=user_id, session_id=session_id, trace_name=trace_name, tags=merged
            )
        )
        return attrs

    # -- running and ending ------------------------------------------------------------------------
    def first_token(self, run_id: UUID) -> None:
        run = self.runs.get(run_id)
        if run is not None and run.first_token_ns is None:
            run.first_token_ns = time.time_ns()

    def pop(self, run_id: UUID) -> Run | None:
        """The run's record, removed; None for unknown runs and hidden ones (not ours to end)."""
        entry = self.runs.pop(run_id)
        if entry is None:
            return None
        run, owned = entry
        return run if owned else None

    def finish(self, run_id: UUID, *, error: BaseException | None = None, **updates: Any) -> None:
        run = self.pop(run_id)
        if run is not None:
            finish(run, error=error, **updates)

    def finish_generation(
        self, run_id: UUID, response: Any, error: BaseException | None = None
    ) -> None:
        run = self.pop(run_id)
        if run is None:
            return
        updates = _generation_fields(run, response) if isinstance(response, LLMResult) else {}
        if run.first_token_ns is not None:
            updates["completion_start_time"] = run.first_token_ns
        finish(run, error=error, **updates)

    def event(self, run_id: UUID, name: str, attributes: Mapping[str, Any]) -> None:
        run = self.runs.get(run_id)
        if run is not None:
            run.observation.span.add_event(name, attributes)
        else:
            log_once("langchain", f"event.{name}", f"{name} for a run that is not traced; skipped")


def finish(run: Run, *, error: BaseException | None = None, **updates: Any) -> None:
    """Record the outcome on the run's observation and end it (ended even if recording fails)."""
    observation = run.observation
    try:
        if error is not None:
            _record(observation, error)
        if updates:
            observation.update(**updates)
    finally:
        observation.end()
        if run.root is run:
            run.ended_ns = time.time_ns()


def _generation_fields(run: Run, response: LLMResult) -> dict[str, Any]:
    """Observation updates for a finished LLM call (response attributes go on the span)."""
    outcome = convert.generation_outcome(response)
    attrs: dict[str, Any] = {}
    if outcome.response_model:
        attrs[semconv.GEN_AI_RESPONSE_MODEL] = outcome.response_model
    if outcome.response_id:
        attrs[semconv.GEN_AI_RESPONSE_ID] = outcome.response_id
    if outcome.finish_reasons:
        attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = outcome.finish_reasons
    if attrs:
        run.observation.span.set_attributes(attrs)
    updates: dict[str, Any] = {}
    if outcome.output is not None:
        updates["output"] = outcome.output
    if outcome.usage:
        updates["usage"] = outcome.usage
    return updates


def _record(observation: Observation, error: BaseException) -> None:
    """An error of the run, or control flow (interrupt, early close) recorded as such."""
    flow = control_flow(error)
    if flow is not None:
        level, message = flow
        observation.update(level=level, status_message=message)
        return
    observation.record_error(error)
    observation.span.set_attributes(error_attributes(error))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def content_limit() -> int:
    """The configured cap on one content attribute (characters)."""
    return runtime.current().max_content_chars


# -- errors -----------------------------------------------------------------------------------
def control_flow(exc: BaseException) -> tuple[str, str] | None:
    """(level, status message) when ``exc`` is control flow, not a failure; else None.

    LangGraph raises ``GraphInterrupt`` (human-in-the-loop) and other
    ``GraphBubbleUp`` subclasses to pause or hand over; a consumer that stops
    iterating a stream closes it with ``GeneratorExit``; a cancelled task gets
    ``CancelledError``. None of them is an error of the run.
    """
    for cls in type(exc).__mro__:
        if cls.__name__ in ("GraphBubbleUp", "GraphInterrupt") and cls.__module__.startswith(
            "langgraph"
        ):
            return "DEFAULT", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, GeneratorExit):
        return "DEFAULT", "stream closed by the consumer before the end"
    if isinstance(exc, asyncio.CancelledError):
        return "WARNING", "cancelled"
    return None


def error_attributes(exc: BaseException) -> dict[str, Any]:
    """``error.type`` by its public name (``openai.InternalServerError``), HTTP status if any."""
    kind = type(exc)
    module = kind.__module__
    if module in ("builtins", "__main__"):
        error_type = kind.__qualname__
    else:
        error_type = f"{module}.{kind.__qualname__}"
        package = sys.modules.get(module.split(".", 1)[0])
        if "._" in module and getattr(package, kind.__name__, None) is kind:
            error_type = f"{module.split('.', 1)[0]}.{kind.__name__}"
    attrs: dict[str, Any] = {"error.type": error_type}
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        attrs["http.response.status_code"] = status
    return attrs
