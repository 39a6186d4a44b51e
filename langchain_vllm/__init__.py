"""LangChain integration for vLLM."""

from importlib import metadata

from langchain_vllm._lora import (
    aload_lora_adapter_on_replicas,
    aunload_lora_adapter_on_replicas,
    load_lora_adapter_on_replicas,
    unload_lora_adapter_on_replicas,
)
from langchain_vllm._models import ServedModel
from langchain_vllm._params import (
    VLLMChatParams,
    VLLMCompletionParams,
    VLLMPoolingParams,
    VLLMSamplingParams,
)
from langchain_vllm._structured import StructuredOutputs
from langchain_vllm.chat_models import ChatVLLM
from langchain_vllm.embeddings import VLLMEmbeddings
from langchain_vllm.errors import (
    VLLMAuthenticationError,
    VLLMBadRequestError,
    VLLMConnectionError,
    VLLMContextOverflowError,
    VLLMEmptyAnswerError,
    VLLMIncompleteStreamError,
    VLLMLoRAAdapterError,
    VLLMMediaError,
    VLLMModelDiscoveryError,
    VLLMModelNotFoundError,
    VLLMResponseError,
    VLLMServerFeatureError,
    VLLMTimeoutError,
    VLLMUnsupportedMediaError,
)
from langchain_vllm.llms import VLLMOpenAI
from langchain_vllm.prompts import (
    CheckedChatPromptTemplate,
    PromptVariablesError,
    chat_prompt,
    render_prompt,
    translation_prompt,
)
from langchain_vllm.rerank import VLLMRerank

try:
    __version__ = metadata.version(__package__ or "langchain-vllm")
except metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    __version__ = ""

__all__ = [
    "ChatVLLM",
    "CheckedChatPromptTemplate",
    "PromptVariablesError",
    "ServedModel",
    "StructuredOutputs",
    "VLLMAuthenticationError",
    "VLLMBadRequestError",
    "VLLMChatParams",
    "VLLMCompletionParams",
    "VLLMConnectionError",
    "VLLMContextOverflowError",
    "VLLMEmbeddings",
    "VLLMEmptyAnswerError",
    "VLLMIncompleteStreamError",
    "VLLMLoRAAdapterError",
    "VLLMMediaError",
    "VLLMModelDiscoveryError",
    "VLLMModelNotFoundError",
    "VLLMOpenAI",
    "VLLMPoolingParams",
    "VLLMRerank",
    "VLLMResponseError",
    "VLLMSamplingParams",
    "VLLMServerFeatureError",
    "VLLMTimeoutError",
    "VLLMUnsupportedMediaError",
    "__version__",
    "aload_lora_adapter_on_replicas",
    "aunload_lora_adapter_on_replicas",
    "chat_prompt",
    "load_lora_adapter_on_replicas",
    "render_prompt",
    "translation_prompt",
    "unload_lora_adapter_on_replicas",
]
