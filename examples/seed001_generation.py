"""Seed 001 (Langfuse hands-on guide): ``simple_llm_call_with_trace`` on otel_llm.

The seed's function, kept line for line: a trace with ``input`` and ``metadata``, a
``trace.generation(...)`` carrying the model and its parameters, and
``generation.update(output=..., completion_start_time=..., usage=...)`` from the
OpenAI ``ChatCompletion``. As in the seed, the generation is never ended: the
library ends it at its last update when ``client.flush()`` runs. On failure the
trace is marked ``level="ERROR"`` with the message, the error re-raised, and
``finally: client.flush()`` still delivers it.

No network and no API key: ``FakeOpenAI`` answers like ``OpenAI()`` does
(``.chat.completions.create(...)`` returning an object with
``.choices[0].message.content``, ``.created`` and ``.usage.prompt_tokens`` ...).
``main()`` makes one successful call and one that fails.
"""

from __future__ import annotations

import contextlib
import time
from types import SimpleNamespace
from typing import Any

import otel_llm


class FakeOpenAI:
    """Just enough of ``openai.OpenAI`` for this example: ``chat.completions.create``."""

    def __init__(self, fail_with: str | None = None) -> None:
        self.fail_with = fail_with
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, *, model: str, messages: list[dict[str, str]], **params: Any) -> Any:
        time.sleep(0.002)  # the network
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        question = messages[-1]["content"]
        content = "The capital of France is Paris." if "France" in question else "I don't know."
        prompt_tokens = len(question.split()) + 8
        return SimpleNamespace(
            id="chatcmpl-fake-1",
            model=model,
            created=int(time.time()),  # epoch seconds, like OpenAI's
            choices=[
                SimpleNamespace(
                    index=0,
                    finish_reason="stop",
                    message=SimpleNamespace(role="assistant", content=content),
                )
            ],
            usage=SimpleNamespace(
                prompt_tokens=prompt_tokens,
                completion_tokens=7,
                total_tokens=prompt_tokens + 7,
            ),
        )


def simple_llm_call_with_trace(
    langfuse: otel_llm.Client, client: Any, user_input: str, trace_id: str | None = None
) -> str:
    # 1. Start a new trace (trace_id is optional: pass your own id to find it later)
    trace = langfuse.trace(
        id=trace_id,
        name="simple-query",
        input=user_input,
        metadata={"user_id": "user-123", "session_id": "sess-abc"},
    )
    try:
        # 2. Create a "generation" inside the trace
        generation = trace.generation(
            name="openai-generation",
            input=user_input,
            model="gpt-4o-mini",
            model_parameters={"temperature": 0.7, "max_tokens": 100},
            metadata={"prompt_type": "standard"},
        )
        # 3. The actual LLM call
        chat_completion = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": user_input}],
            temperature=0.7,
            max_tokens=100,
        )
        response_content = chat_completion.choices[0].message.content
        # 4. Update the generation with the output and the token usage
        generation.update(
            output=response_content,
            completion_start_time=chat_completion.created,
            usage={
                "prompt_tokens": chat_completion.usage.prompt_tokens,
                "completion_tokens": chat_completion.usage.completion_tokens,
                "total_tokens": chat_completion.usage.total_tokens,
            },
        )
        print(f"LLM Response: {response_content}")
        return response_content
    except Exception as e:
        # 5. Record the error on the trace
        trace.update(level="ERROR", status_message=str(e))
        print(f"An error occurred: {e}")
        raise
    finally:
        # 6. Make sure everything is delivered before leaving
        langfuse.flush()


def main(
    destinations: list[otel_llm.Destination] | None = None, tracer_provider: Any = None
) -> dict[str, str]:
    """Configure otel_llm, make one good and one failing call; return their trace ids."""
    otel_llm.configure(
        destinations=destinations or [otel_llm.Console()], tracer_provider=tracer_provider
    )
    langfuse = otel_llm.Client()  # was: Langfuse(public_key=..., secret_key=..., host=...)

    ok_id = otel_llm.create_trace_id(seed="request-001")
    simple_llm_call_with_trace(langfuse, FakeOpenAI(), "What is the capital of France?", ok_id)

    failed_id = otel_llm.create_trace_id(seed="request-002")
    with contextlib.suppress(RuntimeError):  # recorded on the trace and printed already
        simple_llm_call_with_trace(
            langfuse, FakeOpenAI(fail_with="Rate limit reached"), "And of Spain?", failed_id
        )
    return {"ok": ok_id, "failed": failed_id}


if __name__ == "__main__":
    main()
