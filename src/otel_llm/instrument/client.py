"""The stateful style of the Langfuse v2 tutorials (``client.trace().span().end()``) on OTel.

A trace is a root span; its spans, generations and events are child spans. The
objects may be updated and ended from any thread. Objects nobody ended are ended
at their last activity when they are garbage-collected, when ``client.flush()``
runs in the task or thread that created them, or at interpreter exit, so the
tutorials' habit of updating a generation without ending it loses nothing.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from otel_llm import runtime, semconv
from otel_llm.context import trace_attributes
from otel_llm.diagnostics import guard
from otel_llm.instrument.current import score as _score
from otel_llm.instrument.observation import UNSET, Observation, start_observation
from otel_llm.serialize import to_attribute

__all__ = ["Client", "ObservationClient", "TraceClient", "end_all_open"]

_open: weakref.WeakSet[_Stateful] = weakref.WeakSet()  # every not-yet-ended stateful object
_open_lock = threading.Lock()


class _Owner:
    """The thread and asyncio task that created a stateful object.

    ``client.flush()`` ends the open objects of the calling task/thread, and those
    whose creator is gone (task done, thread exited): nobody else can end them.
    Objects of other live requests are left alone.
    """

    __slots__ = ("_task", "_thread")

    def __init__(self) -> None:
        self._thread = weakref.ref(threading.current_thread())
        task = None
        # No task can run before asyncio is imported: apps without it never load it here.
        asyncio = sys.modules.get("asyncio")
        if asyncio is not None:
            with contextlib.suppress(RuntimeError):  # no running event loop
                task = asyncio.current_task()
        self._task = weakref.ref(task) if task is not None else None

    def may_be_ended_by(self, caller: _Owner) -> bool:
        if self._task is not None:
            task = self._task()
            if task is None or task.done():
                return True
            return caller._task is not None and caller._task() is task
        thread = self._thread()
        if thread is None or not thread.is_alive():
            return True
        return caller._task is None and caller._thread() is thread


class _Stateful:
    """Shared by traces and observations: the wrapped Observation and auto-ending."""

    def __init__(self, observation: Observation, trace: TraceClient | None) -> None:
        self._observation = observation
        self._trace = trace
        self._owner = _Owner()
        self._serial = time.monotonic_ns()
        with _open_lock:
            _open.add(self)
        weakref.finalize(self, observation._end_idle)

    @property
    def id(self) -> str:
        return self._observation.id

    @property
    def trace_id(self) -> str:
        return self._observation.trace_id

    @property
    def observation(self) -> Observation:
        return self._observation

    def _touch(self) -> None:
        if self._trace is not None:
            self._trace._observation._last_activity_ns = time.time_ns()

    def _end(self, **fields: Any) -> None:
        self._observation.end(**fields)
        self._touch()
        with _open_lock:
            _open.discard(self)

    def _child(self, as_type: str, name: str | None, kwargs: dict[str, Any]) -> ObservationClient:
        trace = self._trace if self._trace is not None else self
        assert isinstance(trace, TraceClient)
        return trace._start(as_type, name, self._observation, kwargs)

    def span(self, name: str | None = None, **kwargs: Any) -> ObservationClient:
        """A child span; ``as_type=`` makes it a tool, retriever, agent, chain, ..."""
        return self._child(kwargs.pop("as_type", "span"), name, kwargs)

    def generation(self, name: str | None = None, **kwargs: Any) -> ObservationClient:
        """A child LLM call: ``model``, ``model_parameters``, ``usage``, ``prompt`` ..."""
        return self._child("generation", name, kwargs)

    def event(self, name: str | None = None, **kwargs: Any) -> ObservationClient:
        """A zero-duration child observation."""
        child = self._child("event", name, kwargs)
        child.end()
        return child

    def score(
        self,
        name: str,
        value: float | str | bool,
        *,
        data_type: str | None = None,
        comment: str | None = None,
    ) -> None:
        observation_id = None if isinstance(self, TraceClient) else self.id
        _score(
            name,
            value,
            trace_id=self.trace_id,
            observation_id=observation_id,
            data_type=data_type,
            comment=comment,
        )


class ObservationClient(_Stateful):
    """A span, generation or event inside a stateful trace."""

    def update(self, **fields: Any) -> ObservationClient:
        """Set fields (input, output, metadata, model, usage, level, ...)."""
        self._observation.update(**fields)
        self._touch()
        return self

    def end(self, **fields: Any) -> ObservationClient:
        """Apply final fields (e.g. ``output=``) and end, once; later calls do nothing."""
        self._end(**fields)
        return self

    def __repr__(self) -> str:
        return f"ObservationClient({self._observation!r})"


class TraceClient(_Stateful):
    """One trace: its root span carries the trace's name, user, session, input and output."""

    def __init__(self, observation: Observation, attributes: dict[str, Any]) -> None:
        super().__init__(observation, None)
        self._attributes = attributes  # trace-level attributes stamped on every child

    def _start(
        self, as_type: str, name: str | None, parent: Observation, kwargs: dict[str, Any]
    ) -> ObservationClient:
        kwargs.pop("parent_observation_id", None)  # resolved by the caller below
        observation = start_observation(
            name or as_type,
            as_type=as_type,
            parent=parent,
            attributes=self._attributes,
            **_observation_kwargs(kwargs),
        )
        leftover = {k: v for k, v in kwargs.items() if k not in _START_FIELDS}
        if leftover:
            observation.update(**leftover)  # counts unknown names, never raises
        self._touch()
        return ObservationClient(observation, self)

    def span(self, name: str | None = None, **kwargs: Any) -> ObservationClient:
        as_type = kwargs.pop("as_type", "span")
        return self._start(as_type, name, self._parent_for(kwargs), kwargs)

    def generation(self, name: str | None = None, **kwargs: Any) -> ObservationClient:
        return self._start("generation", name, self._parent_for(kwargs), kwargs)

    def event(self, name: str | None = None, **kwargs: Any) -> ObservationClient:
        child = self._start("event", name, self._parent_for(kwargs), kwargs)
        child.end()
        return child

    def _parent_for(self, kwargs: dict[str, Any]) -> Observation:
        wanted = kwargs.get("parent_observation_id")
        if wanted:
            with _open_lock:
                candidates = list(_open)
            for item in candidates:
                if item.id == wanted and item.trace_id == self.trace_id:
                    return item.observation
        return self._observation

    def update(
        self,
        *,
        name: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        release: str | None = None,
        version: str | None = None,
        input: Any = UNSET,
        output: Any = UNSET,
        level: str | None = None,
        status_message: str | None = None,
        **unknown: Any,
    ) -> TraceClient:
        """Change trace fields; ``level="ERROR"`` marks the trace's root span failed."""
        with guard("trace.update"):
            attrs = trace_attributes(
                trace_name=name,
                user_id=user_id,
                session_id=session_id,
                release=release,
                version=version,
                tags=tuple(str(t) for t in tags) if tags else (),
                metadata=metadata,
            )
            self._attributes = {**self._attributes, **attrs}
            limit = runtime.current().max_content_chars
            if input is not UNSET:
                attrs[semconv.TRACE_INPUT] = to_attribute(input, max_chars=limit)
            if output is not UNSET:
                attrs[semconv.TRACE_OUTPUT] = to_attribute(output, max_chars=limit)
            root = self._observation
            if attrs and not root.ended:
                root.span.set_attributes(attrs)
            root.update(
                name=name,
                input=input,
                output=output,
                level=level,
                status_message=status_message,
                **unknown,
            )
            processor = runtime.current().processor
            if processor is not None and attrs:
                processor.update_trace(int(self.trace_id, 16), self._attributes)
        return self

    def end(self, **fields: Any) -> TraceClient:
        """End the trace's root span now (otherwise it ends at its last activity later)."""
        self._end(**fields)
        return self

    def __repr__(self) -> str:
        return f"TraceClient(id={self.trace_id})"


