"""LangChain values → what our observations carry (pure functions, for the callback handler).

Everything here is total and small: it reads LangChain objects (messages, LLM
results, documents, serialized constructors, run metadata) and returns plain
dicts, lists and strings. Messages become OpenAI-style ``role``/``content``
dicts (tool calls kept), the shape the processor turns into semconv
``gen_ai.input.messages`` / ``gen_ai.output.messages``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.prompt_values import ChatPromptValue, PromptValue

__all__ = [
    "HIDDEN_TAG",
    "Outcome",
    "documents",
    "generation_outcome",
    "is_agent",
    "message_dicts",
    "model_name",
    "model_parameters",
    "observation_metadata",
    "partial_result",
    "plain",
    "provider_name",
    "run_name",
    "tool_definitions",
    "trace_tags",
]

HIDDEN_TAG = "langsmith:hidden"
"""Runs LangChain/LangGraph mark as internal plumbing (e.g. LangGraph's ``__start__``)."""

_MAX_ITEMS = 1000  # per list/dict while converting; the serializer cuts the rest anyway
_MAX_DEPTH = 12

_MODEL_KEYS = ("model", "model_name", "model_id", "deployment_name", "azure_deployment")
_PARAMETERS = (
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "max_new_tokens",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "n",
    "stop",
    "stop_sequences",
    "reasoning_effort",
    "tool_choice",
    "parallel_tool_calls",
    "request_timeout",
)
_LS_PARAMETERS = (("ls_temperature", "temperature"), ("ls_max_tokens", "max_tokens"))

_PROVIDERS = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "google_genai": "gcp.gen_ai",
    "google_vertexai": "gcp.vertex_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "groq": "groq",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
}
"""LangChain ``ls_provider`` values → semconv v1.41 ``gen_ai.provider.name``."""

_DROPPED_METADATA_PREFIXES = ("ls_", "langfuse_", "__")
_DROPPED_METADATA = frozenset({"lc_versions", "checkpoint_ns", "langgraph_checkpoint_ns"})
_INTERNAL_TAG_PREFIXES = ("seq:step:", "graph:step:", "map:key:", "langsmith:")


# -- runs -------------------------------------------------------------------------------------
def run_name(serialized: Any, kwargs: Mapping[str, Any], default: str) -> str:
    """The name LangChain shows for a run: ``run_name``/node name, else the class."""
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, Mapping):
        name = serialized.get("name")
        if isinstance(name, str) and name:
            return name
        path = serialized.get("id")
        if isinstance(path, list) and path and isinstance(path[-1], str):
            return path[-1]
    return default


def is_agent(name: str, serialized: Any, metadata: Mapping[str, Any]) -> bool:
    """An agent run: LangChain's agent marker, or "agent" in the name or class path.

    ``lc_agent_name`` is inherited by every run inside the agent, so only the run
    it names counts. The name rule is the Langfuse SDK's, so the same graph gets
    the same observation types in both.
    """
    agent_name = metadata.get("lc_agent_name")
    if isinstance(agent_name, str) and agent_name == name:
        return True
    if "agent" in name.lower():
        return True
    path = serialized.get("id") if isinstance(serialized, Mapping) else None
    return isinstance(path, list) and any("agent" in str(part).lower() for part in path)


def observation_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's metadata minus what we map elsewhere (``ls_*``, ``langfuse_*``) and internals."""
    if not metadata:
        return {}
    return {
        str(key): plain(value)
        for key, value in metadata.items()
        if not (str(key).startswith(_DROPPED_METADATA_PREFIXES) or str(key) in _DROPPED_METADATA)
    }


def trace_tags(*groups: Any) -> tuple[str, ...]:
    """User tags from several sources, deduplicated in order, LangChain's own step tags left out."""
    out: list[str] = []
    for group in groups:
        if isinstance(group, str):
            group = (group,)
        if not isinstance(group, (list, tuple, set, frozenset)):
            continue
        for tag in group:
            text = str(tag)
            if text not in out and not text.startswith(_INTERNAL_TAG_PREFIXES):
                out.append(text)
    return tuple(out)


