"""OpenInference, OpenLLMetry/Traceloop and pre-1.37 semconv attributes → canonical ones.

Why a module of its own: each of these dialects is a table of key renames plus
a flattened message format; keeping the tables together makes the mapping
reviewable at a glance. The stage itself lives in
:mod:`otel_llm.processing.normalize`; its rules (canonical wins, translated
content removed, malformed data counted) apply here. Provider values are
mapped by :mod:`otel_llm.processing.normalize_providers`.
"""

from __future__ import annotations

from typing import Any, Final

from otel_llm import semconv
from otel_llm.instrument.fields import model_parameter_attributes
from otel_llm.processing.normalize_common import (
    Families,
    invalid,
    move_content,
    set_chat,
    set_json,
    set_type,
    text_value,
    token_count,
    translate_metadata,
    translate_tags,
)
from otel_llm.processing.normalize_messages import (
    Chat,
    Message,
    chat_messages,
    output_message,
    output_messages,
)
from otel_llm.processing.normalize_parts import parse_json
from otel_llm.processing.normalize_providers import set_provider
from otel_llm.processing.normalize_sources import (
    group_indexed,
    openinference_message,
    traceloop_message,
)
from otel_llm.processing.record import SpanRecord
from otel_llm.processing.stage import StageContext

__all__ = ["OLD_SEMCONV_KEYS", "old_semconv", "openinference", "traceloop"]

# --- pre-1.37 semconv ------------------------------------------------------------------

_USAGE: Final = {
    # pre-1.27 semconv, OpenLLMetry
    "gen_ai.usage.prompt_tokens": semconv.GEN_AI_USAGE_INPUT_TOKENS,
    "gen_ai.usage.completion_tokens": semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    "gen_ai.usage.cache_read_input_tokens": semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "gen_ai.usage.cache_creation_input_tokens": semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "gen_ai.usage.reasoning_tokens": semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    "llm.usage.reasoning_tokens": semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
}
_OI_USAGE: Final = {
    "llm.token_count.prompt": semconv.GEN_AI_USAGE_INPUT_TOKENS,
    "llm.token_count.completion": semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    "llm.token_count.prompt_details.cache_read": semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "llm.token_count.prompt_details.cache_write": semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "llm.token_count.completion_details.reasoning": semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
}
OLD_SEMCONV_KEYS: Final = frozenset({semconv.GEN_AI_SYSTEM, *_USAGE})
"""Exact keys (besides prefixes) that make a span go through translation."""


def _usage(
    attributes: dict[str, Any], ctx: StageContext, table: dict[str, str], dialect: str
) -> None:
    for theirs, ours in table.items():
        if theirs in attributes:
            count = token_count(attributes[theirs])
            if count is None:
                invalid(ctx, dialect, "token count")
            else:
                attributes.setdefault(ours, count)


def old_semconv(record: SpanRecord, ctx: StageContext, families: Families) -> None:
    """``gen_ai.system`` and the pre-1.27 usage names (also what OpenLLMetry writes)."""
    attributes = record.attributes
    if semconv.GEN_AI_SYSTEM in attributes:
        system = attributes[semconv.GEN_AI_SYSTEM]
        if isinstance(system, str):
            set_provider(attributes, system)
        else:
            invalid(ctx, "semconv", "gen_ai.system")
    _usage(attributes, ctx, _USAGE, "semconv")


# --- OpenInference --------------------------------------------------------------------

_OI_KINDS: Final = {
    "LLM": "generation",
    "CHAIN": "chain",
    "TOOL": "tool",
    "RETRIEVER": "retriever",
    "EMBEDDING": "embedding",
    "AGENT": "agent",
    "RERANKER": "span",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
}
_OI_MODELS: Final = (
    ("llm.response.model_name", semconv.GEN_AI_RESPONSE_MODEL),
    ("llm.request.model_name", semconv.GEN_AI_REQUEST_MODEL),
    ("llm.model_name", semconv.GEN_AI_REQUEST_MODEL),
    ("embedding.model_name", semconv.GEN_AI_REQUEST_MODEL),
)
_OI_KIND: Final = "openinference.span.kind"
_OI_IN: Final = "llm.input_messages."
_OI_OUT: Final = "llm.output_messages."


