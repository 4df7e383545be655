"""Reading what the OpenAI SDK returns: whole responses, and streams as they are consumed.

Used by :mod:`otel_llm.integrations.openai`. Everything here reads the SDK's
objects by attribute (``getattr``) or plain dicts by key, so it works across
``openai`` releases and for raw responses parsed from JSON. It never imports
``openai``.

A traced stream stands in for the SDK's ``Stream`` / ``AsyncStream``: it
iterates, closes and works as a context manager exactly like the stream it
wraps (any other attribute is the wrapped stream's), aggregates what passes
through, and ends the observation exactly once: when the stream is exhausted,
fails, is closed, leaves its ``with`` block, or is garbage-collected after an
early ``break``. It attaches no context across yields.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from otel_llm import semconv
from otel_llm.diagnostics import guard
from otel_llm.instrument.observation import UNSET, Observation

__all__ = [
    "GEN_AI_EMBEDDINGS_DIMENSION_COUNT",
    "OPENAI_RESPONSE_SERVICE_TIER",
    "OPENAI_RESPONSE_SYSTEM_FINGERPRINT",
    "ChatStreamAccumulator",
    "Outcome",
    "ResponsesStreamAccumulator",
    "TracedAsyncStream",
    "TracedStream",
    "chat_outcome",
    "embeddings_outcome",
    "finish",
    "get",
    "plain",
    "responses_outcome",
]

OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT = "openai.response.system_fingerprint"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT = "gen_ai.embeddings.dimension.count"

_finish_lock = threading.Lock()  # makes a stream's finish exactly-once across threads


def get(obj: Any, name: str) -> Any:
    """``obj.name`` for SDK objects, ``obj[name]`` for dicts (raw JSON); None when absent."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def plain(obj: Any) -> Any:
    """A JSON-ready copy of an SDK model (``None`` fields dropped); other values as given."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        return dump(exclude_none=True, mode="json")
    return obj


@dataclass
class Outcome:
    """What one call produced, as far as it is known (a stream may stop early)."""

    output: Any = UNSET
    usage: Any = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    completion_start_ns: int | None = None
    error: tuple[str, str] | None = None
    """(error.type, message) reported inside a successful HTTP reply (Responses API)."""


def finish(observation: Observation, outcome: Outcome, end_time: int | None = None) -> None:
    """Put ``outcome`` on the observation and end it."""
    attrs = dict(outcome.attributes)
    if outcome.response_model:
        attrs[semconv.GEN_AI_RESPONSE_MODEL] = outcome.response_model
    if outcome.response_id:
        attrs[semconv.GEN_AI_RESPONSE_ID] = outcome.response_id
    if outcome.finish_reasons:
        attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = outcome.finish_reasons
    fields: dict[str, Any] = {}
    if outcome.error is not None:
        error_type, message = outcome.error
        attrs[semconv.ERROR_TYPE] = error_type
        fields["level"] = "ERROR"
        fields["status_message"] = message
    if attrs:
        observation.span.set_attributes(attrs)
    if outcome.output is not UNSET:
        fields["output"] = outcome.output
    if outcome.usage is not None:
        fields["usage"] = outcome.usage
    if outcome.completion_start_ns is not None:
        fields["completion_start_time"] = outcome.completion_start_ns
    observation.end(end_time=end_time, **fields)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _common_attributes(response: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    tier = _str(get(response, "service_tier"))
    if tier:
        attrs[OPENAI_RESPONSE_SERVICE_TIER] = tier
    fingerprint = _str(get(response, "system_fingerprint"))
    if fingerprint:
        attrs[OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fingerprint
    return attrs


# -- chat completions ---------------------------------------------------------------------
def _chat_message(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"role": get(message, "role") or "assistant"}
    out["content"] = get(message, "content")
    for key in ("refusal", "function_call", "audio"):
        value = get(message, key)
        if value is not None:
            out[key] = plain(value)
    tool_calls = get(message, "tool_calls")
    if tool_calls:
        out["tool_calls"] = [plain(call) for call in tool_calls]
    return out


def chat_outcome(response: Any) -> Outcome:
    """A ``ChatCompletion`` (object or JSON dict)."""
    choices = list(get(response, "choices") or ())
    messages = [_chat_message(get(choice, "message")) for choice in choices]
    reasons = tuple(str(r) for r in (get(c, "finish_reason") for c in choices) if r is not None)
    output: Any = UNSET
    if messages:
        output = messages[0] if len(messages) == 1 else messages
    return Outcome(
        output=output,
        usage=plain(get(response, "usage")),
        response_model=_str(get(response, "model")),
        response_id=_str(get(response, "id")),
        finish_reasons=reasons,
        attributes=_common_attributes(response),
    )


class _Choice:
    __slots__ = ("content", "finish_reason", "function_call", "refusal", "role", "tool_calls")

    def __init__(self) -> None:
        self.role: str | None = None
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.finish_reason: str | None = None
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, Any] | None = None

    def add(self, delta: Any) -> None:
        role = get(delta, "role")
        if role and self.role is None:
            self.role = role
        content = get(delta, "content")
        if isinstance(content, str) and content:
            self.content.append(content)
        refusal = get(delta, "refusal")
        if isinstance(refusal, str) and refusal:
            self.refusal.append(refusal)
        for call in get(delta, "tool_calls") or ():
            index = get(call, "index")
            slot = self.tool_calls.setdefault(
                index if isinstance(index, int) else len(self.tool_calls),
                {"id": None, "type": None, "name": None, "arguments": []},
            )
            _merge_call(slot, call)
        legacy = get(delta, "function_call")
        if legacy is not None:
            if self.function_call is None:
                self.function_call = {"id": None, "type": None, "name": None, "arguments": []}
            _merge_call(self.function_call, None, legacy)

    def message(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role or "assistant"}
        out["content"] = "".join(self.content) if self.content else None
        if self.refusal:
            out["refusal"] = "".join(self.refusal)
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": slot["id"],
                    "type": slot["type"] or "function",
                    "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
                }
                for _, slot in sorted(self.tool_calls.items())
            ]
        if self.function_call is not None:
            out["function_call"] = {
                "name": self.function_call["name"],
                "arguments": "".join(self.function_call["arguments"]),
            }
        return out


def _merge_call(slot: dict[str, Any], call: Any, function: Any = None) -> None:
    """One tool-call delta: id, type and name arrive once; arguments arrive in pieces."""
    if call is not None:
        function = get(call, "function")
        for key in ("id", "type"):
            value = get(call, key)
            if value and slot[key] is None:
                slot[key] = value
    if function is None:
        return
    name = get(function, "name")
    if name and slot["name"] is None:
        slot["name"] = name
    arguments = get(function, "arguments")
    if isinstance(arguments, str) and arguments:
        slot["arguments"].append(arguments)


class ChatStreamAccumulator:
    """Aggregates ``ChatCompletionChunk`` s: text and tool-call deltas per choice, usage."""

    __slots__ = ("_attributes", "_choices", "_id", "_model", "_usage")

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._id: str | None = None
        self._model: str | None = None
        self._usage: Any = None
        self._attributes: dict[str, Any] = {}

    def add(self, chunk: Any) -> None:
        if self._id is None:
            self._id = _str(get(chunk, "id"))
            self._model = _str(get(chunk, "model"))
            self._attributes = _common_attributes(chunk)
        usage = get(chunk, "usage")
        if usage is not None:
            self._usage = usage
        for choice in get(chunk, "choices") or ():
            index = get(choice, "index")
            acc = self._choices.get(index)
            if acc is None:
                acc = self._choices[index] = _Choice()
            delta = get(choice, "delta")
            if delta is not None:
                acc.add(delta)
            reason = get(choice, "finish_reason")
            if reason is not None:
                acc.finish_reason = str(reason)

    def outcome(self) -> Outcome:
        ordered = [self._choices[i] for i in sorted(self._choices, key=_index_key)]
        messages = [choice.message() for choice in ordered]
        output: Any = UNSET
        if messages:
            output = messages[0] if len(messages) == 1 else messages
        reasons = tuple(c.finish_reason for c in ordered if c.finish_reason is not None)
        return Outcome(
            output=output,
            usage=plain(self._usage),
            response_model=self._model,
            response_id=self._id,
            finish_reasons=reasons,
            attributes=dict(self._attributes),
        )


def _index_key(index: Any) -> tuple[int, str]:
    return (index, "") if isinstance(index, int) else (1 << 30, str(index))


# -- embeddings ---------------------------------------------------------------------------
def embeddings_outcome(response: Any) -> Outcome:
    """A ``CreateEmbeddingResponse``: usage and shape, never the vectors themselves."""
    data = list(get(response, "data") or ())
    output: dict[str, Any] = {"embeddings": len(data)}
    attrs: dict[str, Any] = {}
    first = get(data[0], "embedding") if data else None
    if isinstance(first, (list, tuple)):
        output["dimensions"] = len(first)
        attrs[GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = len(first)
    return Outcome(
        output=output,
        usage=plain(get(response, "usage")),
        response_model=_str(get(response, "model")),
        attributes=attrs,
    )


# -- responses API --------------------------------------------------------------------------
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _item_text(item: Any) -> str:
    parts = []
    for part in get(item, "content") or ():
        text = get(part, "text")
        if get(part, "type") == "output_text" and isinstance(text, str):
            parts.append(text)
        refusal = get(part, "refusal")
        if isinstance(refusal, str):
            parts.append(refusal)
    return "".join(parts)


def _responses_output(items: list[Any]) -> Any:
    """Messages and function calls as one chat-style assistant message; anything else as given."""
    kinds = {get(item, "type") for item in items}
    if not items or not kinds <= {"message", "function_call"}:
        return [plain(item) for item in items] if items else UNSET
    texts = [_item_text(item) for item in items if get(item, "type") == "message"]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    calls = [
        {
            "id": get(item, "call_id") or get(item, "id"),
            "type": "function",
            "function": {"name": get(item, "name"), "arguments": get(item, "arguments")},
        }
        for item in items
        if get(item, "type") == "function_call"
    ]
    if calls:
        message["tool_calls"] = calls
    return message


def _responses_finish_reason(response: Any, items: list[Any]) -> str | None:
    status = get(response, "status")
    if status == "completed":
        calls = any(get(item, "type") == "function_call" for item in items)
        return "tool_calls" if calls else "stop"
    if status == "incomplete":
        reason = get(get(response, "incomplete_details"), "reason")
        return _INCOMPLETE_REASONS.get(str(reason), str(reason or "incomplete"))
    if status == "failed":
        return "error"
    return str(status) if isinstance(status, str) and status else None


def responses_outcome(response: Any) -> Outcome:
    """A Responses API ``Response`` (object or JSON dict)."""
    items = list(get(response, "output") or ())
    reason = _responses_finish_reason(response, items)
    outcome = Outcome(
        output=_responses_output(items),
        usage=plain(get(response, "usage")),
        response_model=_str(get(response, "model")),
        response_id=_str(get(response, "id")),
        finish_reasons=(reason,) if reason else (),
        attributes=_common_attributes(response),
    )
    error = get(response, "error")
    if error is not None and get(response, "status") == "failed":
        code = get(error, "code")
        outcome.error = (str(code or "response.failed"), str(get(error, "message") or code))
    return outcome


_LIFECYCLE_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStreamAccumulator:
    """Aggregates Responses API stream events; the final response wins when it arrives."""

    __slots__ = ("_calls", "_error", "_final", "_partial", "_started", "_texts")

    def __init__(self) -> None:
        self._texts: dict[int, list[str]] = {}
        self._calls: dict[int, dict[str, Any]] = {}
        self._final: Any = None
        self._partial: Any = None
        self._error: tuple[str, str] | None = None
        self._started = False

    def is_first_chunk(self, event: Any) -> bool:
        """True for the first event that carries output (lifecycle events do not)."""
        if self._started or get(event, "type") in _LIFECYCLE_EVENTS:
            return False
        self._started = True
        return True

    def add(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "response.output_text.delta":
            delta = get(event, "delta")
            if isinstance(delta, str):
                self._texts.setdefault(_int(get(event, "output_index")), []).append(delta)
        elif kind == "response.function_call_arguments.delta":
            slot = self._call(get(event, "output_index"))
            delta = get(event, "delta")
            if isinstance(delta, str):
                slot["arguments"].append(delta)
        elif kind == "response.output_item.added":
            item = get(event, "item")
            if get(item, "type") == "function_call":
                slot = self._call(get(event, "output_index"))
                slot["id"] = get(item, "call_id") or get(item, "id")
                slot["name"] = get(item, "name")
        elif kind in _FINAL_EVENTS:
            self._final = get(event, "response")
        elif kind in _LIFECYCLE_EVENTS:
            self._partial = get(event, "response")
        elif kind == "error":
            code = get(event, "code")
            self._error = (str(code or "error"), str(get(event, "message") or code or "error"))

    def _call(self, index: Any) -> dict[str, Any]:
        return self._calls.setdefault(_int(index), {"id": None, "name": None, "arguments": []})

    def outcome(self) -> Outcome:
        if self._final is not None:
            outcome = responses_outcome(self._final)
        else:  # the stream stopped early: what arrived so far
            partial = self._partial
            message: dict[str, Any] = {"role": "assistant", "content": None}
            if self._texts:
                message["content"] = "".join("".join(self._texts[i]) for i in sorted(self._texts))
            if self._calls:
                message["tool_calls"] = [
                    {
                        "id": slot["id"],
                        "type": "function",
                        "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
                    }
                    for _, slot in sorted(self._calls.items())
                ]
            started = self._texts or self._calls
            outcome = Outcome(
                output=message if started else UNSET,
                response_model=_str(get(partial, "model")),
                response_id=_str(get(partial, "id")),
                attributes=_common_attributes(partial) if partial is not None else {},
            )
        if self._error is not None and outcome.error is None:
            outcome.error = self._error
        return outcome


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


# -- traced streams -----------------------------------------------------------------------
_OWN = frozenset({"_inner", "_tracker"})


class _Tracker:
    """The bookkeeping both stream wrappers share (the span, timing, aggregation)."""

    __slots__ = ("acc", "broken", "done", "first_ns", "last_ns", "observation", "on_error")

    def __init__(self, observation: Observation, acc: Any, on_error: Any) -> None:
        self.observation = observation
        self.acc = acc
        self.on_error = on_error
        self.first_ns: int | None = None
        self.last_ns = time.time_ns()
        self.done = False
        self.broken = False

    def item(self, item: Any) -> None:
        now = self.last_ns = time.time_ns()
        if self.done or self.broken:
            return
        with guard("openai.stream"):
            acc = self.acc
            if self.first_ns is None:
                first = getattr(acc, "is_first_chunk", None)
                if first is None or first(item):
                    self.first_ns = now
            acc.add(item)
            return
        self.broken = True  # counted once; the stream itself goes on untouched

    def finish(self, exc: BaseException | None = None, *, abandoned: bool = False) -> None:
        with _finish_lock:
            if self.done:
                return
            self.done = True
        observation = self.observation
        with guard("openai.stream"):
            outcome: Outcome = self.acc.outcome()
            outcome.completion_start_ns = self.first_ns
            if exc is not None:
                self.on_error(observation, exc)
            if abandoned:
                # Dropped unfinished (early break): the span ends at the last chunk taken.
                observation.span.set_attribute(semconv.OBSERVATION_AUTO_ENDED, True)
            finish(observation, outcome, end_time=self.last_ns if abandoned else None)
        observation.end()  # no-op unless the bookkeeping above failed


class _TracedBase:
    """What both stream stand-ins share: they pose as the SDK stream they wrap."""

    __slots__ = ("__weakref__", "_inner", "_tracker")

    def __init__(self, inner: Any, observation: Observation, acc: Any, on_error: Any) -> None:
        self._inner = inner
        self._tracker = _Tracker(observation, acc, on_error)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(stream, openai.Stream) stays true
        return type(self._inner)

    def __getattr__(self, name: str) -> Any:
        if name in _OWN:
            raise AttributeError(name)  # not initialized: never recurse
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)

    def __del__(self) -> None:
        tracker = getattr(self, "_tracker", None)
        if tracker is not None and not tracker.done:
            tracker.finish(abandoned=True)

    def __repr__(self) -> str:
        return repr(self._inner)


class TracedStream(_TracedBase):
    """Stands in for an SDK ``Stream``; see the module docstring."""

    __slots__ = ()

    def __iter__(self) -> TracedStream:
        return self

    def __next__(self) -> Any:
        try:
            item = self._inner.__next__()
        except StopIteration:
            self._tracker.finish()
            raise
        except BaseException as exc:
            self._tracker.finish(exc)
            raise
        self._tracker.item(item)
        return item

    def __enter__(self) -> TracedStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._inner.__exit__(exc_type, exc, tb)
        finally:
            self._tracker.finish()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._tracker.finish()


class TracedAsyncStream(_TracedBase):
    """Stands in for an SDK ``AsyncStream``; see the module docstring."""

    __slots__ = ()

    def __aiter__(self) -> TracedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._inner.__anext__()
        except StopAsyncIteration:
            self._tracker.finish()
            raise
        except BaseException as exc:
            self._tracker.finish(exc)
            raise
        self._tracker.item(item)
        return item

    async def __aenter__(self) -> TracedAsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._inner.__aexit__(exc_type, exc, tb)
        finally:
            self._tracker.finish()

    async def close(self) -> None:
        try:
            await self._inner.close()
        finally:
            self._tracker.finish()

    async def aclose(self) -> None:
        await self.close()
