"""Generates ``genai_prices_table.json`` from the installed genai-prices (``make prices``).

Why a step of its own: the table must be exactly what genai-prices answers, so it
is computed by asking genai-prices, through the same code the cost stage uses at
run time (:class:`~otel_llm.processing.cost.GenaiPrices`), for every model id and
exact alias in its data, under the model's provider (and the providers that resell
it, such as Azure for OpenAI's models) and under no provider. A
lookup genai-prices cannot answer is left out (then genai-prices decides at run
time), and so is one whose conditions have no spec.

Run ``python -m otel_llm.processing.price_table_build`` after upgrading genai-prices;
``--check`` exits 1 when the committed table differs from what it would write.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from otel_llm.processing.cost import GenaiPrices
from otel_llm.processing.price_table import FORMAT, TABLE_FILE, installed_genai_version, table_key

__all__ = ["build_table", "main", "model_refs"]


def model_refs(model: Any) -> Iterator[str]:
    """A model's id and the exact names its match rule lists (``equals`` clauses)."""
    yield model.id
    pending = [model.match]
    while pending:
        clause = pending.pop()
        equals = getattr(clause, "equals", None)
        if isinstance(equals, str):
            yield equals
        pending.extend(getattr(clause, "or_", None) or ())
        pending.extend(getattr(clause, "and_", None) or ())


def build_table(genai: GenaiPrices | None = None) -> dict[str, Any]:
    """The table as a JSON-able dict, from the installed genai-prices."""
    genai = genai or GenaiPrices()
    by_id = {provider.id: provider for provider in genai.providers}
    specs: dict[bytes, int] = {}
    entries: dict[str, int] = {}
    for provider in genai.providers:
        # A provider that resells others' models (Azure: OpenAI's...) answers their names too.
        sellers = [provider, *(by_id[i] for i in provider.fallback_model_providers or ())]
        for model in (model for seller in sellers for model in seller.models):
            for ref in model_refs(model):
                for provider_id in (provider.id, None):
                    key = table_key(provider_id, ref)
                    if key in entries:
                        continue
                    spec = genai.spec(provider_id, ref)
                    if spec is not None:
                        text = orjson.dumps(spec)
                        entries[key] = specs.setdefault(text, len(specs))
    return {
        "format": FORMAT,
        "genai_prices": installed_genai_version(),
        "generated_by": "python -m otel_llm.processing.price_table_build",
        "specs": [text.decode() for text in specs],
        "entries": dict(sorted(entries.items())),
    }


def render(table: dict[str, Any]) -> bytes:
    return orjson.dumps(table, option=orjson.OPT_INDENT_2) + b"\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=TABLE_FILE, help="where to write the table")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = render(build_table())
    if args.check:
        current = args.out.read_bytes() if args.out.exists() else b""
        if current != text:
            print(f"{args.out} is stale: run make prices", file=sys.stderr)
            return 1
        return 0
    args.out.write_bytes(text)
    table = orjson.loads(text)
    print(f"wrote {args.out}: {len(table['entries'])} lookups, {len(table['specs'])} plans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
