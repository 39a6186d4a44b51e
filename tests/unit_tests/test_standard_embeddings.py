"""langchain-tests' standard unit suite for VLLMEmbeddings."""

from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_vllm import VLLMEmbeddings


class TestVLLMEmbeddingsStandard(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[VLLMEmbeddings]:
        return VLLMEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": "all-minilm-l6-v2"}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return (
            {"VLLM_API_BASE": "http://vllm.example:8000/v1", "VLLM_API_KEY": "secret"},
            {"model": "all-minilm-l6-v2"},
            {
                "openai_api_base": "http://vllm.example:8000/v1",
                "openai_api_key": "secret",
            },
        )
