"""The ``otel-llm`` command: run the demo, receive OTLP, and read the local store.

Only this module and ``otel_llm.local.views`` import presentation libraries (rich);
the library itself never does. Exit codes: 0 on success, 2 on bad usage or input
(unknown trace id, missing or unreadable database), always with ONE line on stderr
and no traceback; 1 when the demo could not deliver everything in time.

    otel-llm demo [--db PATH]
    otel-llm serve [--db PATH] [--host 127.0.0.1] [--http-port 4318] [--grpc-port 4317]
                   [--token TOKEN] [--forward] [--no-store] [--config FILE]
                   [--max-body-bytes N]
    otel-llm traces [--db PATH] [--limit N] [--user U] [--session S] [--json]
    otel-llm show TRACE_ID [--db PATH] [--json] [--html FILE]
    otel-llm stats [--db PATH] [--by model|user|session|release|version] [--json]
    otel-llm export [--db PATH] --format jsonl [-o FILE]
    otel-llm check-config [--json]

``--db`` defaults to ``$OTEL_LLM_DB``, else ``traces.db`` in the user data dir.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from otel_llm.errors import ConfigError
from otel_llm.local.store_queries import GROUPINGS, StoreReader
from otel_llm.local.store_schema import StoreError, resolve_db_path

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["main"]


class _Fail(Exception):
    """A problem with the user's input: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        raise _Fail(f"{message} (see `{self.prog} --help`)")


def _console() -> Console:
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich ships with otel-llm's command
        raise _Fail("this command needs the 'rich' package (pip install rich)") from None
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
    return Console(width=width, highlight=False, soft_wrap=False)


def _print_json(value: Any) -> None:
    data = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.flush()


@contextmanager
def _reader(args: argparse.Namespace) -> Iterator[StoreReader]:
    reader = StoreReader(resolve_db_path(args.db))
    try:
        yield reader
    finally:
        reader.close()


# -- commands ---------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    import otel_llm
    from otel_llm.export.from_env import destinations_from_env
    from otel_llm.local.demo_agent import run_demo
    from otel_llm.local.destination import LocalStore
    from otel_llm.local.views.terminal import print_trace, print_usage

    store = LocalStore(args.db)
    extra = [d for d in destinations_from_env() if not isinstance(d, LocalStore)]
    pipeline = otel_llm.configure(service_name="otel-llm-demo", destinations=[store, *extra])
    trace_id = run_demo()
    ok = pipeline.flush(10.0)
    stats = pipeline.stats()
    pipeline.shutdown(5.0)
    console = _console()
    with StoreReader(store.path) as reader:
        detail = reader.trace(trace_id)
    print_trace(console, detail)
    print_usage(console, detail.spans)
    console.print(f"{stats['spans_received']} spans, {stats['spans_dropped']} dropped")
    for name, counts in stats["destinations"].items():
        console.print(f"  {name}: exported {counts['exported']}, failed {counts['failed']}")
    console.print(f"stored in {store.path}")
    console.print(f"next: otel-llm show {trace_id} --db {store.path} --html trace.html")
    return 0 if ok else 1


def _serve(args: argparse.Namespace) -> int:
    from otel_llm.local.serve import ServeOptions, run

    options = ServeOptions(
        db=args.db,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        token=args.token,
        forward=args.forward,
        store=not args.no_store,
        config=args.config,
        max_body_bytes=args.max_body_bytes,
    )
    try:
        return run(options)
    except OSError as exc:  # a port that cannot be bound
        raise _Fail(str(exc)) from None


def _traces(args: argparse.Namespace) -> int:
    with _reader(args) as reader:
        traces = reader.traces(limit=args.limit, user=args.user, session=args.session)
    if args.json:
        _print_json([t.as_dict() for t in traces])
    else:
        from otel_llm.local.views.terminal import print_traces

        print_traces(_console(), traces)
    return 0


def _show(args: argparse.Namespace) -> int:
    with _reader(args) as reader:
        detail = reader.trace(args.trace_id)
    if args.html:
        from otel_llm.local.views.html import render_html

        try:
            Path(args.html).write_text(render_html(detail), encoding="utf-8")
        except OSError as exc:
            raise _Fail(f"cannot write {args.html}: {exc.strerror or exc}") from None
    if args.json:
        _print_json(detail.as_dict())
    elif args.html:
        print(f"wrote {args.html}")
    else:
        from otel_llm.local.views.terminal import print_trace

        print_trace(_console(), detail)
    return 0


