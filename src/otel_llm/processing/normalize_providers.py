"""``gen_ai.provider.name`` from foreign provider values or, failing that, the model name.

Why: cost lookup and dashboards group by provider, but older instrumentations
write ``gen_ai.system`` (with values semconv renamed since), OpenInference
writes ``llm.provider`` / ``llm.system``, and the Langfuse SDK writes no provider
at all. Values follow semconv v1.41 (lower case):

====================================================  =====================
foreign value (``gen_ai.system``, ``llm.provider``)    provider name
====================================================  =====================
openai                                                openai
azure, az.ai.openai, azure_openai, azure.openai       azure.ai.openai
az.ai.inference, azure_ai_inference                   azure.ai.inference
anthropic / cohere / groq / deepseek / perplexity     the same
mistral, mistralai, mistral_ai                        mistral_ai
gemini, google_ai_studio                              gcp.gemini
vertex_ai, vertexai                                   gcp.vertex_ai
google, google_genai, gcp.gen_ai                      gcp.gen_ai
aws, bedrock, aws_bedrock, aws.bedrock                aws.bedrock
watsonx, ibm_watsonx_ai, ibm.watsonx.ai               ibm.watsonx.ai
xai, x_ai                                             x_ai
a framework (langchain, crewai, llamaindex, …)        not a provider: ignored
anything else                                         kept, lower-cased
====================================================  =====================

Without any of those, the provider is inferred from the model name only when
the name is unambiguous (``_MODEL_PREFIXES``): gpt-/o1/o3/o4/text-embedding →
openai, claude → anthropic, gemini → gcp.gen_ai, mistral-large… → mistral_ai,
command- → cohere, grok- → x_ai, Bedrock model ids (``anthropic.claude…``,
``us.amazon.nova…``) → aws.bedrock. A name with ``/``, ``:`` or ``@`` comes
through a router or host (OpenRouter, Ollama, Vertex) and is left alone, as are
open-weight families served by many hosts (llama, gpt-oss, …). Gemini names give
``gcp.gen_ai``, semconv's value when the Google endpoint (AI Studio or Vertex)
is unknown.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from otel_llm import semconv

__all__ = ["infer_provider", "provider_name", "set_provider"]

_ALIASES: Final = {
    "azure": "azure.ai.openai",
    "az.ai.openai": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "azure_ai_inference": "azure.ai.inference",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "gemini": "gcp.gemini",
    "google_ai_studio": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "google": "gcp.gen_ai",
    "google_genai": "gcp.gen_ai",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "watsonx": "ibm.watsonx.ai",
    "ibm_watsonx_ai": "ibm.watsonx.ai",
    "xai": "x_ai",
}
_NOT_PROVIDERS: Final = frozenset(
    {"langchain", "langgraph", "crewai", "llamaindex", "llama_index", "haystack", "autogen"}
)
"""Frameworks OpenLLMetry reports as ``gen_ai.system``: they say nothing of the provider."""

_BEDROCK_PREFIXES: Final = (
    "anthropic.",
    "amazon.",
    "meta.",
    "cohere.",
    "mistral.",
    "ai21.",
    "us.",  # cross-region inference profiles
    "eu.",
    "apac.",
    "global.",
    "arn:aws:bedrock:",
)
"""Bedrock model ids (``<vendor>.<model>-v1:0``): the ``:`` there is a version, not a host."""

_MODEL_PREFIXES: Final = (
    ("gpt-oss", None),  # open weights, served anywhere
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-", "openai"),
    ("dall-e", "openai"),
    ("whisper-", "openai"),
    ("tts-", "openai"),
    ("omni-moderation", "openai"),
    ("claude", "anthropic"),
    ("gemini", "gcp.gen_ai"),
    ("mistral-large", "mistral_ai"),
    ("mistral-medium", "mistral_ai"),
    ("mistral-small", "mistral_ai"),
    ("mistral-embed", "mistral_ai"),
    ("codestral", "mistral_ai"),
    ("ministral", "mistral_ai"),
    ("magistral", "mistral_ai"),
    ("command-", "cohere"),
    ("embed-english", "cohere"),
    ("embed-multilingual", "cohere"),
    ("rerank-", "cohere"),
    ("grok-", "x_ai"),
    ("deepseek-chat", "deepseek"),
    ("deepseek-reasoner", "deepseek"),
    ("sonar", "perplexity"),
)
"""Model-name prefixes (lower case) → provider; the first match wins, None = unknown."""
_ANY_MODEL_PREFIX: Final = tuple(prefix for prefix, _ in _MODEL_PREFIXES)


def provider_name(value: object) -> str | None:
    """A foreign provider/system value as a semconv provider name (None: not one)."""
    if not isinstance(value, str):
        return None
    lowered = value.strip().lower()
    if not lowered or lowered in _NOT_PROVIDERS:
        return None
    return _ALIASES.get(lowered, lowered)


def set_provider(attributes: dict[str, Any], value: object) -> None:
    """``gen_ai.provider.name`` from a foreign value (absent key only)."""
    provider = provider_name(value)
    if provider is not None:
        attributes.setdefault(semconv.GEN_AI_PROVIDER_NAME, provider)


def infer_provider(attributes: dict[str, Any]) -> None:
    """Set ``gen_ai.provider.name`` from an unambiguous model name (absent key only)."""
    model = attributes.get(semconv.GEN_AI_RESPONSE_MODEL) or attributes.get(
        semconv.GEN_AI_REQUEST_MODEL
    )
    if not isinstance(model, str):
        return
    provider = _provider_of(model)
    if provider is not None:
        attributes.setdefault(semconv.GEN_AI_PROVIDER_NAME, provider)


@functools.lru_cache(maxsize=1024)
def _provider_of(model: str) -> str | None:
    """The provider an unambiguous model name implies (any case), else None.

    Memoized: it runs for every span without a provider, and a few names recur.
    """
    return _provider_of_model(model.lower())


def _provider_of_model(model: str) -> str | None:
    if model.startswith(_BEDROCK_PREFIXES):
        return "aws.bedrock" if "/" not in model else None
    if not model.startswith(_ANY_MODEL_PREFIX) or "/" in model or ":" in model or "@" in model:
        return None
    for prefix, provider in _MODEL_PREFIXES:
        if model.startswith(prefix):
            return provider
    return None
