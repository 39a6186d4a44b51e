"""Errors are blamed on the party that made them.

Only a server answer the package cannot read becomes `VLLMResponseError`; a caller's
misspelt keyword and an exception of the caller's own callback surface as
themselves (test_malformed_responses.py covers the server's side).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI, VLLMRerank
from langchain_vllm.errors import VLLMResponseError
from tests.unit_tests.fake_vllm import FakeVLLM

MODEL = "smollm2"


async def _collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


CALLS: dict[str, Callable[[FakeVLLM], Any]] = {
    "chat-invoke": lambda f: ChatVLLM(model=MODEL, **f.kwargs()).invoke("hi", top_kk=3),
    "chat-stream": lambda f: list(
        ChatVLLM(model=MODEL, **f.kwargs()).stream("hi", top_kk=3)
    ),
    "completions-invoke": lambda f: VLLMOpenAI(model=MODEL, **f.kwargs()).invoke(
        "hi", top_kk=3
    ),
    "completions-stream": lambda f: list(
        VLLMOpenAI(model=MODEL, **f.kwargs()).stream("hi", top_kk=3)
    ),
    "completions-streaming-invoke": lambda f: VLLMOpenAI(
        model=MODEL, streaming=True, **f.kwargs()
    ).invoke("hi", top_kk=3),
    "embed-query": lambda f: VLLMEmbeddings(model=MODEL, **f.kwargs()).embed_query(
        "hi", top_kk=3
    ),
    "rerank": lambda f: VLLMRerank(model=MODEL, **f.kwargs()).rerank(
        "q", ["a"], top_kk=3
    ),
}

ASYNC_CALLS: dict[str, Callable[[FakeVLLM], Awaitable[Any]]] = {
    "chat-ainvoke": lambda f: ChatVLLM(model=MODEL, **f.kwargs()).ainvoke(
        "hi", top_kk=3
    ),
    "chat-astream": lambda f: _collect(
        ChatVLLM(model=MODEL, **f.kwargs()).astream("hi", top_kk=3)
    ),
    "completions-ainvoke": lambda f: VLLMOpenAI(model=MODEL, **f.kwargs()).ainvoke(
        "hi", top_kk=3
    ),
    "completions-astream": lambda f: _collect(
        VLLMOpenAI(model=MODEL, **f.kwargs()).astream("hi", top_kk=3)
    ),
    "aembed-query": lambda f: VLLMEmbeddings(model=MODEL, **f.kwargs()).aembed_query(
        "hi", top_kk=3
    ),
    "arerank": lambda f: VLLMRerank(model=MODEL, **f.kwargs()).arerank(
        "q", ["a"], top_kk=3
    ),
}


@pytest.mark.parametrize("case", list(CALLS))
def test_misspelt_keyword_is_the_callers(fake: FakeVLLM, case: str) -> None:
    with pytest.raises(TypeError, match="top_kk") as info:
        CALLS[case](fake)
    assert not isinstance(info.value, VLLMResponseError)
    assert not fake.bodies("/completions"), "a misspelt call reached the server"


@pytest.mark.parametrize("case", list(ASYNC_CALLS))
async def test_misspelt_keyword_is_the_callers_async(fake: FakeVLLM, case: str) -> None:
    with pytest.raises(TypeError, match="top_kk") as info:
        await ASYNC_CALLS[case](fake)
    assert not isinstance(info.value, VLLMResponseError)


class _Broken(BaseCallbackHandler):
    """A caller's handler that fails on the second token."""

    raise_error = True

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.tokens = 0

    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.tokens += 1
        if self.tokens == 2:
            raise self.error


class _AsyncBroken(AsyncCallbackHandler):
    raise_error = True

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.tokens = 0

    async def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.tokens += 1
        if self.tokens == 2:
            raise self.error


ERRORS = [KeyError("mine"), TypeError("mine"), IndexError("mine")]
MODELS: dict[str, Callable[[FakeVLLM], Any]] = {
    "chat": lambda f: ChatVLLM(model=MODEL, **f.kwargs()),
    "chat-think-tags": lambda f: ChatVLLM(
        model=MODEL, parse_think_tags=True, **f.kwargs()
    ),
    "completions": lambda f: VLLMOpenAI(model=MODEL, **f.kwargs()),
}


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("model", list(MODELS))
def test_callback_error_in_stream_is_the_callers(
    fake: FakeVLLM, model: str, error: Exception
) -> None:
    handler = _Broken(error)
    llm = MODELS[model](fake)
    with pytest.raises(type(error)) as info:
        list(llm.stream("hi", config={"callbacks": [handler]}))
    assert info.value is error


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("model", list(MODELS))
async def test_callback_error_in_astream_is_the_callers(
    fake: FakeVLLM, model: str, error: Exception
) -> None:
    handler = _AsyncBroken(error)
    llm = MODELS[model](fake)
    with pytest.raises(type(error)) as info:
        await _collect(llm.astream("hi", config={"callbacks": [handler]}))
    assert info.value is error


def test_callback_error_in_streaming_invoke_is_the_callers(fake: FakeVLLM) -> None:
    error = KeyError("mine")
    llm = VLLMOpenAI(model=MODEL, streaming=True, **fake.kwargs())
    with pytest.raises(KeyError) as info:
        llm.invoke("hi", config={"callbacks": [_Broken(error)]})
    assert info.value is error


def test_token_callbacks_get_each_chunk_once(fake: FakeVLLM) -> None:
    """The stream loop, not the parent, calls the token callbacks: once a chunk."""
    tokens: list[str] = []

    class Record(BaseCallbackHandler):
        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            assert "logprobs" in kwargs  # as the parent passes it
            tokens.append(token)

    llm = VLLMOpenAI(model=MODEL, **fake.kwargs())
    chunks = list(llm.stream("hi", config={"callbacks": [Record()]}))
    assert tokens == chunks
    assert "".join(tokens) == " Paris."