def _stats(args: argparse.Namespace) -> int:
    with _reader(args) as reader:
        groups = reader.stats(args.by)
    if args.json:
        _print_json({"by": args.by, "groups": [g.as_dict() for g in groups]})
    else:
        from otel_llm.local.views.terminal import print_stats

        print_stats(_console(), groups, args.by)
    return 0


def _export(args: argparse.Namespace) -> int:
    from otel_llm.local.views.dataset import write_jsonl

    with _reader(args) as reader:
        if args.output in (None, "-"):
            write_jsonl(reader.generations(), sys.stdout.buffer)
            sys.stdout.flush()
            return 0
        try:
            with open(args.output, "wb") as stream:
                written = write_jsonl(reader.generations(), stream)
        except OSError as exc:
            raise _Fail(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {written} generations to {args.output}")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from otel_llm.local.views.config_report import config_report

    report = config_report()
    if args.json:
        _print_json(report)
    else:
        from otel_llm.local.views.terminal import print_config

        print_config(_console(), report)
    problems = report["problems"]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise _Fail(f"{problems[0]}{more}")
    return 0


# -- parsing ----------------------------------------------------------------------------
def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535 (0: any free port), got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="otel-llm",
        description="Run the demo agent, and read the local trace store.",
        epilog="--db defaults to $OTEL_LLM_DB, else traces.db in the user data dir. "
        "Exit codes: 0 success, 2 bad usage or input (one line on stderr).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Any, help: str, db: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        if db:
            sub.add_argument(
                "--db",
                metavar="PATH",
                help="database file (default: $OTEL_LLM_DB, else traces.db in the user data dir)",
            )
        return sub

    command(
        "demo",
        _demo,
        "run the built-in sample agent (no network, no keys), store and print its trace",
    )
    serve = command(
        "serve",
        _serve,
        "embedded OTLP receiver (HTTP/protobuf + JSON, gRPC) writing into the store; with "
        "--forward also a gateway to the destinations of the environment or --config",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    serve.add_argument(
        "--http-port", type=_port, default=4318, metavar="PORT", help="default 4318; 0: any free"
    )
    serve.add_argument(
        "--grpc-port", type=_port, default=4317, metavar="PORT", help="default 4317; 0: any free"
    )
    serve.add_argument(
        "--token",
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' (default: $OTEL_LLM_SERVE_TOKEN)",
    )
    serve.add_argument(
        "--forward",
        action="store_true",
        help="also send processed spans to the destinations of the environment or --config",
    )
    serve.add_argument(
        "--no-store", action="store_true", help="with --forward: do not store locally"
    )
    serve.add_argument(
        "--config", metavar="FILE", help="TOML: processing options and [destinations]"
    )
    serve.add_argument(
        "--max-body-bytes",
        type=_positive,
        default=16 * 2**20,
        metavar="N",
        help="largest request body, compressed or not (default: 16 MiB)",
    )
    traces = command("traces", _traces, "list the latest traces")
    traces.add_argument("--limit", type=_positive, default=20, metavar="N")
    traces.add_argument("--user", metavar="U", help="only this user's traces")
    traces.add_argument("--session", metavar="S", help="only this session's traces")
    traces.add_argument("--json", action="store_true", help="print JSON")
    show = command("show", _show, "show one trace as a tree, JSON or an HTML waterfall")
    show.add_argument("trace_id", metavar="TRACE_ID", help="trace id (or a unique prefix)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--html", metavar="FILE", help="write one self-contained HTML file")
    stats = command("stats", _stats, "tokens, cost, latency p50/p95 and error rate per group")
    stats.add_argument("--by", choices=GROUPINGS, default="model")
    stats.add_argument("--json", action="store_true", help="print JSON")
    export = command("export", _export, "export generations as a dataset (one JSON per line)")
    export.add_argument("--format", choices=("jsonl",), required=True)
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    check = command(
        "check-config",
        _check_config,
        "show the effective configuration from the environment and what is wrong with it",
        db=False,
    )
    check.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otel-llm`` script; returns the exit code."""
    command = "otel-llm"
    try:
        parser = _parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return 0 if exc.code in (0, None) else 2
        command = f"otel-llm {args.command}"
        result: int = args.run(args)
        return result
    except (_Fail, StoreError, ConfigError) as exc:
        print(f"{command}: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"{command}: database error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `otel-llm traces | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
