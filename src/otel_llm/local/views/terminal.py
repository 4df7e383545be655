"""Terminal views with rich: trace list, trace tree, usage table, stats, configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from otel_llm.local.store_queries import GroupStats, SpanView, TraceDetail, TraceSummary
from otel_llm.local.views.common import (
    format_cost,
    format_duration,
    format_tokens,
    local_time,
    one_line,
    span_tree,
)

__all__ = [
    "print_config",
    "print_stats",
    "print_trace",
    "print_traces",
    "print_usage",
    "trace_tree",
]


def _t(value: object, style: str = "") -> Text:
    """Plain text for a cell: stored values are never read as rich markup."""
    return Text("" if value is None else str(value), style=style)


_LEVEL_STYLES = {"ERROR": "bold red", "WARNING": "yellow", "DEBUG": "dim"}
_PREVIEW = 100


def print_traces(console: Console, traces: Sequence[TraceSummary]) -> None:
    if not traces:
        console.print("no traces")
        return
    table = Table(title=f"{len(traces)} latest traces", title_justify="left")
    for column in ("trace id", "start", "name", "user", "session"):
        table.add_column(column, overflow="fold")
    for column in ("spans", "errors", "tokens in→out", "cost", "latency"):
        table.add_column(column, justify="right")
    for t in traces:
        table.add_row(
            t.trace_id,
            local_time(t.start_ns),
            _t(t.name),
            _t(t.user_id),
            _t(t.session_id),
            str(t.span_count),
            Text(str(t.error_count), style="red" if t.error_count else ""),
            format_tokens(t.input_tokens, t.output_tokens),
            format_cost(t.total_cost),
            format_duration(t.duration_ns),
        )
    console.print(table)


def _span_label(span: SpanView) -> Text:
    label = Text(span.name, style="bold")
    if span.type:
        label.append(f" [{span.type}]", style="magenta")
    if span.model:
        label.append(f" {span.model}", style="cyan")
    label.append(f"  {format_duration(span.duration_ns)}", style="green")
    if span.input_tokens is not None or span.output_tokens is not None:
        label.append(f"  tokens {format_tokens(span.input_tokens, span.output_tokens)}")
    if span.cost is not None:
        label.append(f"  {format_cost(span.cost)}")
    if span.level != "DEFAULT":
        label.append(f"  {span.level}", style=_LEVEL_STYLES.get(span.level, ""))
    if span.status_code == "ERROR" and span.level != "ERROR":
        label.append("  ERROR", style="bold red")
    if span.status_message:
        label.append(f": {one_line(span.status_message, _PREVIEW)}", style="red")
    if span.is_entry:
        label.append("  (entry)", style="dim")
    return label


def _trace_header(trace: TraceSummary) -> Text:
    header = Text(f"trace {trace.trace_id}", style="bold")
    if trace.name:
        header.append(f"  {trace.name}", style="bold cyan")
    facts = [
        f"start {local_time(trace.start_ns)}",
        f"latency {format_duration(trace.duration_ns)}",
        f"spans {trace.span_count}",
        f"errors {trace.error_count}",
        f"tokens {format_tokens(trace.input_tokens, trace.output_tokens)}",
        f"cost {format_cost(trace.total_cost)}",
    ]
    who = [
        f"{label} {value}"
        for label, value in (
            ("user", trace.user_id),
            ("session", trace.session_id),
            ("env", trace.environment),
            ("release", trace.release),
            ("version", trace.version),
        )
        if value
    ]
    if trace.tags:
        who.append("tags " + ", ".join(trace.tags))
    header.append("\n" + " · ".join(facts), style="")
    if who:
        header.append("\n" + " · ".join(who), style="dim")
    return header


def trace_tree(detail: TraceDetail) -> Tree:
    """The trace as a rich Tree: one node per span, previews of input/output beneath."""
    root = Tree(_trace_header(detail.trace))
    nodes: dict[str, Tree] = {}
    for _depth, span in span_tree(detail.spans):
        parent = nodes.get(span.parent_span_id or "", root)
        node = parent.add(_span_label(span))
        for label, value in (("in ", span.input), ("out", span.output)):
            if value is not None:
                node.add(Text(f"{label} {one_line(value, _PREVIEW)}", style="dim"))
        nodes[span.span_id] = node
    return root


def print_trace(console: Console, detail: TraceDetail) -> None:
    parts: list[Any] = [trace_tree(detail)]
    if detail.scores:
        table = Table(title="scores", title_justify="left")
        for column in ("name", "value", "type", "on", "comment"):
            table.add_column(column)
        for s in detail.scores:
            table.add_row(
                _t(s.name), _t(s.value), s.data_type, s.observation_id or "trace", _t(s.comment)
            )
        parts.append(table)
    console.print(Group(*parts))


def print_usage(console: Console, spans: Sequence[SpanView]) -> None:
    """Tokens and cost per model over ``spans`` (the demo's closing table)."""
    rows: dict[str, list[Any]] = {}
    for span in spans:
        if span.model is None:
            continue
        row = rows.setdefault(span.model, [0, 0, 0, None])
        row[0] += 1
        row[1] += span.input_tokens or 0
        row[2] += span.output_tokens or 0
        if span.cost is not None:
            row[3] = (row[3] or 0.0) + span.cost
    table = Table(title="tokens and cost", title_justify="left")
    table.add_column("model")
    for column in ("calls", "input tokens", "output tokens", "cost"):
        table.add_column(column, justify="right")
    for model, (calls, tokens_in, tokens_out, cost) in sorted(rows.items()):
        table.add_row(_t(model), str(calls), str(tokens_in), str(tokens_out), format_cost(cost))
    console.print(table)


def print_stats(console: Console, groups: Sequence[GroupStats], by: str) -> None:
    if not groups:
        console.print("no data")
        return
    unit = "calls" if by == "model" else "traces"
    table = Table(title=f"by {by}", title_justify="left")
    table.add_column(by)
    for column in (unit, "input tokens", "output tokens", "cost", "p50", "p95", "error rate"):
        table.add_column(column, justify="right")
    table.add_column("scores (mean)")
    for g in groups:
        table.add_row(
            _t(g.group if g.group is not None else "(none)"),
            str(g.count),
            str(g.input_tokens),
            str(g.output_tokens),
            format_cost(g.cost),
            f"{g.latency_p50_ms:.1f} ms",
            f"{g.latency_p95_ms:.1f} ms",
            Text(f"{g.error_rate:.1%}", style="red" if g.errors else ""),
            _t(", ".join(f"{name}={mean:g}" for name, mean in sorted(g.scores.items()))),
        )
    console.print(table)


def print_config(console: Console, report: Mapping[str, Any]) -> None:
    """The ``check-config`` report (already redacted)."""
    settings = Table(title="settings", title_justify="left")
    for column in ("setting", "value", "from"):
        settings.add_column(column)
    for name, item in report["settings"].items():
        value = "-" if item["value"] is None else item["value"]
        settings.add_row(name, _t(value), _t(item["source"]))
    console.print(settings)
    destinations = Table(title="destinations", title_justify="left")
    destinations.add_column("kind")
    destinations.add_column("settings")
    for item in report["destinations"]:
        rest = {k: v for k, v in item.items() if k != "kind"}
        destinations.add_row(_t(item["kind"]), _t(", ".join(f"{k}={v}" for k, v in rest.items())))
    console.print(destinations)
    if report["environment"]:
        env = Table(title="environment", title_justify="left")
        env.add_column("variable")
        env.add_column("value")
        for name, value in report["environment"].items():
            env.add_row(_t(name), _t(value))
        console.print(env)
    if report["problems"]:
        for problem in report["problems"]:
            console.print(Text(f"✗ {problem}", style="bold red"))
    else:
        console.print(Text("✓ no problems found", style="green"))
