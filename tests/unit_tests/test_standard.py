"""langchain-tests' standard unit suite for ChatVLLM."""

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.unit_tests import ChatModelUnitTests
from syrupy.assertion import SnapshotAssertion

from langchain_vllm import ChatVLLM


class TestChatVLLMStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatVLLM]:
        return ChatVLLM

    @property
    def chat_model_params(self) -> dict:
        return {"model": "smollm2-135m-instruct"}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return (
            {"VLLM_API_BASE": "http://vllm.example:8000/v1", "VLLM_API_KEY": "secret"},
            {"model": "smollm2-135m-instruct"},
            {"openai_api_base": "http://vllm.example:8000/v1"},
        )

    @property
    def supports_model_override(self) -> bool:
        return False

    @pytest.mark.xfail(
        strict=True,
        reason=(
            "langchain-core 1.8's load(allowed_objects='all') admits only classes "
            "listed in langchain_core.load.mapping, which holds no third-party "
            "package; ChatVLLM round-trips with allowed_objects=[ChatVLLM] "
            "(test_chat_models.py::test_serialization_round_trip)."
        ),
    )
    def test_serdes(self, model: BaseChatModel, snapshot: SnapshotAssertion) -> None:
        super().test_serdes(model, snapshot)
