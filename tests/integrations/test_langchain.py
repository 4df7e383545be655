"""CallbackHandler: real langchain-openai and LangGraph against the fake OpenAI server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import openai
import pytest
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import FakeListLLM
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from typing_extensions import TypedDict

import otel_llm
from otel_llm import diagnostics
from otel_llm.instrument.observation import start_observation
from otel_llm.integrations._langchain_runs import Run, Runs
from otel_llm.integrations.langchain import CallbackHandler
from tests.fake_llm_server import REPLY_TEXT, FakeLLMServer

TRACE_KEYS = (
    "user.id",
    "session.id",
    "otel_llm.trace.name",
    "otel_llm.trace.tags",
    "otel_llm.trace.metadata",
    "otel_llm.environment",
    "otel_llm.release",
    "otel_llm.version",
)


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]


# -- fixtures and helpers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _clear(server: FakeLLMServer) -> None:
    server.clear()


def chat(server: FakeLLMServer, **kwargs: Any) -> ChatOpenAI:
    kwargs.setdefault("model", "gpt-4o-mini")
    return ChatOpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0, **kwargs)  # type: ignore[arg-type]


def finished(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> list[ReadableSpan]:
    assert pipeline.flush()
    no_internal_errors()
    return list(memory.spans)


def no_internal_errors() -> None:
    errors = {k: v for k, v in diagnostics.counts().items() if k.startswith("internal_error")}
    assert not errors


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def content(span: ReadableSpan, key: str) -> Any:
    value = attrs(span)[f"otel_llm.observation.{key}"]
    try:
        return json.loads(value)
    except ValueError:
        return value


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start_time or 0)


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def kind(span: ReadableSpan) -> str:
    return str(attrs(span)["otel_llm.observation.type"])


def assert_child(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.parent is not None, child.name
    assert child.parent.span_id == parent.context.span_id, (child.name, parent.name)
    assert child.context.trace_id == parent.context.trace_id


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[str]:
    return [
        s.name
        for s in sorted(spans, key=lambda s: s.start_time or 0)
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


def chatbot_graph(server: FakeLLMServer, **llm_kwargs: Any) -> Any:
    """The seed's chatbot: one node calling the LLM, messages merged by add_messages."""
    llm = chat(server, **llm_kwargs)

    def chatbot(state: State) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    builder = StateGraph(State)
    builder.add_node("chatbot", chatbot)
    builder.set_entry_point("chatbot")
    builder.set_finish_point("chatbot")
    return builder.compile()


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather in a city."""
    return f"Sunny, 21 degrees {unit} in {city}"


@tool
def get_time(timezone: str) -> str:
    """Current time in a timezone."""
    return f"12:00 in {timezone}"


def agent_graph(server: FakeLLMServer, tools: list[Any]) -> Any:
    """LLM → tool calls → ToolNode → LLM → final answer (the fake server calls tools on request)."""
    llm = chat(server).bind_tools(tools)

    def agent(state: State) -> dict[str, Any]:
        answered = isinstance(state["messages"][-1], ToolMessage)
        headers = {} if answered else {"x-fake-behaviour": "tool"}
        return {"messages": [llm.invoke(state["messages"], extra_headers=headers)]}

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


def joke_chain(server: FakeLLMServer, **llm_kwargs: Any) -> Any:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a comedian."), ("human", "Tell me a joke about {topic}")]
    )
    return prompt | chat(server, **llm_kwargs) | StrOutputParser()


# -- (1) a simple chain ----------------------------------------------------------------------------
def test_chain_is_a_trace_with_a_generation(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    handler = CallbackHandler()
    chain = joke_chain(server, temperature=0.2, max_tokens=64)
    assert chain.invoke({"topic": "cats"}, config={"callbacks": [handler]}) == REPLY_TEXT

    spans = finished(pipeline, memory)
    root = one(spans, "RunnableSequence")
    assert root.parent is None
    assert kind(root) == "chain"
    assert children(spans, root) == ["ChatPromptTemplate", "ChatOpenAI", "StrOutputParser"]
    assert content(root, "input") == {"topic": "cats"}
    assert content(root, "output") == REPLY_TEXT
    assert attrs(root)["otel_llm.trace.name"] == "RunnableSequence"
    assert attrs(root)["gen_ai.is_entry"] is True

    gen = one(spans, "ChatOpenAI")
    a = attrs(gen)
    assert kind(gen) == "generation"
    assert "gen_ai.is_entry" not in a
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-08-06"
    assert a["gen_ai.response.id"].startswith("chatcmpl-fake")
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 64
    assert content(gen, "input") == [
        {"role": "system", "content": "You are a comedian."},
        {"role": "user", "content": "Tell me a joke about cats"},
    ]
    assert json.loads(a["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You are a comedian."}
    ]
    assert json.loads(a["gen_ai.input.messages"])[0]["role"] == "user"
    assert content(gen, "output") == {
        "role": "assistant",
        "content": REPLY_TEXT,
        "finish_reason": "stop",
    }
    output = json.loads(a["gen_ai.output.messages"])
    assert output[0]["parts"][0]["content"] == REPLY_TEXT
    sent = server.last_request().json
    prompt_tokens = len(" ".join(m["content"] for m in sent["messages"]).split())
    assert a["gen_ai.usage.input_tokens"] == prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == len(REPLY_TEXT.split())
    assert "otel_llm.usage.estimated" not in a
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    assert len(handler._tracer.runs) == 0


def test_completion_llm_prompt_string(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    llm = FakeListLLM(responses=["forty-two"])
    assert llm.invoke("What is six times seven?", config={"callbacks": [CallbackHandler()]}) == (
        "forty-two"
    )
    gen = one(finished(pipeline, memory), "FakeListLLM")
    assert kind(gen) == "generation"
    assert content(gen, "input") == "What is six times seven?"
    assert content(gen, "output") == "forty-two"


# -- (2) streaming ---------------------------------------------------------------------------------
def test_stream_aggregates_output_with_ttft_and_usage(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    chain = joke_chain(server, stream_usage=True)
    pieces = list(chain.stream({"topic": "dogs"}, config={"callbacks": [CallbackHandler()]}))
    assert "".join(pieces) == REPLY_TEXT

    spans = finished(pipeline, memory)
    gen = one(spans, "ChatOpenAI")
    a = attrs(gen)
    assert content(gen, "output")["content"] == REPLY_TEXT
    assert a["gen_ai.usage.output_tokens"] == len(REPLY_TEXT.split())
    assert "otel_llm.usage.estimated" not in a
    assert 0 < a["gen_ai.response.time_to_first_chunk"] < (gen.end_time - gen.start_time) / 1e9  # type: ignore[operator]
    assert a["otel_llm.observation.completion_start_time"].endswith("Z")
    assert content(one(spans, "RunnableSequence"), "output") == REPLY_TEXT


def test_stream_early_break_ends_every_span(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    handler = CallbackHandler()
    stream = joke_chain(server).stream({"topic": "dogs"}, config={"callbacks": [handler]})
    taken = []
    for piece in stream:
        taken.append(piece)
        if len(taken) == 3:
            break
    stream.close()

    spans = finished(pipeline, memory)
    root = one(spans, "RunnableSequence")
    assert REPLY_TEXT.startswith(content(root, "output"))  # what LangChain saw before the close
    assert root.status.status_code is not StatusCode.ERROR
    gen = one(spans, "ChatOpenAI")
    assert_child(gen, root)
    assert "gen_ai.response.time_to_first_chunk" in attrs(gen)
    assert len(handler._tracer.runs) == 0


def test_langgraph_stream_closed_early_is_not_an_error(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    handler = CallbackHandler()
    stream = chatbot_graph(server).stream(
        {"messages": [HumanMessage("What is Langfuse?")]},
        config={"callbacks": [handler]},
        stream_mode="messages",
    )
    next(stream)
    stream.close()

    spans = finished(pipeline, memory)
    root = one(spans, "LangGraph")
    assert root.status.status_code is StatusCode.UNSET
    assert attrs(root)["otel_llm.observation.level"] == "DEFAULT"
    assert "closed" in attrs(root)["otel_llm.observation.status_message"]
    assert_child(one(spans, "chatbot"), root)
    assert len(handler._tracer.runs) == 0


# -- (3) the seed's LangGraph chatbot --------------------------------------------------------------
@pytest.mark.parametrize("stream_mode", ["updates", "messages"])
def test_langgraph_chatbot_stream(
    server: FakeLLMServer,
    pipeline: otel_llm.Pipeline,
    memory: otel_llm.InMemory,
    stream_mode: str,
) -> None:
    graph = chatbot_graph(server, model="gpt-4o", temperature=0.2)
    handler = CallbackHandler()
    updates = list(
        graph.stream(
            {"messages": [HumanMessage(content="What is Langfuse?")]},
            config={"callbacks": [handler]},
            stream_mode=stream_mode,
        )
    )
    assert updates

    spans = finished(pipeline, memory)
    assert sorted(s.name for s in spans) == ["ChatOpenAI", "LangGraph", "chatbot"]
    root, node, gen = one(spans, "LangGraph"), one(spans, "chatbot"), one(spans, "ChatOpenAI")
    assert root.parent is None
    assert_child(node, root)
    assert_child(gen, node)
    assert attrs(root)["otel_llm.trace.name"] == "LangGraph"
    assert kind(node) == "chain"
    node_meta = content(node, "metadata")
    assert node_meta["langgraph_node"] == "chatbot"
    assert node_meta["langgraph_step"] == 1
    assert content(gen, "metadata")["langgraph_node"] == "chatbot"
    assert content(node, "input") == {
        "messages": [{"role": "user", "content": "What is Langfuse?"}]
    }
    assert content(node, "output")["messages"][0]["content"] == REPLY_TEXT
    a = attrs(gen)
    assert a["gen_ai.request.model"] == "gpt-4o"
    assert a["gen_ai.request.temperature"] == 0.2
    assert content(gen, "input") == [{"role": "user", "content": "What is Langfuse?"}]
    assert content(gen, "output")["content"] == REPLY_TEXT
    # LangGraph streams the model's tokens only in "messages" mode
    assert ("gen_ai.response.time_to_first_chunk" in a) is (stream_mode == "messages")
    assert len(handler._tracer.runs) == 0


# -- (4) an agent graph with tools -----------------------------------------------------------------
def test_agent_graph_with_tool_node(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    graph = agent_graph(server, [get_weather, get_time])
    result = graph.invoke(
        {"messages": [HumanMessage("Weather and time in Paris?")]},
        config={"callbacks": [CallbackHandler()]},
    )
    assert result["messages"][-1].content == REPLY_TEXT

    spans = finished(pipeline, memory)
    root = one(spans, "LangGraph")
    assert children(spans, root) == ["agent", "tools", "agent"]
    first, second = named(spans, "agent")
    assert kind(first) == "agent"  # the Langfuse rule: "agent" in the name
    assert attrs(first)["gen_ai.agent.name"] == "agent"
    assert children(spans, first) == ["ChatOpenAI", "tools_condition"]
    assert children(spans, second) == ["ChatOpenAI", "tools_condition"]

    tools_node = one(spans, "tools")
    assert_child(tools_node, root)
    assert content(tools_node, "metadata")["langgraph_step"] == 2
    assert sorted(children(spans, tools_node)) == ["get_time", "get_weather"]
    weather = one(spans, "get_weather")
    assert_child(weather, tools_node)
    w = attrs(weather)
    assert kind(weather) == "tool"
    assert w["gen_ai.operation.name"] == "execute_tool"
    assert w["gen_ai.tool.name"] == "get_weather"
    assert w["gen_ai.tool.call.id"] == "call_weather_1"
    assert w["gen_ai.tool.description"] == "Current weather in a city."
    assert json.loads(w["gen_ai.tool.call.arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert content(weather, "input") == {"city": "Paris", "unit": "celsius"}
    assert content(weather, "output") == "Sunny, 21 degrees celsius in Paris"
    assert w["gen_ai.tool.call.result"] == "Sunny, 21 degrees celsius in Paris"
    assert attrs(one(spans, "get_time"))["gen_ai.tool.call.id"] == "call_time_2"

    calling, answering = named(spans, "ChatOpenAI")
    assert_child(calling, first)
    assert_child(answering, second)
    definitions = json.loads(attrs(calling)["gen_ai.tool.definitions"])
    assert [d["name"] for d in definitions] == ["get_weather", "get_time"]
    assert definitions[0]["parameters"]["properties"]["city"] == {"type": "string"}
    out = content(calling, "output")
    assert out["finish_reason"] == "tool_calls"
    assert [c["function"]["name"] for c in out["tool_calls"]] == ["get_weather", "get_time"]
    assert json.loads(out["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Paris",
        "unit": "celsius",
    }
    history = content(answering, "input")
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool"]
    assert history[2]["tool_call_id"] == "call_weather_1"
    assert history[1]["tool_calls"][1]["id"] == "call_time_2"
    parts = json.loads(attrs(answering)["gen_ai.input.messages"])
    assert parts[2]["parts"][0]["type"] == "tool_call_response"
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}


# -- (5) concurrency: one handler shared by many requests ------------------------------------------
def test_async_concurrent_runs_keep_their_own_trees(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    graph = chatbot_graph(
        server, default_headers={"x-fake-behaviour": "slow", "x-fake-delay": "0.005"}
    )
    shared = CallbackHandler(user_id="shared-user", session_id="shared-session")
    expected: dict[str, tuple[int, str]] = {}

    async def one_run(i: int) -> None:
        handler = shared if i % 2 == 0 else CallbackHandler(user_id=f"user-{i}")
        run_id = uuid.uuid4()
        expected[otel_llm.create_trace_id(seed=str(run_id))] = (i, handler._tracer.user_id or "")
        config: Any = {"callbacks": [handler], "run_id": run_id}
        state = {"messages": [HumanMessage(f"question number {i}")]}
        if i % 4 < 2:
            await graph.ainvoke(state, config=config)
        else:
            async for _ in graph.astream(state, config=config, stream_mode="messages"):
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(one_run(i) for i in range(20)))

    asyncio.run(main())
    spans = finished(pipeline, memory)
    assert len(spans) == 60
    traces: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        traces.setdefault(f"{span.context.trace_id:032x}", []).append(span)
    assert set(traces) == set(expected)
    for trace_id, members in traces.items():
        i, user = expected[trace_id]
        root, node, gen = (
            one(members, "LangGraph"),
            one(members, "chatbot"),
            one(members, "ChatOpenAI"),
        )
        assert root.parent is None
        assert_child(node, root)
        assert_child(gen, node)
        assert {attrs(s)["user.id"] for s in members} == {user}
        sessions = {attrs(s).get("session.id") for s in members}
        assert sessions == ({"shared-session"} if i % 2 == 0 else {None})
        assert content(gen, "input") == [{"role": "user", "content": f"question number {i}"}]
        assert content(root, "input")["messages"][0]["content"] == f"question number {i}"
        streamed = i % 4 >= 2
        assert ("gen_ai.response.time_to_first_chunk" in attrs(gen)) is streamed
    assert len(shared._tracer.runs) == 0


def test_threads_share_one_handler(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    chain = joke_chain(server)
    handler = CallbackHandler(user_id="threaded")
    topics = [f"topic-{i}" for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(lambda t: chain.invoke({"topic": t}, config={"callbacks": [handler]}), topics)
        )
    assert results == [REPLY_TEXT] * 8
    spans = finished(pipeline, memory)
    roots = named(spans, "RunnableSequence")
    assert sorted(content(r, "input")["topic"] for r in roots) == topics
    for root in roots:
        members = [s for s in spans if s.context.trace_id == root.context.trace_id]
        assert len(members) == 4
        gen = one(members, "ChatOpenAI")
        assert_child(gen, root)
        assert content(root, "input")["topic"] in content(gen, "input")[1]["content"]


def test_astream_events_with_a_sync_handler(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    chain = joke_chain(server)

    async def main() -> list[str]:
        kinds = []
        async for event in chain.astream_events(
            {"topic": "owls"}, config={"callbacks": [CallbackHandler()]}, version="v2"
        ):
            kinds.append(event["event"])
        return kinds

    assert "on_chat_model_stream" in asyncio.run(main())
    spans = finished(pipeline, memory)
    root, gen = one(spans, "RunnableSequence"), one(spans, "ChatOpenAI")
    assert_child(gen, root)
    assert content(gen, "output")["content"] == REPLY_TEXT
    assert "gen_ai.response.time_to_first_chunk" in attrs(gen)


# -- (6) errors ------------------------------------------------------------------------------------
def test_tool_error_is_recorded_and_reraised_untouched(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    boom = RuntimeError("weather service down")

    @tool("get_weather")
    def broken_weather(city: str, unit: str = "celsius") -> str:
        """Current weather in a city."""
        raise boom

    graph = agent_graph(server, [broken_weather, get_time])
    with pytest.raises(RuntimeError) as caught:
        graph.invoke(
            {"messages": [HumanMessage("Weather?")]}, config={"callbacks": [CallbackHandler()]}
        )
    assert caught.value is boom

    spans = finished(pipeline, memory)
    weather = one(spans, "get_weather")
    assert weather.status.status_code is StatusCode.ERROR
    assert "weather service down" in (weather.status.description or "")
    assert attrs(weather)["error.type"] == "RuntimeError"
    assert attrs(weather)["otel_llm.observation.level"] == "ERROR"
    assert any(e.name == "exception" for e in weather.events)
    # the sibling tool runs concurrently; LangGraph may cancel it when get_weather fails
    for other in named(spans, "get_time"):
        assert other.status.status_code is not StatusCode.ERROR
    for name in ("tools", "LangGraph"):
        assert one(spans, name).status.status_code is StatusCode.ERROR


def test_llm_server_error(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    chain = joke_chain(server, default_headers={"x-fake-behaviour": "error-500"})
    with pytest.raises(openai.InternalServerError) as caught:
        chain.invoke({"topic": "cats"}, config={"callbacks": [CallbackHandler()]})
    # langchain-openai re-raises the SDK's error as its own subclass (OpenAIAPIError)
    raised = type(caught.value)
    error_type = f"{raised.__module__}.{raised.__qualname__}"
    if raised is openai.InternalServerError:
        error_type = "openai.InternalServerError"

    spans = finished(pipeline, memory)
    gen = one(spans, "ChatOpenAI")
    a = attrs(gen)
    assert gen.status.status_code is StatusCode.ERROR
    assert a["error.type"] == error_type
    assert a["http.response.status_code"] == 500
    assert "server had an error" in a["otel_llm.observation.status_message"]
    assert "otel_llm.observation.output" not in a
    root = one(spans, "RunnableSequence")
    assert root.status.status_code is StatusCode.ERROR
    assert attrs(root)["error.type"] == error_type


def test_stream_error_keeps_the_partial_output(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    chain = joke_chain(server, default_headers={"x-fake-behaviour": "error-mid-stream"})
    received = []
    with pytest.raises(openai.APIError):
        for piece in chain.stream({"topic": "cats"}, config={"callbacks": [CallbackHandler()]}):
            received.append(piece)

    spans = finished(pipeline, memory)
    gen = one(spans, "ChatOpenAI")
    assert gen.status.status_code is StatusCode.ERROR
    partial = content(gen, "output")["content"]
    assert partial and REPLY_TEXT.startswith(partial)
    assert partial == "".join(received)
    assert "gen_ai.response.time_to_first_chunk" in attrs(gen)


def test_graph_interrupt_is_not_an_error(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    def ask(state: State) -> dict[str, Any]:
        return {"messages": [HumanMessage(interrupt("approve?"))]}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.set_entry_point("ask")
    builder.set_finish_point("ask")
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"callbacks": [CallbackHandler()], "configurable": {"thread_id": "thread-7"}}
    result = graph.invoke({"messages": [HumanMessage("hi")]}, config=config)
    assert "__interrupt__" in result

    spans = finished(pipeline, memory)
    node = one(spans, "ask")
    assert node.status.status_code is StatusCode.UNSET
    assert attrs(node)["otel_llm.observation.level"] == "DEFAULT"
    assert "GraphInterrupt" in attrs(node)["otel_llm.observation.status_message"]
    assert "error.type" not in attrs(node)
    assert {attrs(s)["gen_ai.conversation.id"] for s in spans} == {"thread-7"}


# -- (7) run_id → trace id -------------------------------------------------------------------------
def test_run_id_gives_a_deterministic_trace_id(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    run_id = uuid.uuid4()
    joke_chain(server).invoke(
        {"topic": "cats"}, config={"callbacks": [CallbackHandler()], "run_id": run_id}
    )
    spans = finished(pipeline, memory)
    expected = int(otel_llm.create_trace_id(seed=str(run_id)), 16)
    assert len(spans) == 4
    assert {s.context.trace_id for s in spans} == {expected}
    assert one(spans, "RunnableSequence").parent is None


def test_root_run_nests_under_the_current_span(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    chain = joke_chain(server)

    @otel_llm.observe(name="handle_request")
    def handle_request() -> str:
        result: str = chain.invoke(
            {"topic": "cats"}, config={"callbacks": [CallbackHandler()], "run_id": uuid.uuid4()}
        )
        return result

    assert handle_request() == REPLY_TEXT
    spans = finished(pipeline, memory)
    outer = one(spans, "handle_request")
    assert_child(one(spans, "RunnableSequence"), outer)
    assert {s.context.trace_id for s in spans} == {outer.context.trace_id}


# -- (8) handler arguments -------------------------------------------------------------------------
def test_handler_arguments_on_every_span(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    handler = CallbackHandler(
        user_id="user-123",
        session_id="session-9",
        tags=["tag-1", "tag-2"],
        metadata={"key": "value"},
        trace_name="joke-request",
        environment="production",
        release="r-2024.1",
        version="1.0",
    )
    graph = agent_graph(server, [get_weather, get_time])
    graph.invoke(
        {"messages": [HumanMessage("Weather?")]}, config={"callbacks": [handler], "tags": ["call"]}
    )
    spans = finished(pipeline, memory)
    assert len(spans) == 10  # graph, 2 agent steps (LLM + condition each), tools node, 2 tools
    for span in spans:
        a = attrs(span)
        assert a["user.id"] == "user-123", span.name
        assert a["session.id"] == "session-9"
        assert a["otel_llm.trace.name"] == "joke-request"
        assert a["otel_llm.trace.tags"] == ("tag-1", "tag-2", "call")
        assert json.loads(a["otel_llm.trace.metadata"]) == {"key": "value"}
        assert a["otel_llm.environment"] == "production"
        assert a["otel_llm.release"] == "r-2024.1"
        assert a["otel_llm.version"] == "1.0"


def test_per_call_langfuse_metadata_overrides(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    handler = CallbackHandler(user_id="default-user")
    metadata = {
        "langfuse_user_id": "user-7",
        "langfuse_session_id": "session-7",
        "langfuse_tags": ["vip"],
        "langfuse_trace_name": "support-chat",
        "request": "r-1",
    }
    joke_chain(server).invoke({"topic": "x"}, config={"callbacks": [handler], "metadata": metadata})
    spans = finished(pipeline, memory)
    for span in spans:
        a = attrs(span)
        assert (a["user.id"], a["session.id"]) == ("user-7", "session-7")
        assert a["otel_llm.trace.name"] == "support-chat"
        assert a["otel_llm.trace.tags"] == ("vip",)
        assert content(span, "metadata") == {"request": "r-1"}
    joke_chain(server).invoke({"topic": "y"}, config={"callbacks": [handler]})
    later = [s for s in finished(pipeline, memory) if s not in spans]
    assert {attrs(s)["user.id"] for s in later} == {"default-user"}
    assert {attrs(s)["otel_llm.trace.name"] for s in later} == {"RunnableSequence"}
    assert all("otel_llm.trace.tags" not in attrs(s) for s in later)


def test_langfuse_prompt_metadata_links_the_generation(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    prompt = ChatPromptTemplate.from_template("Say {word}")
    chain = prompt | FakeListLLM(responses=["hi"])
    config: Any = {
        "callbacks": [CallbackHandler()],
        "metadata": {"langfuse_prompt": {"name": "say-word", "version": 3}},
    }
    assert chain.invoke({"word": "hi"}, config=config) == "hi"
    spans = finished(pipeline, memory)
    gen = one(spans, "FakeListLLM")
    assert attrs(gen)["otel_llm.prompt.name"] == "say-word"
    assert attrs(gen)["otel_llm.prompt.version"] == 3
    assert "otel_llm.prompt.name" not in attrs(one(spans, "RunnableSequence"))


# -- (9) retrievers --------------------------------------------------------------------------------
class TinyRetriever(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [d for d in self.docs if query.lower() in d.page_content.lower()]


def test_retriever_documents_are_the_output(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    retriever = TinyRetriever(
        docs=[
            Document(page_content="Langfuse traces LLM apps.", metadata={"source": "a.md"}),
            Document(page_content="Paris is in France.", metadata={"source": "b.md"}, id="d2"),
        ]
    )
    prompt = ChatPromptTemplate.from_template("Context: {context}\nQuestion: {question}")
    rag = (
        {"context": retriever, "question": RunnablePassthrough()}
        | prompt
        | chat(server)
        | StrOutputParser()
    )
    assert rag.invoke("langfuse", config={"callbacks": [CallbackHandler()]}) == REPLY_TEXT

    spans = finished(pipeline, memory)
    found = one(spans, "TinyRetriever")
    assert kind(found) == "retriever"
    assert attrs(found)["gen_ai.operation.name"] == "retrieval"
    assert content(found, "input") == "langfuse"
    assert content(found, "output") == [
        {"page_content": "Langfuse traces LLM apps.", "metadata": {"source": "a.md"}}
    ]
    root = one(spans, "RunnableSequence")
    parallel = next(s for s in spans if s.name.startswith("RunnableParallel"))
    assert_child(parallel, root)
    assert_child(found, parallel)


# -- agents (classic AgentExecutor callbacks), hygiene, bounds -------------------------------------
def test_agent_actions_are_events(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    handler = CallbackHandler()
    run_id = uuid.uuid4()
    serialized = {"id": ["langchain", "agents", "agent", "AgentExecutor"], "name": "AgentExecutor"}
    handler.on_chain_start(serialized, {"input": "hi"}, run_id=run_id)
    handler.on_agent_action(AgentAction("search", {"q": "paris"}, "thinking"), run_id=run_id)
    handler.on_agent_finish(AgentFinish({"output": "done"}, "final"), run_id=run_id)
    handler.on_chain_end({"output": "done"}, run_id=run_id)

    span = one(finished(pipeline, memory), "AgentExecutor")
    assert kind(span) == "agent"
    action, finish = span.events
    assert action.name == "agent.action"
    assert action.attributes is not None and action.attributes["gen_ai.tool.name"] == "search"
    assert json.loads(str(action.attributes["otel_llm.observation.input"])) == {"q": "paris"}
    assert finish.name == "agent.finish"


def test_handler_never_raises(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LLM_STRICT", "0")
    handler = CallbackHandler()
    assert handler.raise_error is False
    assert handler.run_inline is True
    bad: Any = 42
    handler.on_chain_start({}, {}, run_id=uuid.uuid4(), metadata=bad)
    handler.on_chain_end({}, run_id=uuid.uuid4())  # unknown run
    handler.on_llm_end(bad, run_id=uuid.uuid4())
    handler.on_tool_error(ValueError("x"), run_id=uuid.uuid4())
    assert diagnostics.counts().get("internal_error.langchain.chain") == 1


def test_open_runs_are_bounded(pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory) -> None:
    runs = Runs(limit=2, orphan_grace_s=0)
    first = Run(start_observation("first"), {}, None)
    runs.add(uuid.uuid4(), first)
    for name in ("second", "third"):
        runs.add(uuid.uuid4(), Run(start_observation(name), {}, None))
    assert len(runs) == 2
    assert first.observation.ended
    assert diagnostics.counts()["langchain.runs_evicted"] == 1

    orphans = Runs(orphan_grace_s=0)
    root = Run(start_observation("root"), {}, None)
    child = Run(start_observation("child", parent=root.observation), {}, root)
    orphans.add(uuid.uuid4(), child)
    root.ended_ns = 1
    orphans.sweep()
    assert len(orphans) == 0
    assert child.observation.ended
    spans = finished(pipeline, memory)
    assert attrs(one(spans, "child"))["otel_llm.observation.auto_ended"] is True


def test_a_reused_run_id_ends_the_run_it_replaces(
    pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    handler = CallbackHandler()
    run_id = uuid.uuid4()
    handler.on_chain_start({"name": "first"}, {}, run_id=run_id)
    handler.on_chain_start({"name": "second"}, {}, run_id=run_id)
    handler.on_chain_end({}, run_id=run_id)
    spans = finished(pipeline, memory)
    assert attrs(one(spans, "first"))["otel_llm.observation.auto_ended"] is True
    assert "otel_llm.observation.auto_ended" not in attrs(one(spans, "second"))
    assert diagnostics.counts()["langchain.runs_replaced"] == 1
    assert len(handler._tracer.runs) == 0


def test_importing_otel_llm_does_not_import_langchain() -> None:
    code = (
        "import sys, otel_llm\n"
        "assert not [m for m in sys.modules if m.startswith(('langchain', 'langgraph'))]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_langchain_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['langchain_core'] = None\n"
        "try:\n"
        "    import otel_llm.integrations.langchain\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "pip install 'otel-llm[langchain]'" in out.stdout


def test_langchain_with_instrument_openai_records_each_call_once(
    server: FakeLLMServer, pipeline: otel_llm.Pipeline, memory: otel_llm.InMemory
) -> None:
    """ChatOpenAI calls the OpenAI client inside the handler's generation: one span, not two."""
    from otel_llm.integrations.openai import instrument_openai, uninstrument_openai

    instrument_openai()
    try:
        llm = ChatOpenAI(base_url=server.url + "/v1", api_key="test", model="gpt-4o-mini")
        llm.invoke("hi", config={"callbacks": [CallbackHandler()]})
        with openai.OpenAI(base_url=server.url + "/v1", api_key="test") as client:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "direct"}]
            )
    finally:
        uninstrument_openai()
    pipeline.flush()
    generations = [
        s for s in memory.spans if s.attributes.get("otel_llm.observation.type") == "generation"
    ]
    assert len(generations) == 2  # the LangChain one, and the direct call afterwards
    assert [s.name for s in generations].count("chat gpt-4o-mini") == 1  # the direct call
    assert sorted(s.instrumentation_scope.name for s in generations) == ["otel-llm", "otel-llm"]
