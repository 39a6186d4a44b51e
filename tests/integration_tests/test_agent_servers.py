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

from rig import rig_server
from tests.agent_world import QUESTION, check_run, streamed_run, weather_agent


@pytest.fixture(scope="module", params=["composing", "not-composing"])
def weather_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The rig's agent server, and the same with strict tool calling off (it cannot
    compose a schema with tools). One at a time, stopped after this module."""
    composing = request.param == "composing"
    env = {} if composing else {"VLLM_ENFORCE_STRICT_TOOL_CALLING": "0"}
    with rig_server("agent", env=env) as server:
        yield server.base_url


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
