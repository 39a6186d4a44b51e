"""ChatVLLM's invocation and tracing parameters equal ChatOpenAI's (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_openai.chat_models.base import BaseChatOpenAI

from langchain_vllm import ChatVLLM
from langchain_vllm.chat_models import openai_ls_params

BASE_URL = "http://vllm.test/v1"
MCP = {
    "type": "mcp",
    "server_label": "s",
    "server_url": "https://mcp.test",
    "headers": {"Authorization": "Bearer secret"},
    "authorization": "secret",
}
FUNCTION = {"type": "function", "function": {"name": "f", "parameters": {}}}

CONFIGS: list[dict[str, Any]] = [
    {},
    {"model": "m", "temperature": 0.2, "max_tokens": 7, "stop": ["\n"]},
    {"top_k": 5, "structured_outputs": {"choice": ["a", "b"]}, "extra_body": {"x": 1}},
    {"model_kwargs": {"seed": 3}, "n": 2},
    {"streaming": True, "stream_usage": False},
    {"reasoning_effort": "low", "use_responses_api": True},
    {"max_completion_tokens": 9, "temperature": 0},
    {"max_tokens": 1, "stop_sequences": ["x"]},
]
CALLS: list[tuple[list[str] | None, dict[str, Any]]] = [
    (None, {}),
    (["END"], {"temperature": 1.0, "max_tokens": 3}),
    (None, {"tools": [FUNCTION, MCP], "tool_choice": "auto"}),
    (["a"], {"model": "other", "top_k": 3}),
    ([], {"max_completion_tokens": 4, "temperature": None}),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(("stop", "kwargs"), CALLS)
def test_same_params_and_order_as_chatopenai(
    config: dict[str, Any], stop: list[str] | None, kwargs: dict[str, Any]
) -> None:
    chat = ChatVLLM(base_url=BASE_URL, **config)
    ours = chat._get_invocation_params(stop=stop, **kwargs)
    parents = BaseChatOpenAI._get_invocation_params(chat, stop=stop, **kwargs)
    assert list(ours.items()) == list(parents.items())
    if "tools" in kwargs:
        assert ours["tools"][1]["headers"] == "**REDACTED**"
        assert MCP["headers"] == {"Authorization": "Bearer secret"}  # not changed
    ls_ours = openai_ls_params(chat, stop, kwargs)
    ls_parents = BaseChatOpenAI._get_ls_params(chat, stop=stop, **kwargs)
    assert list(ls_ours.items()) == list(ls_parents.items())
    assert chat._get_ls_params(stop=stop, **kwargs)["ls_provider"] == "vllm"


def test_a_subclass_that_overrides_dict_gets_the_parents_method() -> None:
    class Custom(ChatVLLM):
        def dict(self, **_kwargs: Any) -> dict[str, Any]:
            return {"custom": True}

    params = Custom(base_url=BASE_URL)._get_invocation_params()
    assert params["custom"] is True
