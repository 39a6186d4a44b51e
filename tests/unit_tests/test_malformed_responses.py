"""Malformed or truncated server answers give a clear, typed error.

Never an `AttributeError`, `KeyError`, `IndexError`, `TypeError` or
`JSONDecodeError` from deep inside the parsing code: the caller gets
`VLLMResponseError` (the server's answer is not what the vLLM API returns) naming
the URL, `VLLMIncompleteStreamError` for streams that end early, or the server's
own error for an error event inside a stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI, VLLMRerank
from langchain_vllm.errors import VLLMIncompleteStreamError, VLLMResponseError
from tests.unit_tests.fake_vllm import (
    RawFakeVLLM,
    chat_completion,
    completion_chunks,
    sse,
    stream_chunks,
)

JSON = "application/json"
SSE = "text/event-stream"
CHAT = "/v1/chat/completions"
OK = chat_completion()
CHUNKS = stream_chunks(["Hel", "lo!"])
INTERNAL = (AttributeError, KeyError, IndexError, TypeError, json.JSONDecodeError)


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def with_choice(choice: Any) -> bytes:
    return body({**OK, "choices": [choice]})


@pytest.fixture
def raw() -> RawFakeVLLM:
    return RawFakeVLLM()


def chat(raw: RawFakeVLLM) -> ChatVLLM:
    return ChatVLLM(model="smollm2", **raw.kwargs())


def check(error: BaseException, route: str) -> None:
    assert not isinstance(error, INTERNAL), f"internal error leaked: {error!r}"
    assert route in str(error), f"{route} not named in: {error}"


# -- whole answers (invoke / ainvoke) --
WHOLE = {
    "html-page": (200, "text/html", b"<html>502 Bad Gateway</html>"),
    "truncated-json": (200, JSON, body(OK)[:60]),
    "empty-body": (200, JSON, b""),
    "json-list": (200, JSON, b"[1, 2]"),
    "json-string": (200, JSON, b'"hello"'),
    "no-choices": (200, JSON, body({k: v for k, v in OK.items() if k != "choices"})),
    "choices-null": (200, JSON, body({**OK, "choices": None})),
    "choices-empty": (200, JSON, body({**OK, "choices": []})),
    "choice-without-message": (200, JSON, with_choice({"index": 0})),
    "message-null": (200, JSON, with_choice({"index": 0, "message": None})),
    "choice-is-string": (200, JSON, with_choice("x")),
    "content-is-number": (
        200,
        JSON,
        with_choice(
            {"index": 0, "message": {"role": "assistant", "content": 5}},
        ),
    ),
    "usage-is-string": (200, JSON, body({**OK, "usage": "lots"})),
}


@pytest.mark.parametrize("case", list(WHOLE))
def test_malformed_answer(raw: RawFakeVLLM, case: str) -> None:
    raw.raw[CHAT] = WHOLE[case]
    with pytest.raises(VLLMResponseError) as info:
        chat(raw).invoke("hi")
    check(info.value, "/chat/completions")


@pytest.mark.parametrize("case", list(WHOLE))
async def test_malformed_answer_async(raw: RawFakeVLLM, case: str) -> None:
    raw.raw[CHAT] = WHOLE[case]
    with pytest.raises(VLLMResponseError) as info:
        await chat(raw).ainvoke("hi")
    check(info.value, "/chat/completions")


# -- streams (stream / astream) --
STREAMS = {
    "event-not-json": sse(CHUNKS[0], "{not json", *CHUNKS[1:]),
    "event-is-list": sse(CHUNKS[0], "[1, 2]", *CHUNKS[1:]),
    "choice-without-delta": sse(
        CHUNKS[0], {**CHUNKS[1], "choices": [{"index": 0}]}, *CHUNKS[2:]
    ),
    "choice-is-string": sse(CHUNKS[0], {**CHUNKS[1], "choices": ["x"]}, *CHUNKS[2:]),
}


def consume(model: ChatVLLM) -> None:
    for _ in model.stream("hi"):
        pass


async def aconsume(model: ChatVLLM) -> None:
    async for _ in model.astream("hi"):
        pass


@pytest.mark.parametrize("case", list(STREAMS))
def test_malformed_stream(raw: RawFakeVLLM, case: str) -> None:
    raw.raw[CHAT] = (200, SSE, STREAMS[case])
    with pytest.raises(VLLMResponseError) as info:
        consume(chat(raw))
    check(info.value, "/chat/completions")


@pytest.mark.parametrize("case", list(STREAMS))
async def test_malformed_stream_async(raw: RawFakeVLLM, case: str) -> None:
    raw.raw[CHAT] = (200, SSE, STREAMS[case])
    with pytest.raises(VLLMResponseError) as info:
        await aconsume(chat(raw))
    check(info.value, "/chat/completions")


TRUNCATED = {
    "no-finish-no-done": sse(*CHUNKS[:2], done=False),
    "no-finish-but-done": sse(*CHUNKS[:2]),
    "html-instead-of-events": b"<html>oops</html>",
    "empty": b"",
}


@pytest.mark.parametrize("case", list(TRUNCATED))
def test_truncated_stream(raw: RawFakeVLLM, case: str) -> None:
    raw.raw[CHAT] = (200, SSE, TRUNCATED[case])
    with pytest.raises(VLLMIncompleteStreamError) as info:
        consume(chat(raw))
    check(info.value, "/chat/completions")


@pytest.mark.parametrize("case", list(TRUNCATED))
async def test_truncated_stream_async(raw: RawFakeVLLM, case: str) -> None:
    raw.raw[CHAT] = (200, SSE, TRUNCATED[case])
    with pytest.raises(VLLMIncompleteStreamError):
        await aconsume(chat(raw))


def test_truncated_streamed_invoke_is_not_returned_as_complete(
    raw: RawFakeVLLM,
) -> None:
    raw.raw[CHAT] = (200, SSE, sse(*CHUNKS[:2], done=False))
    with pytest.raises(VLLMIncompleteStreamError):
        ChatVLLM(model="smollm2", streaming=True, **raw.kwargs()).invoke("hi")


def test_error_event_inside_stream(raw: RawFakeVLLM) -> None:
    """vLLM reports a failure after the 200 header as an `error` event."""
    event = {"error": {"message": "engine died", "type": "InternalServerError"}}
    raw.raw[CHAT] = (200, SSE, sse(CHUNKS[0], event, done=False))
    with pytest.raises(openai.APIError, match="engine died") as info:
        consume(chat(raw))
    assert not isinstance(info.value, INTERNAL)


async def test_error_event_inside_stream_async(raw: RawFakeVLLM) -> None:
    event = {"error": {"message": "engine died", "type": "InternalServerError"}}
    raw.raw[CHAT] = (200, SSE, sse(CHUNKS[0], event, done=False))
    with pytest.raises(openai.APIError, match="engine died"):
        await aconsume(chat(raw))


# -- the shared server routes: /version, /tokenize, /detokenize, /v1/models --
def _structured(model: ChatVLLM) -> Any:
    return model.invoke("hi", structured_outputs={"choice": ["a", "b"]})


SERVER_ROUTES: dict[str, tuple[str, bytes, Callable[[ChatVLLM], Any]]] = {
    "version-missing": ("/version", b"{}", _structured),
    "version-not-object": ("/version", b'"0.32"', _structured),
    "tokenize-no-tokens": ("/tokenize", b"{}", lambda m: m.get_num_tokens("hi")),
    "tokenize-no-count": (
        "/tokenize",
        b"{}",
        lambda m: m.get_num_tokens_from_messages([HumanMessage("hi")]),
    ),
    "detokenize-no-prompt": (
        "/detokenize",
        b"{}",
        lambda m: m.get_prompt_text("hi"),
    ),
}


@pytest.mark.parametrize("case", list(SERVER_ROUTES))
def test_malformed_server_route(raw: RawFakeVLLM, case: str) -> None:
    route, content, call = SERVER_ROUTES[case]
    raw.raw[route] = (200, JSON, content)
    with pytest.raises(VLLMResponseError) as info:
        call(chat(raw))
    check(info.value, route)


@pytest.mark.parametrize(
    "content", [b"<html>", b'{"data": null}', b"[]"], ids=["html", "null", "list"]
)
def test_malformed_model_list(raw: RawFakeVLLM, content: bytes) -> None:
    raw.raw["/v1/models"] = (200, "text/html", content)
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is checked below
        ChatVLLM(**raw.kwargs()).invoke("hi")
    check(info.value, "/models")
    assert "model list" in str(info.value)


# -- the other classes --
COMPLETIONS = "/v1/completions"


@pytest.mark.parametrize(
    "content",
    [
        (200, JSON, b'{"id": "x"}'),
        (200, "text/html", b"<html>"),
        (200, JSON, body({"id": "x", "choices": [{"index": 0}]})),
    ],
    ids=["no-choices", "html", "choice-without-text"],
)
def test_malformed_completion(raw: RawFakeVLLM, content: tuple) -> None:
    raw.raw[COMPLETIONS] = content
    with pytest.raises(VLLMResponseError) as info:
        VLLMOpenAI(model="smollm2", **raw.kwargs()).invoke("hi")
    check(info.value, "/completions")


def test_malformed_completion_stream(raw: RawFakeVLLM) -> None:
    first = completion_chunks(["Par"])[0]
    raw.raw[COMPLETIONS] = (200, SSE, sse(first, "{bad"))
    with pytest.raises(VLLMResponseError) as info:
        list(VLLMOpenAI(model="smollm2", **raw.kwargs()).stream("hi"))
    check(info.value, "/completions")


def test_truncated_completion_stream(raw: RawFakeVLLM) -> None:
    raw.raw[COMPLETIONS] = (
        200,
        SSE,
        sse(*completion_chunks(["Pa", "ris"], finish=False), done=False),
    )
    with pytest.raises(VLLMIncompleteStreamError):
        list(VLLMOpenAI(model="smollm2", **raw.kwargs()).stream("hi"))


@pytest.mark.parametrize(
    "content",
    [
        b'{"id": "x"}',
        b"<html>",
        b'{"data": [{"x": 1}]}',
        b'{"data": [{"index": 0, "embedding": "abc"}]}',
        b'{"data": [{"index": 0, "embedding": [0.5, "x"]}]}',
        b'{"data": [{"index": 0, "embedding": [0.5, true]}]}',
        # (a list of vectors only: vLLM 0.33+'s per-token answer, test_newer_vllm)
        b'{"data": [{"index": 0, "embedding": [[0.5], 1.0]}]}',
        b'{"data": [{"index": 0, "embedding": [0.5, 1' + b"0" * 400 + b"]}]}",
        b'{"data": ["not an item"]}',
    ],
    ids=[
        "no-data",
        "html",
        "item-without-embedding",
        "embedding-not-list",
        "string-in-vector",
        "boolean-in-vector",
        "nested-vector",
        "integer-beyond-float",
        "item-not-object",
    ],
)
def test_malformed_embeddings(raw: RawFakeVLLM, content: bytes) -> None:
    raw.raw["/v1/embeddings"] = (200, JSON, content)
    with pytest.raises(VLLMResponseError) as info:
        VLLMEmbeddings(model="smollm2", **raw.kwargs()).embed_query("hi")
    check(info.value, "/embeddings")


@pytest.mark.parametrize(
    "content",
    [b'{"id": "x"}', b"<html>", b'{"results": [{"x": 1}]}', b'{"results": "no"}'],
    ids=["no-results", "html", "result-without-index", "results-not-list"],
)
def test_malformed_rerank(raw: RawFakeVLLM, content: bytes) -> None:
    raw.raw["/v1/rerank"] = (200, JSON, content)
    reranker = VLLMRerank(model="smollm2", **raw.kwargs())
    with pytest.raises(VLLMResponseError) as info:
        reranker.compress_documents([Document("a"), Document("b")], "q")
    check(info.value, "/v1/rerank")
