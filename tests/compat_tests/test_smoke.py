"""The package's core features against one vLLM release (`COMPAT_VLLM_VERSION`).

Each answer is constrained (a fixed regex, a forced tool choice, a choice list,
a small `max_tokens`), so a test's outcome is the package's, not the 135M model's.
Features a release lacks must degrade with the package's own message.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.messages.ai import add_ai_message_chunks
from pydantic import BaseModel, Field

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI
from langchain_vllm._versions import CHAT_PARAMS_SINCE, ROUTING_ONLY
from langchain_vllm.errors import (
    VLLMContextOverflowError,
    VLLMModelNotFoundError,
    VLLMServerVersionError,
)
from tests.compat_tests.conftest import RELEASE, VERSION

FIXED_TEXT = "Amo programmare."
FIXED: dict[str, Any] = {
    "structured_outputs": {"regex": re.escape(FIXED_TEXT)},
    "max_tokens": 40,
}
SEED = [
    SystemMessage("You are a helpful assistant that translates English to Italian."),
    HumanMessage("Translate the following sentence: I love programming."),
]
NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def chat(chat_url: str) -> ChatVLLM:
    return ChatVLLM(base_url=chat_url, temperature=0, max_tokens=24, max_retries=0)


def magic_function(input: int) -> int:
    """Apply a magic function to an input."""
    return input + 2


def test_server_is_the_release_under_test(chat: ChatVLLM) -> None:
    assert chat._link.version().startswith(VERSION.split(".post")[0]), VERSION


def test_invoke(chat: ChatVLLM) -> None:
    msg = chat.invoke(SEED, **FIXED)
    assert msg.content == FIXED_TEXT
    assert msg.response_metadata["model_name"] == NAME
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["output_tokens"] > 0


def test_stream_with_usage(chat: ChatVLLM) -> None:
    full = add_ai_message_chunks(*chat.stream(SEED, **FIXED))
    assert full.content == FIXED_TEXT
    assert full.usage_metadata is not None
    assert full.usage_metadata["output_tokens"] > 0
    assert full.response_metadata["finish_reason"] == "stop"


@pytest.mark.parametrize("tool_choice", ["magic_function", "required"])
def test_forced_tool_call(chat: ChatVLLM, tool_choice: str) -> None:
    bound = chat.bind_tools([magic_function], tool_choice=tool_choice)
    msg = bound.invoke("What is the value of magic_function(3)?", max_tokens=60)
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [
        ("magic_function", {"input": 3})
    ]


def test_structured_outputs_choice(chat: ChatVLLM) -> None:
    out = chat.invoke("Is the sky blue?", structured_outputs={"choice": ["yes", "no"]})
    assert out.content in ("yes", "no")


def test_with_structured_output(chat: ChatVLLM) -> None:
    class City(BaseModel):
        name: str = Field(max_length=12)
        country: Literal["France", "Italy"]

    out = chat.with_structured_output(City).invoke("Paris as JSON.", max_tokens=60)
    assert isinstance(out, City)


def test_token_counts_match_usage(chat: ChatVLLM) -> None:
    usage = chat.invoke(SEED, **FIXED).usage_metadata
    assert usage is not None
    assert chat.get_num_tokens_from_messages(SEED) == usage["input_tokens"]
    assert chat.get_num_tokens("Hello world") == 2


def test_discovery(chat: ChatVLLM) -> None:
    assert [(m.name, m.max_model_len) for m in chat.list_models()] == [(NAME, 2048)]


def test_context_overflow_is_typed(chat: ChatVLLM) -> None:
    with pytest.raises(VLLMContextOverflowError, match="2048"):
        chat.invoke("word " * 3000)


def test_unknown_model_lists_served(chat_url: str) -> None:
    # One retry: vLLM 0.20 drops the keep-alive connection after a context-overflow
    # 400 (an exception in its ASGI app), so the next request on it may find it
    # closed. A 404 is not retried.
    bad = ChatVLLM(base_url=chat_url, model="gpt-5", max_retries=1)
    with pytest.raises(VLLMModelNotFoundError, match=NAME):
        bad.invoke("hi")


def test_newer_parameters_are_refused_by_name(chat: ChatVLLM) -> None:
    """A parameter this release does not read is refused before the request
    (the server would accept and ignore it); one it reads goes through."""
    newer = sorted(
        n
        for n, since in CHAT_PARAMS_SINCE.items()
        if since > RELEASE and n not in ROUTING_ONLY  # those are dropped instead
    )
    if newer:
        with pytest.raises(VLLMServerVersionError, match=newer[0]) as err:
            chat.invoke("hi", **{newer[0]: _sample(newer[0])})  # type: ignore[arg-type]
        assert VERSION.split(".post")[0] in str(err.value)
    assert chat.invoke("hi", max_tokens=4, min_tokens=4).content


def _sample(name: str) -> object:
    samples: dict[str, object] = {
        "thinking_token_budget": 4,
        "ec_transfer_params": {"k": "v"},
        "logprob_token_ids": [1],
        "repetition_detection": {"min_pattern_size": 1, "max_pattern_size": 4},
        "stream_interval": 1,
        "truncation_side": "left",
        "session_id": "s1",
        "return_prompt_text": True,
        "return_token_ids": True,
    }
    return samples.get(name, True)


def test_completions(chat_url: str) -> None:
    llm = VLLMOpenAI(openai_api_base=chat_url, temperature=0, max_tokens=12)
    answer = llm.invoke(
        "The capital of France is",
        structured_outputs={"regex": re.escape(" Paris.")},
    )
    assert answer == " Paris."


def test_embeddings(embeddings_url: str) -> None:
    emb = VLLMEmbeddings(openai_api_base=embeddings_url)
    vectors = emb.embed_documents(["a cat", "a dog"])
    assert [len(v) for v in vectors] == [384, 384]
    assert len(emb.embed_query("hi")) == 384


def test_reasoning(reasoning_url: str) -> None:
    """The reasoning parser's text lands in `reasoning_content` (newer servers
    name the field `reasoning`, older ones `reasoning_content`)."""
    budget: dict[str, Any] = {"thinking_token_budget": 6} if RELEASE >= (0, 20) else {}
    thinker = ChatVLLM(
        base_url=reasoning_url, temperature=0, max_tokens=24, min_tokens=16, **budget
    )
    msg = thinker.invoke("What is 2+2?")
    assert msg.additional_kwargs.get("reasoning_content")
    assert any(b["type"] == "reasoning" for b in msg.content_blocks)
