"""The package's only reads of private upstream names (callers check the seam first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx2
import openai

from langchain_vllm._seams.registry import (
    BASE_URL_FIELD,
    CONVERT_INPUT,
    DRAIN,
    DUMPS,
    HTTPX_ERRORS,
    RAW_HEADER,
    REQUEST_OPTIONS,
    RESOURCE_CLIENT,
    SDK_ONLY,
    SSE_DECODER,
)


def http_client(client: openai.OpenAI | openai.AsyncOpenAI) -> Any:
    """The client's own httpx2 client."""
    return client._client


def request_options(path: str) -> Any:
    """The SDK's options of a JSON POST to `path` (what `post` builds)."""
    return REQUEST_OPTIONS.value(method="post", url=path, json_data={})


def build_request(client: Any, options: Any) -> httpx2.Request:
    """The request the SDK builds for `options` (URL, headers, timeout)."""
    return client._build_request(options)  # type: ignore[no-any-return]


def should_retry(client: Any, response: httpx2.Response) -> bool:
    """The SDK's retry rule (408, 409, 429, 5xx, `x-should-retry`)."""
    return client._should_retry(response)  # type: ignore[no-any-return]


def sleep_for_retry(client: Any, **kwargs: Any) -> Any:
    """The SDK's back-off (a coroutine on an async client)."""
    return client._sleep_for_retry(**kwargs)


def status_error(client: Any, response: httpx2.Response) -> openai.APIStatusError:
    """The SDK's typed error of an error response (`NotFoundError`, ...)."""
    return client._make_status_error_from_response(response)  # type: ignore[no-any-return]


def request_exceptions() -> tuple[type[BaseException], ...]:
    """What a failed request raises (retried, then `APIConnectionError`)."""
    return HTTPX_ERRORS.value[0]()  # type: ignore[no-any-return]


def timeout_exceptions() -> tuple[type[BaseException], ...]:
    """What a timed-out request raises (retried, then `APITimeoutError`)."""
    return HTTPX_ERRORS.value[1]()  # type: ignore[no-any-return]


def sse_decoder() -> Any:
    """A new SDK server-sent-event decoder (`iter_bytes`, `aiter_bytes`)."""
    return SSE_DECODER.value()


async def drain(response: httpx2.Response) -> None:
    """Read the rest of a finished stream's body, as the SDK does (reused conn)."""
    await DRAIN.value(response)


def dumps(body: dict[str, Any]) -> bytes:
    """The JSON body as the SDK encodes it (compact, UTF-8, no NaN, models dumped)."""
    return DUMPS.value(body)  # type: ignore[no-any-return]


def plain_client(client: openai.OpenAI | openai.AsyncOpenAI) -> bool:
    """Whether the SDK would build the client's requests from its key alone."""
    http_type = (
        httpx2.AsyncClient if isinstance(client, openai.AsyncOpenAI) else httpx2.Client
    )
    return (
        isinstance(client._client, http_type)
        and not client.default_query
        and not client._client.params
        and all(getattr(client, name, None) is None for name in SDK_ONLY)
        and not client._strict_response_validation
    )


def base_url_of(client: openai.OpenAI | openai.AsyncOpenAI) -> Any:
    """The client's base URL, read from the field behind the property if known."""
    if BASE_URL_FIELD.ok:
        url = client.__dict__.get(BASE_URL_FIELD.value)
        if url is not None:
            return url
    return client.base_url


def raw_header() -> str | None:
    """The SDK's raw-response request header, or None (missing)."""
    return RAW_HEADER.value if RAW_HEADER.ok else None


def resource_client(resource: Any) -> Any:
    """The openai client an SDK resource (`client.completions`) belongs to.

    Raises:
        TypeError: no client to be found on the resource.
    """
    if RESOURCE_CLIENT.ok:
        return resource._client
    for value in vars(resource).values():
        if isinstance(value, openai.OpenAI | openai.AsyncOpenAI):
            return value
    msg = f"No openai client found on {type(resource).__name__}"
    raise TypeError(msg)


def convert_input(model: Any, input_: Any) -> Any:
    """A chat model's input as a `PromptValue` (what `_convert_input` builds).

    Raises:
        ValueError: not a `PromptValue`, string or sequence of messages.
    """
    if CONVERT_INPUT.ok:
        return model._convert_input(input_)
    from langchain_core.messages import convert_to_messages
    from langchain_core.prompt_values import (
        ChatPromptValue,
        PromptValue,
        StringPromptValue,
    )

    if isinstance(input_, PromptValue):
        return input_
    if isinstance(input_, str):
        return StringPromptValue(text=input_)
    if isinstance(input_, Sequence):
        return ChatPromptValue(messages=convert_to_messages(input_))
    msg = (
        f"Invalid input type {type(input_)}. "
        "Must be a PromptValue, str, or list of BaseMessages."
    )
    raise ValueError(msg)
