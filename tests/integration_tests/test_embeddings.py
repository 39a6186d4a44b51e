"""VLLMEmbeddings live against the rig's embedding server (all-MiniLM-L6-v2)."""

from __future__ import annotations

import asyncio
import math

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from langchain_vllm import VLLMEmbeddings
from langchain_vllm.errors import VLLMBadRequestError, VLLMContextOverflowError
from tests.integration_tests.conftest import RIG

DIMS = 384


class TestVLLMEmbeddingsStandard(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[VLLMEmbeddings]:
        return VLLMEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        # No model: the served one is discovered. The server starts on first use.
        return {"base_url": RIG.url("embeddings")}


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture
def emb(embeddings_url: str) -> VLLMEmbeddings:
    return VLLMEmbeddings(openai_api_base=embeddings_url)


def test_dimensions_and_meaning(emb: VLLMEmbeddings) -> None:
    query = emb.embed_query("How do I bake bread?")
    close, far = emb.embed_documents(
        ["A recipe for baking a loaf of bread.", "The stock market fell today."]
    )
    assert len(query) == len(close) == len(far) == DIMS
    assert cosine(query, close) > cosine(query, far) + 0.2


def test_chunking_gives_the_same_vectors(emb: VLLMEmbeddings) -> None:
    texts = [f"sentence number {i} about topic {i % 3}" for i in range(7)]
    whole = emb.embed_documents(texts)
    chunked = emb.embed_documents(texts, chunk_size=3)
    assert len(chunked) == len(texts)
    for a, b in zip(whole, chunked, strict=True):
        assert cosine(a, b) > 0.999


def test_long_text_needs_truncation(emb: VLLMEmbeddings) -> None:
    long_text = "token " * 1000  # the model's context is 256 tokens
    with pytest.raises(VLLMContextOverflowError, match="truncate_prompt_tokens"):
        emb.embed_query(long_text)
    assert len(emb.embed_query(long_text, truncate_prompt_tokens=-1)) == DIMS
    truncating = VLLMEmbeddings(
        openai_api_base=emb.openai_api_base, truncate_prompt_tokens=32
    )
    assert len(truncating.embed_query(long_text)) == DIMS


def test_dimensions_refused_by_a_non_matryoshka_model(embeddings_url: str) -> None:
    emb = VLLMEmbeddings(openai_api_base=embeddings_url, dimensions=64)
    with pytest.raises(VLLMBadRequestError, match="dimensions"):
        emb.embed_query("hello")


def test_progress_bar(emb: VLLMEmbeddings, capsys: pytest.CaptureFixture) -> None:
    emb.show_progress_bar = True
    assert len(emb.embed_documents(["a", "b", "c"], chunk_size=2)) == 3
    err = capsys.readouterr().err
    assert "3/3" in err


def test_successive_event_loops(emb: VLLMEmbeddings) -> None:
    sync = emb.embed_query("same text")
    for _ in range(3):
        vector = asyncio.run(emb.aembed_query("same text"))
        assert cosine(vector, sync) > 0.999


async def test_async_concurrent(emb: VLLMEmbeddings) -> None:
    results = await asyncio.gather(
        *(emb.aembed_documents([f"text {i}", f"other {i}"]) for i in range(4))
    )
    assert all(len(r) == 2 and len(r[0]) == DIMS for r in results)
