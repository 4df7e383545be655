"""Trace attributes that travel with the OpenTelemetry context.

``propagate_attributes`` stores the values in the OTel ``Context`` (itself a
contextvar), so they follow ``asyncio`` tasks automatically and never leak
between concurrent requests. Our processor's ``on_start`` copies them onto every
span started inside, including spans of other instrumentation libraries.

Threads do not inherit contextvars. For ``concurrent.futures`` use
:class:`ThreadPoolExecutor` from this module (a drop-in subclass) or wrap the
callable with :func:`wrap`; ``asyncio.to_thread`` already copies the context,
``loop.run_in_executor`` does not.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api

from otel_llm import semconv
from otel_llm.diagnostics import count, log_once
from otel_llm.serialize import to_json
from otel_llm.validation import environment_problem

__all__ = [
    "ThreadPoolExecutor",
    "current_trace_attributes",
    "propagate_attributes",
    "trace_attributes",
    "wrap",
]

_KEY = otel_context.create_key("otel_llm.propagated")

P = ParamSpec("P")
R = TypeVar("R")


class _Propagated:
    """Immutable merged view; ``attributes`` is precomputed so on_start only copies it."""

    __slots__ = ("attributes", "metadata", "tags")

    def __init__(
        self, attributes: dict[str, Any], tags: tuple[str, ...], metadata: dict[str, Any]
    ) -> None:
        self.attributes = attributes
        self.tags = tags
        self.metadata = metadata


_NONE: Mapping[str, Any] = MappingProxyType({})


def current_trace_attributes(ctx: otel_context.Context | None = None) -> Mapping[str, Any]:
    """The propagated span attributes in ``ctx`` (default: the current context)."""
    value = (ctx if ctx is not None else otel_context.get_current()).get(_KEY)
    return value.attributes if type(value) is _Propagated else _NONE


def _clean_tags(tags: object) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        return (tags,)
    if isinstance(tags, (Sequence, set, frozenset)):
        return tuple(t for t in (_text("tags", tag) for tag in tags) if t is not None)
    count("invalid_value.tags")
    log_once("propagate_attributes", "tags", "tags must be a list of strings; ignored")
    return ()


def _text(field: str, value: object) -> str | None:
    """``str(value)``, or None (counted) when the value can't even be printed."""
    try:
        return str(value)
    except Exception:
        count(f"invalid_value.{field}")
        log_once("trace_attributes", field, f"{field} ignored: its str() raised")
        return None


def trace_attributes(
    *,
    user_id: object = None,
    session_id: object = None,
    trace_name: object = None,
    environment: object = None,
    release: object = None,
    version: object = None,
    tags: tuple[str, ...] = (),
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Span attributes for trace-level fields (only the ones given)."""
    attrs: dict[str, Any] = {}
    if user_id is not None and (text := _text("user_id", user_id)) is not None:
        attrs[semconv.USER_ID] = text
    if session_id is not None and (text := _text("session_id", session_id)) is not None:
        attrs[semconv.SESSION_ID] = text
    if trace_name is not None and (text := _text("trace_name", trace_name)) is not None:
        attrs[semconv.TRACE_NAME] = text
    if environment is not None and (env := _text("environment", environment)) is not None:
        problem = environment_problem(env)
        if problem is None:
            attrs[semconv.ENVIRONMENT] = env
        else:
            count("invalid_value.environment")
            log_once("trace_attributes", "environment", f"environment ignored: {problem}")
    if release is not None and (text := _text("release", release)) is not None:
        attrs[semconv.RELEASE] = text
    if version is not None and (text := _text("version", version)) is not None:
        attrs[semconv.VERSION] = text
    if tags:
        attrs[semconv.TRACE_TAGS] = tags
    if metadata:
        attrs[semconv.TRACE_METADATA] = to_json(metadata)
    return attrs


@contextmanager
def propagate_attributes(
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    trace_name: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    version: str | None = None,
) -> Iterator[None]:
    """Stamp trace-level fields on every span started inside the block.

    Nested blocks merge: inner values win, tags are united, metadata keys merge.
    The current span (if any) gets them too, so the block's own span is covered.
    """
    outer = otel_context.get_value(_KEY)
    base = outer if isinstance(outer, _Propagated) else None
    merged_tags = base.tags if base else ()
    for tag in _clean_tags(tags):
        if tag not in merged_tags:
            merged_tags = (*merged_tags, tag)
    merged_meta = dict(base.metadata) if base else {}
    if metadata is not None:
        if isinstance(metadata, Mapping):
            merged_meta.update(metadata)
        else:
            count("invalid_value.metadata")
            log_once("propagate_attributes", "metadata", "metadata must be a mapping; ignored")
    attributes = dict(base.attributes) if base else {}
    attributes.update(
        trace_attributes(
            user_id=user_id,
            session_id=session_id,
            trace_name=trace_name,
            environment=environment,
            release=release,
            version=version,
            tags=merged_tags,
            metadata=merged_meta,
        )
    )
    span = trace_api.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)
    token = otel_context.attach(
        otel_context.set_value(_KEY, _Propagated(attributes, merged_tags, merged_meta))
    )
    try:
        yield
    finally:
        otel_context.detach(token)


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to a copy of the caller's context (for threads you start yourself)."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.run(fn, *args, **kwargs)

    return run


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the submitter's context.

    Spans started in a task nest under the span that submitted it and carry the
    propagated trace attributes, exactly as if the call had stayed on one thread.
    """

    def submit(
        self, fn: Callable[..., R], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[R]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)
