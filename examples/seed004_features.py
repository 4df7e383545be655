"""Seed 004 ("Tracing Features"): environments, levels, metadata, releases & versions,
sessions, tags, users and custom trace ids, with the decorator API.

The seed passes these to ``CallbackHandler(...)``; here they are set once for a block
of code with ``otel_llm.propagate_attributes(...)`` and land on every span started
inside it (``@observe`` functions, LLM integrations, any other OTel instrumentation):

- environment: ``configure(environment="production")``; leave it out and
  ``LANGFUSE_TRACING_ENVIRONMENT`` is read, else ``default``;
- levels: ``update_current_observation(level="WARNING", status_message=...)`` inside a
  nested ``@observe()`` function; the outermost ``@observe()`` function is the trace;
- metadata, release, version, session, tags, user: ``propagate_attributes(...)``;
  two requests of the same chat share one session id;
- custom trace ids: ``create_trace_id(seed="message-123")`` derives the id from your
  own message id, and ``start_observation(..., trace_id=...)`` starts a trace with it.

No network and no API key: ``fake_llm`` stands in for the model call.
"""

from __future__ import annotations

from typing import Any

import otel_llm

SESSION_ID = "chat-789abc"


def fake_llm(prompt: str) -> str:
    return f"Echo: {prompt}"


@otel_llm.observe()
def fn(question: str) -> str:
    otel_llm.update_current_observation(level="WARNING", status_message="This is a warning")
    return question.strip()


@otel_llm.observe(as_type="generation")
def generate(prompt: str) -> str:
    otel_llm.update_current_observation(
        model="fake-model-1", model_parameters={"temperature": 0.2}, metadata={"attempt": 1}
    )
    return fake_llm(prompt)


# The outermost function becomes the trace; level and status message live on observations.
@otel_llm.observe()
def chat(question: str) -> dict[str, Any]:
    answer = generate(fn(question))
    # Hand the trace id to the frontend, so user feedback can be scored on this trace later.
    return {"answer": answer, "trace_id": otel_llm.get_current_trace_id()}


def handle_message(message_id: str, text: str) -> dict[str, Any]:
    """A message from your own system: its id decides the trace id."""
    trace_id = otel_llm.create_trace_id(seed=message_id)  # same message, same trace id
    with otel_llm.start_observation("handle-message", trace_id=trace_id, input=text) as obs:
        reply = chat(text)
        obs.update(output=reply["answer"])
    return reply


def main(
    destinations: list[otel_llm.Destination] | None = None,
    tracer_provider: Any = None,
    environment: str | None = "production",
) -> dict[str, str]:
    """Configure otel_llm, run two requests of one chat session; return their trace ids."""
    otel_llm.configure(
        destinations=destinations or [otel_llm.Console()],
        tracer_provider=tracer_provider,
        environment=environment,  # None: LANGFUSE_TRACING_ENVIRONMENT, else "default"
    )
    trace_ids = {}
    with otel_llm.propagate_attributes(
        user_id="user-id",
        session_id=SESSION_ID,
        tags=["tag-1", "tag-2"],
        metadata={"key": "value"},
        release="v2.4.0",
        version="1.0",
    ):
        trace_ids["chat"] = chat("  What is Langfuse?  ")["trace_id"]
        trace_ids["message"] = handle_message("message-123", "And OpenTelemetry?")["trace_id"]
    otel_llm.flush()
    return trace_ids


if __name__ == "__main__":
    main()
