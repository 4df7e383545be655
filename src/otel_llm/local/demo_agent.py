"""A small sample agent with a fake LLM inside the process: no network, no keys.

It exercises what a real app does: a retrieval step, a tool call, a streamed
generation, a nested sub-agent, one failing call and a user score, so
``otel-llm demo`` shows every kind of observation in one trace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import otel_llm

__all__ = ["run_demo"]

_DOCS = {
    "paris": "Paris is the capital of France.",
    "tokyo": "Tokyo is the capital of Japan.",
}


@otel_llm.observe(as_type="retriever")
def retrieve(query: str) -> list[str]:
    return [text for key, text in _DOCS.items() if key in query.lower()]


@otel_llm.observe(as_type="tool")
def get_weather(city: str) -> dict[str, object]:
    return {"city": city, "temperature_c": 21, "sky": "clear"}


def _fake_llm_stream(prompt: str) -> Iterator[str]:
    for word in f"Based on the context: {prompt[:40]}".split():
        time.sleep(0.002)
        yield word + " "


def chat(messages: list[dict[str, str]], model: str = "gpt-4o-mini") -> str:
    with otel_llm.start_generation(
        "chat",
        model=model,
        input=messages,
        model_parameters={"temperature": 0.2, "max_tokens": 200},
    ) as generation:
        chunks: list[str] = []
        for chunk in _fake_llm_stream(messages[-1]["content"]):
            if not chunks:
                generation.update(completion_start_time=time.time())
            chunks.append(chunk)
        answer = "".join(chunks).strip()
        generation.update(
            output=answer,
            usage={
                "prompt_tokens": 42,
                "completion_tokens": len(chunks),
                "total_tokens": 42 + len(chunks),
            },
        )
    return answer


@otel_llm.observe(as_type="agent")
def summarizer(text: str) -> str:
    return chat([{"role": "user", "content": f"Summarize: {text}"}])


@otel_llm.observe(as_type="tool")
def flaky_translation(text: str) -> str:
    raise TimeoutError("translation service timed out")


@otel_llm.observe(as_type="agent", name="travel-assistant")
def assistant(question: str) -> str:
    context = retrieve(question)
    weather = get_weather("Paris")
    answer = chat(
        [
            {
                "role": "system",
                "content": "You are a travel assistant. Context: " + " ".join(context),
            },
            {"role": "user", "content": question},
        ]
    )
    summary = summarizer(f"{answer} Weather: {weather['sky']}")
    try:
        flaky_translation(summary)
    except TimeoutError:
        otel_llm.update_current_observation(level="WARNING", status_message="translation skipped")
    otel_llm.score("helpful", 1, comment="demo user liked it")
    return summary


def run_demo(question: str = "What is the capital of France, Paris?") -> str:
    """Run the agent once inside a session and return the trace id."""
    with otel_llm.propagate_attributes(
        user_id="demo-user", session_id="demo-session", tags=["demo"]
    ):
        with otel_llm.start_observation("demo-request", entry=False) as request:
            assistant(question)
    return request.trace_id
