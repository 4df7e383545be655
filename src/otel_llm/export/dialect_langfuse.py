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
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Container, Iterable, Mapping, MutableMapping, Sequence
from typing import Any, Final, cast

import orjson

from otel_llm import semconv
from otel_llm.processing.media_model import REFERENCE_PATTERN, REFERENCE_PREFIX
from otel_llm.serialize import DEFAULT_MAX_CHARS, to_json

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
    "cost_details",
    "langfuse_scope_name",
    "media_field",
    "media_id",
    "media_token",
    "model_parameters",
    "replace_media_references",
    "share_trace_fields",
    "to_langfuse",
    "usage_details",
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

# --- ours that semconv.py does not name yet ------------------------------------------
_COST_PARTS: Final = {
    "otel_llm.cost.input": "input",
    "otel_llm.cost.output": "output",
    "otel_llm.cost.cache_read": "input_cached_tokens",
    "otel_llm.cost.cache_creation": "input_cache_creation",
}
"""Our cost components → Langfuse cost keys (named like the usage keys they price)."""

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
_INVALID: Final = object()


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
    usage = _canonical_usage(get)
    if usage is None and get(semconv.USAGE_RAW) is not None:
        usage = _raw_usage_of(attributes)
        if usage is not None:
            del out[semconv.USAGE_RAW]
    if usage is not None:
        out[LF_USAGE_DETAILS] = _numbers_json(usage)
    cost, total_given = _cost(get)
    if cost is not None:
        out[LF_COST_DETAILS] = _numbers_json(cost)
        for key in _COST_PARTS:
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
_COST_ITEMS: Final = tuple(_COST_PARTS.items())
_INF: Final = math.inf
_Get = Callable[[str], Any]


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


def _observation_fields(get: _Get, out: dict[str, Any]) -> None:
    metadata = get(semconv.OBSERVATION_METADATA)
    if metadata is not None:
        out[LF_METADATA] = _json_object(metadata)
        del out[semconv.OBSERVATION_METADATA]
    model = get(semconv.GEN_AI_RESPONSE_MODEL) or get(semconv.GEN_AI_REQUEST_MODEL)
    if isinstance(model, str) and model:
        out[LF_MODEL_NAME] = model
    raw_params = get(semconv.OBSERVATION_MODEL_PARAMETERS)
    if raw_params is not None:
        params = _model_parameters_json(raw_params)
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


def _prompt(get: _Get, out: dict[str, Any]) -> None:
    """Name and int version together, on generations only (else the server drops the span)."""
    name = get(semconv.PROMPT_NAME)
    version = get(semconv.PROMPT_VERSION)
    if not isinstance(name, str) or not name or not _is_int(version):
        return  # not translated: kept as otel_llm.prompt.* (plain metadata for Langfuse)
    out[LF_PROMPT_NAME] = name
    out[LF_PROMPT_VERSION] = version
    del out[semconv.PROMPT_NAME], out[semconv.PROMPT_VERSION]


def _trace_fields(get: _Get, out: dict[str, Any]) -> None:
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
        parsed = _loads(metadata) if isinstance(metadata, str) else metadata
        if isinstance(parsed, Mapping):
            for key, value in parsed.items():
                if value is not None:
                    text = value if isinstance(value, str) else to_json(value)
                    out[f"{LF_TRACE_METADATA_PREFIX}{key}"] = text
            del out[semconv.TRACE_METADATA]


def usage_details(attributes: Mapping[str, Any]) -> dict[str, int] | None:
    """Exclusive integer usage buckets, or None when the span has no usage.

    Canonical ``gen_ai.usage.*`` counts are inclusive (input includes cached
    tokens, output includes reasoning); Langfuse's ``usage_details`` wants each
    token in exactly one bucket, with ``total`` their sum. Without canonical
    counts, ``otel_llm.usage.raw`` in OpenAI (``prompt_tokens``…) or Langfuse
    (``input``/``output``/``total``) shape is mapped directly.
    """
    canonical = _canonical_usage(attributes.get)
    return canonical if canonical is not None else _raw_usage_of(attributes)


def _raw_usage_of(attributes: Mapping[str, Any]) -> dict[str, int] | None:
    raw = attributes.get(semconv.USAGE_RAW)
    parsed = _loads(raw) if isinstance(raw, str) else raw
    return _raw_usage(parsed) if isinstance(parsed, Mapping) else None


def _canonical_usage(get: _Get) -> dict[str, int] | None:
    given_in = get(semconv.GEN_AI_USAGE_INPUT_TOKENS)
    given_out = get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)
    cache_read = get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
    cache_creation = get(semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)
    reasoning = get(semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)
    if (
        cache_read is None
        and cache_creation is None
        and reasoning is None
        and type(given_in) is int
        and type(given_out) is int
        and given_in >= 0
        and given_out >= 0
    ):  # the usual span: what _buckets gives for plain input and output counts
        return {"input": given_in, "output": given_out, "total": given_in + given_out}
    return _buckets(
        _tokens(given_in),
        _tokens(given_out),
        _tokens(cache_read),
        _tokens(cache_creation),
        _tokens(reasoning),
    )


