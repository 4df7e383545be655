"""OpenAI SDK integration: one observation per API call, for ``openai>=1``.

:func:`instrument_openai` patches the SDK's resource classes (not your client
instances), so every client, sync or async, made before or after, is traced:

- ``chat.completions.create`` / ``.parse`` → a ``generation`` named ``chat {model}``
- ``responses.create`` / ``.parse`` → a ``generation`` named ``chat {model}``
- ``embeddings.create`` → an ``embedding`` named ``embeddings {model}``

Each observation carries the provider (from the client's base URL), the request
model and parameters, the messages as given, the tool definitions
(``gen_ai.tool.definitions``), the assistant message, response model/id, finish
reasons and the provider's usage as returned (the processor normalizes it).
Streams are traced until they end and report the time to the first chunk.

The request is never changed (no ``stream_options`` injected): a stream carries
usage only when you ask for it with ``stream_options={"include_usage": True}``.
Errors are recorded and re-raised unchanged. Our own failures are counted in
``stats()`` and never reach your code.

``with_raw_response`` calls are traced (the SDK calls the patched method). A
``with_raw_response`` wrapper built *before* ``instrument_openai()`` keeps the
method it was built with, and is not traced; raw streaming responses and
``with_streaming_response`` are traced without their output (we never read a
body you have not read).
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api

from otel_llm import runtime, semconv
from otel_llm.diagnostics import guard, log_once
from otel_llm.instrument.observation import UNSET, Observation, start_observation
from otel_llm.integrations import _openai_streams as streams
from otel_llm.integrations._calls import llm_call_recorded
from otel_llm.serialize import to_json

__all__ = ["instrument_openai", "uninstrument_openai"]

# semconv v1.41 keys not (yet) in otel_llm.semconv
_SERVER_ADDRESS = "server.address"
_SERVER_PORT = "server.port"
_HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
_GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
_GEN_AI_REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"

_PROVIDER_OPENAI = "openai"
_PROVIDER_AZURE = "azure.ai.openai"
_PROVIDER_BEDROCK = "aws.bedrock"
_PROVIDER_VERTEX = "gcp.vertex_ai"

_MARK = "__otel_llm_original__"
"""Attribute of our wrappers holding the function they wrap."""


@dataclass(frozen=True)
class _Target:
    module: str
    cls: str
    method: str
    kind: str  # "chat" | "responses" | "embeddings"
    is_async: bool


_TARGETS = (
    _Target("openai.resources.chat.completions", "Completions", "create", "chat", False),
    _Target("openai.resources.chat.completions", "AsyncCompletions", "create", "chat", True),
    _Target("openai.resources.chat.completions", "Completions", "parse", "chat", False),
    _Target("openai.resources.chat.completions", "AsyncCompletions", "parse", "chat", True),
    # openai 1.40 - 1.92 had the structured-output helper under beta
    _Target("openai.resources.beta.chat.completions", "Completions", "parse", "chat", False),
    _Target("openai.resources.beta.chat.completions", "AsyncCompletions", "parse", "chat", True),
    _Target("openai.resources.embeddings", "Embeddings", "create", "embeddings", False),
    _Target("openai.resources.embeddings", "AsyncEmbeddings", "create", "embeddings", True),
    _Target("openai.resources.responses", "Responses", "create", "responses", False),
    _Target("openai.resources.responses", "AsyncResponses", "create", "responses", True),
    _Target("openai.resources.responses", "Responses", "parse", "responses", False),
    _Target("openai.resources.responses", "AsyncResponses", "parse", "responses", True),
)

_CHAT_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "n",
    "frequency_penalty",
    "presence_penalty",
    "reasoning_effort",
    "verbosity",
    "service_tier",
    "tool_choice",
    "parallel_tool_calls",
    "logprobs",
    "top_logprobs",
)
_RESPONSES_PARAMETERS = (
    "temperature",
    "top_p",
    "max_output_tokens",
    "max_tool_calls",
    "reasoning",
    "service_tier",
    "tool_choice",
    "parallel_tool_calls",
    "truncation",
    "top_logprobs",
)
_EMBEDDINGS_PARAMETERS = ("dimensions", "encoding_format")

_lock = threading.Lock()
_installed: dict[tuple[type, str], tuple[Callable[..., Any], Callable[..., Any]]] = {}
"""(class, method) → (original, our wrapper); guarded by _lock."""
_enabled = False  # read without the lock on every call; written under it
_in_call: ContextVar[bool] = ContextVar("otel_llm_openai_in_call", default=False)
"""True inside a traced call: an SDK method calling another patched one adds no span."""
_sentinels: tuple[type, ...] = ()  # openai.NotGiven / openai.Omit: "not given" values
_stream_types: tuple[type, ...] = ()  # openai.Stream / openai.AsyncStream


def instrument_openai() -> None:
    """Trace the OpenAI SDK's chat completions, responses and embeddings calls.

    Idempotent: calling it again adds nothing. Undo with :func:`uninstrument_openai`.

    Raises:
        ImportError: ``openai`` is not installed (``pip install 'otel-llm[openai]'``).
    """
    try:
        import openai
    except ImportError as exc:
        raise ImportError(
            "otel_llm.instrument_openai() needs the openai package: pip install 'otel-llm[openai]'"
        ) from exc
    global _enabled, _sentinels, _stream_types
    with _lock:
        _sentinels = _types(openai, "NotGiven", "Omit")
        _stream_types = _types(openai, "Stream", "AsyncStream")
        for target in _TARGETS:
            cls = _resolve(target)
            if cls is None:
                continue
            current = cls.__dict__.get(target.method)
            if current is None or not callable(current):
                continue
            if getattr(current, _MARK, None) is not None:
                continue  # ours already (possibly under someone else's wrapper)
            wrapper = _wrap(current, target)
            setattr(cls, target.method, wrapper)
            _installed[(cls, target.method)] = (current, wrapper)
        _enabled = True


def uninstrument_openai() -> None:
    """Restore the SDK's original methods; calls are no longer traced.

    A method someone else wrapped after us cannot be restored without removing
    their wrapper: ours stays in their chain but stops tracing.
    """
    global _enabled
    with _lock:
        _enabled = False
        for (cls, method), (original, wrapper) in list(_installed.items()):
            if cls.__dict__.get(method) is wrapper:
                setattr(cls, method, original)
                del _installed[(cls, method)]
            else:
                log_once(
                    "openai",
                    "uninstrument.rewrapped",
                    f"{cls.__name__}.{method} was wrapped again after instrument_openai(); "
                    "left in place, tracing disabled",
                )


def _types(module: Any, *names: str) -> tuple[type, ...]:
    found = (getattr(module, name, None) for name in names)
    return tuple(t for t in found if isinstance(t, type))


def _resolve(target: _Target) -> type | None:
    try:
        module = importlib.import_module(target.module)
    except ImportError:
        return None  # this openai release has no such resource
    cls = getattr(module, target.cls, None)
    return cls if isinstance(cls, type) else None


def _wrap(original: Callable[..., Any], target: _Target) -> Callable[..., Any]:
    if target.is_async:

        @functools.wraps(original)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not _enabled or _in_call.get() or llm_call_recorded.get():
                return await original(self, *args, **kwargs)
            call = _begin(target, self, kwargs)
            if call is None:
                return await original(self, *args, **kwargs)
            flag = _in_call.set(True)
            token = otel_context.attach(trace_api.set_span_in_context(call.observation.span))
            try:
                result = await original(self, *args, **kwargs)
            except BaseException as exc:
                otel_context.detach(token)
                _in_call.reset(flag)
                call.fail(exc)
                raise
            otel_context.detach(token)
            _in_call.reset(flag)
            return call.succeed(result, is_async=True)

        setattr(async_wrapper, _MARK, original)
        return async_wrapper

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _enabled or _in_call.get() or llm_call_recorded.get():
            return original(self, *args, **kwargs)
        call = _begin(target, self, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        flag = _in_call.set(True)
        token = otel_context.attach(trace_api.set_span_in_context(call.observation.span))
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            _in_call.reset(flag)
            call.fail(exc)
            raise
        otel_context.detach(token)
        _in_call.reset(flag)
        return call.succeed(result, is_async=False)

    setattr(wrapper, _MARK, original)
    return wrapper


def _begin(target: _Target, resource: Any, kwargs: Mapping[str, Any]) -> _Call | None:
    with guard("openai.request"):
        return _Call(target, resource, kwargs)
    return None


class _Call:
    """One traced API call: the observation and what is needed to finish it."""

    __slots__ = ("kind", "observation", "stream")

    def __init__(self, target: _Target, resource: Any, kwargs: Mapping[str, Any]) -> None:
        self.kind = target.kind
        self.stream = kwargs.get("stream") is True
        model = kwargs.get("model")
        model = model if isinstance(model, str) and model else None
        as_type = "embedding" if self.kind == "embeddings" else "generation"
        operation = semconv.OPERATION_BY_TYPE[as_type]
        attrs = _endpoint_attributes(getattr(resource, "_client", None))
        max_chars = runtime.current().max_content_chars
        if self.kind == "embeddings":
            input_ = _readable(kwargs.get("input"))
            params = _parameters(kwargs, _EMBEDDINGS_PARAMETERS)
            encoding = params.get("encoding_format")
            if isinstance(encoding, str):
                attrs[_GEN_AI_REQUEST_ENCODING_FORMATS] = (encoding,)
            dimensions = params.get("dimensions")
            if isinstance(dimensions, int) and not isinstance(dimensions, bool):
                attrs[streams.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
        else:
            if self.kind == "chat":
                input_ = _readable(kwargs.get("messages"))
                params = _parameters(kwargs, _CHAT_PARAMETERS)
                tools = _tool_definitions(kwargs.get("tools"), kwargs.get("functions"))
            else:
                input_ = _responses_input(kwargs.get("input"), kwargs.get("instructions"))
                params = _parameters(kwargs, _RESPONSES_PARAMETERS)
                tools = _tool_definitions(kwargs.get("tools"), None)
                conversation = _conversation_id(kwargs.get("conversation"))
                if conversation:
                    attrs[semconv.GEN_AI_CONVERSATION_ID] = conversation
            attrs[_GEN_AI_REQUEST_STREAM] = self.stream
            if tools:
                attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = to_json(tools, max_chars=max_chars)
        self.observation = start_observation(
            f"{operation} {model}" if model else operation,
            as_type=as_type,
            input=input_,
            model=model,
            model_parameters=params or None,
            attributes=attrs,
        )

    def fail(self, exc: BaseException) -> None:
        with guard("openai.error"):
            _record_error(self.observation, exc)
        self.observation.end()

    def succeed(self, result: Any, *, is_async: bool) -> Any:
        """The SDK's result, possibly wrapped (streams); ends the observation otherwise."""
        observation = self.observation
        with guard("openai.response"):
            return self._handle(result, is_async)
        observation.end()  # our bookkeeping failed: keep the span, return the result untouched
        return result

    def _handle(self, result: Any, is_async: bool) -> Any:
        observation = self.observation
        if not observation.span.is_recording():  # sampled out / no provider: nothing to add
            observation.end()
            return result
        if _is_stream(result):
            acc: Any = (
                streams.ResponsesStreamAccumulator()
                if self.kind == "responses"
                else streams.ChatStreamAccumulator()
            )
            wrapper = streams.TracedAsyncStream if is_async else streams.TracedStream
            return wrapper(result, observation, acc, _record_error)
        if _is_raw_response(result):
            body = _raw_body(result, self.stream)
            if body is None:  # unread (streaming) body: ours to leave alone
                observation.end()
                return result
            result_view: Any = body
        else:
            result_view = result
        outcome = _OUTCOMES[self.kind](result_view)
        streams.finish(observation, outcome)
        return result


