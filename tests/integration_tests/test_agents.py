"""Agents against a template with Qwen3-family rules (the rig's reasoning server:
`rig.STRICT_TEMPLATE`, hermes tool parser, holo2 reasoning parser).

Every outcome here is the package's: the merged system message is read back from
the prompt the server rendered, the 400 is the template's, reasoning is on or off
by the template variables `thinking` sets (the reasoning parser files a
thinking-off answer under content, `thinking_token_budget` ends a thinking-on
one's reasoning), answers are fixed by a regex, and the missing tool call is
removed by a proxy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware.types import InputAgentState
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMBadRequestError, VLLMToolChoiceError
from tests.integration_tests.conftest import FIXED, FIXED_TEXT
from tests.integration_tests.gateway import V1OnlyGateway

STRICT_RULE = "System message must be at the beginning."
HISTORY: list[AnyMessage] = [
    SystemMessage("Answer in English."),
    HumanMessage("Say hi"),
]
"""A history that starts with the user's own system message."""


def magic_function(input: int) -> int:
    """Apply a magic function to an input."""
    return input + 2


@pytest.fixture(scope="module")
def fixed(reasoning_url: str) -> ChatVLLM:
    """Thinking off, the answer fixed by a regex, the rendered prompt returned."""
    return ChatVLLM(
        base_url=reasoning_url,
        temperature=0,
        thinking=False,
        return_prompt_text=True,
        structured_outputs=FIXED["structured_outputs"],
        max_tokens=FIXED["max_tokens"],
    )


# -- system messages -----------------------------------------------------------------
def test_agent_with_a_history_that_has_its_own_system_message(
    fixed: ChatVLLM,
) -> None:
    agent = create_agent(fixed, tools=[], system_prompt="Be brief.")
    result = agent.invoke(InputAgentState(messages=[*HISTORY]))
    answer = result["messages"][-1]
    assert isinstance(answer, AIMessage)
    assert answer.content == FIXED_TEXT
    prompt = answer.response_metadata["prompt_text"]
    # both texts, in one leading system message, in their order
    assert prompt.startswith(
        "<|im_start|>system\nBe brief.\n\nAnswer in English.<|im_end|>\n"
    )
    assert prompt.count("<|im_start|>system") == 1


def test_later_system_message_moves_to_the_front(fixed: ChatVLLM) -> None:
    history = [HumanMessage("Say hi"), AIMessage("Hi"), SystemMessage("Be brief.")]
    answer = fixed.invoke([*history, HumanMessage("Again")])
    assert answer.content == FIXED_TEXT
    assert answer.response_metadata["prompt_text"].startswith(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nSay hi"
    )


def test_unmerged_system_messages_get_the_templates_400(fixed: ChatVLLM) -> None:
    """The template is strict: without the merge the same requests fail."""
    unmerged = fixed.model_copy(update={"merge_system_messages": False})
    agent = create_agent(unmerged, tools=[], system_prompt="Be brief.")
    with pytest.raises(VLLMBadRequestError, match=re.escape(STRICT_RULE)):
        agent.invoke(InputAgentState(messages=[*HISTORY]))
    with pytest.raises(VLLMBadRequestError, match=re.escape(STRICT_RULE)):
        unmerged.invoke([HumanMessage("Say hi"), SystemMessage("Be brief.")])


# -- the thinking switch ---------------------------------------------------------------
def test_thinking_switch_turns_reasoning_on_and_off(thinker: ChatVLLM) -> None:
    question = [HumanMessage("What is 2+2?")]
    for on in (True, False):
        chat = thinker.model_copy(update={"thinking": on})
        assert chat.get_prompt_text(question).endswith("<think>\n") is on
        msg = chat.invoke(question)
        assert bool(msg.additional_kwargs.get("reasoning_content")) is on
        assert msg.content
        per_call = thinker.invoke(question, thinking=on)
        assert bool(per_call.additional_kwargs.get("reasoning_content")) is on


def test_thinking_switch_in_a_stream(thinker: ChatVLLM) -> None:
    off = list(thinker.stream("What is 2+2?", thinking=False))
    assert not any(c.additional_kwargs.get("reasoning_content") for c in off)
    assert "".join(c.text for c in off)
    on = list(thinker.stream("What is 2+2?", thinking=True))
    assert any(c.additional_kwargs.get("reasoning_content") for c in on)


# -- forced tool choice ----------------------------------------------------------------
class ToolCallDroppingGateway(V1OnlyGateway):
    """A `/v1` proxy whose chat answers lose their tool calls: the call's arguments
    come back as text, the finish reason stays "tool_calls" (what gpt-oss, gemma4
    and qwen3_xml parsers have been seen to do)."""

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        if request.command != "POST" or request.path != "/v1/chat/completions":
            super().forward(request)
            return
        length = int(request.headers.get("content-length") or 0)
        body = request.rfile.read(length)
        answer = self._client.post(
            f"{self.upstream_root}{request.path}",
            content=body,
            headers={"content-type": "application/json"},
        )
        kind = answer.headers.get("content-type", "application/json")
        if "event-stream" in kind:
            events = [
                _drop_calls(line) for line in answer.text.split("\n\n") if line.strip()
            ]
            out = "".join(f"{event}\n\n" for event in events).encode()
        else:
            data = answer.json()
            for choice in data.get("choices", []):
                _calls_to_text(choice.get("message") or {})
            out = json.dumps(data).encode()
        request.send_response(answer.status_code)
        request.send_header("content-type", kind)
        request.send_header("content-length", str(len(out)))
        request.end_headers()
        request.wfile.write(out)


def _calls_to_text(message: dict[str, Any]) -> None:
    calls = message.pop("tool_calls", None) or []
    text = "".join(c.get("function", {}).get("arguments") or "" for c in calls)
    message["content"] = (message.get("content") or "") + text


def _drop_calls(event: str) -> str:
    if not event.startswith("data: {"):
        return event
    chunk = json.loads(event.removeprefix("data: "))
    for choice in chunk.get("choices", []):
        _calls_to_text(choice.get("delta") or {})
    return f"data: {json.dumps(chunk)}"


@pytest.fixture(scope="module")
def dropping(reasoning_url: str) -> Iterator[ToolCallDroppingGateway]:
    with ToolCallDroppingGateway(reasoning_url) as gateway:
        yield gateway


def _caller(base_url: str) -> Any:
    chat = ChatVLLM(base_url=base_url, temperature=0, thinking=False, max_tokens=60)
    return chat.bind_tools([magic_function], tool_choice="required")


def test_forced_choice_without_the_call_raises(
    reasoning_url: str, dropping: ToolCallDroppingGateway
) -> None:
    """The server honours the choice (a strict, enforced call); through the proxy
    the same answer has none, and ChatVLLM says so instead of returning it."""
    direct = _caller(reasoning_url).invoke("What is magic_function(3)?")
    assert direct.tool_calls[0]["name"] == "magic_function"
    behind = _caller(dropping.base_url)
    with pytest.raises(VLLMToolChoiceError, match="--tool-call-parser"):
        behind.invoke("What is magic_function(3)?")
    with pytest.raises(VLLMToolChoiceError, match="no tool call"):
        for _ in behind.stream("What is magic_function(3)?"):
            pass


async def test_forced_choice_without_the_call_raises_async(
    dropping: ToolCallDroppingGateway,
) -> None:
    behind = _caller(dropping.base_url)
    with pytest.raises(VLLMToolChoiceError):
        await behind.ainvoke("What is magic_function(3)?")
    with pytest.raises(VLLMToolChoiceError):
        async for _ in behind.astream("What is magic_function(3)?"):
            pass
