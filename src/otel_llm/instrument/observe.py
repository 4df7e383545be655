"""``@observe``: trace a function, method, coroutine or (async) generator as an observation.

Generators keep their observation open until the stream is consumed, closed or
garbage-collected; the output is the joined text (all chunks strings) or the
list of chunks. Each step of the generator runs with the observation as the
current span, so calls made while producing a chunk nest under it.
"""

from __future__ import annotations

import functools
import inspect
import time
import types
import weakref
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api

from otel_llm import runtime, semconv
from otel_llm.diagnostics import handled
from otel_llm.instrument.observation import (
    UNSET,
    Observation,
    open_observation,
    start_observation,
)
from otel_llm.serialize import to_attribute

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


_SKIPPED = ("self", "cls")
_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class _Options:
    __slots__ = (
        "as_type",
        "capture_input",
        "capture_output",
        "entry",
        "kind",
        "name",
        "plan",
        "signature",
        "static",
    )

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
        self.plan = _BindPlan.of(self.signature)
        self.kind, self.static = _static_attributes(self.name, as_type, entry)

    def start(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Observation, bool] | None:
        """The call's observation and whether to capture its output; None when our side
        failed (counted and logged by ``handled``), so the call runs untraced."""
        try:
            rt = runtime.current()
            capture_in = rt.capture_content if self.capture_input is None else self.capture_input
            capture_out = rt.capture_content if self.capture_output is None else self.capture_output
            kind = self.kind
            if kind is None:  # an unusual name or as_type: the general path handles (and counts) it
                observation = start_observation(
                    self.name,
                    as_type=self.as_type,
                    entry=self.entry,
                    input=self.bound_input(args, kwargs) if capture_in else UNSET,
                )
                return observation, capture_out
            # What start_observation(name, as_type, entry=entry, input=...) does, minus the
            # fields @observe never passes: same attributes, in the same order.
            if capture_in:
                plan = self.plan
                value = plan.bind(args, kwargs) if plan is not None else None
                if value is None:
                    value = self.bound_input_slow(args, kwargs)
                start_ns = time.time_ns()
                text = to_attribute(value, max_chars=rt.max_content_chars)
                attrs = {semconv.OBSERVATION_INPUT: text}
                attrs.update(self.static)
            else:
                start_ns = time.time_ns()
                attrs = dict(self.static)
            return open_observation(rt, self.name, kind, attrs, start_ns, self.entry), capture_out
        except Exception as exc:
            handled("observe.start", exc)
            return None

    def bound_input(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        plan = self.plan
        if plan is not None:
            captured = plan.bind(args, kwargs)
            if captured is not None:
                return captured
        return self.bound_input_slow(args, kwargs)

    def bound_input_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The reference: ``Signature.bind_partial``; ``_BindPlan`` must agree with it."""
        if self.signature is None:
            return {"args": list(args), "kwargs": kwargs}
        try:
            bound = self.signature.bind_partial(*args, **kwargs)
        except TypeError:
            return {"args": list(args), "kwargs": kwargs}
        captured: dict[str, Any] = {}
        for param_name, value in bound.arguments.items():
            if param_name in _SKIPPED:
                continue
            kind = self.signature.parameters[param_name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                captured.update(value)
            else:
                captured[param_name] = value
        return captured


def _static_attributes(name: str, as_type: str, entry: bool) -> tuple[str | None, dict[str, Any]]:
    """The attributes every call of a decorated function starts with (after its input).

    ``(None, {})`` sends each call through :func:`start_observation` instead.
    """
    if type(name) is not str or type(as_type) is not str or as_type not in semconv.AS_TYPES:
        return None, {}
    static: dict[str, Any] = {
        semconv.OBSERVATION_TYPE: as_type,
        semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_BY_TYPE[as_type],
    }
    if entry:
        static[semconv.GEN_AI_IS_ENTRY] = True
    return as_type, static


class _BindPlan:
    """``bind_partial`` for plain signatures, precomputed once per decorated function.

    Plain: parameters that are positional-or-keyword or keyword-only, optionally a
    ``**kwargs`` (not named self/cls); no positional-only, no ``*args``. ``bind``
    returns the captured input exactly as :meth:`_Options.bound_input_slow` builds
    it (same keys, same order), or None for any call it does not handle (too many
    positional arguments, a keyword that is unknown or given twice), which then
    takes the slow path.
    """

    __slots__ = ("has_var_keyword", "named", "named_set", "positional", "skipped")

    def __init__(
        self, positional: tuple[str, ...], keyword_only: tuple[str, ...], has_var_keyword: bool
    ) -> None:
        self.positional = positional
        self.named = positional + keyword_only
        self.named_set = frozenset(self.named)
        self.has_var_keyword = has_var_keyword
        self.skipped = tuple(n for n in self.named if n in _SKIPPED)

    @classmethod
    def of(cls, signature: inspect.Signature | None) -> _BindPlan | None:
        if signature is None:
            return None
        positional: list[str] = []
        keyword_only: list[str] = []
        has_var_keyword = False
        for param in signature.parameters.values():
            kind = param.kind
            if has_var_keyword or (kind not in _NAMED and kind is not param.VAR_KEYWORD):
                return None  # positional-only, *args, or anything after **kwargs
            if kind is param.VAR_KEYWORD:
                if param.name in _SKIPPED:
                    return None
                has_var_keyword = True
            elif kind is param.KEYWORD_ONLY:
                keyword_only.append(param.name)
            elif keyword_only:
                return None  # positional-or-keyword after keyword-only: not a real signature
            else:
                positional.append(param.name)
        return cls(tuple(positional), tuple(keyword_only), has_var_keyword)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        positional = self.positional
        n = len(args)
        if n > len(positional):
            return None  # bind_partial: too many positional arguments
        # One argument is the commonest call: a literal is several times cheaper than zip
        # (which stops at the end of args: n <= len(positional)).
        captured = {positional[0]: args[0]} if n == 1 else dict(zip(positional, args, strict=False))
        if kwargs:
            found = 0
            for name in self.named[n:] if n else self.named:
                if name in kwargs:
                    captured[name] = kwargs[name]
                    found += 1
            if found != len(kwargs):
                if not self.has_var_keyword:
                    return None  # unknown keyword, or one also given positionally
                named = self.named_set
                rest = {k: v for k, v in kwargs.items() if k not in named}
                if found + len(rest) != len(kwargs):
                    return None  # a keyword also given positionally
                captured.update(rest)
        if self.skipped:
            for name in self.skipped:
                captured.pop(name, None)
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


def _sync_wrapper(func: Callable[..., Any], options: _Options) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = options.start(args, kwargs)
        if started is None:  # our side failed (counted): the call runs untraced
            return func(*args, **kwargs)
        observation, capture_out = started
        token = otel_context.attach(trace_api.set_span_in_context(observation.span))
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            observation.record_error(exc)
            observation.end()
            raise
        otel_context.detach(token)
        if isinstance(result, _STREAMS):
            return _finish(observation, result, capture_out)
        if capture_out:
            observation.end(output=result)
        else:
            observation.end()
        return result

    return wrapper


def _async_wrapper(func: Callable[..., Any], options: _Options) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = options.start(args, kwargs)
        if started is None:  # our side failed (counted): the call runs untraced
            return await func(*args, **kwargs)
        observation, capture_out = started
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


_STREAMS = (types.GeneratorType, types.AsyncGeneratorType)


def _finish(observation: Observation, result: Any, capture_out: bool) -> Any:
    if isinstance(result, types.GeneratorType):  # inspect.isgenerator, without the call
        started: list[bool] = []
        wrapper = _traced_generator(result, observation, capture_out, started)
        return _track(wrapper, observation, started)
    if isinstance(result, types.AsyncGeneratorType):  # inspect.isasyncgen
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