# -- generations: request -------------------------------------------------------------------------
def model_name(
    invocation: Mapping[str, Any], serialized: Any, metadata: Mapping[str, Any]
) -> str | None:
    """The requested model: invocation params, then ``ls_model_name``, then constructor kwargs."""
    kwargs = serialized.get("kwargs") if isinstance(serialized, Mapping) else None
    sources: list[Any] = [invocation, {"model": metadata.get("ls_model_name")}, kwargs]
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key in _MODEL_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def provider_name(metadata: Mapping[str, Any]) -> str | None:
    provider = metadata.get("ls_provider")
    if not isinstance(provider, str) or not provider:
        return None
    return _PROVIDERS.get(provider.lower(), provider.lower())


def model_parameters(invocation: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Request parameters that were set (None means "provider default": left out)."""
    params = {
        key: plain(invocation[key])
        for key in _PARAMETERS
        if key in invocation and invocation[key] is not None
    }
    for ls_key, key in _LS_PARAMETERS:
        value = metadata.get(ls_key)
        if key not in params and value is not None:
            params[key] = value
    return params


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """Bound tools (OpenAI or Anthropic shape) as semconv ``gen_ai.tool.definitions`` items."""
    if not isinstance(tools, Sequence) or isinstance(tools, (str, bytes)):
        return []
    out: list[dict[str, Any]] = []
    for tool in tools[:_MAX_ITEMS]:
        if not isinstance(tool, Mapping):
            continue
        kind = tool.get("type") if isinstance(tool.get("type"), str) else "function"
        nested = tool.get(kind)
        source = nested if isinstance(nested, Mapping) else tool
        name = source.get("name")
        if not isinstance(name, str) or not name:
            continue
        definition: dict[str, Any] = {"type": kind, "name": name}
        if isinstance(source.get("description"), str):
            definition["description"] = source["description"]
        schema = source.get("parameters", source.get("input_schema"))
        if schema is not None:
            definition["parameters"] = plain(schema)
        out.append(definition)
    return out


def message_dicts(messages: Sequence[Any]) -> list[Any]:
    return [plain(m) for m in messages[:_MAX_ITEMS]]


def _role(message: BaseMessage) -> str:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, ToolMessage):
        return "tool"
    if isinstance(message, FunctionMessage):
        return "function"
    if isinstance(message, ChatMessage):
        return str(message.role)
    return str(message.type)


def _message(message: BaseMessage, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"role": _role(message), "content": plain(message.content, depth)}
    if message.name:
        out["name"] = message.name
    if isinstance(message, AIMessage):
        calls = [_tool_call(c) for c in message.tool_calls]
        calls += [_tool_call(c) for c in message.invalid_tool_calls]
        if calls:
            out["tool_calls"] = calls
        legacy = message.additional_kwargs.get("function_call")
        if isinstance(legacy, Mapping):
            out["function_call"] = plain(legacy, depth)
    elif isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
        if message.status == "error":
            out["status"] = "error"
    return out


def _tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    args = call.get("args")
    arguments = args if isinstance(args, str) else _json(args if args is not None else {})
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": call.get("name"), "arguments": arguments},
    }


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


# -- generations: response ------------------------------------------------------------------------
class Outcome:
    """What an ``LLMResult`` says: output, usage, response model/id, finish reasons."""

    __slots__ = ("finish_reasons", "output", "response_id", "response_model", "usage")

    def __init__(self) -> None:
        self.output: Any = None
        self.usage: Any = None
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: tuple[str, ...] = ()


def generation_outcome(response: Any) -> Outcome:
    outcome = Outcome()
    if not isinstance(response, LLMResult):
        return outcome
    outputs: list[Any] = []
    reasons: list[str] = []
    for group in response.generations[:_MAX_ITEMS]:
        for generation in group[:_MAX_ITEMS]:
            info = generation.generation_info or {}
            if isinstance(generation, ChatGeneration):
                message = generation.message
                meta = message.response_metadata or {}
                reason = meta.get("finish_reason", meta.get("stop_reason"))
                reason = reason if reason is not None else info.get("finish_reason")
                output = _message(message, 0)
                if reason is not None:
                    output["finish_reason"] = str(reason)
                    reasons.append(str(reason))
                outputs.append(output)
                usage = getattr(message, "usage_metadata", None)
                if usage and outcome.usage is None:
                    outcome.usage = dict(usage)
                _response_fields(outcome, meta)
                _response_fields(outcome, info)
            else:
                outputs.append(generation.text)
                reason = info.get("finish_reason")
                if reason is not None:
                    reasons.append(str(reason))
                _response_fields(outcome, info)
    if outputs:
        outcome.output = outputs[0] if len(outputs) == 1 else outputs
    llm_output = response.llm_output or {}
    if outcome.usage is None:
        for key in ("token_usage", "usage"):
            usage = llm_output.get(key)
            if isinstance(usage, Mapping) and usage:
                outcome.usage = plain(usage)
                break
    _response_fields(outcome, llm_output)
    outcome.finish_reasons = tuple(reasons)
    return outcome


def partial_result(response: Any) -> LLMResult | None:
    """What a failed call produced before failing (streamed chunks), without error stubs.

    On failure langchain-core reports the merged chunks so far plus an empty
    message carrying the error's HTTP body and headers; only the former is output.
    """
    if not isinstance(response, LLMResult):
        return None
    kept = [[g for g in group if _produced(g)] for group in response.generations]
    kept = [group for group in kept if group]
    return LLMResult(generations=kept) if kept else None


def _produced(generation: Any) -> bool:
    if isinstance(generation, ChatGeneration):
        message = generation.message
        return bool(message.content) or bool(getattr(message, "tool_calls", None))
    return bool(getattr(generation, "text", None))


def _response_fields(outcome: Outcome, source: Mapping[str, Any]) -> None:
    if outcome.response_model is None:
        model = source.get("model_name", source.get("model"))
        if isinstance(model, str) and model:
            outcome.response_model = model
    if outcome.response_id is None:
        response_id = source.get("id")
        if isinstance(response_id, str) and response_id:
            outcome.response_id = response_id


# -- other runs -------------------------------------------------------------------------------
def documents(docs: Any) -> list[Any]:
    """Retrieved documents as ``{"page_content", "metadata", "id"?}`` dicts."""
    if not isinstance(docs, Sequence) or isinstance(docs, (str, bytes)):
        return [plain(docs)]
    return [plain(doc) for doc in docs[:_MAX_ITEMS]]


def _document(doc: Document, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"page_content": doc.page_content, "metadata": plain(doc.metadata, depth)}
    if doc.id is not None:
        out["id"] = doc.id
    return out


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` with LangChain objects (messages, documents, prompt values) made plain data.

    Other objects are left for the serializer. Containers are walked to a fixed
    depth and width, so a huge LangGraph state costs a bounded amount of work.
    """
    if depth > _MAX_DEPTH or value is None or isinstance(value, (str, int, float, bool)):
        return value
    depth += 1
    if isinstance(value, BaseMessage):
        return _message(value, depth)
    if isinstance(value, Document):
        return _document(value, depth)
    if isinstance(value, ChatPromptValue):
        return [plain(m, depth) for m in value.messages[:_MAX_ITEMS]]
    if isinstance(value, PromptValue):
        return value.to_string()
    if isinstance(value, Mapping):
        items = list(value.items())[:_MAX_ITEMS]
        return {str(k): plain(v, depth) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth) for v in value[:_MAX_ITEMS]]
    return value
