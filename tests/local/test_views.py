"""Views: tree order, escaping (HTML and rich markup), the dataset record."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from otel_llm import semconv
from otel_llm.local.destination import LocalStore
from otel_llm.local.store_queries import StoreReader, TraceDetail
from otel_llm.local.views.common import one_line, span_tree
from otel_llm.local.views.html import render_html
from otel_llm.local.views.terminal import print_trace

from .conftest import make_record, trace_hex

HOSTILE = '<script>alert("x")</script> [bold red]markup[/]'


def _detail(tmp_path: Path) -> TraceDetail:
    store = LocalStore(tmp_path / "t.db")
    store.export(
        [
            make_record(1, 3, "grandchild", 2, 3, parent=2),
            make_record(1, 2, HOSTILE, 1, 4, parent=1, **{semconv.OBSERVATION_INPUT: HOSTILE}),
            make_record(1, 1, "root", 0, 5),
            make_record(1, 9, "orphan", 1, 2, parent=8),  # parent never arrived
            make_record(1, 4, "sibling", 0.5, 1, parent=1),
        ]
    )
    assert store.shutdown(5.0)
    with StoreReader(store.path) as reader:
        return reader.trace(trace_hex(1))


def test_span_tree_orders_depth_first_and_keeps_orphans(tmp_path: Path) -> None:
    tree = [(depth, span.name) for depth, span in span_tree(_detail(tmp_path).spans)]
    assert tree == [(0, "root"), (1, "sibling"), (1, HOSTILE), (2, "grandchild"), (0, "orphan")]


def test_html_escapes_everything_stored(tmp_path: Path) -> None:
    html = render_html(_detail(tmp_path))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # ours only


def test_terminal_tree_prints_names_literally(tmp_path: Path) -> None:
    out = io.StringIO()
    print_trace(Console(file=out, width=200, color_system=None), _detail(tmp_path))
    text = out.getvalue()
    assert "[bold red]markup[/]" in text and "orphan" in text and "grandchild" in text


def test_one_line() -> None:
    assert one_line({"a": "x\ny"}) == '{"a":"x\\ny"}'
    assert one_line("a\n  b") == "a b"
    assert one_line("x" * 200, width=10) == "x" * 9 + "…"
    assert one_line(None) == ""
