"""``@observe``: trace a function, method, coroutine or (async) generator as an observation.

Generators keep their observation open until the stream is consumed, closed or
garbage-collected; the output is the joined text (all chunks strings) or the
list of chunks. Each step of the generator runs with the observation as the
current span, so calls made while producing a chunk nest under it.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api

from otel_llm import runtime
from otel_llm.diagnostics import guard
from otel_llm.instrument.observation import UNSET, Observation, start_observation

__all__ = ["observe"]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def observe(name: F) -> F: ...


@overload
def observe(
    name: str | None = None,
    as_type: str = "span",
    capture_input: bool | None = None,
    capture_output: bool | None = None,
    entry: bool = False,
) -> Callable[[F], F]: ...


def observe(
    name: Any = None,
    as_type: str = "span",
    capture_input: bool | None = None,
    capture_output: bool | None = None,
    entry: bool = False,
) -> Any:
    """Decorate a function so each call is an observation of type ``as_type``.

    ``capture_input``/``capture_output`` default to the pipeline's
    ``capture_content``. Arguments named ``self``/``cls`` are never captured.
    Exceptions set ERROR status, ``error.type`` and an exception event, and are
    re-raised untouched.
    """
    if callable(name) and not isinstance(name, str):
        return _decorate(name, None, as_type, capture_input, capture_output, entry)

    def decorator(func: F) -> F:
        decorated: F = _decorate(func, name, as_type, capture_input, capture_output, entry)
        return decorated

    return decorator


class _Options:
    __slots__ = ("as_type", "capture_input", "capture_output", "entry", "name", "signature")

    def __init__(
        self,
        func: Callable[..., Any],
        name: str | None,
        as_type: str,
        capture_input: bool | None,
        capture_output: bool | None,
        entry: bool,
    ) -> None:
        self.name: str = name or str(getattr(func, "__name__", "observation"))
        self.as_type = as_type
        self.capture_input = capture_input
        self.capture_output = capture_output
        self.entry = entry
        try:
            self.signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):
            self.signature = None

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Observation, bool]:
        rt = runtime.current()
        capture_in = rt.capture_content if self.capture_input is None else self.capture_input
        capture_out = rt.capture_content if self.capture_output is None else self.capture_output
        observation = start_observation(
            self.name,
            as_type=self.as_type,
            entry=self.entry,
            input=self.bound_input(args, kwargs) if capture_in else UNSET,
        )
        return observation, capture_out

    def bound_input(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.signature is None:
            return {"args": list(args), "kwargs": kwargs}
        try:
            bound = self.signature.bind_partial(*args, **kwargs)
        except TypeError:
            return {"args": list(args), "kwargs": kwargs}
        captured: dict[str, Any] = {}
        for param_name, value in bound.arguments.items():
            if param_name in ("self", "cls"):
                continue
            kind = self.signature.parameters[param_name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                captured.update(value)
            else:
                captured[param_name] = value
        return captured


def _decorate(
    func: Any,
    name: str | None,
    as_type: str,
    capture_input: bool | None,
    capture_output: bool | None,
    entry: bool,
) -> Any:
    options = _Options(func, name, as_type, capture_input, capture_output, entry)
    if inspect.iscoroutinefunction(func):
        return _async_wrapper(func, options)
    return _sync_wrapper(func, options)


def _start(options: _Options, args: Any, kwargs: Any) -> tuple[Observation | None, bool]:
    with guard("observe.start"):
        return options.start(args, kwargs)
    return None, False


def _sync_wrapper(func: Callable[..., Any], options: _Options) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        observation, capture_out = _start(options, args, kwargs)
        if observation is None:
            return func(*args, **kwargs)
        token = otel_context.attach(trace_api.set_span_in_context(observation.span))
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            observation.record_error(exc)
            observation.end()
            raise
        otel_context.detach(token)
        return _finish(observation, result, capture_out)

    return wrapper


def _async_wrapper(func: Callable[..., Any], options: _Options) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        observation, capture_out = _start(options, args, kwargs)
        if observation is None:
            return await func(*args, **kwargs)
        token = otel_context.attach(trace_api.set_span_in_context(observation.span))
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            observation.record_error(exc)
            observation.end()
            raise
        otel_context.detach(token)
        return _finish(observation, result, capture_out)

    return wrapper


def _finish(observation: Observation, result: Any, capture_out: bool) -> Any:
    if inspect.isgenerator(result):
        started: list[bool] = []
        wrapper = _traced_generator(result, observation, capture_out, started)
        return _track(wrapper, observation, started)
    if inspect.isasyncgen(result):
        started = []
        async_wrapper = _traced_async_generator(result, observation, capture_out, started)
        return _track(async_wrapper, observation, started)
    if capture_out:
        observation.end(output=result)
    else:
        observation.end()
    return result


def _track(wrapper: Any, observation: Observation, started: list[bool]) -> Any:
    # A wrapper that is never iterated runs no finally block: end it at collection.
    # (Weakref callbacks run before a started generator's own close, so only then.)
    weakref.finalize(wrapper, _end_if_unstarted, observation, started)
    return wrapper


def _end_if_unstarted(observation: Observation, started: list[bool]) -> None:
    if not started:
        observation.end()


def _aggregate(chunks: list[Any]) -> Any:
    if chunks and all(isinstance(c, str) for c in chunks):
        return "".join(chunks)
    return chunks


def _traced_generator(
    inner: Generator[Any, Any, Any], observation: Observation, capture: bool, started: list[bool]
) -> Generator[Any, Any, Any]:
    started.append(True)
    ctx = trace_api.set_span_in_context(observation.span)
    chunks: list[Any] = []
    sent: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                item = inner.send(sent) if thrown is None else inner.throw(thrown)
            except StopIteration as stop:
                return stop.value
            finally:
                otel_context.detach(token)
            thrown = None
            if capture:
                chunks.append(item)
            try:
                sent = yield item
            except GeneratorExit:
                inner.close()
                raise
            except BaseException as exc:  # throw(): forward it, as ``yield from`` would
                thrown = exc
    except GeneratorExit:
        raise
    except BaseException as exc:
        observation.record_error(exc)
        raise
    finally:
        if capture and not observation.ended:
            observation.update(output=_aggregate(chunks))
        observation.end()


async def _traced_async_generator(
    inner: AsyncGenerator[Any, Any],
    observation: Observation,
    capture: bool,
    started: list[bool],
) -> AsyncGenerator[Any, Any]:
    started.append(True)
    ctx = trace_api.set_span_in_context(observation.span)
    chunks: list[Any] = []
    sent: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                if thrown is None:
                    item = await inner.asend(sent)
                else:
                    item = await inner.athrow(thrown)
            except StopAsyncIteration:
                return
            finally:
                otel_context.detach(token)
            thrown = None
            if capture:
                chunks.append(item)
            try:
                sent = yield item
            except GeneratorExit:
                await inner.aclose()
                raise
            except BaseException as exc:  # athrow(): forward it
                thrown = exc
    except GeneratorExit:
        raise
    except BaseException as exc:
        observation.record_error(exc)
        raise
    finally:
        if capture and not observation.ended:
            observation.update(output=_aggregate(chunks))
        observation.end()
