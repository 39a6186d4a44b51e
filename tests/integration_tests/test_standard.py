"""langchain-tests' standard integration suite, live against the rig's chat server."""

from __future__ import annotations

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_vllm import ChatVLLM
from tests.integration_tests.conftest import RIG


class TestChatVLLMStandard(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatVLLM]:
        return ChatVLLM

    @property
    def chat_model_params(self) -> dict:
        # No model: the served one is discovered. The server starts on first use.
        return {
            "base_url": RIG.url("chat"),
            "temperature": 0,
            # The suite's jokes have free-text strings; the 135M model can keep
            # writing inside one until the token limit (seen: 2004 of 2048 tokens).
            # Bounded strings make every enforced JSON answer close, whatever the
            # model writes (with the rig's `disable_any_whitespace`, the answer's
            # length is bounded by the schema).
            "max_json_string_length": 60,
            # `tool_choice="any"` with vLLM's default parallel_tool_calls lets the
            # model emit several calls; the suite expects exactly one.
            "model_kwargs": {"parallel_tool_calls": False},
        }

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    # Beyond the 135M test model, whatever ChatVLLM does: not run (a run would be
    # decided by the model's luck), with the evidence. ChatVLLM's part of it is
    # covered deterministically in test_chat_models.py (tool loops with a tool
    # choice that forces the call).
    @pytest.mark.xfail(
        run=False,
        reason=(
            "Needs the model to choose to call get_weather with tool_choice left "
            "on auto (the test binds none). SmolLM2-135M answers the weather "
            "question in text instead, even with the tool-aware hermes template "
            "(seen at temperature 0 on vLLM 0.32's CPU build); nothing the client "
            "or the server can enforce decides it."
        ),
    )
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)


class TestChatVLLMResponsesStandard(TestChatVLLMStandard):
    """The same suite through vLLM's Responses API (`/v1/responses`)."""

    @property
    def chat_model_params(self) -> dict:
        return {
            **super().chat_model_params,
            "use_responses_api": True,
            # The 135M model often loops to its 2048-token window on the suite's
            # open questions; 256 tokens answer every test and keep the run short.
            "max_tokens": 256,
        }
