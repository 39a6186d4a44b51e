"""ChatVLLM through vllm-router: the same client features as against one server."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import BaseModel, Field

from langchain_vllm import ChatVLLM
from langchain_vllm.server import VLLMServer
from tests.scale_tests.conftest import request_counts
from tests.scale_tests.router import VLLMRouter, http_get


class GetWeather(BaseModel):
    """Get the current weather in a given city."""

    city: str = Field(description="The city, e.g. Paris")


class Verdict(BaseModel):
    """A yes/no verdict."""

    answer: str = Field(description="yes or no")


@pytest.fixture
def chat(router: VLLMRouter) -> ChatVLLM:
    # No model: discovered through the router's /v1/models.
    return ChatVLLM(base_url=router.base_url, temperature=0, max_tokens=12)


def test_router_forwards_server_routes(
    router: VLLMRouter, replicas: list[VLLMServer]
) -> None:
    # What ChatVLLM asks besides chat completions: /v1/models (discovery),
    # /version (structured-outputs wire format), /tokenize (token counts).
    status, body = http_get(f"{router.base_url}/models")
    assert status == 200
    assert replicas[0].served_model_name in body
    assert http_get(f"{router.root_url}/version")[0] == 200


def test_discovery_and_invoke(chat: ChatVLLM, replicas: list[VLLMServer]) -> None:
    msg = chat.invoke("Say hello.")
    assert msg.content
    assert msg.response_metadata["model_name"] == replicas[0].served_model_name
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["output_tokens"] > 0


def test_round_robin_uses_both_replicas(
    chat: ChatVLLM, replicas: list[VLLMServer]
) -> None:
    before = request_counts(replicas)
    for i in range(4):
        chat.invoke(f"Say the number {i}.")
    after = request_counts(replicas)
    served = [a - b for a, b in zip(after, before, strict=True)]
    assert served == [2, 2]


def test_token_count_matches_usage(chat: ChatVLLM) -> None:
    messages = [SystemMessage("Be brief."), HumanMessage("Name a colour.")]
    counted = chat.get_num_tokens_from_messages(messages)
    msg = chat.invoke(messages)
    assert msg.usage_metadata is not None
    assert counted == msg.usage_metadata["input_tokens"]


def test_stream(chat: ChatVLLM) -> None:
    chunks = list(chat.stream("Count from one to five."))
    assert len(chunks) > 1
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert isinstance(full, AIMessageChunk)
    assert full.content
    assert full.usage_metadata is not None
    assert full.response_metadata.get("finish_reason") in ("stop", "length")


async def test_async_invoke_and_stream(chat: ChatVLLM) -> None:
    msgs = await chat.abatch(["Say hi.", "Say bye.", "Say yes."])
    assert all(m.content for m in msgs)
    text = ""
    async for chunk in chat.astream("Name three fruits."):
        text += chunk.text
    assert text


def test_structured_outputs_choice(chat: ChatVLLM) -> None:
    bound = chat.bind(structured_outputs={"choice": ["yes", "no"]})
    assert bound.invoke("Is the sky blue?").content in ("yes", "no")
    per_call = chat.invoke(
        "Is fire cold?", structured_outputs={"choice": ["hot", "cold"]}
    )
    assert per_call.content in ("hot", "cold")


def test_with_structured_output(router: VLLMRouter) -> None:
    chat = ChatVLLM(
        base_url=router.base_url,
        temperature=0,
        max_tokens=120,
        max_json_string_length=8,  # the free-text `answer` closes, whatever it says
    )
    result = chat.with_structured_output(Verdict).invoke(
        "Is water wet? Answer yes or no."
    )
    assert isinstance(result, Verdict)
    assert isinstance(result.answer, str)


TOOL_HISTORY = [
    HumanMessage("What is the weather in Paris?"),
    AIMessage(
        "",
        tool_calls=[{"name": "GetWeather", "args": {"city": "Paris"}, "id": "call_1"}],
    ),
    ToolMessage("Sunny, 21 degrees.", tool_call_id="call_1"),
]


def test_tool_results_pass_the_router(
    router: VLLMRouter, replicas: list[VLLMServer]
) -> None:
    """A tool call and its result in the history reach the replica intact: the
    replica counts the same prompt through the router as directly."""

    def answer(base_url: str) -> AIMessage:
        chat = ChatVLLM(base_url=base_url, temperature=0, max_tokens=16)
        # No tools bound: the router would drop their `strict` (next test).
        return chat.invoke(TOOL_HISTORY)

    routed, direct = answer(router.base_url), answer(replicas[0].base_url)
    assert routed.content
    assert routed.usage_metadata is not None
    assert direct.usage_metadata is not None
    assert (
        routed.usage_metadata["input_tokens"] == direct.usage_metadata["input_tokens"]
    )


def test_router_drops_strict_from_tools(
    router: VLLMRouter, replicas: list[VLLMServer]
) -> None:
    """vllm-router 0.1.17 re-serializes the request without
    `tools[].function.strict`, so vLLM does not constrain tool arguments: a
    named tool call is then only as good as the model (SmolLM2-135M answers
    `<tool_call>` text the parser cannot read). Use `with_structured_output`
    (`response_format` passes the router) for schema-bound answers.

    Shown from the replica's own prompt token count: the tool list is rendered
    into the prompt, and through the router it is one without `strict`.
    """
    question = "What is the weather in Paris?"
    direct = ChatVLLM(base_url=replicas[1].base_url, max_tokens=1)
    routed = ChatVLLM(base_url=router.base_url, max_tokens=1)
    tools = direct.bind_tools([GetWeather], tool_choice="GetWeather").kwargs["tools"]  # type: ignore[attr-defined]
    assert tools[0]["function"]["strict"] is True

    def prompt_tokens(chat: ChatVLLM) -> int:
        # "auto": one token cannot hold the forced call (that raises); the prompt,
        # tools rendered, is the same
        msg = chat.bind_tools([GetWeather], tool_choice="auto").invoke(question)
        assert msg.usage_metadata is not None
        return msg.usage_metadata["input_tokens"]

    def tokenized(tool_list: list[dict[str, Any]]) -> int:
        body = {
            "model": replicas[1].served_model_name,
            "messages": [{"role": "user", "content": question}],
            "tools": tool_list,
        }
        resp = httpx2.post(f"{replicas[1].root_url}/tokenize", json=body, timeout=30)
        resp.raise_for_status()
        return int(resp.json()["count"])

    without_strict = [
        {**t, "function": {k: v for k, v in t["function"].items() if k != "strict"}}
        for t in tools
    ]
    assert prompt_tokens(direct) == tokenized(tools)
    assert prompt_tokens(routed) == tokenized(without_strict)
    assert tokenized(without_strict) < tokenized(tools)
