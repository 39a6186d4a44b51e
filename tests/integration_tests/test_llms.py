"""VLLMOpenAI (completions) live against the rig's chat server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from langchain_vllm import VLLMOpenAI
from langchain_vllm.errors import VLLMModelNotFoundError
from tests.integration_tests.conftest import FIXED_COMPLETION as PARIS
from tests.integration_tests.conftest import FIXED_COMPLETION_ARGS as FIXED

PROMPT = "The capital of France is"


@pytest.fixture
def llm(chat_url: str) -> VLLMOpenAI:
    # No model: the served one is discovered.
    return VLLMOpenAI(openai_api_base=chat_url, temperature=0, max_tokens=12)


def test_invoke(llm: VLLMOpenAI) -> None:
    assert llm.invoke(PROMPT, **FIXED) == PARIS
    result = llm.generate([PROMPT], min_tokens=12)
    assert result.llm_output is not None
    assert result.llm_output["model_name"] == llm._link.resolve_model(None)
    usage = result.llm_output["token_usage"]
    assert usage["completion_tokens"] == 12
    assert usage["prompt_tokens"] == llm.get_num_tokens(PROMPT)


def test_stream(llm: VLLMOpenAI) -> None:
    chunks = list(llm.stream(PROMPT, **FIXED))
    assert len(chunks) > 1
    assert "".join(chunks) == PARIS == llm.invoke(PROMPT, **FIXED)


def test_batch(llm: VLLMOpenAI) -> None:
    """Answers come back in the prompts' order (echo=True: each starts with its
    own prompt)."""
    prompts = [PROMPT, "1, 2, 3, 4,"]
    out = llm.batch(prompts, echo=True)  # type: ignore[arg-type]
    assert len(out) == 2
    for prompt, text in zip(prompts, out, strict=True):
        assert text.startswith(prompt)


async def test_async(llm: VLLMOpenAI) -> None:
    assert await llm.ainvoke(PROMPT, **FIXED) == PARIS
    assert "".join([c async for c in llm.astream(PROMPT, **FIXED)]) == PARIS
    assert await llm.abatch([PROMPT, PROMPT], **FIXED) == [PARIS, PARIS]


def test_successive_event_loops(llm: VLLMOpenAI) -> None:
    for _ in range(3):
        assert asyncio.run(llm.ainvoke(PROMPT, **FIXED)) == PARIS

    async def stream() -> str:
        return "".join([c async for c in llm.astream(PROMPT, **FIXED)])

    for _ in range(2):
        assert asyncio.run(stream()) == PARIS


def test_allowed_token_ids_restrict_output(llm: VLLMOpenAI) -> None:
    yes = llm.get_token_ids(" yes")
    assert len(yes) == 1
    text = llm.invoke("Answer:", allowed_token_ids=yes, max_tokens=4)
    assert text == " yes" * 4


def test_bad_words_change_output(llm: VLLMOpenAI) -> None:
    """Two tokens allowed, one of them a bad word: only the other can come out."""
    yes, no = llm.get_token_ids(" yes"), llm.get_token_ids(" no")
    assert len(yes) == len(no) == 1
    constrained = VLLMOpenAI(
        openai_api_base=llm.openai_api_base,
        temperature=0,
        max_tokens=4,
        bad_words=["yes"],
    )
    text = constrained.invoke("Answer:", allowed_token_ids=yes + no)
    assert text == " no" * 4


def test_min_tokens_outlasts_stop(llm: VLLMOpenAI) -> None:
    """`.` is the only token allowed besides ` yes`: a stop string at the first
    `.` ends the answer there, unless min_tokens asks for more."""
    allowed = llm.get_token_ids(" yes") + llm.get_token_ids(".")
    assert len(allowed) == 2
    ask: dict[str, Any] = {
        "stop": ["."],
        "max_tokens": 12,
        "allowed_token_ids": allowed,
    }
    short = llm.invoke("Answer:", **ask)
    assert "." not in short
    longer = llm.generate(["Answer:"], min_tokens=12, **ask).llm_output
    assert longer is not None
    assert longer["token_usage"]["completion_tokens"] == 12


def test_echo(llm: VLLMOpenAI) -> None:
    assert llm.invoke(PROMPT, echo=True).startswith(PROMPT)


def test_community_style_constructor(chat_url: str) -> None:
    probe = VLLMOpenAI(openai_api_base=chat_url)
    served = probe._link.resolve_model(None)
    llm = VLLMOpenAI(
        openai_api_key="EMPTY",
        openai_api_base=chat_url,
        model_name=served,
        max_tokens=8,
        temperature=0,
        top_p=0.95,
        streaming=True,
    )
    assert llm.invoke(PROMPT, **FIXED) == PARIS


def test_unknown_model(chat_url: str) -> None:
    llm = VLLMOpenAI(openai_api_base=chat_url, model="no-such-model", max_tokens=4)
    with pytest.raises(VLLMModelNotFoundError, match="Served models"):
        llm.invoke(PROMPT)
