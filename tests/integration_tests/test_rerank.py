"""VLLMRerank live against the rig's embedding server and its chat server."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document

from langchain_vllm import VLLMRerank
from langchain_vllm.errors import VLLMServerFeatureError

DOCS = [
    Document(page_content="Bananas are a yellow fruit rich in potassium."),
    Document(page_content="Paris is the capital and largest city of France."),
    Document(page_content="The Great Wall of China is visible from far away."),
    Document(page_content="Dogs are loyal pets that like to play fetch."),
]
QUERY = "What is the capital of France?"


def test_relevant_document_ranks_first(embeddings_url: str) -> None:
    reranker = VLLMRerank(openai_api_base=embeddings_url, top_n=2)
    best = reranker.compress_documents(DOCS, QUERY)
    assert len(best) == 2
    assert best[0].page_content == DOCS[1].page_content
    assert best[0].metadata["relevance_score"] > best[1].metadata["relevance_score"]


def test_rerank_scores_all(embeddings_url: str) -> None:
    reranker = VLLMRerank(openai_api_base=embeddings_url)
    ranked = reranker.rerank(QUERY, [d.page_content for d in DOCS], top_n=None)
    assert sorted(r["index"] for r in ranked) == [0, 1, 2, 3]
    assert ranked[0]["index"] == 1
    scores = [r["relevance_score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)


async def test_async_rerank(embeddings_url: str) -> None:
    reranker = VLLMRerank(openai_api_base=embeddings_url, top_n=1)
    best = await reranker.acompress_documents(DOCS, QUERY)
    assert [d.page_content for d in best] == [DOCS[1].page_content]
    ranked = await reranker.arerank("yellow fruit", [d.page_content for d in DOCS])
    assert ranked[0]["index"] == 0


def test_successive_event_loops(embeddings_url: str) -> None:
    reranker = VLLMRerank(openai_api_base=embeddings_url, top_n=1)
    for _ in range(3):
        best = asyncio.run(reranker.acompress_documents(DOCS, QUERY))
        assert best[0].page_content == DOCS[1].page_content


def test_chat_model_cannot_rerank(chat_url: str) -> None:
    reranker = VLLMRerank(openai_api_base=chat_url)
    with pytest.raises(VLLMServerFeatureError, match="cannot rerank"):
        reranker.compress_documents(DOCS, QUERY)
