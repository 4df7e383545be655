"""One trace as ONE self-contained HTML file: a waterfall timeline with expandable spans.

Everything is inline (CSS, a few lines of JS, no fonts or images), so the file opens
offline, can be mailed or attached to a bug, and references nothing outside itself.
Each span is a ``<details>`` row: its bar is placed by start offset and sized by
duration relative to the trace; opening it shows input, output, metadata, usage and
every attribute. Works without JS too; the script only adds expand/collapse all and
a name filter. Every stored value is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from otel_llm.local.store_queries import ScoreView, SpanView, TraceDetail
from otel_llm.local.views.common import (
    format_cost,
    format_duration,
    format_tokens,
    local_time,
    pretty,
    span_tree,
)

__all__ = ["render_html"]

_MIN_BAR_PERCENT = 0.4
_TICKS = 5

_CSS = """
:root{--fg:#1d2330;--muted:#6b7280;--line:#e5e7eb;--bg:#fff;--soft:#f6f7f9;
--generation:#2563eb;--agent:#7c3aed;--tool:#ea580c;--retriever:#059669;--chain:#0891b2;
--embedding:#0d9488;--span:#64748b;--error:#dc2626;--warning:#d97706}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
header{padding:16px 20px;border-bottom:1px solid var(--line);background:var(--soft)}
h1{margin:0 0 6px;font-size:20px}
.facts{color:var(--muted);display:flex;flex-wrap:wrap;gap:4px 16px}
.facts b{color:var(--fg);font-weight:600}
.controls{margin-top:10px;display:flex;gap:8px}
button,input{font:inherit;padding:3px 10px;border:1px solid var(--line);border-radius:6px;
background:var(--bg)}
.row,details.span>summary{display:grid;grid-template-columns:minmax(220px,36%) 1fr;
align-items:center}
.axis{position:sticky;top:0;background:var(--bg);border-bottom:1px solid var(--line);
padding:4px 20px;color:var(--muted);font-size:12px;z-index:1}
.ticks{position:relative;height:16px}
.ticks span{position:absolute;transform:translateX(-50%);white-space:nowrap}
.ticks span:first-child{transform:none}.ticks span:last-child{transform:translateX(-100%)}
main{padding:0 20px 20px}
details.span{border-bottom:1px solid var(--line)}
details.span>summary{list-style:none;cursor:pointer;padding:3px 0;min-height:26px}
summary::-webkit-details-marker{display:none}
details.span>summary:hover{background:var(--soft)}
.body summary{cursor:pointer;color:var(--muted);margin-top:10px}
.label{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;padding-right:8px}
.label::before{content:"\\25B8";display:inline-block;width:14px;color:var(--muted)}
details[open]>summary .label::before{content:"\\25BE"}
.badge{font-size:11px;padding:0 6px;border-radius:9px;background:var(--soft);
color:var(--muted);margin-left:4px;border:1px solid var(--line)}
.model{color:var(--generation);margin-left:4px;font-size:12px}
.lvl-ERROR .name{color:var(--error)}.lvl-WARNING .name{color:var(--warning)}
.track{position:relative;height:18px;background:repeating-linear-gradient(90deg,transparent 0,
transparent calc(25% - 1px),var(--line) calc(25% - 1px),var(--line) 25%)}
.bar{position:absolute;top:3px;height:12px;border-radius:3px;background:var(--span);
min-width:2px}
.t-generation .bar{background:var(--generation)}.t-agent .bar{background:var(--agent)}
.t-tool .bar{background:var(--tool)}.t-retriever .bar{background:var(--retriever)}
.t-chain .bar{background:var(--chain)}.t-embedding .bar{background:var(--embedding)}
.lvl-ERROR .bar{background:var(--error)}
.dur{position:absolute;top:0;font-size:11px;color:var(--muted);white-space:nowrap;
padding:0 4px}.dur.inside{color:#fff}
.body{padding:8px 12px 14px 28px;background:var(--soft);border-top:1px dashed var(--line)}
.body dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0 0 8px}
.body dt{color:var(--muted)}.body dd{margin:0;word-break:break-all}
.body h3{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
margin:10px 0 4px}
pre{margin:0;padding:8px 10px;background:var(--bg);border:1px solid var(--line);
border-radius:6px;white-space:pre-wrap;word-break:break-word;max-height:420px;overflow:auto;
font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
table{border-collapse:collapse;margin:8px 20px 24px}
th,td{text-align:left;padding:4px 12px;border-bottom:1px solid var(--line)}
th{color:var(--muted);font-weight:600}
.hidden{display:none}
"""

_JS = """
(function(){
  var rows=document.querySelectorAll("details.span");
  function all(open){rows.forEach(function(d){d.open=open;});}
  document.getElementById("expand").onclick=function(){all(true);};
  document.getElementById("collapse").onclick=function(){all(false);};
  document.getElementById("filter").oninput=function(e){
    var q=e.target.value.toLowerCase();
    rows.forEach(function(d){
      d.classList.toggle("hidden",q!==""&&d.dataset.name.indexOf(q)<0);
    });
  };
})();
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _section(title: str, value: Any) -> str:
    if value is None or value == "" or value == {} or value == []:
        return ""
    return f"<h3>{_e(title)}</h3><pre>{_e(pretty(value))}</pre>"


def _facts(span: SpanView, offset_ns: int) -> str:
    items: list[tuple[str, object]] = [
        ("span id", span.span_id),
        ("type", span.type or "span"),
        ("start", f"+{format_duration(offset_ns)} ({local_time(span.start_ns)})"),
        ("duration", format_duration(span.duration_ns)),
        ("level", span.level),
        ("status", span.status_code + (f": {span.status_message}" if span.status_message else "")),
    ]
    if span.model:
        items.append(("model", span.model))
    if span.input_tokens is not None or span.output_tokens is not None:
        items.append(("tokens in→out", format_tokens(span.input_tokens, span.output_tokens)))
    if span.cost is not None:
        items.append(("cost", format_cost(span.cost)))
    if span.is_entry:
        items.append(("entry", "yes"))
    if span.service_name:
        items.append(("service", span.service_name))
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"


def _span(depth: int, span: SpanView, start: int, total: int) -> str:
    offset = span.start_ns - start
    left = 100.0 * offset / total
    width = max(_MIN_BAR_PERCENT, 100.0 * span.duration_ns / total)
    left = min(left, 100.0 - _MIN_BAR_PERCENT)
    width = min(width, 100.0 - left)
    if left + width < 80:  # after the bar
        duration_attrs = f'class="dur" style="left:{left + width:.3f}%"'
    elif left > 20:  # before it
        duration_attrs = f'class="dur" style="right:{100 - left:.3f}%"'
    else:  # inside it
        duration_attrs = f'class="dur inside" style="left:{left:.3f}%"'
    badge = f'<span class="badge">{_e(span.type)}</span>' if span.type else ""
    model = f'<span class="model">{_e(span.model)}</span>' if span.model else ""
    attributes = dict(sorted(span.attributes.items()))
    usage = {
        k.removeprefix("gen_ai.usage."): v
        for k, v in attributes.items()
        if k.startswith(("gen_ai.usage.", "otel_llm.cost."))
    }
    body = (
        _facts(span, offset)
        + _section("input", span.input)
        + _section("output", span.output)
        + _section("metadata", span.metadata)
        + _section("usage and cost", usage)
        + _section("events", span.events)
        + f"<details><summary>all attributes ({len(attributes)})</summary>"
        + f"<pre>{_e(pretty(attributes))}</pre></details>"
    )
    classes = f"span t-{_e(span.type or 'span')} lvl-{_e(span.level)}"
    if span.status_code == "ERROR":
        classes += " lvl-ERROR"
    return (
        f'<details class="{classes}" data-name="{_e(span.name.lower())}">'
        f'<summary><span class="label" style="padding-left:{depth * 16}px">'
        f'<span class="name">{_e(span.name)}</span>{badge}{model}</span>'
        f'<span class="track"><span class="bar" style="left:{left:.3f}%;width:{width:.3f}%">'
        f"</span><span {duration_attrs}>{_e(format_duration(span.duration_ns))}"
        f"</span></span></summary>"
        f'<div class="body">{body}</div></details>'
    )


def _scores(scores: list[ScoreView]) -> str:
    if not scores:
        return ""
    rows = "".join(
        f"<tr><td>{_e(s.name)}</td><td>{_e(s.value)}</td><td>{_e(s.data_type)}</td>"
        f"<td>{_e(s.observation_id or 'trace')}</td><td>{_e(s.comment)}</td></tr>"
        for s in scores
    )
    head = "".join(f"<th>{h}</th>" for h in ("score", "value", "type", "on", "comment"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def render_html(detail: TraceDetail) -> str:
    """The whole HTML document for one trace."""
    trace = detail.trace
    start = min([trace.start_ns, *(s.start_ns for s in detail.spans)])
    end = max([trace.end_ns, *(s.end_ns for s in detail.spans)])
    total = max(end - start, 1)
    facts = [
        ("trace", trace.trace_id),
        ("start", local_time(trace.start_ns)),
        ("latency", format_duration(trace.duration_ns)),
        ("spans", trace.span_count),
        ("errors", trace.error_count),
        ("tokens", format_tokens(trace.input_tokens, trace.output_tokens)),
        ("cost", format_cost(trace.total_cost)),
        ("user", trace.user_id),
        ("session", trace.session_id),
        ("environment", trace.environment),
        ("release", trace.release),
        ("version", trace.version),
        ("tags", ", ".join(trace.tags) or None),
    ]
    facts_html = "".join(
        f"<span>{_e(k)} <b>{_e(v)}</b></span>" for k, v in facts if v not in (None, "")
    )
    ticks = "".join(
        f'<span style="left:{100 * i / (_TICKS - 1):.1f}%">'
        f"{_e(format_duration(total * i // (_TICKS - 1)))}</span>"
        for i in range(_TICKS)
    )
    spans = "".join(_span(d, s, start, total) for d, s in span_tree(detail.spans))
    trace_io = _section("trace input", trace.input_preview) + _section(
        "trace output", trace.output_preview
    )
    title = trace.name or (detail.spans[0].name if detail.spans else trace.trace_id)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)} · {_e(trace.trace_id)}</title><style>{_CSS}</style></head>"
        f'<body><header><h1>{_e(title)}</h1><div class="facts">{facts_html}</div>'
        '<div class="controls"><button id="expand">expand all</button>'
        '<button id="collapse">collapse all</button>'
        '<input id="filter" placeholder="filter spans by name"></div>'
        f'<div class="trace-io">{trace_io}</div></header>'
        f'<div class="axis"><div class="row"><span>span</span><div class="ticks">{ticks}</div>'
        f"</div></div><main>{spans}</main>{_scores(detail.scores)}"
        f"<script>{_JS}</script></body></html>\n"
    )
