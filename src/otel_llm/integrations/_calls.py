"""Which LLM call is already being recorded, so two integrations never record it twice.

LangChain's ``ChatOpenAI`` calls the OpenAI client inside a generation the LangChain
handler records; with ``instrument_openai()`` also on, the same call would become two
generations and its tokens and cost would be counted twice. The handler raises this
flag in the calling context for the duration of the model call; the OpenAI wrapper
sees it and stays out of the way.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = ["llm_call_recorded", "lower", "raise_flag"]

llm_call_recorded: ContextVar[bool] = ContextVar("otel_llm_llm_call_recorded", default=False)


def raise_flag() -> Token[bool]:
    return llm_call_recorded.set(True)


def lower(token: Token[bool]) -> None:
    """Undo :func:`raise_flag`; from another context, just clear the flag there."""
    try:
        llm_call_recorded.reset(token)
    except ValueError:
        llm_call_recorded.set(False)
