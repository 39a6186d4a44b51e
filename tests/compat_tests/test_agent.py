"""`create_agent(tools=[...], response_format=...)` on this vLLM release.

Releases before 0.31 cannot compose an answer schema with "auto" tool calls (0.30
drops the schema when the tool parser constrains calls). ChatVLLM steers
create_agent to ToolStrategy, which every release enforces: the agent calls the tool
and the answer is the schema's. Asked for both at once (ProviderStrategy), a release
before 0.31 gets `VLLMServerVersionError` before the request. The rig's ``weather``
adapter plays the model deterministically (tests/agent_world.py).
"""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain.agents.structured_output import ProviderStrategy

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMServerVersionError
from tests.agent_world import (
    QUESTION,
    Weather,
    check_run,
    get_weather,
    streamed_run,
    weather_agent,
)
from tests.compat_tests.conftest import RELEASE, RIG

COMPOSES = RELEASE >= (0, 31)


@pytest.fixture(scope="module")
def agent_url() -> str:
    return RIG.url("agent")


def test_agent_calls_the_tool_and_answers_in_the_schema(agent_url: str) -> None:
    result = weather_agent(agent_url).invoke(QUESTION)
    check_run(result["messages"], result["structured_response"])


async def test_agent_async(agent_url: str) -> None:
    result = await weather_agent(agent_url).ainvoke(QUESTION)
    check_run(result["messages"], result["structured_response"])


def test_agent_streamed(agent_url: str) -> None:
    chunks, state = streamed_run(weather_agent(agent_url))
    assert chunks > 2
    check_run(state["messages"], state["structured_response"])


def test_schema_beside_auto_tools_refused_before_0_31(agent_url: str) -> None:
    """ProviderStrategy asked for explicitly: before 0.31 refused by name (its
    /version), never an unenforced answer; 0.31+ gets the request built."""
    model = ChatVLLM(base_url=agent_url, model="weather", temperature=0, max_tokens=60)
    bound = model.bind_tools([get_weather], response_format=Weather, strict=True)
    if COMPOSES:
        kwargs = bound.kwargs  # type: ignore[attr-defined]
        payload = model._get_request_payload(QUESTION["messages"], **kwargs)
        assert payload["response_format"]["type"] == "json_schema"
        return
    agent = create_agent(
        model, tools=[get_weather], response_format=ProviderStrategy(Weather)
    )
    with pytest.raises(VLLMServerVersionError, match=r"0\.31"):
        agent.invoke(QUESTION)
