"""The weather agent of the live tests: one tool, one answer schema, one check.

The rig's ``weather`` adapter (scripts/train_weather_adapter.py) was trained on
these names and this forecast; tests/integration_tests/test_agent_servers.py runs
it on vLLM 0.32 servers, tests/compat_tests/test_agent.py on other releases.
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from pydantic import BaseModel

from langchain_vllm import ChatVLLM

FORECASTS = {"Paris": "Sunny, 21 C"}
QUESTION: Any = {"messages": [("user", "What is the weather in Paris?")]}
"""The agent's input (`Any`: langgraph's input type is a TypedDict)."""


def get_weather(city: str) -> str:
    """Get the weather forecast for a city."""
    return FORECASTS.get(city, "Unknown")


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    forecast: str


def weather_agent(base_url: str) -> Any:
    """create_agent with the tool and the schema, as a user writes it."""
    model = ChatVLLM(base_url=base_url, model="weather", temperature=0, max_tokens=60)
    return create_agent(model, tools=[get_weather], response_format=Weather)


def check_run(messages: list[Any], structured: Any) -> None:
    """The tool was called for Paris, its result went back, and the final answer is
    the schema's, given through the schema's tool (enforced by the forced choice)."""
    calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    assert [c["name"] for c in calls] == ["get_weather", "Weather"], calls
    assert calls[0]["args"] == {"city": "Paris"}
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert results[0].content == FORECASTS["Paris"]
    assert isinstance(structured, Weather)
    assert structured == Weather.model_validate(calls[1]["args"])


def streamed_run(agent: Any) -> tuple[int, dict[str, Any]]:
    """Run with stream_mode messages + values: (model chunks seen, final state)."""
    chunks = 0
    state: dict[str, Any] = {}
    for mode, item in agent.stream(QUESTION, stream_mode=["messages", "values"]):
        if mode == "messages":
            chunks += 1
        else:
            state = item
    return chunks, state
