"""Which span of a trace is its entry (``gen_ai.is_entry``), decided as spans start and end.

The entry is the outermost LLM-related span of a trace within this process: the
first span, walking down from the root, that is an observation of ours or carries
GenAI attributes. An upstream HTTP server span is therefore never the entry, and
nothing below the entry inherits the marker. ``entry=True`` / ``mark_entry()``
override the automatic choice.

All state is keyed by open spans and dropped when a trace's last open span ends,
so memory is bounded by what is in flight. Updates are single dict/set operations
(atomic under the GIL): the app thread takes no lock here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, Span

from otel_llm import semconv
from otel_llm.processing.record import plain_attributes

__all__ = ["EntryTracker", "is_llm_related", "is_llm_scope"]

_LLM_PREFIXES = ("gen_ai.", "langfuse.", "traceloop.", "llm.", "openinference.")
_LLM_SCOPES = (
    "langfuse-sdk",
    "openinference",
    "traceloop",
    "litellm",
    "haystack",
    "pydantic-ai",
    "strands-agents",
    "autogen-core",
    "agent_framework",
    "langsmith",
    "vllm",
)
_OTEL_LLM_INSTRUMENTATIONS = (
    "agno",
    "alephalpha",
    "anthropic",
    "bedrock",
    "cohere",
    "crewai",
    "google_generativeai",
    "groq",
    "haystack",
    "langchain",
    "llamaindex",
    "mistralai",
    "ollama",
    "openai",
    "openai_agents",
    "openai_v2",
    "replicate",
    "sagemaker",
    "together",
    "transformers",
    "vertexai",
    "voyageai",
    "watsonx",
    "writer",
)
_scope_cache: dict[str, bool] = {}


def is_llm_scope(name: str) -> bool:
    """True for instrumentation scopes that only produce LLM spans (checked at start).

    Such spans often get their GenAI attributes after they start (the Langfuse SDK
    sets its observation type then), yet they are LLM-related from the first moment.
    The list follows the Langfuse SDK's known LLM instrumentors.
    """
    cached = _scope_cache.get(name)
    if cached is None:
        cached = any(name == p or name.startswith(p + ".") for p in _LLM_SCOPES) or any(
            name == f"opentelemetry.instrumentation.{p}" for p in _OTEL_LLM_INSTRUMENTATIONS
        )
        if len(_scope_cache) < 1024:
            _scope_cache[name] = cached
    return cached


def is_llm_related(attributes: Mapping[str, Any] | None) -> bool:
    """True for our observations and spans carrying any GenAI dialect's attributes."""
    if not attributes:
        return False
    if semconv.OBSERVATION_TYPE in attributes:
        return True
    return any(key.startswith(_LLM_PREFIXES) for key in attributes)


_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


class _TraceFacts:
    __slots__ = ("attributes", "auto_entry", "explicit_entry", "open")

    def __init__(self) -> None:
        self.open: set[int] = set()
        self.auto_entry: int | None = None
        self.explicit_entry: int | None = None
        self.attributes: Mapping[str, Any] = _NO_ATTRIBUTES  # replaced, never mutated


class EntryTracker:
    """Per-trace facts for spans in flight: entry choice and late trace attributes."""

    def __init__(self) -> None:
        self._traces: dict[int, _TraceFacts] = {}
        self._under_llm: dict[int, bool] = {}  # open span id -> it or an ancestor is LLM

    def on_start(self, span: Span) -> Mapping[str, Any]:
        """Record the span; return trace attributes it should get (from update_trace)."""
        ctx = span.context
        trace_id, span_id = ctx.trace_id, ctx.span_id
        facts = self._traces.get(trace_id)
        if facts is None:
            facts = self._traces.setdefault(trace_id, _TraceFacts())
        facts.open.add(span_id)
        parent = span.parent
        ancestor = self._under_llm.get(parent.span_id, False) if parent is not None else False
        attributes = plain_attributes(span.attributes)  # then every lookup below runs in C
        if is_llm_related(attributes):
            is_llm = True
        else:
            scope = span.instrumentation_scope
            is_llm = scope is not None and is_llm_scope(scope.name)
        if attributes.get(semconv.GEN_AI_IS_ENTRY) is True:
            facts.explicit_entry = span_id
        elif is_llm and not ancestor and facts.auto_entry is None:
            facts.auto_entry = span_id
        self._under_llm[span_id] = ancestor or is_llm
        return facts.attributes

    def on_end(self, span: ReadableSpan) -> bool:
        """Forget the span; return True when it gets the automatic entry marker."""
        ctx = span.context
        if ctx is None:
            return False
        span_id = ctx.span_id
        under_llm = self._under_llm.pop(span_id, None)
        trace_id = ctx.trace_id
        facts = self._traces.get(trace_id)
        if facts is None:
            return False
        facts.open.discard(span_id)
        entry = False
        if facts.explicit_entry is None:
            if facts.auto_entry == span_id:
                entry = True
            elif (
                facts.auto_entry is None
                and under_llm is False
                and is_llm_related(plain_attributes(span.attributes))
            ):
                # It became LLM-related only after it started (attributes set later).
                facts.auto_entry = span_id
                entry = True
        if not facts.open:
            self._traces.pop(trace_id, None)
        return entry

    def note_explicit(self, trace_id: int, span_id: int) -> None:
        facts = self._traces.get(trace_id)
        if facts is not None:
            facts.explicit_entry = span_id

    def update_trace(self, trace_id: int, attributes: Mapping[str, Any]) -> None:
        facts = self._traces.get(trace_id)
        if facts is not None:
            facts.attributes = {**facts.attributes, **attributes}
