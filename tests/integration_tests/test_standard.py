"""langchain-tests' standard integration suite, live against the rig's chat server."""

from __future__ import annotations

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
