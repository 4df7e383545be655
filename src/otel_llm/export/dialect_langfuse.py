"""The Langfuse dialect: our canonical attributes → what the Langfuse server reads.

Pure functions over attribute mappings (no I/O, no state), verified against the
server's ingestion rules (``reference/langfuse-server-otel.md``):

- trace-level fields are read from each span, so every span carries them;
- ``langfuse.observation.input`` and ``.output`` come from one source together
  (the server takes both from the first source that has either);
- ``usage_details`` holds exclusive integer buckets; floats would be dropped;
- a prompt link (name and int version) only on generations, or the legacy
  ingestion path drops the whole observation;
- instrumentation scope names the server special-cases are renamed.

``gen_ai.*`` attributes are kept (the server reads them as fallbacks and other
tools downstream may too); our ``otel_llm.*`` keys that were translated are dropped.

Usage, cost and model-parameter values come from ``langfuse_details``; media
references are rewritten into Langfuse tokens by ``langfuse_media_refs``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any, Final

from otel_llm import semconv
from otel_llm.export.langfuse_details import (
    COST_PARTS,
    INVALID,
    Getter,
    canonical_usage,
    cost_and_total,
    loads_or_invalid,
    model_parameters_json,
    numbers_json,
    raw_usage_of,
)
from otel_llm.serialize import to_json

__all__ = [
    "LF_COMPLETION_START_TIME",
    "LF_COST_DETAILS",
    "LF_ENVIRONMENT",
    "LF_INPUT",
    "LF_IS_APP_ROOT",
    "LF_LEVEL",
    "LF_METADATA",
    "LF_MODEL_NAME",
    "LF_MODEL_PARAMETERS",
    "LF_OUTPUT",
    "LF_PROMPT_NAME",
    "LF_PROMPT_VERSION",
    "LF_RELEASE",
    "LF_STATUS_MESSAGE",
    "LF_TRACE_INPUT",
    "LF_TRACE_METADATA_PREFIX",
    "LF_TRACE_NAME",
    "LF_TRACE_OUTPUT",
    "LF_TRACE_TAGS",
    "LF_TYPE",
    "LF_USAGE_DETAILS",
    "LF_VERSION",
    "TRACE_FIELD_KEYS",
    "langfuse_scope_name",
    "share_trace_fields",
    "to_langfuse",
]

# --- keys the Langfuse server reads ------------------------------------------------
LF_TYPE: Final = "langfuse.observation.type"
LF_INPUT: Final = "langfuse.observation.input"
LF_OUTPUT: Final = "langfuse.observation.output"
LF_METADATA: Final = "langfuse.observation.metadata"
LF_MODEL_NAME: Final = "langfuse.observation.model.name"
LF_MODEL_PARAMETERS: Final = "langfuse.observation.model.parameters"
LF_USAGE_DETAILS: Final = "langfuse.observation.usage_details"
LF_COST_DETAILS: Final = "langfuse.observation.cost_details"
LF_COMPLETION_START_TIME: Final = "langfuse.observation.completion_start_time"
LF_LEVEL: Final = "langfuse.observation.level"
LF_STATUS_MESSAGE: Final = "langfuse.observation.status_message"
LF_PROMPT_NAME: Final = "langfuse.observation.prompt.name"
LF_PROMPT_VERSION: Final = "langfuse.observation.prompt.version"
LF_TRACE_NAME: Final = "langfuse.trace.name"
LF_TRACE_TAGS: Final = "langfuse.trace.tags"
LF_TRACE_METADATA_PREFIX: Final = "langfuse.trace.metadata."
LF_TRACE_INPUT: Final = "langfuse.trace.input"
LF_TRACE_OUTPUT: Final = "langfuse.trace.output"
LF_RELEASE: Final = "langfuse.release"
LF_VERSION: Final = "langfuse.version"
LF_ENVIRONMENT: Final = "langfuse.environment"
LF_IS_APP_ROOT: Final = "langfuse.internal.is_app_root"

TRACE_FIELD_KEYS: Final = frozenset(
    {
        LF_TRACE_NAME,
        LF_TRACE_TAGS,
        LF_RELEASE,
        LF_ENVIRONMENT,
        semconv.USER_ID,
        semconv.SESSION_ID,
    }
)
"""Trace-level keys (plus ``langfuse.trace.metadata.*``) the server reads per span."""

# Lower-precedence I/O sources the server would otherwise use, in its order (§5.1):
# when only one of our input/output exists, the other comes from here so that
# setting ``langfuse.observation.*`` never hides it.
_INPUT_FALLBACKS: Final = (
    "traceloop.entity.input",
    "input.value",
    "input",
    semconv.GEN_AI_INPUT_MESSAGES,
)
_OUTPUT_FALLBACKS: Final = (
    "traceloop.entity.output",
    "output.value",
    "output",
    semconv.GEN_AI_OUTPUT_MESSAGES,
)

_RESERVED_SCOPES: Final = frozenset({"ai", "pydantic-ai", "genkit-tracer"})
_LANGFUSE: Final = re.compile("langfuse", re.IGNORECASE)
_SCOPE_PREFIX: Final = "otel-llm/"


def to_langfuse(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Translate one span's attributes into the Langfuse dialect (a new dict).

    Runs for every exported span on the worker thread, so it copies once, reads with
    direct lookups, builds nothing for absent fields and caches the JSON of repeated
    model parameters; the keys come out in a fixed order (the wire bytes are stable).

    Args:
        attributes: canonical attributes of one processed span; not modified.

    Returns:
        The attributes to export: foreign and ``gen_ai.*`` keys as given, our
        translated ``otel_llm.*`` keys replaced by their ``langfuse.*`` form.
    """
    out = dict(attributes)
    get = attributes.get
    is_generation = False
    as_type = get(semconv.OBSERVATION_TYPE)
    if isinstance(as_type, str) and (lowered := as_type.lower()) in semconv.AS_TYPES:
        out[LF_TYPE] = lowered
        del out[semconv.OBSERVATION_TYPE]
        is_generation = lowered == "generation"
    if get(semconv.OBSERVATION_INPUT) is not None or get(semconv.OBSERVATION_OUTPUT) is not None:
        _input_output(attributes, out)
    _observation_fields(get, out)
    if is_generation:
        _prompt(get, out)
    _trace_fields(get, out)
    usage = canonical_usage(get)
    if usage is None and get(semconv.USAGE_RAW) is not None:
        usage = raw_usage_of(attributes)
        if usage is not None:
            del out[semconv.USAGE_RAW]
    if usage is not None:
        out[LF_USAGE_DETAILS] = numbers_json(usage)
    cost, total_given = cost_and_total(get)
    if cost is not None:
        out[LF_COST_DETAILS] = numbers_json(cost)
        for key in COST_PARTS:
            out.pop(key, None)
        if not total_given:
            out.pop(semconv.COST_RAW, None)
    if get(semconv.GEN_AI_IS_ENTRY) is True:
        out[LF_IS_APP_ROOT] = True
    if LF_INPUT in out and LF_OUTPUT in out:
        # The server reads langfuse.observation.input/output first; the message copies
        # would only double the request (and what Langfuse stores in metadata).
        for key in _MESSAGE_COPIES:
            out.pop(key, None)
    return out