_OUTCOMES: dict[str, Callable[[Any], streams.Outcome]] = {
    "chat": streams.chat_outcome,
    "responses": streams.responses_outcome,
    "embeddings": streams.embeddings_outcome,
}


def _is_stream(result: Any) -> bool:
    return isinstance(result, _stream_types)


def _is_raw_response(result: Any) -> bool:
    return hasattr(result, "http_response") and callable(getattr(result, "parse", None))


def _raw_body(result: Any, stream: bool) -> Any:
    """The JSON of a raw response whose body the SDK already read, else None."""
    response = result.http_response
    if stream or not getattr(response, "is_closed", False):
        return None
    return response.json()


def _record_error(observation: Observation, exc: BaseException) -> None:
    observation.record_error(exc)
    attrs: dict[str, Any] = {semconv.ERROR_TYPE: _error_type(exc)}
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        attrs[_HTTP_RESPONSE_STATUS_CODE] = status
    observation.span.set_attributes(attrs)


def _error_type(exc: BaseException) -> str:
    """``openai.RateLimitError`` rather than the private module that defines it."""
    kind = type(exc)
    module = sys.modules.get("openai")
    if (
        kind.__module__.startswith("openai")
        and module is not None
        and getattr(module, kind.__name__, None) is kind
    ):
        return f"openai.{kind.__name__}"
    if kind.__module__ in ("builtins", "__main__"):
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


