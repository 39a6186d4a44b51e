"""The JSON pass-through endpoints every vLLM class sends requests with."""

from __future__ import annotations

import asyncio
import base64
import struct

import pytest

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI, VLLMRerank
from langchain_vllm._json_client import (
    CHAT_KEYWORDS,
    AsyncJSONEndpoint,
    JSONEndpoint,
    decode_base64_vector,
    embedding_floats,
    split_request,
)
from langchain_vllm.errors import VLLMResponseError
from tests.unit_tests.fake_vllm import FakeVLLM, stream_chunks


def test_split_request_moves_extras_into_body_and_options() -> None:
    body, options = split_request(
        {
            "model": "m",
            "messages": [],
            "extra_body": {"top_k": 2},
            "extra_headers": {"X-Session": "s1"},
            "extra_query": {"q": "1"},
            "timeout": 3.0,
        },
        CHAT_KEYWORDS,
    )
    assert body == {"model": "m", "messages": [], "top_k": 2}
    assert options == {
        "headers": {"X-Session": "s1"},
        "params": {"q": "1"},
        "timeout": 3.0,
    }


def test_unknown_keyword_is_refused_like_the_sdk() -> None:
    with pytest.raises(TypeError, match=r"'top_kk'.*extra_body"):
        split_request({"model": "m", "top_kk": 1}, CHAT_KEYWORDS)


def test_chat_answers_are_plain_json_sync_and_async(fake: FakeVLLM) -> None:
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    assert chat.invoke("hi").content
    fake.stream = stream_chunks(["a", "b"])
    assert "".join(str(c.content) for c in chat.stream("hi")) == "ab"

    async def run() -> str:
        answer = await chat.ainvoke("hi")
        return str(answer.content)

    assert asyncio.run(run())
    # Headers set per call still reach the server.
    chat.invoke("hi", extra_headers={"X-Session": "s1"})
    assert fake.requests[-1].headers["X-Session"] == "s1"


def test_every_class_sends_through_json_endpoints(fake: FakeVLLM) -> None:
    """One mechanism: sync and per-loop async JSON endpoints, no SDK models."""
    classes = (ChatVLLM, VLLMOpenAI, VLLMEmbeddings)
    for model in (cls(model="smollm2", **fake.kwargs()) for cls in classes):
        assert isinstance(model.client, JSONEndpoint)
        assert isinstance(model.async_client, AsyncJSONEndpoint)
    rerank = VLLMRerank(model="smollm2", **fake.kwargs())
    assert isinstance(rerank._aendpoint, AsyncJSONEndpoint)


def test_completions_answers_are_plain_json_sync_and_async(fake: FakeVLLM) -> None:
    llm = VLLMOpenAI(model="smollm2", **fake.kwargs())
    result = llm.generate(["The capital of France is"])
    assert result.generations[0][0].text == " Paris."
    assert result.llm_output is not None
    assert result.llm_output["token_usage"]["total_tokens"] == 8
    assert asyncio.run(llm.ainvoke("hi")) == " Paris."
    llm.invoke("hi", extra_headers={"X-Session": "s1"})
    assert fake.requests[-1].headers["X-Session"] == "s1"


def test_include_response_headers_still_works(fake: FakeVLLM) -> None:
    chat = ChatVLLM(model="smollm2", include_response_headers=True, **fake.kwargs())
    answer = chat.invoke("hi")
    assert "headers" in answer.response_metadata


def test_never_routes_to_responses_api_by_itself(fake: FakeVLLM) -> None:
    # A model name the parent would send to /v1/responses.
    fake.models = ["gpt-5-codex"]
    ChatVLLM(model="gpt-5-codex", **fake.kwargs()).invoke("hi")
    assert fake.paths() == ["POST /v1/chat/completions"]


def test_reasoning_effort_maps_to_chat_completions(fake: FakeVLLM) -> None:
    chat = ChatVLLM(model="smollm2", reasoning={"effort": "low"}, **fake.kwargs())
    chat.invoke("hi")
    body = fake.last_body()
    assert body["reasoning_effort"] == "low"
    assert "reasoning" not in body
    chat.invoke("hi", reasoning={"effort": "high"})
    assert fake.last_body()["reasoning_effort"] == "high"
    assert fake.paths() == ["POST /v1/chat/completions"] * 2


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"include": ["reasoning.encrypted_content"]}, "`include`"),
        ({"truncation": "auto"}, "`truncation`"),
        ({"reasoning": {"effort": "low", "summary": "auto"}}, "summary"),
    ],
)
def test_responses_only_parameters_are_refused(
    fake: FakeVLLM, extra: dict, named: str
) -> None:
    with pytest.raises(ValueError, match=named) as info:
        ChatVLLM(model="smollm2", **extra, **fake.kwargs())
    assert "use_responses_api=True" in str(info.value)
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    with pytest.raises(ValueError, match=named):
        chat.invoke("hi", **extra)
    assert fake.paths() == []


def test_responses_api_only_when_asked(fake: FakeVLLM) -> None:
    chat = ChatVLLM(model="smollm2", use_responses_api=True, **fake.kwargs())
    assert chat._use_responses_api({}) is True


def test_embeddings_ask_for_base64_and_decode_it(fake: FakeVLLM) -> None:
    emb = VLLMEmbeddings(model="m", **fake.kwargs())
    vector = emb.embed_query("hello")
    assert fake.last_body("/embeddings")["encoding_format"] == "base64"
    assert all(isinstance(x, float) for x in vector)


def test_decode_base64_vector_little_endian_float32() -> None:
    packed = base64.b64encode(struct.pack("<3f", 1.5, -2.0, 0.25)).decode()
    assert decode_base64_vector(packed) == [1.5, -2.0, 0.25]


def test_json_number_vectors_become_float_lists() -> None:
    floats = [0.5, -1.25]
    assert embedding_floats(floats) is floats  # already floats: no copy
    converted = embedding_floats([1, 0.5, -2])
    assert converted == [1.0, 0.5, -2.0]
    assert all(type(x) is float for x in converted or [])
    assert embedding_floats([]) == []


@pytest.mark.parametrize(
    "bad", [None, {"x": 1}, [0.5, "1"], [1, True], [False], [[0.5]], [10**400]]
)
def test_non_vectors_are_none(bad: object) -> None:
    assert embedding_floats(bad) is None


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"abc").decode()])
def test_bad_base64_vector_is_a_response_error(fake: FakeVLLM, bad: str) -> None:
    fake.embeddings_response = {  # type: ignore[attr-defined]
        "object": "list",
        "data": [{"index": 0, "object": "embedding", "embedding": bad}],
    }
    emb = VLLMEmbeddings(model="m", **fake.kwargs())
    with pytest.raises(VLLMResponseError, match="base64"):
        emb.embed_query("hello")
