"""Seed 000 ("langfuse追踪Trace"): a streamed chat answer traced with the stateful client.

The seed wraps an OpenAI streaming call in ``langfuse.trace(...)`` / ``trace.span(...)``,
accumulates the streamed chunks into ``full_response`` (the SDK does not capture a
stream by itself) and ends the span with it. This is the same code on otel_llm:

- ``client.trace(name="gpt_stream", user_id="user-123")`` and the spans of the seed's
  table: ``vector_search``, ``get_weather_tool`` and ``gpt_stream_call``;
- ``span.update(input=...)``, ``span.end(output=full_response)``,
  ``trace.update(output=full_response)``;
- the error path: ``span.end(output={"error": ...})`` then re-raise, exercised by a
  second request whose stream breaks half-way;
- user feedback: ``trace.score(name="helpful", value=1)``.

No network and no API key: ``fake_chat_stream`` stands in for
``AsyncOpenAI().chat.completions.create(..., stream=True)`` and yields chunks shaped
like OpenAI's (``chunk.choices[0].delta.content``). Run ``python
examples/seed000_stateful_stream.py`` to see the trace trees printed by ``Console``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import otel_llm


class FakeAPIError(Exception):
    """What the fake model raises when asked to fail (like ``openai.APIError``)."""


async def fake_chat_stream(messages: list[dict[str, str]], *, fail: bool = False) -> AsyncIterator:
    """Yield OpenAI-shaped stream chunks; with ``fail=True`` break after two of them."""
    pieces = ["It is ", "15:00 ", "in Beijing, ", "sunny and 22°C."]
    for i, piece in enumerate(pieces):
        await asyncio.sleep(0.001)  # the network
        if fail and i == 2:
            raise FakeAPIError("upstream model overloaded")
        delta = SimpleNamespace(content=piece, role="assistant" if i == 0 else None)
        yield SimpleNamespace(choices=[SimpleNamespace(index=0, delta=delta)])


# The seed's table: retrieval and tool steps are spans of the same trace, typed with as_type.
def vector_search(trace: Any, query: str) -> list[str]:
    span = trace.span(name="vector_search", as_type="retriever", input={"query": query, "top_k": 2})
    docs = ["Beijing uses China Standard Time (UTC+8).", "Beijing is the capital of China."]
    span.end(output=docs)
    return docs


def get_weather_tool(trace: Any, city: str) -> dict[str, Any]:
    span = trace.span(name="get_weather_tool", as_type="tool", input={"city": city})
    weather = {"city": city, "condition": "sunny", "temperature_c": 22}
    span.end(output=weather)
    return weather


async def gpt_stream(trace: Any, user_message: str, context: str, *, fail: bool = False):
    """The seed's ``gpt_stream_with_langfuse``: stream the answer, record it on a span."""
    span = trace.span(name="gpt_stream_call")
    try:
        messages = [
            {"role": "system", "content": f"Answer using this context: {context}"},
            {"role": "user", "content": user_message},
        ]
        span.update(input={"messages": messages})
        full_response = ""
        async for chunk in fake_chat_stream(messages, fail=fail):
            if chunk.choices[0].delta.content:
                if not full_response:  # first token: lets the library compute latency
                    span.update(completion_start_time=dt.datetime.now(dt.timezone.utc))
                full_response += chunk.choices[0].delta.content
                yield chunk.choices[0].delta.content
        span.end(output=full_response)
        trace.update(output=full_response)
    except Exception as e:
        # As in the seed, plus level/status_message so the failure shows as an error.
        span.end(output={"error": str(e)}, level="ERROR", status_message=str(e))
        trace.update(output={"error": str(e)}, level="ERROR", status_message=str(e))
        raise


async def answer(trace: Any, question: str, *, fail: bool = False) -> str:
    """Handle one user request inside ``trace``: retrieve, call a tool, stream the answer."""
    docs = vector_search(trace, question)
    weather = get_weather_tool(trace, "Beijing")
    context = " ".join(docs) + f" Weather: {weather}"
    full_answer = ""
    async for token in gpt_stream(trace, question, context, fail=fail):
        full_answer += token  # a web app would forward each token to the browser here
    return full_answer


async def run(client: otel_llm.Client) -> dict[str, str]:
    """One good request (the user likes it) and one whose stream breaks."""
    trace_ids = {}
    for key, question, fail in [("ok", "北京的时间是多少?", False), ("failed", "明天呢?", True)]:
        trace = client.trace(name="gpt_stream", user_id="user-123", input={"question": question})
        trace_ids[key] = trace.trace_id
        try:
            print(f"[{trace.trace_id}] {await answer(trace, question, fail=fail)}")
            trace.score(name="helpful", value=1)  # the user clicked "thumbs up"
        except FakeAPIError as e:
            print(f"[{trace.trace_id}] request failed: {e}")
    # Flush in the task that created the traces: it ends the traces (the seed never ends
    # them) at their last activity, then delivers everything.
    client.flush()
    return trace_ids


def main(
    destinations: list[otel_llm.Destination] | None = None, tracer_provider: Any = None
) -> dict[str, str]:
    """Configure otel_llm, run both requests; return their trace ids ({"ok", "failed"})."""
    otel_llm.configure(
        destinations=destinations or [otel_llm.Console()], tracer_provider=tracer_provider
    )
    client = otel_llm.Client()  # Langfuse(...)'s arguments; none needed without Langfuse
    trace_ids = asyncio.run(run(client))
    otel_llm.flush()
    return trace_ids


if __name__ == "__main__":
    main()
