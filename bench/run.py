"""``make bench``: every mode of every family, side by side in one run, into ``results.md``.

Families (``--families``, default all, in this order):

- ``overhead``: instrumentation + processing cost into an in-process counting sink;
- ``pipelines``: whole pipelines (bare OTel, the Langfuse SDK, otel-llm) exporting to
  the shared counting sink in another process (``sink.py``);
- ``micro``: encoder, processing stages and span-processor cost, in isolation;
- ``outage``: otel-llm under a paced load with its backend up vs down (disk spool);
- ``serve``: ``otel-llm serve`` ingest (stock exporters in another process) and store
  cost per span, next to the bare stock pipeline into the sink.

After them, when overhead, pipelines and micro all ran: the floor under the CPU
targets (``floor.py``), added up from what those families measured (``Options.facts``).

Each (round, mode) runs in a fresh subprocess and modes alternate within each round
(see ``rounds.py``). The sink is started once, for the whole run, when a family
needs it. Adding a family: a module with ``FAMILY`` and ``bench(options) ->
(markdown lines, failures)``, listed in ``FAMILIES``.

Exit status 1 when a span was lost where no loss is expected (``bare`` may lose: its
stock 2048-span queue is part of what is measured): delivery is a correctness check,
not a performance target. Timings never fail the run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType

import floor
import micro
import outage
import overhead
import pipelines
import report
import rounds
import serve_ingest

__all__ = ["FAMILIES", "main"]

FAMILIES: dict[str, ModuleType] = {
    "overhead": overhead,
    "pipelines": pipelines,
    "micro": micro,
    "outage": outage,
    "serve": serve_ingest,
}
"""Family name -> module, in report order."""

NEEDS_SINK = frozenset({"pipelines", "outage", "serve"})

_HERE = Path(__file__).resolve().parent


def _families(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in FAMILIES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown family {', '.join(unknown) or '(none)'}; choose from {', '.join(FAMILIES)}"
        )
    return [name for name in FAMILIES if name in chosen]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--families",
        type=_families,
        default=list(FAMILIES),
        help=f"comma-separated, from {','.join(FAMILIES)} (default: all)",
    )
    parser.add_argument("--n", type=int, default=20000, help="calls per mode per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--outage-seconds", type=float, default=60.0, help="outage load duration (default 60)"
    )
    parser.add_argument(
        "--outage-rate", type=float, default=2000.0, help="outage calls per second (2000)"
    )
    parser.add_argument(
        "--outage-rounds", type=int, default=1, help="outage rounds (default 1: it is long)"
    )
    parser.add_argument("--out", type=Path, default=_HERE / "results.md", help="report path")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or args.outage_rounds < 1:
        parser.error("--n, --rounds and --outage-rounds must be at least 1")
    if args.outage_seconds <= 0 or args.outage_rate <= 0:
        parser.error("--outage-seconds and --outage-rate must be positive")

    options = rounds.Options(
        n=args.n,
        rounds=args.rounds,
        outage_seconds=args.outage_seconds,
        outage_rate=args.outage_rate,
        outage_rounds=args.outage_rounds,
    )
    load_before = report.load_average()
    sections: list[list[str]] = []
    failures: list[str] = []
    with ExitStack() as stack:
        if NEEDS_SINK.intersection(args.families):
            options.sink = stack.enter_context(rounds.running_sink())
        for name in args.families:
            lines, failed = FAMILIES[name].bench(options)
            sections.append(list(lines))
            failures += failed
    settings = [
        f"- families: {', '.join(args.families)}; calls per mode per round: {args.n}; "
        f"rounds: {args.rounds} (modes alternate, the order rotating; medians shown)",
        f"- load average (1/5/15 min) at start: {load_before}; at end: {report.load_average()}",
    ]
    floor_lines = floor.render(options.facts)
    if floor_lines:
        sections.append(floor_lines)
    if failures:
        sections.append(["## Unexpected losses", "", *(f"- {f}" for f in failures), ""])
    text = report.render(sections, settings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text, end="")
    if failures:
        print(f"bench: {len(failures)} unexpected loss(es); see {args.out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