def _buckets(
    given_in: int | None,
    given_out: int | None,
    cache_read: int | None,
    cache_creation: int | None,
    reasoning: int | None,
    total: int | None = None,
) -> dict[str, int] | None:
    usage: dict[str, int] = {}
    if given_in is not None:
        usage["input"] = max(0, given_in - (cache_read or 0) - (cache_creation or 0))
    if given_out is not None:
        usage["output"] = max(0, given_out - (reasoning or 0))
    if cache_read is not None:
        usage["input_cached_tokens"] = cache_read
    if cache_creation is not None:
        usage["input_cache_creation"] = cache_creation
    if reasoning is not None:
        usage["output_reasoning_tokens"] = reasoning
    if not usage:
        return None
    usage["total"] = total if total is not None else sum(usage.values())
    return usage


def _raw_usage(raw: Mapping[str, Any]) -> dict[str, int] | None:
    if "prompt_tokens" in raw or "completion_tokens" in raw:  # OpenAI chat completions
        prompt_details = raw.get("prompt_tokens_details")
        completion_details = raw.get("completion_tokens_details")
        cached = _tokens(_get(prompt_details, "cached_tokens"))
        reasoning = _tokens(_get(completion_details, "reasoning_tokens"))
        return _buckets(
            _tokens(raw.get("prompt_tokens")),
            _tokens(raw.get("completion_tokens")),
            cached or None,
            None,
            reasoning or None,
            _tokens(raw.get("total_tokens")),
        )
    if "input" in raw or "output" in raw:  # Langfuse: already exclusive buckets
        usage = {str(k): n for k, v in raw.items() if (n := _tokens(v)) is not None}
        if "total" not in usage and usage:
            usage["total"] = sum(usage.values())
        return usage or None
    return None


def cost_details(attributes: Mapping[str, Any]) -> dict[str, float] | None:
    """Provided cost as Langfuse ``cost_details`` (USD, with ``total``), or None.

    ``gen_ai.usage.cost`` is the total; ``otel_llm.cost.{input,output,cache_read,
    cache_creation}`` are its parts. Without them, ``otel_llm.cost.raw`` (a
    number, or a mapping with ``total`` and/or parts) is used. Any cost sent
    disables the server's own pricing, so an absent cost is never sent as 0.
    """
    return _cost(attributes.get)[0]


def _cost(get: _Get) -> tuple[dict[str, float] | None, bool]:
    """``cost_details`` and whether ``gen_ai.usage.cost`` held a valid total."""
    cost: dict[str, float] = {}
    for ours, theirs in _COST_ITEMS:
        part = get(ours)
        if part is not None and (part := _amount(part)) is not None:
            cost[theirs] = part
    total = _amount(get(semconv.GEN_AI_USAGE_COST))
    if total is not None:
        cost["total"] = total
    elif not cost:
        raw = get(semconv.COST_RAW)
        if raw is None:
            return None, False
        parsed = _loads(raw) if isinstance(raw, str) else raw
        if isinstance(parsed, Mapping):
            cost = {str(k): n for k, v in parsed.items() if (n := _amount(v)) is not None}
        elif (amount := _amount(parsed)) is not None:
            cost["total"] = amount
    if not cost:
        return None, total is not None
    if "total" not in cost:
        cost["total"] = math.fsum(cost.values())
    return cost, total is not None


def model_parameters(value: object) -> dict[str, str | int | float] | None:
    """Our model-parameters JSON as a flat mapping the server's schema accepts.

    The legacy ingestion path drops the observation for values other than
    strings, numbers, booleans, string lists or string maps; we send strings and
    numbers as they are and everything else as compact JSON text.
    """
    parsed = _loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, Mapping):
        return None
    params: dict[str, str | int | float] = {}
    for key, item in parsed.items():
        if item is None:
            continue
        if isinstance(item, str) or (
            isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item)
        ):
            params[str(key)] = item
        else:
            params[str(key)] = to_json(item)
    return params


_PARAMS_JSON: dict[str, str | None] = {}  # short model-parameters text -> LF_MODEL_PARAMETERS
_PARAMS_CACHE_CHARS = 1024
_PARAMS_CACHE_SIZE = 256


