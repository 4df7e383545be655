"""Formatting shared by the terminal and HTML views (no presentation library)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson

from otel_llm.local.store_queries import SpanView

__all__ = [
    "format_cost",
    "format_duration",
    "format_tokens",
    "local_time",
    "one_line",
    "pretty",
    "span_tree",
]


def span_tree(spans: Sequence[SpanView]) -> list[tuple[int, SpanView]]:
    """Spans depth-first, children under parents by start time, with their depth.

    A span whose parent is not in the trace (a remote parent, a span still missing)
    is shown as a root, so nothing stored is hidden.
    """
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanView]] = {}
    for span in sorted(spans, key=lambda s: (s.start_ns, s.end_ns)):
        parent = span.parent_span_id if span.parent_span_id in ids else None
        children.setdefault(parent, []).append(span)
    out: list[tuple[int, SpanView]] = []
    seen: set[str] = set()
    stack = [(0, s) for s in reversed(children.get(None, []))]
    while stack:
        depth, span = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        out.append((depth, span))
        stack.extend((depth + 1, c) for c in reversed(children.get(span.span_id, [])))
    return out


def format_duration(ns: int) -> str:
    ms = ns / 1e6
    if ms < 1000:
        return f"{ms:.1f} ms"
    return f"{ms / 1000:.2f} s"


def format_cost(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:.6f}"


def format_tokens(tokens_in: int | None, tokens_out: int | None) -> str:
    if not tokens_in and not tokens_out:
        return "-"
    return f"{tokens_in or 0}→{tokens_out or 0}"


def local_time(ns: int) -> str:
    """Epoch nanoseconds as local wall-clock time, to the millisecond."""
    moment = dt.datetime.fromtimestamp(ns / 1e9).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def one_line(value: Any, width: int = 100) -> str:
    """A value as one line of at most ``width`` characters (strings unquoted)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else pretty(value, indent=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def pretty(value: Any, *, indent: bool = True) -> str:
    """JSON text of a parsed value (strings as they are), indented for reading."""
    if isinstance(value, str):
        return value
    option = orjson.OPT_INDENT_2 if indent else 0
    try:
        return orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return repr(value)
