"""LangChain and LangGraph integration: a callback handler that turns runs into observations.

Usage::

    from otel_llm.integrations.langchain import CallbackHandler

    handler = CallbackHandler(user_id="user-123", session_id="chat-42")
    chain.invoke({"topic": "cats"}, config={"callbacks": [handler]})
    for update in graph.stream({"messages": [...]}, config={"callbacks": [handler]}):
        ...

Each LangChain run becomes one observation, nested by ``parent_run_id``:

- chains → ``chain`` (``agent`` for agents); LangGraph nodes are named after the
  node and keep ``langgraph_node`` / ``langgraph_step`` in their metadata;
- chat models and LLMs → ``generation``: model, provider, parameters, messages,
  the assistant message (tool calls included), usage, time to first token;
- tools → ``tool`` (``gen_ai.tool.name``, call id, arguments, result);
- retrievers → ``retriever`` with the documents as output.

The root run is the trace. The handler's user, session, tags, metadata, trace
name (default: the root run's name), environment, release and version go on
every span of it. A root run started inside a span (``@otel_llm.observe``, a web
request) nests under it; otherwise its trace id is derived from LangChain's
``run_id``, so ``config={"run_id": my_uuid}`` gives the trace
``otel_llm.create_trace_id(seed=str(my_uuid))``. Per call, the metadata keys
``langfuse_user_id``, ``langfuse_session_id``, ``langfuse_tags`` and
``langfuse_trace_name`` override the handler's values, and ``langfuse_prompt``
(``{"name", "version"}`` or a prompt object) links the call's generations to a
managed prompt, as in the Langfuse SDK.

One handler can be shared by concurrent requests (threads, asyncio tasks):
state is keyed by ``run_id`` only. It is a synchronous handler that runs inline
(``run_inline = True``): it does no I/O, so async code calls it directly on the
event loop instead of hopping to a thread pool for every callback. It never
raises into your code (``raise_error = False``; our failures are counted in
``stats()``); LangChain re-raises your errors itself, we only record them.
LangGraph interrupts, a consumer closing a stream early and cancellation are
recorded as what they are, not as errors. Runs LangChain marks hidden
(``langsmith:hidden``, e.g. LangGraph's ``__start__``) are folded into their
parent. Spans are not made current, so spans of other instrumentation started
inside a run nest under the span that was current when the run was invoked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import Token
from typing import Any
from uuid import UUID

try:
    from langchain_core.agents import AgentAction, AgentFinish
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.documents import Document
    from langchain_core.messages import BaseMessage, ToolMessage
    from langchain_core.outputs import LLMResult
except ImportError as _exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "otel_llm.integrations.langchain needs langchain-core: pip install 'otel-llm[langchain]'"
    ) from _exc

from otel_llm import semconv
from otel_llm.context import trace_attributes
from otel_llm.diagnostics import guard
from otel_llm.instrument import fields
from otel_llm.integrations import _langchain_convert as convert
from otel_llm.integrations._calls import lower, raise_flag
from otel_llm.integrations._langchain_tracer import Tracer, content_limit
from otel_llm.integrations._langchain_tracer import finish as finish_run
from otel_llm.serialize import to_attribute

__all__ = ["CallbackHandler"]

_GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
_GEN_AI_TOOL_DESCRIPTION = "gen_ai.tool.description"
_GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"


class CallbackHandler(BaseCallbackHandler):
    """Traces LangChain / LangGraph runs as otel-llm observations (see the module docs).

    Every callback runs inside a guard: a failure of ours is counted in
    ``stats()`` and logged once, and your run goes on.

    Args:
        user_id: ``user.id`` on every span of each trace.
        session_id: ``session.id`` (a conversation or thread).
        tags: Trace tags (strings); the root run's own tags are added.
        metadata: Trace metadata (a mapping).
        trace_name: The trace name; default: the root run's name.
        environment: e.g. ``production`` (lowercase letters, digits, ``-``, ``_``).
        release: Your application's release.
        version: Your application's version.
    """

    raise_error: bool = False
    run_inline: bool = True

    def __init__(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        trace_name: str | None = None,
        environment: str | None = None,
        release: str | None = None,
        version: str | None = None,
    ) -> None:
        super().__init__()
        # run_id -> the flag that keeps instrument_openai() from recording the same call
        self._model_calls: dict[UUID, Token[bool]] = {}
        if metadata is not None and not isinstance(metadata, Mapping):
            fields.invalid("CallbackHandler.metadata", "must be a mapping")
            metadata = None
        if tags is not None and not isinstance(tags, (list, tuple, set, frozenset, str)):
            fields.invalid("CallbackHandler.tags", "must be a list of strings")
            tags = None
        self._tracer = Tracer(
            user_id=user_id,
            session_id=session_id,
            trace_name=trace_name,
            tags=convert.trace_tags(tags) if tags is not None else (),
            # validated and serialized once; per trace only user/session/name/tags vary
            fixed=trace_attributes(
                environment=environment, release=release, version=version, metadata=metadata
            ),
        )

    def __repr__(self) -> str:
        t = self._tracer
        return f"CallbackHandler(user_id={t.user_id!r}, session_id={t.session_id!r})"

    # -- chains ------------------------------------------------------------------------------
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with guard("langchain.chain"):
            meta = metadata or {}
            name = convert.run_name(serialized, kwargs, "chain")
            attrs: dict[str, Any] = {}
            as_type = "chain"
            if convert.is_agent(name, serialized, meta):
                as_type = "agent"
                attrs[semconv.GEN_AI_AGENT_NAME] = name
            self._tracer.start(
                run_id,
                parent_run_id,
                name,
                as_type,
                tags=tags,
                metadata=meta,
                input=convert.plain(inputs),
                attributes=attrs,
            )

    def on_chain_end(self, outputs: dict[str, Any], *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.chain"):
            updates: dict[str, Any] = {"output": convert.plain(outputs)}
            if "inputs" in kwargs:  # runnables that defer their input report it at the end
                updates["input"] = convert.plain(kwargs["inputs"])
            self._tracer.finish(run_id, **updates)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.chain"):
            self._tracer.finish(run_id, error=error)

    # -- chat models and LLMs ------------------------------------------------------------------
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with guard("langchain.llm"):
            batches = [convert.message_dicts(batch) for batch in messages]
            input_: Any = batches[0] if len(batches) == 1 else batches
            self._tracer.start_generation(
                serialized, input_, run_id, parent_run_id, tags, metadata or {}, kwargs
            )
            self._model_calls[run_id] = raise_flag()

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with guard("langchain.llm"):
            input_: Any = prompts[0] if len(prompts) == 1 else list(prompts)
            self._tracer.start_generation(
                serialized, input_, run_id, parent_run_id, tags, metadata or {}, kwargs
            )
            self._model_calls[run_id] = raise_flag()

    def _end_model_call(self, run_id: UUID) -> None:
        token = self._model_calls.pop(run_id, None)
        if token is not None:
            lower(token)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.llm"):
            self._tracer.first_token(run_id)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.llm"):
            self._end_model_call(run_id)
            self._tracer.finish_generation(run_id, response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.llm"):
            self._end_model_call(run_id)
            # newer langchain-core passes what was generated before the failure
            partial = convert.partial_result(kwargs.get("response"))
            self._tracer.finish_generation(run_id, partial, error)

    # -- tools -----------------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with guard("langchain.tool"):
            name = convert.run_name(serialized, kwargs, "tool")
            arguments = convert.plain(inputs if isinstance(inputs, Mapping) else input_str)
            attrs: dict[str, Any] = {
                semconv.GEN_AI_TOOL_NAME: name,
                _GEN_AI_TOOL_TYPE: "function",
                semconv.GEN_AI_TOOL_CALL_ARGUMENTS: to_attribute(
                    arguments, max_chars=content_limit()
                ),
            }
            description = serialized.get("description") if isinstance(serialized, Mapping) else None
            if isinstance(description, str) and description:
                attrs[_GEN_AI_TOOL_DESCRIPTION] = description
            call_id = kwargs.get("tool_call_id")
            if isinstance(call_id, str) and call_id:
                attrs[_GEN_AI_TOOL_CALL_ID] = call_id
            self._tracer.start(
                run_id,
                parent_run_id,
                name,
                "tool",
                tags=tags,
                metadata=metadata or {},
                input=arguments,
                attributes=attrs,
            )

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.tool"):
            run = self._tracer.pop(run_id)
            if run is None:
                return
            result = convert.plain(output.content if isinstance(output, ToolMessage) else output)
            run.observation.span.set_attribute(
                semconv.GEN_AI_TOOL_CALL_RESULT, to_attribute(result, max_chars=content_limit())
            )
            finish_run(run, output=result)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.tool"):
            self._tracer.finish(run_id, error=error)

    # -- retrievers ------------------------------------------------------------------------------
    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with guard("langchain.retriever"):
            name = convert.run_name(serialized, kwargs, "retriever")
            self._tracer.start(
                run_id,
                parent_run_id,
                name,
                "retriever",
                tags=tags,
                metadata=metadata or {},
                input=query,
            )

    def on_retriever_end(
        self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any
    ) -> None:
        with guard("langchain.retriever"):
            self._tracer.finish(run_id, output=convert.documents(documents))

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.retriever"):
            self._tracer.finish(run_id, error=error)

    # -- agents and retries: events on the running observation -----------------------------------
    def on_agent_action(self, action: AgentAction, *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.agent"):
            tool_input = convert.plain(getattr(action, "tool_input", None))
            self._tracer.event(
                run_id,
                "agent.action",
                {
                    semconv.GEN_AI_TOOL_NAME: str(getattr(action, "tool", "")),
                    semconv.OBSERVATION_INPUT: to_attribute(tool_input, max_chars=content_limit()),
                },
            )

    def on_agent_finish(self, finish: AgentFinish, *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.agent"):
            values = convert.plain(getattr(finish, "return_values", None))
            self._tracer.event(
                run_id,
                "agent.finish",
                {semconv.OBSERVATION_OUTPUT: to_attribute(values, max_chars=content_limit())},
            )

    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with guard("langchain.retry"):
            attempt = getattr(retry_state, "attempt_number", None)
            attrs = {"retry.attempt": attempt} if isinstance(attempt, int) else {}
            self._tracer.event(run_id, "retry", attrs)
