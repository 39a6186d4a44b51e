"""Through a gateway that forwards only `/v1/*` (and drops `max_model_len`).

Token counts, ids and the prompt text fall back to one-token generations through
`/v1` (the same as the server's `/tokenize` and `/detokenize`), structured outputs
work without `/version`, rerank uses `/v1/rerank`, and the profile leaves out what
the gateway hides.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import pytest
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.messages.ai import add_ai_message_chunks

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMContextOverflowError
from langchain_vllm.llms import VLLMOpenAI
from langchain_vllm.rerank import VLLMRerank
from tests.integration_tests.conftest import FIXED, FIXED_TEXT
from tests.integration_tests.gateway import V1OnlyGateway

MESSAGES = [SystemMessage("Be brief."), HumanMessage("Say hi")]


@pytest.fixture(scope="module")
def chat_gateway(chat_url: str) -> Iterator[V1OnlyGateway]:
    with V1OnlyGateway(chat_url) as gateway:
        yield gateway


@pytest.fixture
def behind(chat_gateway: V1OnlyGateway) -> ChatVLLM:
    return ChatVLLM(base_url=chat_gateway.base_url, temperature=0, max_tokens=24)


def test_chat_through_the_gateway(behind: ChatVLLM) -> None:
    assert behind.invoke(MESSAGES, **FIXED).text == FIXED_TEXT
    chunks = list(behind.stream(MESSAGES, **FIXED))
    assert add_ai_message_chunks(*chunks).text == FIXED_TEXT
    # no /version: the current structured-outputs form is used, and enforced
    assert behind.invoke(
        MESSAGES, structured_outputs={"choice": ["yes", "no"]}
    ).text in ("yes", "no")


def test_token_counts_equal_the_servers(
    behind: ChatVLLM, chat_url: str, chat_gateway: V1OnlyGateway
) -> None:
    direct = ChatVLLM(base_url=chat_url)
    with pytest.warns(UserWarning, match="/tokenize is not reachable"):
        counted = behind.get_num_tokens_from_messages(MESSAGES)
    assert counted == direct.get_num_tokens_from_messages(MESSAGES)
    assert "/tokenize" in chat_gateway.refused
    usage = behind.invoke(MESSAGES, **FIXED).usage_metadata
    assert usage
    assert usage["input_tokens"] == counted


def test_text_token_ids_equal_the_servers(
    chat_gateway: V1OnlyGateway, chat_url: str
) -> None:
    behind = VLLMOpenAI(base_url=chat_gateway.base_url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids = behind.get_token_ids("The capital of France is")
    assert ids == VLLMOpenAI(base_url=chat_url).get_token_ids(
        "The capital of France is"
    )


def test_prompt_text_equals_the_servers(
    behind: ChatVLLM, chat_url: str, chat_gateway: V1OnlyGateway
) -> None:
    """No `/detokenize` either: the text comes from `return_prompt_text`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = behind.get_prompt_text(MESSAGES)
    assert text == ChatVLLM(base_url=chat_url).get_prompt_text(MESSAGES)
    assert text.endswith("<|im_start|>assistant\n")


def test_profile_leaves_out_the_hidden_context_window(behind: ChatVLLM) -> None:
    assert "max_input_tokens" not in dict(behind.profile or {})
    with pytest.raises(VLLMContextOverflowError, match=re.escape("2048")):
        behind.invoke("word " * 3000)


def test_rerank_through_the_gateway(embeddings_url: str) -> None:
    gateway = V1OnlyGateway(embeddings_url)
    try:
        reranker = VLLMRerank(base_url=gateway.start(), top_n=1)
        docs = [Document("Paris is in France."), Document("Bananas are yellow.")]
        best = reranker.compress_documents(docs, "Where is Paris?")
        assert [d.page_content for d in best] == ["Paris is in France."]
        assert not gateway.refused
    finally:
        gateway.stop()