_MESSAGE_COPIES = (
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
)
_TRACE_RENAMES: Final = (
    (semconv.TRACE_NAME, LF_TRACE_NAME),
    (semconv.RELEASE, LF_RELEASE),
    (semconv.VERSION, LF_VERSION),
    (semconv.ENVIRONMENT, LF_ENVIRONMENT),
    (semconv.TRACE_INPUT, LF_TRACE_INPUT),
    (semconv.TRACE_OUTPUT, LF_TRACE_OUTPUT),
)


def _input_output(attributes: Mapping[str, Any], out: dict[str, Any]) -> None:
    given_in = attributes.get(semconv.OBSERVATION_INPUT)
    given_out = attributes.get(semconv.OBSERVATION_OUTPUT)
    if given_in is None and given_out is None:
        return  # the server finds gen_ai.* / vendor I/O on its own
    value_in = given_in if given_in is not None else _first(attributes, _INPUT_FALLBACKS)
    value_out = given_out if given_out is not None else _first(attributes, _OUTPUT_FALLBACKS)
    # Both keys from one source, as the server reads them. A side that exists
    # nowhere stays absent: the server then records it as null, exactly as it
    # would for an explicit null, without storing the string "null".
    if value_in is not None:
        out[LF_INPUT] = _text(value_in)
    if value_out is not None:
        out[LF_OUTPUT] = _text(value_out)
    out.pop(semconv.OBSERVATION_INPUT, None)
    out.pop(semconv.OBSERVATION_OUTPUT, None)


def _observation_fields(get: Getter, out: dict[str, Any]) -> None:
    metadata = get(semconv.OBSERVATION_METADATA)
    if metadata is not None:
        out[LF_METADATA] = _json_object(metadata)
        del out[semconv.OBSERVATION_METADATA]
    model = get(semconv.GEN_AI_RESPONSE_MODEL) or get(semconv.GEN_AI_REQUEST_MODEL)
    if isinstance(model, str) and model:
        out[LF_MODEL_NAME] = model
    raw_params = get(semconv.OBSERVATION_MODEL_PARAMETERS)
    if raw_params is not None:
        params = model_parameters_json(raw_params)
        if params is not None:
            out[LF_MODEL_PARAMETERS] = params
            del out[semconv.OBSERVATION_MODEL_PARAMETERS]
    start = get(semconv.OBSERVATION_COMPLETION_START_TIME)
    if isinstance(start, str) and start:
        out[LF_COMPLETION_START_TIME] = start
        del out[semconv.OBSERVATION_COMPLETION_START_TIME]
    level = get(semconv.OBSERVATION_LEVEL)
    if isinstance(level, str) and level.upper() in semconv.LEVELS:
        out[LF_LEVEL] = level.upper()
        del out[semconv.OBSERVATION_LEVEL]
    message = get(semconv.OBSERVATION_STATUS_MESSAGE)
    if message is not None:
        out[LF_STATUS_MESSAGE] = str(message)
        del out[semconv.OBSERVATION_STATUS_MESSAGE]