def openinference(record: SpanRecord, ctx: StageContext, families: Families) -> None:
    """OpenInference span kinds, values, model, parameters, usage, tags and messages."""
    attributes = record.attributes
    kind = attributes.get(_OI_KIND)
    as_type = _OI_KINDS.get(kind.upper()) if isinstance(kind, str) else None
    if kind is not None:
        if as_type is not None:
            set_type(attributes, as_type)
        elif not isinstance(kind, str):
            invalid(ctx, "openinference", "span kind")
    move_content(attributes, ctx, "input.value", semconv.OBSERVATION_INPUT, "openinference")
    move_content(attributes, ctx, "output.value", semconv.OBSERVATION_OUTPUT, "openinference")
    _parameters(attributes, ctx)  # first: its "model" is the model that was requested
    for theirs, ours in _OI_MODELS:
        model = text_value(attributes.get(theirs))
        if model is not None:
            attributes.setdefault(ours, model)
    # OpenInference's llm.model_name is read from the response (the snapshot that ran).
    if (answered := text_value(attributes.get("llm.model_name"))) is not None:
        attributes.setdefault(semconv.GEN_AI_RESPONSE_MODEL, answered)
    set_provider(attributes, attributes.get("llm.provider") or attributes.get("llm.system"))
    _usage(attributes, ctx, _OI_USAGE, "openinference")
    if kind is not None and "metadata" in attributes:
        translate_metadata(
            attributes, ctx, ("metadata",), {}, semconv.OBSERVATION_METADATA, "openinference"
        )
    translate_tags(attributes, ctx, ("tag.tags",), "openinference", remove=False)
    if as_type == "tool" and isinstance(attributes.get("tool.name"), str):
        attributes.setdefault(semconv.GEN_AI_TOOL_NAME, attributes["tool.name"])
    _oi_messages(attributes, ctx, families)


def _parameters(attributes: dict[str, Any], ctx: StageContext) -> None:
    raw = attributes.get("llm.invocation_parameters")
    if raw is None or semconv.OBSERVATION_MODEL_PARAMETERS in attributes:
        return
    params = parse_json(raw) if isinstance(raw, str) else None
    if not isinstance(params, dict):
        invalid(ctx, "openinference", "invocation parameters")
        return
    for key, value in model_parameter_attributes(params, ctx.max_content_chars).items():
        attributes.setdefault(key, value)
    requested = text_value(params.get("model"))
    if requested is not None:
        attributes.setdefault(semconv.GEN_AI_REQUEST_MODEL, requested)


def _oi_messages(attributes: dict[str, Any], ctx: StageContext, families: Families) -> None:
    if families.oi_input:
        groups, used = group_indexed(attributes, families.oi_input, _OI_IN)
        items = [openinference_message(fields, "user") for fields in groups.values()]
        chat = chat_messages(items, system=semconv.GEN_AI_SYSTEM_INSTRUCTIONS not in attributes)
        _finish_input(attributes, ctx, chat, used, "openinference")
    if families.oi_output:
        groups, used = group_indexed(attributes, families.oi_output, _OI_OUT)
        reason = attributes.get("llm.finish_reason") if len(groups) == 1 else None
        outputs = [
            output_message(openinference_message(fields, "assistant"), reason)
            for fields in groups.values()
        ]
        _finish_output(attributes, ctx, outputs, used, "openinference")


def _finish_input(
    attributes: dict[str, Any], ctx: StageContext, chat: Chat | None, used: list[str], dialect: str
) -> None:
    """Set the input messages (unless present) and drop the source keys, or count."""
    if semconv.GEN_AI_INPUT_MESSAGES not in attributes:
        if chat is None or not used:
            invalid(ctx, dialect, "input messages")
            return
        set_chat(attributes, chat, ctx)
    for key in used:
        del attributes[key]


def _finish_output(
    attributes: dict[str, Any],
    ctx: StageContext,
    outputs: list[Message | None],
    used: list[str],
    dialect: str,
) -> None:
    if semconv.GEN_AI_OUTPUT_MESSAGES not in attributes:
        if not used or not outputs or any(m is None for m in outputs):
            invalid(ctx, dialect, "output messages")
            return
        set_json(attributes, semconv.GEN_AI_OUTPUT_MESSAGES, outputs, ctx)
    for key in used:
        del attributes[key]


