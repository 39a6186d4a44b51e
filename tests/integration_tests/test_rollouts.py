"""Rollouts for training, live: exact tokens, recorded trajectories, token turns.

Answers are fixed by the server (a single-string regex) where two calls must
agree, and the agent's model is the rig's ``weather`` adapter (tests/agent_world.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_vllm import ChatVLLM, VLLMOpenAI
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