_START_FIELDS = (
    "input",
    "metadata",
    "model",
    "model_parameters",
    "usage",
    "level",
    "status_message",
    "prompt",
    "cost",
    "completion_start_time",
    "start_time",
)


def _observation_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {k: kwargs[k] for k in _START_FIELDS if k in kwargs}
    start_time = out.get("start_time")
    if start_time is not None and not isinstance(start_time, int):
        from otel_llm.instrument.fields import completion_start_ns

        out["start_time"] = completion_start_ns(start_time)
    return out


class Client:
    """Entry point of the stateful API; takes the Langfuse constructor's arguments.

    With ``public_key``/``secret_key``/``host`` (or the LANGFUSE_* variables when
    nothing is configured yet) a Langfuse destination is added to the pipeline,
    so moving from ``Langfuse(...)`` is a one-line change.
    """

    def __init__(
        self,
        public_key: str | None = None,
        secret_key: str | None = None,
        host: str | None = None,
        **options: Any,
    ) -> None:
        from otel_llm.instrument.client_setup import ensure_pipeline

        ensure_pipeline(public_key, secret_key, host, options)

    def trace(
        self,
        name: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        input: Any = UNSET,
        output: Any = UNSET,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        id: str | None = None,
        release: str | None = None,
        version: str | None = None,
        **unknown: Any,
    ) -> TraceClient:
        """Start a trace; ``id`` (32 hex digits) chooses its trace id."""
        attrs = trace_attributes(
            trace_name=name,
            user_id=user_id,
            session_id=session_id,
            release=release,
            version=version,
            tags=tuple(str(t) for t in tags) if tags else (),
            metadata=metadata,
        )
        limit = runtime.current().max_content_chars
        root_attrs = dict(attrs)
        if input is not UNSET:
            root_attrs[semconv.TRACE_INPUT] = to_attribute(input, max_chars=limit)
        if output is not UNSET:
            root_attrs[semconv.TRACE_OUTPUT] = to_attribute(output, max_chars=limit)
        observation = start_observation(
            name or "trace",
            as_type="span",
            input=input,
            trace_id=id,
            attributes=root_attrs,
        )
        if output is not UNSET:
            observation.update(output=output)
        if unknown:
            observation.update(**unknown)
        processor = runtime.current().processor
        if processor is not None and attrs:
            # Spans of other instrumentation started inside this trace get them too.
            processor.update_trace(int(observation.trace_id, 16), attrs)
        return TraceClient(observation, attrs)

    def score(self, name: str, value: float | str | bool, **kwargs: Any) -> None:
        _score(name, value, **kwargs)

    def flush(self, timeout: float = 5.0) -> bool:
        """End what this task/thread left open, then deliver everything recorded so far."""
        end_all_open(caller=_Owner())
        pipeline = runtime.current().pipeline
        return pipeline.flush(timeout) if pipeline is not None else True

    def shutdown(self, timeout: float = 5.0) -> bool:
        end_all_open()
        pipeline = runtime.current().pipeline
        return pipeline.shutdown(timeout) if pipeline is not None else True


def end_all_open(caller: _Owner | None = None) -> None:
    """End open stateful objects (children before traces) that ``caller`` may end, or all."""
    with _open_lock:
        items = [item for item in _open if caller is None or item._owner.may_be_ended_by(caller)]
    items.sort(key=lambda item: (isinstance(item, TraceClient), -item._serial))
    for item in items:
        with guard("client.auto_end"):
            item._observation._end_idle()
            with _open_lock:
                _open.discard(item)