def _model_parameters_json(value: object) -> str | None:
    """``to_json(model_parameters(value))``, cached for short JSON texts.

    One configuration sends the same parameters text on every call. Whatever a short
    text parses to (finite floats, 64-bit ints, valid strings: what ``orjson.loads``
    yields) serializes without any of ``to_json``'s counted repairs, so a cached result
    is exactly what recomputing gives.
    """
    if type(value) is not str or len(value) > _PARAMS_CACHE_CHARS:
        params = model_parameters(value)
        return None if params is None else to_json(params)
    cached = _PARAMS_JSON.get(value, _INVALID)
    if cached is not _INVALID:
        return cast("str | None", cached)
    parsed = _loads(value)
    result = to_json(model_parameters(parsed)) if isinstance(parsed, Mapping) else None
    if len(_PARAMS_JSON) >= _PARAMS_CACHE_SIZE:
        _PARAMS_JSON.clear()
    _PARAMS_JSON[value] = result
    return result


def _numbers_json(value: Mapping[str, int] | Mapping[str, float]) -> str:
    """``to_json`` of flat usage or cost numbers (finite), without its general checks."""
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # an int beyond 64 bits: to_json knows what to do
        return to_json(value)
    return text if len(text) <= DEFAULT_MAX_CHARS else to_json(value)


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
def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _INVALID


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
    parsed = _loads(value) if isinstance(value, str) else value
    if isinstance(parsed, Mapping):
        return value if isinstance(value, str) else to_json(parsed)
    return to_json({"value": value if parsed is _INVALID else parsed})


def _tags(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str):
        parsed = _loads(value)
        if isinstance(parsed, list):
            value = parsed
        else:
            return (value,) if value else None
    if isinstance(value, (list, tuple)):
        return tuple(str(t) for t in value if t is not None)
    return None


def _get(container: object, key: str) -> object:
    return container.get(key) if isinstance(container, Mapping) else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tokens(value: object) -> int | None:
    """A token count: a non-negative int (an integral float is accepted), else None."""
    if type(value) is int:
        return value if value >= 0 else None
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _amount(value: object) -> float | None:
    """A cost: a finite, non-negative number (the server drops anything else), else None."""
    if type(value) is float:
        return value if 0.0 <= value < _INF else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


# --- media -----------------------------------------------------------------------------
_MEDIA_TOKEN: Final = "@@@langfuseMedia:type={}|id={}|source={}@@@"
_MEDIA_SOURCES: Final = {
    "base64_data_uri": "base64_data_uri",
    "base64": "base64_data_uri",
    "bytes": "bytes",
}
_MEDIA_INPUT_KEYS: Final = (
    LF_INPUT,
    LF_TRACE_INPUT,
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    "gen_ai.prompt",
    "llm.input_messages",
    "input.value",
    "ai.prompt",
    "traceloop.entity.input",
)
_MEDIA_OUTPUT_KEYS: Final = (
    LF_OUTPUT,
    LF_TRACE_OUTPUT,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    "gen_ai.completion",
    "llm.output_messages",
    "output.value",
    "ai.response",
    "traceloop.entity.output",
)


def media_id(sha256_hex: str) -> str:
    """The Langfuse SDK's media id: the first 22 characters of the URL-safe base64 of
    the raw sha256 digest (identical content, identical id)."""
    digest = bytes.fromhex(sha256_hex)
    return base64.urlsafe_b64encode(digest).decode("ascii")[:22]


def media_token(mime_type: str, sha256_hex: str, source: str) -> str:
    """``@@@langfuseMedia:type=<mime>|id=<id>|source=<base64_data_uri|bytes|file>@@@``."""
    lf_source = _MEDIA_SOURCES.get(source, "bytes")
    return _MEDIA_TOKEN.format(mime_type, media_id(sha256_hex), lf_source)


def media_field(key: str) -> str:
    """The upload ``field`` for a reference found under attribute ``key``."""
    if key.startswith(_MEDIA_INPUT_KEYS):
        return "input"
    if key.startswith(_MEDIA_OUTPUT_KEYS):
        return "output"
    return "metadata"


def replace_media_references(
    attributes: MutableMapping[str, Any], known: Container[str]
) -> list[tuple[str, str]]:
    """Rewrite our media references (whose sha256 is in ``known``) into Langfuse tokens.

    Every string and string-sequence attribute is searched; references to payloads we
    do not hold stay as they are (a token without an upload would dangle).

    Returns:
        The distinct ``(sha256, field)`` pairs rewritten, in order of appearance.
    """
    found: dict[tuple[str, str], None] = {}

    def rewrite(text: str, field: str) -> str:
        def token(m: re.Match[str]) -> str:
            sha = m["sha256"]
            if sha not in known:
                return m[0]
            found[(sha, field)] = None
            return media_token(m["mime_type"], sha, m["source"])

        return REFERENCE_PATTERN.sub(token, text)

    for key, value in list(attributes.items()):
        if isinstance(value, str):
            if REFERENCE_PREFIX in value:
                attributes[key] = rewrite(value, media_field(key))
        elif isinstance(value, (list, tuple)) and any(
            isinstance(v, str) and REFERENCE_PREFIX in v for v in value
        ):
            field = media_field(key)
            attributes[key] = tuple(rewrite(v, field) if isinstance(v, str) else v for v in value)
    return list(found)
