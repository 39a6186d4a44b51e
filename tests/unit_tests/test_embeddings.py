"""VLLMEmbeddings against the in-memory vLLM double."""

from __future__ import annotations

import asyncio
import sys
import types
from typing import Any

import httpx2
import pytest

from langchain_vllm import VLLMEmbeddings
from langchain_vllm.errors import (
    VLLMConnectionError,
    VLLMContextOverflowError,
    VLLMModelNotFoundError,
    VLLMResponseError,
)
from tests.unit_tests.fake_vllm import FakeVLLM, fake_embedding


def make(fake: FakeVLLM, **kwargs: Any) -> VLLMEmbeddings:
    return VLLMEmbeddings(**{**fake.kwargs(), **kwargs})


def test_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-real")
    monkeypatch.setenv("OPENAI_API_BASE", "https://api.openai.com/v1")
    emb = VLLMEmbeddings()
    assert emb.openai_api_base == "http://localhost:8000/v1"
    assert emb.openai_api_key is not None
    assert emb.openai_api_key.get_secret_value() == "EMPTY"
    assert emb.model is None
    monkeypatch.setenv("VLLM_API_BASE", "http://gpu:9000/v1")
    monkeypatch.setenv("VLLM_API_KEY", "vllm-secret")
    emb = VLLMEmbeddings()
    assert emb.openai_api_base == "http://gpu:9000/v1"
    assert emb.openai_api_key is not None
    assert emb.openai_api_key.get_secret_value() == "vllm-secret"
    assert "vllm-secret" not in repr(emb)
    assert "vllm-secret" not in str(emb.model_dump())


def test_key_sent_as_bearer(fake: FakeVLLM) -> None:
    make(fake, api_key="k-123", model="m").embed_query("hi")
    assert fake.requests[-1].headers["authorization"] == "Bearer k-123"


def test_discovers_model_once(fake: FakeVLLM) -> None:
    fake.models = ["minilm"]
    emb = make(fake)
    emb.embed_query("a")
    emb.embed_documents(["b", "c"])
    assert fake.paths() == [
        "GET /v1/models",
        "POST /v1/embeddings",
        "POST /v1/embeddings",
    ]
    assert {b["model"] for b in fake.bodies("/embeddings")} == {"minilm"}


