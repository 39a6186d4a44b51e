"""VLLMOpenAI (completions) live against the rig's chat server."""

from __future__ import annotations

import asyncio

import pytest

from langchain_vllm import VLLMOpenAI
from langchain_vllm.errors import VLLMModelNotFoundError

PROMPT = "The capital of France is"


@pytest.fixture
def llm(chat_url: str) -> VLLMOpenAI:
    # No model: the served one is discovered.
    return VLLMOpenAI(openai_api_base=chat_url, temperature=0, max_tokens=12)


def test_invoke(llm: VLLMOpenAI) -> None:
    text = llm.invoke(PROMPT)
    assert "Paris" in text
    result = llm.generate([PROMPT])
    assert result.llm_output is not None
    assert result.llm_output["model_name"] == llm._link.resolve_model(None)
    usage = result.llm_output["token_usage"]
    assert usage["completion_tokens"] == 12
    assert usage["prompt_tokens"] == llm.get_num_tokens(PROMPT)


def test_stream(llm: VLLMOpenAI) -> None:
    chunks = list(llm.stream(PROMPT))
    assert len(chunks) > 1
    assert "".join(chunks) == llm.invoke(PROMPT)


def test_batch(llm: VLLMOpenAI) -> None:
    out = llm.batch([PROMPT, "1, 2, 3, 4,"])
    assert len(out) == 2
    assert "Paris" in out[0]
    assert "5" in out[1]


async def test_async(llm: VLLMOpenAI) -> None:
    assert "Paris" in await llm.ainvoke(PROMPT)
    assert "Paris" in "".join([c async for c in llm.astream(PROMPT)])
    assert len(await llm.abatch([PROMPT, PROMPT])) == 2


def test_successive_event_loops(llm: VLLMOpenAI) -> None:
    for _ in range(3):
        assert "Paris" in asyncio.run(llm.ainvoke(PROMPT))

    async def stream() -> str:
        return "".join([c async for c in llm.astream(PROMPT)])

    for _ in range(2):
        assert "Paris" in asyncio.run(stream())


def test_allowed_token_ids_restrict_output(llm: VLLMOpenAI) -> None:
    yes = llm.get_token_ids(" yes")
    assert len(yes) == 1
    text = llm.invoke("Answer:", allowed_token_ids=yes, max_tokens=4)
    assert text == " yes" * 4


def test_bad_words_change_output(llm: VLLMOpenAI) -> None:
    assert "Paris" in llm.invoke(PROMPT)
    constrained = VLLMOpenAI(
        openai_api_base=llm.openai_api_base,
        temperature=0,
        max_tokens=12,
        bad_words=["Paris"],
    )
    text = constrained.invoke(PROMPT)
    assert text.strip()
    assert "Paris" not in text


def test_min_tokens_outlasts_stop(llm: VLLMOpenAI) -> None:
    assert llm.invoke(PROMPT, stop=["."], max_tokens=40).strip() == "Paris"
    longer = llm.invoke(PROMPT, stop=["."], max_tokens=40, min_tokens=8)
    assert len(llm.get_token_ids(longer)) >= 8


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
    assert "Paris" in llm.invoke(PROMPT)


def test_unknown_model(chat_url: str) -> None:
    llm = VLLMOpenAI(openai_api_base=chat_url, model="no-such-model", max_tokens=4)
    with pytest.raises(VLLMModelNotFoundError, match="Served models"):
        llm.invoke(PROMPT)
