"""VLLMRerank against the in-memory vLLM double."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document

from langchain_vllm import VLLMRerank
from langchain_vllm.errors import (
    VLLMModelNotFoundError,
    VLLMResponseError,
    VLLMServerFeatureError,
)
from tests.unit_tests.fake_vllm import FakeVLLM

DOCS = [
    Document(page_content="bananas are yellow", metadata={"src": "a"}, id="d0"),
    Document(page_content="paris is the capital of france", metadata={"src": "b"}),
    Document(page_content="the capital of italy is rome", metadata={"src": "c"}),
    Document(page_content="dogs bark", metadata={"src": "d"}),
]
QUERY = "capital of france"


def make(fake: FakeVLLM, **kwargs: Any) -> VLLMRerank:
    return VLLMRerank(**{**fake.kwargs(), **kwargs})


def test_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-real")
    rerank = VLLMRerank()
    assert rerank.openai_api_base == "http://localhost:8000/v1"
    assert rerank.openai_api_key is not None
    assert rerank.openai_api_key.get_secret_value() == "EMPTY"
    assert rerank.top_n == 3
    monkeypatch.setenv("VLLM_API_BASE", "http://gpu:9000/v1")
    monkeypatch.setenv("VLLM_API_KEY", "vllm-secret")
    rerank = VLLMRerank()
    assert rerank._link.root_url == "http://gpu:9000"
    assert "vllm-secret" not in repr(rerank)
    assert rerank.openai_api_key is not None
    assert rerank.openai_api_key.get_secret_value() == "vllm-secret"


def test_compress_documents_top_n_most_relevant_first(fake: FakeVLLM) -> None:
    fake.models = ["reranker"]
    out = make(fake, top_n=2).compress_documents(DOCS, QUERY)
    assert [d.page_content for d in out] == [
        "paris is the capital of france",
        "the capital of italy is rome",
    ]
    assert out[0].metadata == {"src": "b", "relevance_score": 1.0}
    assert out[1].metadata["relevance_score"] == pytest.approx(2 / 3)
    assert "relevance_score" not in DOCS[1].metadata  # inputs untouched
    assert fake.paths() == ["GET /v1/models", "POST /v1/rerank"]
    body = fake.last_body("/v1/rerank")
    assert body == {
        "model": "reranker",
        "query": QUERY,
        "documents": [d.page_content for d in DOCS],
        "top_n": 2,
    }


def test_keeps_document_id(fake: FakeVLLM) -> None:
    out = make(fake, model="m", top_n=None).compress_documents(DOCS, "bananas")
    assert out[0].id == "d0"
    assert len(out) == len(DOCS)
    assert "top_n" not in fake.last_body("/v1/rerank")


def test_rerank_indices_and_scores(fake: FakeVLLM) -> None:
    rerank = make(fake, model="m", truncate_prompt_tokens=64)
    ranked = rerank.rerank(QUERY, [d.page_content for d in DOCS], top_n=None)
    assert [r["index"] for r in ranked][:2] == [1, 2]
    assert ranked[0] == {"index": 1, "relevance_score": 1.0}
    scores = [r["relevance_score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    body = fake.last_body("/v1/rerank")
    assert body["truncate_prompt_tokens"] == 64
    assert "top_n" not in body


def test_top_n_clamped_and_per_call(fake: FakeVLLM) -> None:
    rerank = make(fake, model="m", top_n=10)
    assert len(rerank.rerank(QUERY, ["a", "b"])) == 2
    assert fake.last_body("/v1/rerank")["top_n"] == 2
    assert len(rerank.rerank(QUERY, ["a", "b", "c"], top_n=1)) == 1


def test_per_call_and_extra_body(fake: FakeVLLM) -> None:
    rerank = make(fake, model="m", extra_body={"priority": 1, "x": 1})
    rerank.rerank(QUERY, ["a"], priority=5)
    body = fake.last_body("/v1/rerank")
    assert body["priority"] == 5
    assert body["x"] == 1


def test_unsorted_server_answer_is_sorted(fake: FakeVLLM) -> None:
    fake.rerank_response = {  # type: ignore[attr-defined]
        "results": [
            {"index": 0, "relevance_score": 0.1},
            {"index": 1, "relevance_score": 0.9},
        ]
    }
    assert [r["index"] for r in make(fake, model="m").rerank("q", ["a", "b"])] == [
        1,
        0,
    ]


@pytest.mark.parametrize(
    ("query", "texts", "top_n", "error"),
    [
        (3, ["a"], -1, TypeError),
        ("q", "a single string", -1, TypeError),
        ("q", ["a", 1], -1, TypeError),
        ("q", ["a"], 0, ValueError),
        ("q", ["a"], "2", ValueError),
    ],
)
def test_bad_input_before_network(
    fake: FakeVLLM, query: Any, texts: Any, top_n: Any, error: type
) -> None:
    with pytest.raises(error):
        make(fake, model="m").rerank(query, texts, top_n=top_n)
    assert fake.requests == []


def test_bad_top_n_field() -> None:
    with pytest.raises(ValueError, match="top_n"):
        VLLMRerank(top_n=0)


def test_empty_documents_no_request(fake: FakeVLLM) -> None:
    assert make(fake).compress_documents([], QUERY) == []
    assert fake.requests == []


def test_model_that_cannot_rerank(fake: FakeVLLM) -> None:
    fake.status = 404
    fake.error_body = {"detail": "Not Found"}
    with pytest.raises(VLLMServerFeatureError, match="--runner pooling") as info:
        make(fake).rerank(QUERY, ["a"])
    assert "smollm2" in str(info.value)
    assert "http://vllm.test:8000" in str(info.value)


def test_unknown_model(fake: FakeVLLM) -> None:
    fake.status = 404
    fake.error_body = {
        "error": {"message": "The model `nope` does not exist.", "code": 404}
    }
    with pytest.raises(VLLMModelNotFoundError, match="Served models: smollm2"):
        make(fake, model="nope").rerank(QUERY, ["a"])


def test_malformed_answer(fake: FakeVLLM) -> None:
    fake.rerank_response = {"results": [{"index": 7, "relevance_score": 1}]}  # type: ignore[attr-defined]
    with pytest.raises(VLLMResponseError, match="rerank results"):
        make(fake, model="m").rerank(QUERY, ["a"])
    fake.rerank_response = {"data": []}  # type: ignore[attr-defined]
    with pytest.raises(VLLMResponseError):
        make(fake, model="m").rerank(QUERY, ["a"])


async def test_async_variants(fake: FakeVLLM) -> None:
    fake.models = ["reranker"]
    rerank = make(fake, top_n=1)
    out = await rerank.acompress_documents(DOCS, QUERY)
    assert [d.page_content for d in out] == ["paris is the capital of france"]
    ranked = await rerank.arerank(QUERY, ["dogs", "capital of france"], top_n=None)
    assert ranked[0]["index"] == 1
    assert fake.paths() == ["GET /v1/models", "POST /v1/rerank", "POST /v1/rerank"]


async def test_async_cannot_rerank(fake: FakeVLLM) -> None:
    fake.status = 404
    fake.error_body = {"detail": "Not Found"}
    with pytest.raises(VLLMServerFeatureError, match="cannot rerank"):
        await make(fake, model="m").arerank(QUERY, ["a"])


def test_per_call_vllm_parameters_are_checked(fake: FakeVLLM) -> None:
    reranker = VLLMRerank(model="m", **fake.kwargs())
    with pytest.raises(ValueError, match="truncate_prompt_tokens"):
        reranker.rerank("q", ["a"], truncate_prompt_tokens=-5)
    reranker.rerank("q", ["a"], truncate_prompt_tokens=8)
    assert fake.last_body("/v1/rerank")["truncate_prompt_tokens"] == 8
