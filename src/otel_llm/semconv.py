"""Every attribute key otel-llm reads or writes, as plain string constants.

We keep our own strings instead of importing ``opentelemetry.semconv._incubating``:
those GenAI enums are marked deprecated upstream and move between releases, while
the wire format we promise (semantic conventions v1.41) must not.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGGREGATE_OPERATIONS",
    "AS_TYPES",
    "CONTENT_KEYS",
    "CONTENT_KEY_PREFIXES",
    "ENTRY_OPERATION_NAMES",
    "LEVELS",
    "OPERATION_BY_TYPE",
    "SCOPE_NAME",
    "is_content_key",
]

SCOPE_NAME: Final = "otel-llm"
"""Our instrumentation scope. It must not contain "langfuse" nor equal "ai",
"pydantic-ai" or "genkit-tracer": the Langfuse server special-cases those."""

# --- OpenTelemetry GenAI semantic conventions v1.41 -------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # deprecated name, read only
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_REQUEST_PREFIX: Final = "gen_ai.request."
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_IS_ENTRY: Final = "gen_ai.is_entry"
ERROR_TYPE: Final = "error.type"
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"

# --- ours, where semconv has no key ---------------------------------------------
OTEL_LLM_PREFIX: Final = "otel_llm."
OBSERVATION_TYPE: Final = "otel_llm.observation.type"
OBSERVATION_LEVEL: Final = "otel_llm.observation.level"
OBSERVATION_STATUS_MESSAGE: Final = "otel_llm.observation.status_message"
OBSERVATION_INPUT: Final = "otel_llm.observation.input"
OBSERVATION_OUTPUT: Final = "otel_llm.observation.output"
OBSERVATION_METADATA: Final = "otel_llm.observation.metadata"
OBSERVATION_MODEL_PARAMETERS: Final = "otel_llm.observation.model_parameters"
OBSERVATION_COMPLETION_START_TIME: Final = "otel_llm.observation.completion_start_time"
OBSERVATION_AUTO_ENDED: Final = "otel_llm.observation.auto_ended"
OBSERVATION_VERSION: Final = "otel_llm.observation.version"
PROMPT_NAME: Final = "otel_llm.prompt.name"
PROMPT_VERSION: Final = "otel_llm.prompt.version"
USAGE_RAW: Final = "otel_llm.usage.raw"
USAGE_ESTIMATED: Final = "otel_llm.usage.estimated"
COST_RAW: Final = "otel_llm.cost.raw"
COST_UNPRICED: Final = "otel_llm.cost.unpriced"
TRACE_NAME: Final = "otel_llm.trace.name"
TRACE_TAGS: Final = "otel_llm.trace.tags"
TRACE_METADATA: Final = "otel_llm.trace.metadata"
TRACE_INPUT: Final = "otel_llm.trace.input"
TRACE_OUTPUT: Final = "otel_llm.trace.output"
ENVIRONMENT: Final = "otel_llm.environment"
RELEASE: Final = "otel_llm.release"
VERSION: Final = "otel_llm.version"

GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"

# --- content: what masking, capture_content=False and media handling cover ----------
CONTENT_KEYS: Final = frozenset(
    {
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_SYSTEM_INSTRUCTIONS,
        GEN_AI_TOOL_CALL_ARGUMENTS,
        GEN_AI_TOOL_CALL_RESULT,
        OBSERVATION_INPUT,
        OBSERVATION_OUTPUT,
        OBSERVATION_METADATA,
        OBSERVATION_MODEL_PARAMETERS,
        TRACE_INPUT,
        TRACE_OUTPUT,
        TRACE_METADATA,
        # foreign dialects, in case a span still carries them
        "langfuse.observation.input",
        "langfuse.observation.output",
        "langfuse.observation.metadata",
        "langfuse.trace.input",
        "langfuse.trace.output",
        "langfuse.trace.metadata",
        "traceloop.entity.input",
        "traceloop.entity.output",
        "input.value",
        "output.value",
        "metadata",
        "langfuse.metadata",
        "gen_ai.prompt",
        "gen_ai.completion",
    }
)
"""Attributes whose values are user content (exact keys)."""

CONTENT_KEY_PREFIXES: Final = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "langfuse.observation.metadata.",
    "langfuse.trace.metadata.",
    "langfuse.metadata.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts",
    "llm.tools.",
    "otel_llm.observation.metadata.",
)
"""Attribute key prefixes whose values are user content (flattened dialects)."""


def is_content_key(key: str) -> bool:
    """True when the attribute ``key`` holds user content (masked, removable)."""
    return key in CONTENT_KEYS or key.startswith(CONTENT_KEY_PREFIXES)


# --- vocabularies ----------------------------------------------------------------
AS_TYPES: Final = frozenset(
    {
        "span",
        "generation",
        "agent",
        "tool",
        "chain",
        "retriever",
        "embedding",
        "evaluator",
        "guardrail",
        "event",
    }
)
"""Observation types, the Langfuse vocabulary (lowercase on the wire)."""

LEVELS: Final = ("DEBUG", "DEFAULT", "WARNING", "ERROR")

OPERATION_BY_TYPE: Final = {
    "generation": "chat",
    "embedding": "embeddings",
    "agent": "invoke_agent",
    "tool": "execute_tool",
    "retriever": "retrieval",
    "chain": "chain",
    "evaluator": "evaluate",
    "guardrail": "guardrail",
    "span": "span",
    "event": "event",
}
"""``gen_ai.operation.name`` per observation type. semconv v1.41 defines chat,
embeddings, invoke_agent, execute_tool and retrieval; the rest are ours, kept
lowercase and stable so dashboards can group by them."""

ENTRY_OPERATION_NAMES: Final = frozenset(OPERATION_BY_TYPE.values())

AGGREGATE_OPERATIONS: Final = frozenset({"invoke_agent", "agent_step"})
"""Operations whose usage is the sum of the LLM calls they made (an agent's run). Such a
span is not priced from its usage and not counted in totals, or the spend would be
counted twice next to its child calls; the Langfuse server drops its model, usage and
cost for the same reason."""
