"""Errors users can act on.

Errors from the server side subclass the `openai` exception their caller already
catches and LangChain's model-error family; the two errors about a choice the
client must make (`VLLMModelDiscoveryError`, `VLLMEmptyAnswerError`) are
`ValueError`s. Every message says what to do (which URL, flag or env var).
"""

from __future__ import annotations

import openai
from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelTimeoutError,
)

__all__ = [
    "VLLMAuthenticationError",
    "VLLMBadRequestError",
    "VLLMConnectionError",
    "VLLMContextOverflowError",
    "VLLMEmptyAnswerError",
    "VLLMIncompleteStreamError",
    "VLLMLoRAAdapterError",
    "VLLMMediaError",
    "VLLMModelDiscoveryError",
    "VLLMModelNotFoundError",
    "VLLMMultiVectorEmbeddingError",
    "VLLMResponseError",
    "VLLMServerFeatureError",
    "VLLMServerVersionError",
    "VLLMStructuredOutputError",
    "VLLMTimeoutError",
    "VLLMToolChoiceError",
    "VLLMUnsupportedMediaError",
]

START_HINT = (
    "Start one with `vllm serve MODEL` (or `python -m "
    "vllm.entrypoints.openai.api_server --model MODEL`), or from Python with "
    "`langchain_vllm.server.VLLMServer(MODEL).start()`, or point `base_url` / the "
    "VLLM_API_BASE environment variable at a running server."
)


class VLLMConnectionError(openai.APIConnectionError, ModelConnectionError):
    """The vLLM server could not be reached (message names the URL)."""


class VLLMTimeoutError(openai.APITimeoutError, ModelTimeoutError):
    """The vLLM server did not answer within `timeout` (message names the URL)."""


class VLLMModelNotFoundError(openai.NotFoundError, ModelNotFoundError):
    """The requested model is not served (message lists the served models)."""


class VLLMAuthenticationError(openai.AuthenticationError, ModelAuthenticationError):
    """The server rejected the API key (message names VLLM_API_KEY)."""


class VLLMBadRequestError(openai.BadRequestError, ModelInvalidRequestError):
    """The server refused the request (the server's own message is kept)."""


class VLLMServerFeatureError(VLLMBadRequestError):
    """The server lacks a feature the request needs (message names the flags)."""


class VLLMMediaError(VLLMBadRequestError):
    """The server could not use the request's images, audio or video.

    Too many items, a modality the model does not read, a URL the server cannot
    fetch: the message names the model or server flag that decides.
    """


class VLLMStructuredOutputError(VLLMBadRequestError):
    """The server refused the request's schema, regex, grammar or choice.

    vLLM 0.33+ runs one structured-output backend per engine: a schema the first
    backend cannot compile falls back to another one and is refused. The message
    keeps the server's words and says what to change (the schema, or the server's
    `--structured-outputs-config.backend`).
    """


class VLLMLoRAAdapterError(VLLMBadRequestError):
    """The server refused to load or unload a LoRA adapter.

    The message says why and what to do: a path the server cannot read, a rank above
    the server's `--max-lora-rank`, a name already in use.
    """


class VLLMContextOverflowError(openai.BadRequestError, ContextOverflowError):
    """The prompt does not fit the model's context (message gives both numbers)."""

    server_message: str = ""
    """The server's own words (the message adds the numbers and what to do)."""


class VLLMIncompleteStreamError(openai.APIError, ModelError):
    """The stream ended before the server said the answer was complete."""


class VLLMResponseError(openai.APIError, ModelError):
    """The server's answer was malformed (not what the vLLM API returns)."""


class VLLMToolChoiceError(VLLMResponseError):
    """A forced tool choice came back without the tool call.

    With `tool_choice="required"` / `"any"` or a named tool, the answer held no call
    (of that tool): the server's `--tool-call-parser` does not match the model, or
    its chat template does not show the tools. The message names the choice, the
    finish reason and the start of the text that came back instead.
    """


class VLLMModelDiscoveryError(ValueError):
    """The served model could not be chosen: zero or several are served."""


class VLLMEmptyAnswerError(ValueError):
    """The model spent every token on reasoning and gave no answer.

    Raised instead of a warning with `ChatVLLM(error_on_empty_reasoning_only=True)`;
    the message names `max_tokens` and `thinking_token_budget`.
    """


class VLLMMultiVectorEmbeddingError(ValueError):
    """The embedding model gives one vector per token, not one per text.

    vLLM 0.33+ serves per-token (multi-vector, ColBERT-style) pooling models on
    `/v1/embeddings` with a matrix per text; LangChain's `Embeddings` returns one
    vector per text, so `VLLMEmbeddings` refuses them instead of picking one.
    """


class VLLMUnsupportedMediaError(ValueError):
    """A content block vLLM's chat endpoint cannot take (file, PDF, file id, ...).

    Raised before the request; the message lists the kinds of media vLLM accepts.
    """


class VLLMServerVersionError(ValueError):
    """The server's vLLM release is too old for the request.

    Raised before the request, where the old server would answer without an error
    but not as asked (a parameter it would accept and ignore, tools beside an answer
    schema that it would not enforce both); the message names what the request
    needs, the release that brought it, and the server's version.
    """
