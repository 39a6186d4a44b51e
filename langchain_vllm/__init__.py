"""LangChain integration for vLLM.

The model classes are here; the rest lives in public modules named for it:
``langchain_vllm.errors`` (the typed errors), ``langchain_vllm.params`` (vLLM's
request parameters as types), ``langchain_vllm.structured`` (``StructuredOutputs``),
``langchain_vllm.models`` (``ServedModel``), ``langchain_vllm.lora`` (adapters on
several replicas), ``langchain_vllm.prompts`` (checked prompt templates),
``langchain_vllm.rollouts`` (token-exact agent trajectories for RL training),
``langchain_vllm.sessions`` (ending router sessions) and ``langchain_vllm.server``
(a local vLLM launcher).
"""

from importlib import metadata

from langchain_vllm.chat_models import ChatVLLM
from langchain_vllm.embeddings import VLLMEmbeddings
from langchain_vllm.llms import VLLMOpenAI
from langchain_vllm.rerank import VLLMRerank
from langchain_vllm.token_turns import ChatVLLMTokenTurns

try:
    __version__ = metadata.version(__package__ or "langchain-vllm")
except metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    __version__ = ""

__all__ = [
    "ChatVLLM",
    "ChatVLLMTokenTurns",
    "VLLMEmbeddings",
    "VLLMOpenAI",
    "VLLMRerank",
    "__version__",
]
