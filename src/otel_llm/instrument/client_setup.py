"""What ``Client(...)`` does to the pipeline: configure one, or add a Langfuse destination."""

from __future__ import annotations

from typing import Any

from otel_llm import runtime

__all__ = ["ensure_pipeline"]


def ensure_pipeline(
    public_key: str | None, secret_key: str | None, host: str | None, options: dict[str, Any]
) -> None:
    """Make sure a pipeline exists; with Langfuse credentials, make sure it sends there."""
    from otel_llm.config import configure

    pipeline = runtime.current().pipeline
    if not (public_key or secret_key or host):
        if pipeline is None:
            configure(**options)
        return
    from otel_llm.export.langfuse import Langfuse

    destination = Langfuse(public_key, secret_key, host)
    if pipeline is None:
        configure(destinations=[destination], **options)
        return
    if any(isinstance(d, Langfuse) for d in pipeline.destinations):
        return
    arguments = {**pipeline.arguments, **options}
    arguments["destinations"] = [*pipeline.destinations, destination]
    configure(**arguments)
