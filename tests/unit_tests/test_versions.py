"""Parameters newer than the server's vLLM release are refused by name, before the
request; `/version` is asked only when a call sends one (and once per server)."""

from __future__ import annotations

import asyncio

import pytest

from langchain_vllm import ChatVLLM, VLLMOpenAI
from langchain_vllm._versions import (
    CHAT_PARAMS_SINCE,
    COMPLETION_PARAMS_SINCE,
    check_params_for_server,
    is_legacy,
    version_tuple,
)
from langchain_vllm.errors import VLLMServerVersionError
from langchain_vllm.params import VLLMChatParams, VLLMCompletionParams, param_names
from tests.unit_tests.fake_vllm import FakeVLLM


def test_version_tuple_and_legacy() -> None:
    assert version_tuple("0.32.0+cpu") == (0, 32, 0)
    assert version_tuple("0.11.2.post2") == (0, 11, 2)
    assert is_legacy("0.11.2.post2")
    assert not is_legacy("0.12.0")
    assert not is_legacy("")  # no /version (a gateway): taken as current


def test_tables_name_declared_parameters() -> None:
    assert set(CHAT_PARAMS_SINCE) <= set(param_names(VLLMChatParams))
    assert set(COMPLETION_PARAMS_SINCE) <= set(param_names(VLLMCompletionParams))


def test_old_server_refuses_newer_parameter_by_name(fake: FakeVLLM) -> None:
    fake.version = "0.19.1"
    chat = ChatVLLM(**fake.kwargs(), model="m")
    with pytest.raises(VLLMServerVersionError) as err:
        chat.invoke("x", thinking_token_budget=4, repetition_detection=None)
    message = str(err.value)
    assert "0.19.1" in message
    assert "thinking_token_budget (vLLM 0.20+)" in message
    assert fake.paths() == ["GET /version"]  # no chat request was sent


def test_instance_parameter_and_extra_body_are_checked(fake: FakeVLLM) -> None:
    fake.version = "0.21.0"
    with pytest.raises(VLLMServerVersionError, match="truncation_side"):
        ChatVLLM(**fake.kwargs(), model="m", truncation_side="left").invoke("x")
    with pytest.raises(VLLMServerVersionError, match="return_prompt_text"):
        ChatVLLM(**fake.kwargs(), model="m").invoke(
            "x", extra_body={"return_prompt_text": True}
        )


def test_server_new_enough_gets_the_parameter(fake: FakeVLLM) -> None:
    fake.version = "0.20.0"
    ChatVLLM(**fake.kwargs(), model="m").invoke("x", thinking_token_budget=4)
    assert fake.bodies()[0]["thinking_token_budget"] == 4


def test_old_parameters_ask_no_version(fake: FakeVLLM) -> None:
    fake.version = "0.11.0"
    ChatVLLM(**fake.kwargs(), model="m").invoke("x", top_k=3, min_tokens=2)
    assert fake.paths() == ["POST /v1/chat/completions"]


def test_session_id_is_dropped_not_refused_on_old_servers(fake: FakeVLLM) -> None:
    """The X-Session-ID header (what routers read) still carries the session."""
    fake.version = "0.27.1"
    ChatVLLM(**fake.kwargs(), model="m", session_id="s-1").invoke("x")
    assert "session_id" not in fake.bodies()[0]
    assert fake.requests[-1].headers["X-Session-ID"] == "s-1"


def test_async_asks_version_off_the_loop(fake: FakeVLLM) -> None:
    fake.version = "0.19.0"
    chat = ChatVLLM(**fake.kwargs(), model="m")
    with pytest.raises(VLLMServerVersionError, match="thinking_token_budget"):
        asyncio.run(chat.ainvoke("x", thinking_token_budget=4))


def test_unknown_version_sends_everything() -> None:
    extra = {"thinking_token_budget": 4}
    check_params_for_server(extra, "", CHAT_PARAMS_SINCE, "Chat Completions")
    assert extra == {"thinking_token_budget": 4}


# -- completions (VLLMOpenAI) -------------------------------------------------------
def _llm(fake: FakeVLLM, **kwargs: object) -> VLLMOpenAI:
    return VLLMOpenAI(**{**fake.kwargs(), "model": "m", **kwargs})


def test_completions_refuse_newer_parameter(fake: FakeVLLM) -> None:
    fake.version = "0.25.1"
    with pytest.raises(VLLMServerVersionError, match=r"bad_words \(vLLM 0.26\+\)"):
        _llm(fake).invoke("x", bad_words=["no"])
    assert not fake.bodies("/completions")


def test_completions_structured_outputs_on_old_server(fake: FakeVLLM) -> None:
    fake.version = "0.10.2"
    llm = _llm(fake)
    llm.invoke("x", structured_outputs={"regex": "a+"})
    list(llm.stream("x", structured_outputs={"choice": ["a"]}))
    asyncio.run(llm.ainvoke("x", structured_outputs={"regex": "b"}))
    bodies = fake.bodies("/completions")
    assert [b.get("guided_regex") for b in bodies] == ["a+", None, "b"]
    assert bodies[1]["guided_choice"] == ["a"]
    assert all("structured_outputs" not in b for b in bodies)
    assert fake.paths().count("GET /version") == 1


def test_completions_on_new_server_keep_structured_outputs(fake: FakeVLLM) -> None:
    _llm(fake).invoke("x", structured_outputs={"regex": "a+"})
    assert fake.bodies("/completions")[0]["structured_outputs"] == {"regex": "a+"}
