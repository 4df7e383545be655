"""Views of the local store: terminal (rich), self-contained HTML, JSONL datasets.

Only the terminal module imports rich, and only the ``otel-llm`` command imports it;
the HTML and dataset views are plain Python.
"""

from __future__ import annotations

__all__: list[str] = []