def test_texts_sent_as_strings_without_tiktoken(
    fake: FakeVLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tiktoken

    def no_tiktoken(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tiktoken must not be used")

    monkeypatch.setattr(tiktoken, "get_encoding", no_tiktoken)
    monkeypatch.setattr(tiktoken, "encoding_for_model", no_tiktoken)
    long_text = "word " * 10_000
    vectors = make(fake, model="m").embed_documents(["hello", long_text, ""])
    body = fake.last_body("/embeddings")
    assert body["input"] == ["hello", long_text, ""]
    assert body["encoding_format"] == "base64"
    assert vectors == [fake_embedding(t) for t in ["hello", long_text, ""]]
    floats = make(fake, model="m").embed_documents(["hello"], encoding_format="float")
    assert fake.last_body("/embeddings")["encoding_format"] == "float"
    assert floats == [fake_embedding("hello")]


def test_check_ctx_length_or_tiktoken_refused() -> None:
    with pytest.raises(ValueError, match="truncate_prompt_tokens"):
        VLLMEmbeddings(check_embedding_ctx_length=True)
    with pytest.raises(ValueError, match="never tokenizes"):
        VLLMEmbeddings(tiktoken_enabled=True)


def test_chunk_size_batches_in_order(fake: FakeVLLM) -> None:
    texts = [f"text {i}" for i in range(7)]
    emb = make(fake, model="m", chunk_size=3)
    vectors = emb.embed_documents(texts)
    assert [b["input"] for b in fake.bodies("/embeddings")] == [
        texts[0:3],
        texts[3:6],
        texts[6:7],
    ]
    assert vectors == [fake_embedding(t) for t in texts]
    emb.embed_documents(texts, chunk_size=5)
    assert [len(b["input"]) for b in fake.bodies("/embeddings")[3:]] == [5, 2]


def test_out_of_order_response_is_sorted_by_index(fake: FakeVLLM) -> None:
    def shuffled(body: dict) -> dict:
        data = [
            {"index": i, "object": "embedding", "embedding": [float(i)]}
            for i in range(len(body["input"]))
        ]
        return {"object": "list", "data": data[::-1], "model": "m"}

    fake.embeddings_response = shuffled  # type: ignore[attr-defined]
    assert make(fake, model="m").embed_documents(["a", "b", "c"]) == [
        [0.0],
        [1.0],
        [2.0],
    ]


def test_bad_chunk_size() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        VLLMEmbeddings(chunk_size=0)


def test_bad_call_chunk_size_before_network(fake: FakeVLLM) -> None:
    with pytest.raises(ValueError, match="chunk_size must be a positive"):
        make(fake, model="m").embed_documents(["a"], chunk_size=-1)
    assert fake.requests == []


def test_vllm_params_instance_and_per_call(fake: FakeVLLM) -> None:
    emb = make(
        fake,
        model="m",
        truncate_prompt_tokens=-1,
        priority=2,
        dimensions=3,
        extra_body={"normalize": False},
    )
    assert len(emb.embed_query("hi")) == 3
    body = fake.last_body("/embeddings")
    assert body["truncate_prompt_tokens"] == -1
    assert body["priority"] == 2
    assert body["dimensions"] == 3
    assert body["normalize"] is False
    assert "add_special_tokens" not in body
    emb.embed_documents(
        ["hi"],
        truncate_prompt_tokens=16,
        add_special_tokens=False,
        extra_body={"embed_dtype": "float32"},
    )
    body = fake.last_body("/embeddings")
    assert body["truncate_prompt_tokens"] == 16
    assert body["add_special_tokens"] is False
    assert body["normalize"] is False
    assert body["embed_dtype"] == "float32"


def test_invalid_vllm_param(fake: FakeVLLM) -> None:
    with pytest.raises(ValueError, match="truncate_prompt_tokens"):
        VLLMEmbeddings(truncate_prompt_tokens=-5)
    with pytest.raises(ValueError, match="`truncate_prompt_tokens`=-7"):
        make(fake, model="m").embed_query("x", truncate_prompt_tokens=-7)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("texts", "error"),
    [("one string", TypeError), (["ok", 3], TypeError), ([None], TypeError)],
)
def test_bad_texts_before_network(fake: FakeVLLM, texts: Any, error: type) -> None:
    with pytest.raises(error):
        make(fake, model="m").embed_documents(texts)
    assert fake.requests == []


def test_empty_list_no_request(fake: FakeVLLM) -> None:
    assert make(fake).embed_documents([]) == []
    assert fake.requests == []


def test_progress_on_stderr_without_tqdm(
    fake: FakeVLLM, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    emb = make(fake, model="m", chunk_size=2, show_progress_bar=True)
    emb.embed_documents(["a", "b", "c"])
    err = capsys.readouterr().err
    assert "Embedding: 2/3 texts" in err
    assert "Embedding: 3/3 texts" in err


def test_progress_uses_tqdm_when_installed(
    fake: FakeVLLM, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    events: list[Any] = []

    class FakeTqdm:
        def __init__(self, total: int, **kwargs: Any) -> None:
            events.append(("total", total))

        def update(self, n: int) -> None:
            events.append(("update", n))

        def close(self) -> None:
            events.append("close")

    module = types.ModuleType("tqdm.auto")
    module.tqdm = FakeTqdm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm.auto", module)
    make(fake, model="m", chunk_size=2, show_progress_bar=True).embed_documents(
        ["a", "b", "c"]
    )
    assert events == [("total", 3), ("update", 2), ("update", 1), "close"]
    assert capsys.readouterr().err == ""


def test_no_progress_by_default(fake: FakeVLLM, capsys: pytest.CaptureFixture) -> None:
    make(fake, model="m").embed_documents(["a", "b"])
    assert capsys.readouterr().err == ""


async def test_async_embed(fake: FakeVLLM) -> None:
    fake.models = ["minilm"]
    emb = make(fake, chunk_size=2, truncate_prompt_tokens=8)
    vectors = await emb.aembed_documents(["a", "b", "c"])
    assert vectors == [fake_embedding(t) for t in "abc"]
    assert await emb.aembed_query("z") == fake_embedding("z")
    bodies = fake.bodies("/embeddings")
    assert [b["input"] for b in bodies] == [["a", "b"], ["c"], ["z"]]
    assert all(b["model"] == "minilm" for b in bodies)
    assert all(b["truncate_prompt_tokens"] == 8 for b in bodies)


def test_async_client_per_event_loop(fake: FakeVLLM) -> None:
    """Without a custom async http client, each event loop gets its own client."""
    emb = VLLMEmbeddings(openai_api_base="http://vllm.test:8000/v1", model="m")
    used: list[Any] = []
    transport = httpx2.MockTransport(fake.handler)

    real = emb._link.async_client

    def spy() -> Any:
        client = real()
        used.append(client)
        return client.copy(http_client=httpx2.AsyncClient(transport=transport))

    emb._link.async_client = spy  # type: ignore[method-assign]
    for _ in range(2):
        assert asyncio.run(emb.aembed_query("hi")) == fake_embedding("hi")
    assert len(used) == 2
    assert used[0] is not used[1]


def test_context_overflow_points_at_truncation(fake: FakeVLLM) -> None:
    fake.status = 400
    fake.error_body = {
        "error": {
            "message": "This model's maximum context length is 256 tokens. However, "
            "you requested 300 tokens (300 in the messages, 0 in the completion).",
            "type": "BadRequestError",
            "code": 400,
        }
    }
    with pytest.raises(
        VLLMContextOverflowError, match="truncate_prompt_tokens=-1"
    ) as e:
        make(fake, model="m").embed_query("long")
    said = fake.error_body["error"]["message"]
    assert e.value.server_message == said
    assert str(e.value).count("maximum context length") == 1  # said once, unchanged
    assert str(e.value).endswith(f"Server said: {said}")


async def test_async_errors_translated(fake: FakeVLLM) -> None:
    fake.status = 404
    fake.error_body = {
        "error": {"message": "The model `nope` does not exist.", "code": 404}
    }
    with pytest.raises(VLLMModelNotFoundError, match="Served models: smollm2"):
        await make(fake, model="nope").aembed_query("x")


def test_connection_error_names_url() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    emb = VLLMEmbeddings(
        openai_api_base="http://vllm.test:8000/v1",
        model="m",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(refuse)),
    )
    with pytest.raises(VLLMConnectionError, match=r"http://vllm.test:8000/v1"):
        emb.embed_query("x")


def test_malformed_response(fake: FakeVLLM) -> None:
    fake.embeddings_response = {"object": "list", "data": [], "model": "m"}  # type: ignore[attr-defined]
    with pytest.raises(VLLMResponseError, match="0 embeddings for 2 texts"):
        make(fake, model="m").embed_documents(["a", "b"])
