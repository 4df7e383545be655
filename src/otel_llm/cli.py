"""The ``otel-llm`` command.

Only this module imports presentation libraries; the library itself never does.
Exit codes: 0 on success, 2 on bad usage or input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    import otel_llm
    from otel_llm.export.from_env import destinations_from_env
    from otel_llm.local.demo_agent import run_demo

    destinations: list[otel_llm.Destination] = [otel_llm.Console()]
    destinations.extend(destinations_from_env())
    pipeline = otel_llm.configure(service_name="otel-llm-demo", destinations=destinations)
    trace_id = run_demo()
    ok = pipeline.flush(10.0)
    stats = pipeline.stats()
    print(f"\ntrace {trace_id}: {stats['spans_received']} spans, {stats['spans_dropped']} dropped")
    for name, counts in stats["destinations"].items():
        print(f"  {name}: exported {counts['exported']}, failed {counts['failed']}")
    pipeline.shutdown(5.0)
    return 0 if ok else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-llm", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the built-in sample agent (no network, no keys)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otel-llm`` script; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse prints its own message
        return int(exc.code or 0) if exc.code in (0, None) else 2
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
