"""Candidate speed fixes for ChatVLLM, tried in the benchmark process only.

`bench.py --patch` adds a "ChatVLLM+fix" client built from `patched_chat_vllm()`, a
subclass of `ChatVLLM` with the changes below, so that the report shows the same
workload before and after. Nothing here is imported by the package.

The fix: send the payload LangChain already built as JSON, and hand the answer back
as plain dicts. `ChatOpenAI` calls `client.chat.completions.create(**payload)`; the
SDK then walks the whole payload through `maybe_transform` (a recursive, TypedDict
driven copy), builds pydantic models of the answer (`construct_type`), and
langchain-openai immediately turns them back into dicts (`model_dump`), once per
response and once per stream chunk. ChatVLLM's own `_create_chat_result` dumped the
answer a second time. With `root_client.post(..., cast_to=object)` the SDK skips
the transform and the models, and still does retries, timeouts, headers, auth and
error mapping; `Stream[object]` yields the decoded SSE dicts.
"""

from __future__ import annotations

import asyncio
import base64
from array import array
from collections.abc import Callable
from typing import Any, Self

import httpx2
import openai
from openai._constants import RAW_RESPONSE_HEADER
from pydantic import model_validator

from langchain_vllm import ChatVLLM
from langchain_vllm._server_api import ServerLink

_REQUEST_OPTIONS = ("extra_headers", "extra_query", "timeout")


def _split(payload: dict[str, Any], raw: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    body = dict(payload)
    body.update(body.pop("extra_body", None) or {})
    options: dict[str, Any] = {}
    headers = dict(body.pop("extra_headers", None) or {})
    if raw:
        headers[RAW_RESPONSE_HEADER] = "true"
    if headers:
        options["headers"] = headers
    if (query := body.pop("extra_query", None)) is not None:
        options["params"] = query
    if (timeout := body.pop("timeout", None)) is not None:
        options["timeout"] = timeout
    return body, options


class JSONChatCompletions:
    """A `client.chat.completions` look-alike that returns plain dicts.

    `create(**payload)` POSTs the payload as JSON to `/chat/completions` through the
    openai client (retries, auth, error mapping unchanged) and returns the decoded
    JSON, or with `stream=True` an `openai.Stream` of decoded chunk dicts.
    """

    def __init__(self, client: openai.OpenAI, *, raw: bool = False) -> None:
        self._client = client
        self._raw = raw

    @property
    def with_raw_response(self) -> JSONChatCompletions:
        return JSONChatCompletions(self._client, raw=True)

    def create(self, **payload: Any) -> Any:
        body, options = _split(payload, self._raw)
        return self._client.post(  # type: ignore[call-overload]
            "/chat/completions",
            body=body,
            options=options,
            cast_to=object,
            stream=bool(body.get("stream")),
            stream_cls=openai.Stream[object],
        )


class AsyncJSONChatCompletions:
    """Async `JSONChatCompletions`."""

    def __init__(self, client: openai.AsyncOpenAI, *, raw: bool = False) -> None:
        self._client = client
        self._raw = raw

    @property
    def with_raw_response(self) -> AsyncJSONChatCompletions:
        return AsyncJSONChatCompletions(self._client, raw=True)

    async def create(self, **payload: Any) -> Any:
        body, options = _split(payload, self._raw)
        return await self._client.post(  # type: ignore[call-overload]
            "/chat/completions",
            body=body,
            options=options,
            cast_to=object,
            stream=bool(body.get("stream")),
            stream_cls=openai.AsyncStream[object],
        )


KEEPALIVE = 100
"""Idle connections an async pool keeps (openai's and httpx's default)."""


def _capped_async_client(link: ServerLink) -> Callable[[], openai.AsyncOpenAI]:
    """`ServerLink.async_client` with at most `KEEPALIVE` idle connections kept.

    httpcore's pool probes every idle connection (`has_expired`: a `getpeername`
    and a `poll` syscall each) whenever a request starts or ends, so a pool that
    keeps 1024 idle connections makes a burst of N requests cost O(N²) syscalls.
    """

    def async_client() -> openai.AsyncOpenAI:
        if link._custom_async:
            return link._async_template
        loop = asyncio.get_running_loop()
        client = link._async_clients.get(loop)
        if client is None:
            limits = httpx2.Limits(
                max_connections=link._max_connections,
                max_keepalive_connections=min(KEEPALIVE, link._max_connections),
            )
            client = link._async_template.copy(
                http_client=openai.DefaultAsyncHttpxClient(limits=limits)
            )
            link._async_clients[loop] = client
        return client

    return async_client


def patched_chat_vllm(
    *, json_client: bool = True, keepalive: bool = True
) -> type[ChatVLLM]:
    """ChatVLLM with the JSON pass-through clients and a capped keep-alive pool."""

    class PatchedChatVLLM(ChatVLLM):
        @model_validator(mode="after")
        def _json_pass_through_client(self) -> Self:
            if keepalive:
                self._link.async_client = _capped_async_client(self._link)  # type: ignore[method-assign]
            if json_client and self.root_client is not None:
                self.client = JSONChatCompletions(self.root_client)
            return self

        def _use_loop_client(self) -> None:
            client = self._link.async_client()
            if not json_client:
                self.root_async_client = client
                self.async_client = client.chat.completions
                return
            if self.root_async_client is not client or not isinstance(
                self.async_client, AsyncJSONChatCompletions
            ):
                self.root_async_client = client
                self.async_client = AsyncJSONChatCompletions(client)

    return PatchedChatVLLM


def patched_vllm_embeddings() -> type[Any]:
    """VLLMEmbeddings asking for base64 vectors, decoded without pydantic models.

    With `encoding_format="float"` the SDK builds a pydantic model per vector and
    `construct_type`s every float; `model_dump` and `float(x)` then copy them twice
    more. Base64 (what the raw SDK and OpenAIEmbeddings request by default) is one
    `b64decode` + `array("f")` per vector; `cast_to=object` skips the models.
    """
    from langchain_vllm.embeddings import VLLMEmbeddings

    class PatchedVLLMEmbeddings(VLLMEmbeddings):
        def _request_params(
            self, model: str, call_kwargs: dict[str, Any]
        ) -> dict[str, Any]:
            params = super()._request_params(model, call_kwargs)
            if "encoding_format" not in call_kwargs:
                params["encoding_format"] = "base64"
            return params

        @model_validator(mode="after")
        def _json_embeddings_client(self) -> Self:
            self.client = _JSONEmbeddings(self._link.client)
            return self

        def _vectors(self, response: Any, expected: int) -> list[list[float]]:
            for item in response.get("data") or []:
                vector = item.get("embedding")
                if isinstance(vector, str):
                    item["embedding"] = array("f", base64.b64decode(vector)).tolist()
            return super()._vectors(response, expected)

    return PatchedVLLMEmbeddings


class _JSONEmbeddings:
    def __init__(self, client: openai.OpenAI) -> None:
        self._client = client

    def create(self, **payload: Any) -> Any:
        body, options = _split(payload, raw=False)
        return self._client.post(  # type: ignore[call-overload]
            "/embeddings",
            body=body,
            options=options,
            cast_to=object,
        )
