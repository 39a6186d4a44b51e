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
        return {"base_url": RIG.url("chat"), "temperature": 0}

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

    # The xfails below are limits of the 135M test model, not of ChatVLLM; each was
    # observed at temperature 0 against the rig server (vLLM 0.32, SmolLM2-135M).
    @pytest.mark.xfail(
        strict=True,
        reason=(
            "SmolLM2-135M, asked for a joke *setup only*, keeps writing inside the "
            "schema-enforced JSON string until the token limit: openai's parser "
            "raises LengthFinishReasonError (100 of 100, or 2004 of 2048 tokens). "
            "The output stays schema-valid; it just never closes."
        ),
    )
    def test_structured_output_optional_param(self, model: BaseChatModel) -> None:
        super().test_structured_output_optional_param(model)

    @pytest.mark.xfail(
        strict=True,
        reason=(
            "Same as test_structured_output_optional_param: the enforced JSON "
            "string never closes before the token limit (LengthFinishReasonError)."
        ),
    )
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)

    @pytest.mark.xfail(
        strict=True,
        reason=(
            "With tool_choice left on auto (the test binds no tool_choice), "
            "SmolLM2-135M answers the weather question in text instead of calling "
            "get_weather, even with the tool-aware hermes template; with "
            "tool_choice='required' or a named tool it calls it (test_tool_calling "
            "passes)."
        ),
    )
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)