# --- OpenLLMetry / Traceloop ------------------------------------------------------------

_TL_KINDS: Final = {"workflow": "chain", "task": "span", "agent": "agent", "tool": "tool"}
_TL_REQUEST_TYPES: Final = {
    "chat": ("generation", "chat"),
    "completion": ("generation", "text_completion"),
    "embedding": ("embedding", "embeddings"),
}
_TL_PROPERTIES: Final = "traceloop.association.properties."
_TL_PROMPT: Final = "gen_ai.prompt."
_TL_COMPLETION: Final = "gen_ai.completion."


def traceloop(record: SpanRecord, ctx: StageContext, families: Families) -> None:
    """Traceloop span kinds, entity values, workflow, association ids and messages."""
    attributes = record.attributes
    request_type = attributes.get("llm.request.type")
    kind = attributes.get("traceloop.span.kind")
    if isinstance(request_type, str) and request_type in _TL_REQUEST_TYPES:
        set_type(attributes, *_TL_REQUEST_TYPES[request_type])
    elif isinstance(kind, str) and kind in _TL_KINDS:
        set_type(attributes, _TL_KINDS[kind])
    move_content(attributes, ctx, "traceloop.entity.input", semconv.OBSERVATION_INPUT, "traceloop")
    move_content(
        attributes, ctx, "traceloop.entity.output", semconv.OBSERVATION_OUTPUT, "traceloop"
    )
    for theirs, ours in (
        ("traceloop.workflow.name", semconv.TRACE_NAME),
        (_TL_PROPERTIES + "user_id", semconv.USER_ID),
        (_TL_PROPERTIES + "session_id", semconv.SESSION_ID),
        ("traceloop.prompt.key", semconv.PROMPT_NAME),
    ):
        value = text_value(attributes.get(theirs))
        if value is not None:
            attributes.setdefault(ours, value)
    if "traceloop.prompt.version" in attributes:
        version = token_count(attributes["traceloop.prompt.version"])
        if version is not None:
            attributes.setdefault(semconv.PROMPT_VERSION, version)
    _tl_messages(attributes, ctx, families)


def _tl_messages(attributes: dict[str, Any], ctx: StageContext, families: Families) -> None:
    if families.tl_prompt:
        groups, used = group_indexed(attributes, families.tl_prompt, _TL_PROMPT)
        items = [traceloop_message(fields, "user") for fields in groups.values()]
        chat = chat_messages(items, system=semconv.GEN_AI_SYSTEM_INSTRUCTIONS not in attributes)
        _finish_input(attributes, ctx, chat, used, "traceloop")
    if families.tl_completion:
        groups, used = group_indexed(attributes, families.tl_completion, _TL_COMPLETION)
        outputs = [
            output_message(traceloop_message(fields, "assistant")) for fields in groups.values()
        ]
        _finish_output(attributes, ctx, outputs, used, "traceloop")
    _bare(attributes, ctx)


def _bare(attributes: dict[str, Any], ctx: StageContext) -> None:
    """Un-indexed ``gen_ai.prompt`` / ``gen_ai.completion`` (semconv ≤1.27, Semantic Kernel)."""
    prompt = attributes.get("gen_ai.prompt")
    if isinstance(prompt, str):
        system = semconv.GEN_AI_SYSTEM_INSTRUCTIONS not in attributes
        value = parse_json(prompt) if prompt[:1] == "[" else None
        chat = chat_messages(value, system=system) if value is not None else None
        if chat is None:  # a plain prompt (even one that starts with "[")
            chat = chat_messages([{"role": "user", "content": prompt}], system=system)
        _finish_input(attributes, ctx, chat, ["gen_ai.prompt"], "traceloop")
    completion = attributes.get("gen_ai.completion")
    if isinstance(completion, str):
        value = parse_json(completion) if completion[:1] in ("[", "{") else None
        found = output_messages(value) if value is not None else None
        outputs: list[Message | None] = []
        outputs.extend(found or output_messages(completion) or ())  # else: plain text
        _finish_output(attributes, ctx, outputs, ["gen_ai.completion"], "traceloop")
