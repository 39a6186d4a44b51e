"""Exact tokens (`_tokens.py`): ids and logprobs of whole and streamed answers.

The answers are a live vLLM 0.32's (scripts/record_token_answers.py): a chat
answer held to one choice, a forced tool call (the hermes parser holds its
markup back; the ids and logprobs still come, in chunks with empty deltas) and a
text completion, each whole and streamed with `return_token_ids` and logprobs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_vllm import ChatVLLM, VLLMOpenAI
from langchain_vllm._tokens import TokenCount, completion_chunk, logprob_count
from langchain_vllm.errors import VLLMResponseError
from tests.unit_tests.fake_vllm import FakeVLLM

RECORDED = json.loads(
    (Path(__file__).parent / "data" / "token_answers.json").read_text()
)["cases"]
CHAT_CASES = ["chat_choice", "chat_tool_call"]


def chat(fake: FakeVLLM, name: str) -> ChatVLLM:
    case = RECORDED[name]
    fake.chat_response = case["answer"]
    fake.stream = case["stream"]
    return ChatVLLM(model="smollm2", **fake.kwargs())


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    out = chunks[0]
    for chunk in chunks[1:]:
        out = out + chunk
    return out


@pytest.mark.parametrize("name", CHAT_CASES)
def test_chat_stream_carries_the_ids_of_invoke(fake: FakeVLLM, name: str) -> None:
    model = chat(fake, name)
    whole = model.invoke("x", logprobs=True, return_token_ids=True)
    streamed = merged(list(model.stream("x", logprobs=True, return_token_ids=True)))
    choice = RECORDED[name]["answer"]["choices"][0]
    for message in (whole, streamed):
        meta = message.response_metadata
        assert meta["token_ids"] == choice["token_ids"]
        assert meta["prompt_token_ids"] == RECORDED[name]["answer"]["prompt_token_ids"]
        assert len(meta["logprobs"]["content"]) == len(choice["token_ids"])
    calls = [[(c["name"], c["args"]) for c in m.tool_calls] for m in (whole, streamed)]
    assert calls[0] == calls[1]


@pytest.mark.parametrize("name", CHAT_CASES)
async def test_chat_astream_carries_the_ids(fake: FakeVLLM, name: str) -> None:
    model = chat(fake, name)
    chunks = [c async for c in model.astream("x", return_token_ids=True)]
    choice = RECORDED[name]["answer"]["choices"][0]
    assert merged(chunks).response_metadata["token_ids"] == choice["token_ids"]


def test_chat_generate_from_stream_keeps_the_ids(fake: FakeVLLM) -> None:
    model = chat(fake, "chat_choice").model_copy(update={"streaming": True})
    message = model.invoke("x", return_token_ids=True)
    expected = RECORDED["chat_choice"]["answer"]["choices"][0]["token_ids"]
    assert message.response_metadata["token_ids"] == expected


def drop_one_logprob(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = copy.deepcopy(events)
    for event in events:
        for choice in event.get("choices") or []:
            logprobs = choice.get("logprobs") or {}
            entries = logprobs.get("content") or logprobs.get("token_logprobs")
            if entries:
                entries.pop()
                return events
    raise AssertionError("no logprobs recorded")


def test_chat_logprob_count_is_checked(fake: FakeVLLM) -> None:
    model = chat(fake, "chat_choice")
    fake.chat_response = drop_one_logprob([RECORDED["chat_choice"]["answer"]])[0]
    fake.stream = drop_one_logprob(RECORDED["chat_choice"]["stream"])
    with pytest.raises(VLLMResponseError, match="2 logprobs for 3 completion token"):
        model.invoke("x", logprobs=True, return_token_ids=True)
    with pytest.raises(VLLMResponseError, match="logprobs for 3 completion token"):
        list(model.stream("x", logprobs=True, return_token_ids=True))


def completions(fake: FakeVLLM) -> VLLMOpenAI:
    fake.completion_response = RECORDED["completion"]["answer"]  # type: ignore[attr-defined]
    fake.completion_stream = RECORDED["completion"]["stream"]  # type: ignore[attr-defined]
    return VLLMOpenAI(model="smollm2", **fake.kwargs())


def test_completion_stream_carries_the_ids_of_invoke(fake: FakeVLLM) -> None:
    llm = completions(fake)
    choice = RECORDED["completion"]["answer"]["choices"][0]
    whole = llm.generate(["x"], logprobs=0, return_token_ids=True)
    info = whole.generations[0][0].generation_info or {}
    assert info["token_ids"] == choice["token_ids"]
    assert info["prompt_token_ids"] == choice["prompt_token_ids"]
    streamed = llm.model_copy(update={"streaming": True}).generate(
        ["x"], logprobs=0, return_token_ids=True
    )
    info = streamed.generations[0][0].generation_info or {}
    assert info["token_ids"] == choice["token_ids"]
    assert info["prompt_token_ids"] == choice["prompt_token_ids"]
    assert len(info["logprobs"]["token_logprobs"]) == len(choice["token_ids"])
    assert "".join(llm.stream("x")) == choice["text"]


async def test_completion_astream_is_counted(fake: FakeVLLM) -> None:
    llm = completions(fake)
    fake.completion_stream = drop_one_logprob(RECORDED["completion"]["stream"])  # type: ignore[attr-defined]
    with pytest.raises(VLLMResponseError, match="7 logprobs for 8 completion token"):
        async for _ in llm.astream("x", logprobs=0, return_token_ids=True):
            pass
    fake.completion_response = drop_one_logprob([RECORDED["completion"]["answer"]])[0]  # type: ignore[attr-defined]
    with pytest.raises(VLLMResponseError, match="7 logprobs for 8"):
        await llm.ainvoke("x", logprobs=0, return_token_ids=True)


def test_counts_and_chunks() -> None:
    assert logprob_count({"content": [{"logprob": -1.0}]}) == 1
    assert logprob_count({"token_logprobs": [-1.0, -2.0], "tokens": []}) == 2
    assert logprob_count(None) is None
    count = TokenCount()
    count.add([1, 2], None)
    assert count.problem() is None  # no logprobs asked: nothing to compare
    count.add([], {"content": [{"logprob": 0.0}]})
    assert count.problem() == (
        "1 logprobs for 2 completion token ids: vLLM sends one logprob per "
        "generated token"
    )
    assert completion_chunk({"choices": []}).text == ""