# -- request side -----------------------------------------------------------------------------
def _given(value: Any) -> bool:
    return value is not None and not isinstance(value, _sentinels)


def _readable(value: Any) -> Any:
    """The value if reading it cannot consume it (an iterator passed as input is left alone)."""
    if not _given(value):
        return UNSET
    if isinstance(value, (str, bytes, Mapping, Sequence)):
        return value
    return UNSET


def _parameters(kwargs: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: kwargs[name] for name in names if name in kwargs and _given(kwargs[name])}


def _responses_input(value: Any, instructions: Any) -> Any:
    """Instructions first (as a system message), then the input as given."""
    items = _readable(value)
    if not (isinstance(instructions, str) and instructions):
        return items
    messages: list[Any] = [{"role": "system", "content": instructions}]
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, Sequence) and not isinstance(items, (bytes, Mapping)):
        messages.extend(items)
    return messages


def _conversation_id(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    conversation_id = streams.get(value, "id") if _given(value) else None
    return conversation_id if isinstance(conversation_id, str) and conversation_id else None


def _tool_definitions(tools: Any, functions: Any) -> list[dict[str, Any]]:
    """semconv ``gen_ai.tool.definitions``: ``{type, name, description?, parameters?}`` each."""
    out: list[dict[str, Any]] = []
    for tool in _items(tools):
        definition = _tool_definition(tool)
        if definition is not None:
            out.append(definition)
    for function in _items(functions):
        definition = _function_definition("function", function)
        if definition is not None:
            out.append(definition)
    return out


def _items(value: Any) -> Sequence[Any]:
    value = _readable(value)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return value
    return ()


def _tool_definition(tool: Any) -> dict[str, Any] | None:
    kind = streams.get(tool, "type")
    if not isinstance(kind, str):
        return None
    nested = streams.get(tool, kind)  # chat: {"type": "function", "function": {...}}
    if nested is not None and streams.get(nested, "name") is not None:
        return _function_definition(kind, nested)
    definition = _function_definition(kind, tool)  # responses: flat
    return definition if definition is not None else {"type": kind, "name": kind}


def _function_definition(kind: str, function: Any) -> dict[str, Any] | None:
    name = streams.get(function, "name")
    if not isinstance(name, str) or not name:
        return None
    out: dict[str, Any] = {"type": kind, "name": name}
    for key in ("description", "parameters"):
        value = streams.get(function, key)
        if value is not None:
            out[key] = streams.plain(value)
    return out


def _endpoint_attributes(client: Any) -> dict[str, Any]:
    """``gen_ai.provider.name`` and ``server.address`` / ``server.port`` of a client."""
    base_url = getattr(client, "base_url", None)
    host = getattr(base_url, "host", None)
    host = host if isinstance(host, str) and host else None
    attrs: dict[str, Any] = {semconv.GEN_AI_PROVIDER_NAME: _provider(client, host or "")}
    if host:
        attrs[_SERVER_ADDRESS] = host
        port = getattr(base_url, "port", None)
        if not isinstance(port, int):
            port = {"https": 443, "http": 80}.get(str(getattr(base_url, "scheme", "")))
        if port is not None:
            attrs[_SERVER_PORT] = port
    return attrs


def _provider(client: Any, host: str) -> str:
    names = {cls.__name__ for cls in type(client).__mro__}
    if names & {"BaseAzureClient", "AzureOpenAI", "AsyncAzureOpenAI"} or host.endswith(
        (".openai.azure.com", ".cognitiveservices.azure.com")
    ):
        return _PROVIDER_AZURE
    provider_runtime = getattr(client, "_provider_runtime", None)
    runtime_name = getattr(provider_runtime, "name", None)
    if runtime_name == "bedrock" or names & {"BedrockOpenAI", "AsyncBedrockOpenAI"}:
        return _PROVIDER_BEDROCK
    if runtime_name == "vertex" or host.endswith("aiplatform.googleapis.com"):
        return _PROVIDER_VERTEX
    return _PROVIDER_OPENAI
