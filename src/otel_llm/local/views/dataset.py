"""Generations as a JSONL dataset: one line per model call, for evaluation or fine-tuning.

Each line holds what a dataset needs without a second lookup: the call's input and
output (as the app passed them, and as semconv messages), model and parameters,
usage and cost, the scores that judge it (given on the call, on an observation it ran
inside, or on its trace), metadata, user, session and timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

import orjson

from otel_llm import semconv
from otel_llm.local.store_queries import Generation, iso_time, parse_json

__all__ = ["generation_record", "write_jsonl"]

_USAGE_KEYS = {
    "input": semconv.GEN_AI_USAGE_INPUT_TOKENS,
    "output": semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    "cache_read_input": semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "cache_creation_input": semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "reasoning_output": semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
}
_COST_PREFIX = "otel_llm.cost."


def _usage(attributes: dict[str, Any]) -> dict[str, Any]:
    usage = {name: attributes[key] for name, key in _USAGE_KEYS.items() if key in attributes}
    if "input" in usage or "output" in usage:
        usage["total"] = (usage.get("input") or 0) + (usage.get("output") or 0)
    if attributes.get(semconv.USAGE_ESTIMATED) is True:
        usage["estimated"] = True
    return usage


def _cost(attributes: dict[str, Any]) -> dict[str, Any] | None:
    cost = {
        key.removeprefix(_COST_PREFIX): value
        for key, value in attributes.items()
        if key.startswith(_COST_PREFIX) and key != semconv.COST_RAW
    }
    total = attributes.get(semconv.GEN_AI_USAGE_COST)
    if total is not None:
        cost["total"] = total
    return cost or None


def generation_record(generation: Generation) -> dict[str, Any]:
    """One dataset line (a JSON-ready dict) for one generation."""
    span, trace = generation.span, generation.trace
    a = span.attributes
    prompt_name = a.get(semconv.PROMPT_NAME)
    first_token = a.get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    return {
        "trace_id": span.trace_id,
        "observation_id": span.span_id,
        "parent_observation_id": span.parent_span_id,
        "name": span.name,
        "trace_name": trace.name,
        "model": span.model,
        "model_parameters": parse_json(a.get(semconv.OBSERVATION_MODEL_PARAMETERS)),
        "input": span.input,
        "output": span.output,
        "input_messages": parse_json(a.get(semconv.GEN_AI_INPUT_MESSAGES)),
        "output_messages": parse_json(a.get(semconv.GEN_AI_OUTPUT_MESSAGES)),
        "system_instructions": parse_json(a.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS)),
        "usage": _usage(a),
        "cost": _cost(a),
        "scores": [
            {
                "name": score.name,
                "value": score.value,
                "data_type": score.data_type,
                "comment": score.comment,
                "on": target,
                "observation_id": score.observation_id,
            }
            for target, score in generation.scores
        ],
        "metadata": span.metadata,
        "trace_metadata": trace.metadata,
        "tags": trace.tags,
        "prompt": (
            {"name": prompt_name, "version": a.get(semconv.PROMPT_VERSION)} if prompt_name else None
        ),
        "user_id": span.user_id or trace.user_id,
        "session_id": span.session_id or trace.session_id,
        "environment": span.environment,
        "release": span.release,
        "version": span.version,
        "level": span.level,
        "status_message": span.status_message,
        "start_time": iso_time(span.start_ns),
        "end_time": iso_time(span.end_ns),
        "completion_start_time": a.get(semconv.OBSERVATION_COMPLETION_START_TIME),
        "latency_ms": round(span.duration_ns / 1e6, 3),
        "time_to_first_token_ms": (
            round(first_token * 1000, 3) if isinstance(first_token, (int, float)) else None
        ),
    }


def write_jsonl(generations: Iterable[Generation], stream: IO[bytes]) -> int:
    """Write one JSON line per generation to a binary stream; return the number written."""
    written = 0
    for generation in generations:
        stream.write(orjson.dumps(generation_record(generation), option=orjson.OPT_APPEND_NEWLINE))
        written += 1
    return written
