"""Error translation: an openai error becomes the vLLM error a user can act on.

Reads the server's own message (vLLM's or FastAPI's form) and says what to do: which
URL, which server flag, which environment variable.
"""

from __future__ import annotations

import re

import httpx2
import openai

from langchain_vllm._media import media_hint
from langchain_vllm.errors import (
    START_HINT,
    VLLMAuthenticationError,
    VLLMBadRequestError,
    VLLMConnectionError,
    VLLMContextOverflowError,
    VLLMMediaError,
    VLLMModelNotFoundError,
    VLLMResponseError,
    VLLMServerFeatureError,
    VLLMStructuredOutputError,
    VLLMTimeoutError,
)

_CONTEXT_PATTERNS = (
    # vLLM 0.32: "This model's maximum context length is 2048 tokens. However, your
    # prompt contains at least 2049 input tokens, which exceeds this limit ..."
    re.compile(
        r"maximum context length is (?P<limit>\d+) tokens.*?prompt contains"
        r"(?: at least)? (?P<prompt>\d+) (?:input )?tokens",
        re.S,
    ),
    # vLLM: "This model's maximum context length is 2048 tokens. However, you
    # requested 3000 tokens (2990 in the messages, 10 in the completion)."
    re.compile(
        r"maximum context length is (?P<limit>\d+) tokens.*?requested (?P<asked>\d+)"
        r" tokens(?: \((?P<prompt>\d+) in the messages)?",
        re.S,
    ),
    # vLLM: "... input (3000 tokens) is longer than the model's context length
    # (2048 tokens)" and similar wordings.
    re.compile(
        r"\((?P<prompt>\d+) tokens\).*?(?:context length|max_model_len)"
        r"[^\d]*\((?P<limit>\d+) tokens\)",
        re.S,
    ),
    re.compile(
        r"(?P<prompt>\d+) (?:input |prompt )?tokens.*?(?:maximum context length|"
        r"max_model_len|context length)[^\d]*(?P<limit>\d+)",
        re.S,
    ),
)
_TOOL_PARSER_HINT = re.compile(r"enable-auto-tool-choice|tool-call-parser|tool_choice")
_ONE_BACKEND = "only supports one backend per engine"
"""vLLM 0.33+: a request whose schema resolved to another structured-output
backend than the one the engine already uses."""


_AT_LEAST = re.compile(r"prompt contains at least \d+")


def is_model_not_found(error: BaseException) -> bool:
    return isinstance(error, openai.NotFoundError) and "model" in str(error).lower()


def context_numbers(message: str) -> tuple[int | None, int | None]:
    """(prompt tokens, context limit) read from a vLLM context-overflow message."""
    for pattern in _CONTEXT_PATTERNS:
        match = pattern.search(message)
        if match:
            groups = match.groupdict()
            prompt = groups.get("prompt") or groups.get("asked")
            return (int(prompt) if prompt else None, int(groups["limit"]))
    return None, None


def _is_context_overflow(message: str) -> bool:
    lowered = message.lower()
    return (
        "maximum context length" in lowered
        or (
            "context length" in lowered
            and ("longer than" in lowered or "exceed" in lowered)
        )
        or ("max_model_len" in lowered and ("exceed" in lowered or "longer" in lowered))
    )


def translate_error(
    error: BaseException, base_url: str, served: str | None = None
) -> BaseException:
    """Map an openai error to the vLLM error a user can act on.

    `served` says what the server serves (`models.describe`), if known.
    """
    if isinstance(error, openai.APITimeoutError):
        err = VLLMTimeoutError(error.request)
        msg = (
            f"The vLLM server at {base_url} did not answer within the timeout. "
            "Raise `timeout=` or check the server's load."
        )
        err.message, err.args = msg, (msg,)
        return err
    if isinstance(error, openai.APIConnectionError):
        return VLLMConnectionError(
            message=f"Could not connect to the vLLM server at {base_url} "
            f"({error.__cause__ or error.message}). {START_HINT}",
            request=error.request,
        )
    if isinstance(error, openai.APIStatusError):
        return _status_error(error, base_url, served)
    if isinstance(error, openai.APIError):
        return _streamed_error(error, base_url, served)
    return error


