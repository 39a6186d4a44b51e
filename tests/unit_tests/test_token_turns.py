"""Token turns (`token_turns.py`) against recorded answers of a live vLLM 0.32.

scripts/record_token_answers.py ran two turns of ChatVLLMTokenTurns on the rig's
agent server (`--enable-scale-out`): a forced tool call, then the answer after the
tool's result. The double answers each route with the recorded answers in order
and checks that the client sends what it sent live: the second turn's prompt is
the first turn's prompt + completion ids + the new message's ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from langchain_core.messages import AIMessage, messages_from_dict

from langchain_vllm import ChatVLLMTokenTurns
from langchain_vllm.errors import VLLMServerFeatureError
from tests.unit_tests.fake_vllm import FakeVLLM

RECORDED = json.loads(
    (Path(__file__).parent / "data" / "token_answers.json").read_text()
)["token_turns"]
TOOL = RECORDED["exchanges"][0]["body"]["tools"][0]
"""The tool the recorded turns were asked with (as the live request sent it)."""


class ScaleOutVLLM(FakeVLLM):
    """Answers the scale-out routes with the recorded exchanges, in order."""

    def __init__(self, refused: bool = False) -> None:
        super().__init__()
        self.models = ["weather"]
        self.exchanges = list(RECORDED["exchanges"])
        self.refused = refused
        self.sent: list[dict[str, Any]] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if not path.endswith(("/render", "/generate", "/derender")):
            return super().handler(request)
        self.requests.append(request)
        if self.refused:
            refused = RECORDED["refused"]
            return httpx2.Response(refused["status"], json=refused["answer"])
        exchange = self.exchanges.pop(0)
        assert exchange["path"] == path
        self.sent.append(json.loads(request.content))
        return httpx2.Response(200, json=exchange["answer"])


def model(fake: FakeVLLM) -> Any:
    chat = ChatVLLMTokenTurns(
        model="weather", temperature=0, max_tokens=60, **fake.kwargs()
    )
    return chat.bind_tools([TOOL], tool_choice="any")


def first_messages() -> list[Any]:
    return messages_from_dict(RECORDED["messages"])[:1]


def test_two_turns_send_what_was_sent_live() -> None:
    fake = ScaleOutVLLM()
    bound = model(fake)
    first = bound.invoke(first_messages())
    assert first.tool_calls[0]["name"] == "get_weather"
    assert first.tool_calls[0]["args"] == {"city": "Paris"}
    assert first.response_metadata["token_turn"] == "rendered"
    recorded = messages_from_dict(RECORDED["messages"])
    second = bound.invoke([*first_messages(), first, recorded[2]])
    assert second.response_metadata["token_turn"] == "continued"
    live = [e["body"] for e in RECORDED["exchanges"]]
    assert [s["token_ids"] for s in fake.sent if "token_ids" in s] == [
        b["token_ids"] for b in live if "token_ids" in b
    ]
    sampled = (
        first.response_metadata["prompt_token_ids"]
        + first.response_metadata["token_ids"]
    )
    prompt = second.response_metadata["prompt_token_ids"]
    assert prompt[: len(sampled)] == sampled
    assert len(prompt) > len(sampled)
    for answer in (first, second):
        meta = answer.response_metadata
        assert len(meta["logprobs"]["content"]) == len(meta["token_ids"])
    assert not fake.exchanges  # every recorded request was made


async def test_async_turns_match_the_sync_ones() -> None:
    fake = ScaleOutVLLM()
    bound = model(fake)
    first = await bound.ainvoke(first_messages())
    recorded = messages_from_dict(RECORDED["messages"])
    second = await bound.ainvoke([*first_messages(), first, recorded[2]])
    assert second.response_metadata["token_turn"] == "continued"
    assert not fake.exchanges


def test_a_conversation_it_did_not_answer_is_rendered() -> None:
    """An assistant message from elsewhere (no remembered turn): the server's
    render is the prompt, as on the chat endpoint."""
    fake = ScaleOutVLLM()
    bound = model(fake)
    bound.invoke(first_messages())
    recorded = messages_from_dict(RECORDED["messages"])
    assert isinstance(recorded[1], AIMessage)
    stranger = AIMessage("", tool_calls=recorded[1].tool_calls, id="from-elsewhere")
    fake.exchanges = [e for e in fake.exchanges if e is not fake.exchanges[1]]
    second = bound.invoke([*first_messages(), stranger, recorded[2]])
    assert second.response_metadata["token_turn"] == "rendered"


def test_without_scale_out_the_error_names_the_flag() -> None:
    fake = ScaleOutVLLM(refused=True)
    with pytest.raises(VLLMServerFeatureError, match="--enable-scale-out"):
        model(fake).invoke("Hi")


def test_streaming_gives_the_whole_answer() -> None:
    fake = ScaleOutVLLM()
    chunks = list(model(fake).stream(first_messages()))
    assert len(chunks) == 1
    assert chunks[0].tool_calls[0]["name"] == "get_weather"
