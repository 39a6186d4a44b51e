"""`create_agent(tools=..., response_format=...)` on servers that compose an answer
schema with tools and on servers that cannot.

vLLM 0.31+ composes an answer schema with "auto" tool calls only for a tool parser
with a structural tag and strict tool calling on; `VLLM_ENFORCE_STRICT_TOOL_CALLING=0`
stands here for every server that cannot (other parsers; older releases run in
tests/compat_tests): sent both, the model can never call a tool. ChatVLLM's profile
steers create_agent to ToolStrategy (the schema as a tool, under a forced choice
that every vLLM enforces), so the agent calls the tool and the server enforces the
answer on both. The rig's ``weather`` adapter plays the agent's model
deterministically (tests/agent_world.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMToolChoiceError
from rig import rig_server
from tests.agent_world import (
    QUESTION,
    Weather,
    check_run,
    get_weather,
    streamed_run,
    weather_agent,
)


@pytest.fixture(scope="module", params=["composing", "not-composing"])
def weather_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The rig's agent server, and the same with strict tool calling off (it cannot
    compose a schema with tools). One at a time, stopped after this module."""
    composing = request.param == "composing"
    env = {} if composing else {"VLLM_ENFORCE_STRICT_TOOL_CALLING": "0"}
    with rig_server("agent", env=env) as server:
        yield server.base_url


BASE_MODEL = "smollm2-135m-agent-base"
"""The agent server's base model, not trained for the tool: on the server without
strict tool calling its forced call runs on whitespace to `max_tokens`."""


def test_agent_calls_the_tool_and_answers_in_the_schema(weather_url: str) -> None:
    result = weather_agent(weather_url).invoke(QUESTION)
    check_run(result["messages"], result["structured_response"])


async def test_agent_async(weather_url: str) -> None:
    result = await weather_agent(weather_url).ainvoke(QUESTION)
    check_run(result["messages"], result["structured_response"])


def test_agent_streamed(weather_url: str) -> None:
    """stream_mode="messages" streams the model's tokens (ChatVLLM.stream); the
    final state is the same as invoke's."""
    chunks, state = streamed_run(weather_agent(weather_url))
    assert chunks > 2
    check_run(state["messages"], state["structured_response"])


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream"])
async def test_untrained_agent_answers_or_raises(weather_url: str, mode: str) -> None:
    """Whatever the model writes under ToolStrategy's forced choice, create_agent
    returns a structured answer (given through the schema's tool, after the
    weather tool or not: the untrained model decides), or raises
    VLLMToolChoiceError saying why: never `structured_response=None` silently."""
    model = ChatVLLM(
        base_url=weather_url, model=BASE_MODEL, temperature=0, max_tokens=64
    )
    agent = create_agent(model, tools=[get_weather], response_format=Weather)
    error: VLLMToolChoiceError | None = None
    try:
        if mode == "invoke":
            state = agent.invoke(QUESTION)
        elif mode == "ainvoke":
            state = await agent.ainvoke(QUESTION)
        else:
            state = streamed_run(agent)[1]
    except VLLMToolChoiceError as e:
        error = e
    if error is not None:
        assert "finish_reason" in str(error)  # says what the answer was, and why
        return
    assert isinstance(state["structured_response"], Weather)
    calls = [
        c["name"]
        for m in state["messages"]
        if isinstance(m, AIMessage)
        for c in m.tool_calls
    ]
    assert calls[-1] == "Weather", calls
