"""Errors are blamed on the party that made them.

Only a server answer the package cannot read becomes `VLLMResponseError`; a caller's
misspelt keyword and an exception of the caller's own callback surface as
themselves (test_malformed_responses.py covers the server's side).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI, VLLMRerank
from langchain_vllm.errors import VLLMResponseError
from tests.unit_tests.fake_vllm import FakeVLLM

MODEL = "smollm2"


async def _collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def _call(model: Any, method: str, args: tuple) -> Any:
    out = getattr(model, method)(*args, top_kk=3)
    return list(out) if method == "stream" else out


async def _acall(model: Any, method: str, args: tuple) -> Any:
    out = getattr(model, f"a{method}")(*args, top_kk=3)
    return await (_collect(out) if method == "stream" else out)


CLASSES: dict[str, type] = {
    "chat": ChatVLLM,
    "completions": VLLMOpenAI,
    "embeddings": VLLMEmbeddings,
    "rerank": VLLMRerank,
}
CALLS = [  # class, method, arguments before the misspelt keyword, constructor extras
    ("chat", "invoke", ("hi",), {}),
    ("chat", "stream", ("hi",), {}),
    ("completions", "invoke", ("hi",), {}),
    ("completions", "stream", ("hi",), {}),
    ("completions", "invoke", ("hi",), {"streaming": True}),
    ("embeddings", "embed_query", ("hi",), {}),
    ("rerank", "rerank", ("q", ["a"]), {}),
]
IDS = [f"{c}-{m}{'-streaming' if extra else ''}" for c, m, _, extra in CALLS]


@pytest.mark.parametrize(("kind", "method", "args", "extra"), CALLS, ids=IDS)
def test_misspelt_keyword_is_the_callers(
    fake: FakeVLLM, kind: str, method: str, args: tuple, extra: dict
) -> None:
    model = CLASSES[kind](model=MODEL, **extra, **fake.kwargs())
    with pytest.raises(TypeError, match="top_kk") as info:
        _call(model, method, args)
    assert not isinstance(info.value, VLLMResponseError)
    assert not [p for p in fake.paths() if p.startswith("POST")], "a request was sent"


@pytest.mark.parametrize(("kind", "method", "args", "extra"), CALLS, ids=IDS)
async def test_misspelt_keyword_is_the_callers_async(
    fake: FakeVLLM, kind: str, method: str, args: tuple, extra: dict
) -> None:
    model = CLASSES[kind](model=MODEL, **extra, **fake.kwargs())
    with pytest.raises(TypeError, match="top_kk") as info:
        await _acall(model, method, args)
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
