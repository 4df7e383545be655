"""The floor under the CPU targets, from parts measured apart in the same run.

Why: the issue sets total CPU limits (a share of ``bare_big``'s and of the Langfuse
SDK's) that include work the issue itself requires. Adding up what those required
parts cost on their own — the OTel SDK's span, the usage, cost and masking stages,
encoding the Langfuse span and sending it — gives a lower bound for any pipeline
that does the same work in this process. A limit below that bound cannot be met by
tuning; this section shows by how much, so nobody has to take it on trust.

Left out of the sum on purpose (they only raise the bound): span → record, the queue,
the Langfuse dialect, ``on_start``/``on_end``, ``@observe``'s capture of input and
output, entry marking, garbage collection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

__all__ = ["render"]

PARTS: Final[Sequence[tuple[str, str, str]]] = (
    (
        "sdk_span_us",
        "OTel SDK: the span started, 8 attributes set by hand, ended (no export)",
        "overhead, `bare` CPU",
    ),
    ("stage_derive_usage_us", "usage stage", "micro, stages (Langfuse only)"),
    ("stage_derive_cost_us", "cost stage", "micro, stages (Langfuse only)"),
    ("stage_mask_record_us", "masking stage", "micro, stages (Langfuse only)"),
    ("langfuse_encode_us", "encoding the Langfuse span", "micro, encoding"),
    ("sender_us", "gzip and HTTP (the sender thread)", "pipelines, otel-llm CPU by thread"),
)
"""(fact, what it is, where it was measured): the parts the floor adds up."""

OURS: Final[Sequence[tuple[str, str, str]]] = (
    ("langfuse_shape_us", "the Langfuse dialect (`to_langfuse`)", "micro, encoding"),
    (
        "processor_idle_us",
        "`on_start` + `on_end` on the app thread (entry marking, enqueue)",
        "micro, processor (worker idle)",
    ),
    ("stage_normalize_us", "normalize stage", "micro, stages (Langfuse only)"),
    ("stage_extract_media_us", "media stage", "micro, stages (Langfuse only)"),
)
"""Parts otel-llm also runs, measured apart, that the targets do not require by name."""

LIMITS: Final[Sequence[tuple[str, float, str]]] = (
    ("bare_big_cpu_us", 0.6, "`bare_big`"),
    ("langfuse_cpu_us", 0.2, "the Langfuse SDK"),
)
"""(baseline fact, the issue's ratio, its name) for each CPU target."""


def render(facts: Mapping[str, float]) -> list[str]:
    """The section's markdown lines, or none when a family it needs did not run."""
    needed = [name for name, _, _ in PARTS] + ["otel_llm_cpu_us"]
    if any(name not in facts for name in needed):
        return []
    floor = sum(facts[name] for name, _, _ in PARTS)
    ours = facts["otel_llm_cpu_us"]
    out = [
        "## Floor under the CPU targets",
        "",
        "What the work the targets require costs on its own, measured apart in this run "
        "(µs per span): the floor. Below it, the other parts of otel-llm's pipeline, "
        "measured apart where they can be, and what is left of the whole pipeline's CPU.",
        "",
        "| part | µs/span | measured in |",
        "|---|---:|---|",
    ]
    out += [f"| {label} | {facts[name]:.1f} | {where} |" for name, label, where in PARTS]
    out += [f"| **sum: the floor** | **{floor:.1f}** | |"]
    known = [(name, label, where) for name, label, where in OURS if name in facts]
    out += [f"| + {label} | {facts[name]:.1f} | {where} |" for name, label, where in known]
    measured = floor + sum(facts[name] for name, _, _ in known)
    out += [
        f"| + the rest: span → record, queue, `@observe`'s capture, GC, threads contending "
        f"| {ours - measured:.1f} | whole pipeline minus the rows above |",
        f"| otel-llm, whole pipeline | {ours:.1f} | pipelines, `otel-llm` CPU |",
        "",
    ]
    for name, ratio, label in LIMITS:
        if name not in facts:
            continue  # that baseline did not run (e.g. the Langfuse SDK is not installed)
        limit = ratio * facts[name]
        if floor > limit:
            verdict = (
                f"the floor is {floor - limit:.1f} µs above it ({floor / limit:.2f}x), so "
                "no tuning of the remaining parts can meet it"
            )
        else:
            verdict = (
                f"the floor leaves {limit - floor:.1f} µs for everything not counted; "
                f"otel-llm spends {ours - floor:.1f} µs there"
            )
        out.append(
            f"- ≤ {ratio}× {label} ({facts[name]:.1f} µs) is {limit:.1f} µs per call: {verdict}."
        )
    out.append("")
    return out
