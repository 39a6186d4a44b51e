"""Rollouts for training, live: exact tokens, recorded trajectories, token turns.

Answers are fixed by the server (a single-string regex) where two calls must
agree, and the agent's model is the rig's ``weather`` adapter (tests/agent_world.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import StructuredTool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langchain_vllm import ChatVLLM, ChatVLLMTokenTurns, VLLMOpenAI
from langchain_vllm.rollouts import (
    load_trajectories,
    record_trajectories,
    training_turns,
)
from rig import rig_server
from tests.agent_world import QUESTION, Weather, get_weather
from tests.integration_tests.conftest import (
    FIXED,
    FIXED_COMPLETION,
    FIXED_COMPLETION_ARGS,
    FIXED_TEXT,
)

TOKENS: dict[str, Any] = {"return_token_ids": True}


def merged(chunks: list[Any]) -> Any:
    out = chunks[0]
    for chunk in chunks[1:]:
        out = out + chunk
    return out


def check_same_tokens(metadata: list[dict[str, Any]], key: str = "content") -> None:
    """Equal prompt ids, completion ids and logprob counts, one per id."""
    first = metadata[0]
    assert first["prompt_token_ids"]
    assert first["token_ids"]
    for meta in metadata:
        assert meta["prompt_token_ids"] == first["prompt_token_ids"]
        assert meta["token_ids"] == first["token_ids"]
        assert len(meta["logprobs"][key]) == len(first["token_ids"])


@pytest.fixture(scope="module")
def chat(chat_url: str) -> ChatVLLM:
    return ChatVLLM(base_url=chat_url, temperature=0, logprobs=True)


async def test_chat_stream_and_invoke_give_the_same_tokens(chat: ChatVLLM) -> None:
    whole = chat.invoke("Translate: I love coding.", **FIXED, **TOKENS)
    streamed = merged(list(chat.stream("Translate: I love coding.", **FIXED, **TOKENS)))
    chunks = [
        c async for c in chat.astream("Translate: I love coding.", **FIXED, **TOKENS)
    ]
    amerged = merged(chunks)
    assert isinstance(amerged, AIMessageChunk)
    assert whole.content == streamed.content == amerged.content == FIXED_TEXT
    check_same_tokens([m.response_metadata for m in (whole, streamed, amerged)])


def test_completion_stream_and_invoke_give_the_same_tokens(chat_url: str) -> None:
    llm = VLLMOpenAI(base_url=chat_url, temperature=0, logprobs=0)
    args = {**FIXED_COMPLETION_ARGS, **TOKENS}
    whole = llm.generate(["The capital of France is"], **args).generations[0][0]
    streamed = (
        llm.model_copy(update={"streaming": True})
        .generate(["The capital of France is"], **args)
        .generations[0][0]
    )
    chunks = list(llm.stream("The capital of France is", **args))
    assert whole.text == streamed.text == "".join(chunks) == FIXED_COMPLETION
    check_same_tokens(
        [whole.generation_info or {}, streamed.generation_info or {}],
        key="token_logprobs",
    )


# -- an agent's rollouts: the weather adapter, 3 model calls per rollout -------------
TURNS = 3


def rollout_graph(model: ChatVLLM) -> Any:
    """A LangGraph loop of model and tools, ended after TURNS model calls.

    The model must call one of the tools each turn (as create_agent's ToolStrategy
    asks), so every rollout has exactly TURNS calls whatever the model writes.
    """
    bound = model.bind_tools([get_weather, Weather], tool_choice="any")
    tools = ToolNode([get_weather, REPORT_WEATHER])

    def call(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def acall(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        calls = sum(isinstance(m, AIMessage) for m in state["messages"])
        return END if calls >= TURNS else "tools"

    graph = StateGraph(MessagesState)
    graph.add_node("model", RunnableLambda(call, afunc=acall))
    graph.add_node("tools", tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    return graph.compile()


def chat_graph(model: ChatVLLM, turns: int) -> Any:
    """A LangGraph loop of model calls, each answer followed by a user message
    naming the thread, ended after `turns` model calls."""

    async def call(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def go_on(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        thread = config["configurable"]["thread_id"]
        turn = sum(isinstance(m, AIMessage) for m in state["messages"])
        return {"messages": [("user", f"{thread}: go on ({turn})")]}

    def route(state: MessagesState) -> str:
        calls = sum(isinstance(m, AIMessage) for m in state["messages"])
        return END if calls >= turns else "go_on"

    graph = StateGraph(MessagesState)
    graph.add_node("model", call)
    graph.add_node("go_on", go_on)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["go_on", END])
    graph.add_edge("go_on", "model")
    return graph.compile()


def report_weather(city: str, forecast: str) -> str:
    """Report the weather in a city."""
    return f"Reported: {city}, {forecast}"


REPORT_WEATHER = StructuredTool.from_function(report_weather, name="Weather")
"""The answer schema, run as a tool."""


@pytest.fixture(scope="module")
def agent_server() -> Iterator[Any]:
    """The rig's agent server (weather adapter) with vLLM's scale-out routes on."""
    with rig_server("agent", args=("--enable-scale-out",)) as server:
        yield server


def post(server: Any, path: str, body: dict[str, Any]) -> Any:
    root = server.base_url.removesuffix("/v1")
    response = httpx.post(root + path, json=body, timeout=120)
    response.raise_for_status()
    return response.json()


def check_call_tokens(server: Any, call: dict[str, Any]) -> None:
    """The call's prompt ids are /tokenize's of its messages and tools; its ids
    detokenize to the answer (the tool calls' names and arguments in the markup)."""
    body = {
        "model": call["model"],
        "messages": call["messages"],
        "tools": call["tools"],
    }
    tokens = post(server, "/tokenize", {**body, "add_generation_prompt": True})
    assert tokens["tokens"] == call["prompt_token_ids"]
    text = post(
        server,
        "/detokenize",
        {"model": call["model"], "tokens": call["completion_token_ids"]},
    )["prompt"]
    assert call["output"]["tool_calls"]
    for tool_call in call["output"]["tool_calls"]:
        assert tool_call["function"]["name"] in text
        for value in json.loads(tool_call["function"]["arguments"]).values():
            assert str(value) in text or json.dumps(value) in text
    assert len(call["logprobs"]) == len(call["completion_token_ids"])


def test_a_recorded_rollout_has_every_call_exactly(
    agent_server: Any, tmp_path: Path
) -> None:
    graph = rollout_graph(
        ChatVLLM(
            base_url=agent_server.base_url,
            model="weather",
            temperature=0,
            max_tokens=60,
        )
    )
    path = tmp_path / "rollouts.jsonl"
    with record_trajectories(path):
        graph.invoke(QUESTION, {"configurable": {"thread_id": "rollout-1"}})
    [(thread, records)] = load_trajectories(path).items()
    assert thread == "rollout-1"
    calls = [r for r in records if r["type"] == "llm_call"]
    assert len(calls) == TURNS
    assert [r["name"] for r in records if r["type"] == "tool_result"][:2] == [
        "get_weather",
        "Weather",
    ]
    for call in calls:
        assert call["model"] == "weather"
        check_call_tokens(agent_server, call)
    turns = training_turns(records)
    assert len(turns) == TURNS
    for turn, call in zip(turns, calls, strict=True):
        assert turn.input_ids == call["prompt_token_ids"] + call["completion_token_ids"]
        assert sum(turn.response_mask) == len(call["completion_token_ids"])


async def test_token_turns_extend_the_previous_ids_exactly(agent_server: Any) -> None:
    model = ChatVLLMTokenTurns(
        base_url=agent_server.base_url, model="weather", temperature=0, max_tokens=60
    )
    with record_trajectories() as recorder:
        state = await rollout_graph(model).ainvoke(
            QUESTION, {"configurable": {"thread_id": "tito"}}
        )
    answers = [m for m in state["messages"] if isinstance(m, AIMessage)]
    assert len(answers) == TURNS
    assert answers[0].tool_calls[0]["name"] == "get_weather"
    assert answers[0].tool_calls[0]["args"] == {"city": "Paris"}
    assert [a.response_metadata["token_turn"] for a in answers] == [
        "rendered",
        "continued",
        "continued",
    ]
    for before, after in itertools.pairwise(answers):
        sampled = (
            before.response_metadata["prompt_token_ids"]
            + before.response_metadata["token_ids"]
        )
        prompt = after.response_metadata["prompt_token_ids"]
        assert prompt[: len(sampled)] == sampled
        assert len(prompt) > len(sampled)  # the tool result's ids follow
    calls = recorder.trajectories()["tito"]
    turns = training_turns(calls)
    assert [t.input_ids[: len(turns[0].input_ids)] for t in turns] == [
        turns[0].input_ids
    ] * TURNS


async def test_many_rollouts_at_once_keep_their_own_trajectories(
    chat_url: str,
) -> None:
    """32 rollouts of one graph at once, each with its own thread and session.

    Two chat turns each (a user message naming the thread follows the first
    answer), on the chat server: 32 calls at once take the CPU build about 35 s
    (measured), and the agent server's forced tool calls about 3.5 s each, which
    the suite cannot afford for 64 calls; the adapter's turns are checked above.
    """
    model = ChatVLLM(
        base_url=chat_url, temperature=1.0, max_tokens=8, session_from_thread=True
    )
    graph = chat_graph(model, turns=2)
    questions = {
        f"rollout-{i}": f"What is the weather in Paris? (rollout {i})"
        for i in range(32)
    }
    with record_trajectories() as recorder:
        await asyncio.gather(
            *(
                graph.ainvoke(
                    {"messages": [("user", question)]},
                    {"configurable": {"thread_id": thread}},
                )
                for thread, question in questions.items()
            )
        )
    trajectories = recorder.trajectories()
    assert sorted(trajectories) == sorted(questions)
    for thread, question in questions.items():
        calls = [r for r in trajectories[thread] if r["type"] == "llm_call"]
        assert len(calls) == 2
        for call in calls:
            assert call["messages"][0]["content"] == question
            assert call["session_id"] == thread
            assert len(call["logprobs"]) == len(call["completion_token_ids"])
        history = [m["content"] for m in calls[-1]["messages"] if m["role"] == "user"]
        assert history == [question, f"{thread}: go on (1)"]
