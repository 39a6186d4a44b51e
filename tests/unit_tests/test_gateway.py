"""Servers behind a gateway that forwards only `/v1/*` (`langchain_vllm._gateway`).

`/tokenize` and `/version` answer 404 like a proxy that does not forward them;
token counts then come from one-token generations through `/v1`, and structured
outputs take the current vLLM form.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMModelNotFoundError, VLLMResponseError
from langchain_vllm.llms import VLLMOpenAI
from tests.unit_tests.fake_vllm import RawFakeVLLM, chat_completion

NOT_FOUND = (404, "application/json", json.dumps({"detail": "Not Found"}).encode())
PROMPT_IDS = [1, 9690, 198, 36218, 15876]


@pytest.fixture
def gateway() -> RawFakeVLLM:
    fake = RawFakeVLLM()
    fake.raw["/tokenize"] = NOT_FOUND
    fake.raw["/version"] = NOT_FOUND
    fake.raw["/detokenize"] = NOT_FOUND

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        data = chat_completion("Hi")
        if body.get("return_token_ids"):
            data["prompt_token_ids"] = PROMPT_IDS
        return data

    fake.chat_response = answer
    return fake


def test_token_counts_through_v1(gateway: RawFakeVLLM) -> None:
    chat = ChatVLLM(**gateway.kwargs())
    with pytest.warns(UserWarning, match="/tokenize is not reachable"):
        assert chat.get_num_tokens_from_messages([HumanMessage("Say hi")]) == 5
    probe = gateway.last_body("/chat/completions")
    assert probe["max_tokens"] == 1
    assert probe["return_token_ids"] is True
    assert probe["messages"] == [{"role": "user", "content": "Say hi"}]
    # the route is not asked again, the count is cached, no second warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert chat.get_num_tokens_from_messages([HumanMessage("Say hi")]) == 5
        assert chat.get_num_tokens_from_messages([HumanMessage("Other")]) == 5
    assert gateway.paths().count("POST /tokenize") == 1


def test_text_token_ids_through_completions(gateway: RawFakeVLLM) -> None:
    gateway.completion_response = lambda body: {  # type: ignore[attr-defined]
        "choices": [{"index": 0, "text": "x", "prompt_token_ids": [36218, 15876]}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }
    llm = VLLMOpenAI(**gateway.kwargs())
    with pytest.warns(UserWarning, match="/tokenize is not reachable"):
        assert llm.get_token_ids("Say hi") == [36218, 15876]
    assert gateway.last_body("/completions")["prompt"] == "Say hi"


def test_structured_outputs_without_version_route(gateway: RawFakeVLLM) -> None:
    chat = ChatVLLM(**gateway.kwargs())
    chat.invoke("hi", structured_outputs={"choice": ["a", "b"]})
    body = gateway.last_body()
    assert body["structured_outputs"] == {"choice": ["a", "b"]}
    assert "guided_choice" not in body


def test_a_probe_without_token_ids_is_a_response_error(gateway: RawFakeVLLM) -> None:
    gateway.chat_response = chat_completion("Hi")
    chat = ChatVLLM(**gateway.kwargs())
    with (
        pytest.warns(UserWarning, match="not reachable"),
        pytest.raises(VLLMResponseError, match="prompt_"),
    ):
        chat.get_num_tokens_from_messages([HumanMessage("Say hi")])


def test_unknown_model_is_not_taken_for_a_missing_route(
    gateway: RawFakeVLLM,
) -> None:
    error = {"error": {"message": "The model `nope` does not exist.", "code": 404}}
    gateway.raw["/tokenize"] = (404, "application/json", json.dumps(error).encode())
    chat = ChatVLLM(**gateway.kwargs(), model="nope")
    with pytest.raises(VLLMModelNotFoundError):
        chat.get_num_tokens_from_messages([HumanMessage("Say hi")])


def test_prompt_text_through_v1(gateway: RawFakeVLLM) -> None:
    """Without `/tokenize` and `/detokenize`: `return_prompt_text` through `/v1`."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("return_token_ids"):  # the first call finds /tokenize missing
            return {**chat_completion("x"), "prompt_token_ids": PROMPT_IDS}
        return {**chat_completion("x"), "prompt_text": "<|im_start|>user\nSay hi"}

    gateway.chat_response = answer
    chat = ChatVLLM(**gateway.kwargs())
    with pytest.warns(UserWarning, match="/tokenize is not reachable"):
        assert chat.get_prompt_text("Say hi") == "<|im_start|>user\nSay hi"
    probe = gateway.last_body("/chat/completions")
    assert probe["return_prompt_text"] is True
    assert probe["max_tokens"] == 1
    assert "return_token_ids" not in probe
    assert probe["messages"] == [{"role": "user", "content": "Say hi"}]
    # once /tokenize is known to be missing, the text costs one request
    before = len(gateway.paths())
    assert chat.get_prompt_text("Say hi") == "<|im_start|>user\nSay hi"
    assert gateway.paths()[before:] == ["POST /v1/chat/completions"]


def test_prompt_text_without_detokenize_only(gateway: RawFakeVLLM) -> None:
    """`/tokenize` answers, `/detokenize` does not: the text still comes back."""
    del gateway.raw["/tokenize"]
    gateway.chat_response = lambda body: {**chat_completion("x"), "prompt_text": "P"}
    assert ChatVLLM(**gateway.kwargs()).get_prompt_text("Say hi") == "P"
    assert "POST /detokenize" in gateway.paths()


def test_prompt_text_from_an_older_server_is_a_typed_error(
    gateway: RawFakeVLLM,
) -> None:
    chat = ChatVLLM(**gateway.kwargs())
    with (
        pytest.warns(UserWarning, match="not reachable"),
        pytest.raises(VLLMResponseError, match="no prompt_text"),
    ):
        chat.get_prompt_text("Say hi")