def _streamed_error(
    error: openai.APIError, base_url: str, served: str | None
) -> BaseException:
    """An error event of a stream, read as the HTTP error it stands for.

    A request that fails after its stream started (before the first token, e.g.
    vLLM 0.33+'s structured-output backend check) gets vLLM's error answer as a
    data event, `{"error": {"message", "type", "code": 400}}`, which the openai
    client raises as a bare `APIError`.
    """
    body = error.body
    if not isinstance(body, dict) or body.get("code") != 400:
        return error
    response = httpx2.Response(400, request=error.request)
    as_http = openai.BadRequestError(error.message, response=response, body=body)
    return _status_error(as_http, base_url, served)


def _status_error(
    error: openai.APIStatusError, base_url: str, served: str | None
) -> BaseException:
    server_msg = server_message(error)
    if isinstance(error, openai.AuthenticationError):
        return VLLMAuthenticationError(
            f"The vLLM server at {base_url} rejected the API key ({server_msg}). "
            "Set the key the server was started with (`--api-key`) in the "
            "VLLM_API_KEY environment variable or pass `api_key=`.",
            response=error.response,
            body=error.body,
        )
    if is_model_not_found(error):
        listing = f" Served models: {served}." if served else ""
        return VLLMModelNotFoundError(
            f"{server_msg} (server {base_url}).{listing}",
            response=error.response,
            body=error.body,
        )
    hint = media_hint(server_msg)
    if hint is not None:  # 400, or 422/500 for a media URL the server cannot fetch
        return VLLMMediaError(
            f"{server_msg} {hint}", response=error.response, body=error.body
        )
    if isinstance(error, openai.BadRequestError):
        return _bad_request(error, server_msg)
    if isinstance(error, openai.NotFoundError) and "response with id" in (
        server_msg.lower()
    ):
        return openai.NotFoundError(
            f"{server_msg} (server {base_url}). vLLM keeps responses for "
            "`previous_response_id` only when started with "
            "VLLM_ENABLE_RESPONSES_API_STORE=1, in memory, until it restarts.",
            response=error.response,
            body=error.body,
        )
    return error


def _bad_request(error: openai.BadRequestError, server_msg: str) -> BaseException:
    if _is_context_overflow(server_msg):
        prompt, limit = context_numbers(server_msg)
        # vLLM 0.32 stops counting one past the limit: "at least N".
        at_least = "at least " if _AT_LEAST.search(server_msg) else ""
        numbers = (
            f"The prompt has {at_least}{prompt} tokens; the model's context is "
            f"{limit} tokens. "
            if prompt is not None and limit is not None
            else ""
        )
        overflow = VLLMContextOverflowError(
            f"{numbers}Shorten the input (e.g. `trim_messages`) or lower "
            f"`max_tokens`. Server said: {server_msg}",
            response=error.response,
            body=error.body,
        )
        overflow.server_message = server_msg
        return overflow
    if _ONE_BACKEND in server_msg:
        return VLLMStructuredOutputError(
            "The server cannot use this request's schema (or regex, grammar, "
            "choice): its structured-output backend does not support it, and vLLM "
            "0.33+ runs one backend per engine, so it will not fall back to "
            "another. Simplify the schema to what the engine's backend supports, "
            "or start the server with that backend for every request "
            """(`--structured-outputs-config '{"backend": "guidance"}'`, say). """
            "Server said: "
            f"{server_msg}",
            response=error.response,
            body=error.body,
        )
    if _TOOL_PARSER_HINT.search(server_msg):
        return VLLMServerFeatureError(
            f"{server_msg}. Tool calling needs a server started with "
            "`--enable-auto-tool-choice --tool-call-parser NAME` "
            "(e.g. `hermes`).",
            response=error.response,
            body=error.body,
        )
    return VLLMBadRequestError(server_msg, response=error.response, body=error.body)


def server_message(error: openai.APIStatusError) -> str:
    """The server's own message in an error answer (vLLM's or FastAPI's form)."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
        if isinstance(body.get("detail"), str) and body["detail"]:  # FastAPI's
            return str(body["detail"])
    return error.message


def response_error(url: str, problem: str, method: str = "GET") -> VLLMResponseError:
    """A VLLMResponseError for an answer of `url` that is not what vLLM sends."""
    return VLLMResponseError(
        f"The answer from {url} is not what a vLLM server sends ({problem}). Is "
        "`base_url` a vLLM server, or did a proxy in between rewrite the answer?",
        httpx2.Request(method, url),
        body=None,
    )