def _prompt(get: Getter, out: dict[str, Any]) -> None:
    """Name and int version together, on generations only (else the server drops the span)."""
    name = get(semconv.PROMPT_NAME)
    version = get(semconv.PROMPT_VERSION)
    if not isinstance(name, str) or not name or not _is_int(version):
        return  # not translated: kept as otel_llm.prompt.* (plain metadata for Langfuse)
    out[LF_PROMPT_NAME] = name
    out[LF_PROMPT_VERSION] = version
    del out[semconv.PROMPT_NAME], out[semconv.PROMPT_VERSION]


def _trace_fields(get: Getter, out: dict[str, Any]) -> None:
    for ours, theirs in _TRACE_RENAMES:
        value = get(ours)
        if value is not None:
            out[theirs] = value if isinstance(value, str) else to_json(value)
            del out[ours]
    version = get(semconv.OBSERVATION_VERSION)
    if version is not None:  # Langfuse has one key for trace and observation version
        out[LF_VERSION] = str(version)
        del out[semconv.OBSERVATION_VERSION]
    for key in (semconv.USER_ID, semconv.SESSION_ID):
        value = get(key)
        if value is not None and not isinstance(value, str):
            out[key] = str(value)  # the server's schema wants strings
    tags = get(semconv.TRACE_TAGS)
    if tags is not None and (tags := _tags(tags)) is not None:
        out[LF_TRACE_TAGS] = tags
        del out[semconv.TRACE_TAGS]
    metadata = get(semconv.TRACE_METADATA)
    if metadata is not None:
        parsed = loads_or_invalid(metadata) if isinstance(metadata, str) else metadata
        if isinstance(parsed, Mapping):
            for key, value in parsed.items():
                if value is not None:
                    text = value if isinstance(value, str) else to_json(value)
                    out[f"{LF_TRACE_METADATA_PREFIX}{key}"] = text
            del out[semconv.TRACE_METADATA]


def share_trace_fields(spans: Sequence[tuple[int, MutableMapping[str, Any]]]) -> None:
    """Copy trace-level fields between spans of the same trace in one batch.

    The server reads user, session, trace name, tags, metadata, release and
    environment from each span; a field set on one span (e.g. by
    ``update_current_trace`` after its siblings started) is copied to the spans
    of the same trace that lack it. Values already on a span are never changed.
    Only traces with several spans in the batch are scanned (a lone span has no one
    to share with).

    Args:
        spans: ``(trace_id, attributes)`` pairs; the attribute dicts are updated.
    """
    seen: dict[int, int] = {}
    for trace_id, _ in spans:
        seen[trace_id] = seen.get(trace_id, 0) + 1
    if len(seen) == len(spans):
        return
    keys, prefix = TRACE_FIELD_KEYS, LF_TRACE_METADATA_PREFIX
    shared: dict[int, dict[str, Any]] = {}
    for trace_id, attributes in spans:
        if seen[trace_id] > 1:
            fields = shared.setdefault(trace_id, {})
            for key, value in attributes.items():
                if key in keys or key.startswith(prefix):
                    fields.setdefault(key, value)
    for trace_id, attributes in spans:
        found = shared.get(trace_id)
        if found:
            for key, value in found.items():
                attributes.setdefault(key, value)


def langfuse_scope_name(name: str) -> str:
    """The scope name to export: renamed when the server would special-case it.

    Names containing "langfuse" switch on Langfuse-SDK handling (metadata is
    dropped, write-path heuristics), and ``ai``, ``pydantic-ai`` and
    ``genkit-tracer`` switch on vendor parsers that bypass the dialect. Those
    become ``otel-llm/<name>`` with "langfuse" spelled "lf".
    """
    if name not in _RESERVED_SCOPES and "langfuse" not in name.lower():
        return name
    return _SCOPE_PREFIX + _LANGFUSE.sub("lf", name)


# --- small total helpers ---------------------------------------------------------------
def _first(attributes: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else to_json(value)


def _json_object(value: object) -> str:
    """A JSON object string: the server drops metadata that is not an object."""
    parsed = loads_or_invalid(value) if isinstance(value, str) else value
    if isinstance(parsed, Mapping):
        return value if isinstance(value, str) else to_json(parsed)
    return to_json({"value": value if parsed is INVALID else parsed})


def _tags(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str):
        parsed = loads_or_invalid(value)
        if isinstance(parsed, list):
            value = parsed
        else:
            return (value,) if value else None
    if isinstance(value, (list, tuple)):
        return tuple(str(t) for t in value if t is not None)
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
