"""One POST straight through the openai client's own httpx client.

`openai.OpenAI.post` builds every request anew (options copied, headers merged and
validated, URL parsed, body dumped, the answer wrapped in an `APIResponse` and
parsed again): ~0.35 ms of CPU per call (docs/BENCHMARKS.md). Here the SDK builds
one request per client and path, once (`Route`); each call copies its headers and
sends the JSON body through the same httpx client and timeout, keeping the SDK's
behaviour around it:

* its retry loop (`_should_retry`, `_sleep_for_retry`, `Retry-After`, timeouts and
  connection errors retried, `x-stainless-retry-count`);
* its exceptions (`APITimeoutError`, `APIConnectionError`, the status errors of
  `_make_status_error_from_response`);
* its answers: JSON decoded when the content type says JSON (else the text), and
  streams read as `openai.Stream` reads them (an event with an `error` raises).

A client with more than a key (workload identity, key provider, provider runtime,
default query, cookies, strict response validation, a non-httpx2 client) keeps the
SDK's path: `Route.of` gives None, as it does when a private name this relies on
is missing (`_seams.DIRECT`).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, Generic, TypeVar

import httpx2
import openai

from langchain_vllm import _seams as seams
from langchain_vllm._seams import request_exceptions, timeout_exceptions

RETRY_COUNT = "x-stainless-retry-count"

Client = TypeVar("Client", openai.OpenAI, openai.AsyncOpenAI)


class Route(Generic[Client]):
    """One client's request to one path, built once by the SDK."""

    def __init__(self, client: Client, path: str) -> None:
        self.client: Client = client
        self.http: Any = seams.http_client(client)
        self.options = seams.request_options(path)
        template = seams.build_request(client, self.options)
        self.url = template.url
        self.headers = template.headers.copy()
        del self.headers["content-length"]
        self.extensions = dict(template.extensions)  # the client's timeout
        self.state = client_state(client)

    _routes: weakref.WeakKeyDictionary[Any, dict[str, Route[Any]]] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def of(cls, client: Client, path: str) -> Route[Client] | None:
        """The route of `client` to `path` (made once), or None: the SDK's path."""
        if not seams.DIRECT.ok:
            return None
        routes = cls._routes.get(client)
        if routes is None:
            routes = cls._routes[client] = {}
        route = routes.get(path)
        if route is None or route.state != client_state(client):
            # new, or the client changed
            if not seams.plain_client(client):
                return None
            route = routes[path] = cls(client, path)
        if route.http.cookies:  # the httpx client adds its cookies when it builds
            return None
        return route

    def backoff(self, retries_taken: int, response: httpx2.Response | None) -> Any:
        """The SDK's wait before the next attempt (a coroutine on an async client)."""
        return seams.sleep_for_retry(
            self.client,
            retries_taken=retries_taken,
            max_retries=self.client.max_retries,
            options=self.options,
            response=response,
        )

    def request(self, content: bytes, retries_taken: int) -> httpx2.Request:
        request = httpx2.Request(
            "POST",
            self.url,
            headers=self.headers,
            content=content,
            extensions=self.extensions,
        )
        if retries_taken:
            request.headers[RETRY_COUNT] = str(retries_taken)
        return request


def client_state(client: openai.OpenAI | openai.AsyncOpenAI) -> tuple[Any, ...]:
    """What a built request depends on that a user may change (per request, inline)."""
    headers = client._client.headers
    field = seams.BASE_URL_FIELD  # the field behind `base_url` (a slow property)
    return (
        client.api_key,
        (field.ok and client.__dict__.get(field.value)) or client.base_url,
        client.timeout,
        dict(client._custom_headers),
        list(headers._list) if seams.HEADER_LIST.ok else tuple(headers.raw),
    )


def post(route: Route[openai.OpenAI], body: dict[str, Any], raw: bool) -> Any:
    """POST `body`: what the SDK's `post` gives (`cast_to=object`, raw or not)."""
    stream = bool(body.get("stream"))
    response = send(route, seams.DUMPS.value(body), stream)  # the SDK's encoding
    if raw:
        return RawAnswer(response, SSEStream if stream else None)
    return SSEStream(response) if stream else answer(response)


async def apost(
    route: Route[openai.AsyncOpenAI], body: dict[str, Any], raw: bool
) -> Any:
    """Async `post`."""
    stream = bool(body.get("stream"))
    response = await asend(route, seams.DUMPS.value(body), stream)
    if raw:
        return RawAnswer(response, AsyncSSEStream if stream else None)
    return AsyncSSEStream(response) if stream else answer(response)


def send(route: Route[openai.OpenAI], body: bytes, stream: bool) -> httpx2.Response:
    """POST `body` with the SDK's retries; a successful response (open if `stream`).

    Raises:
        openai.APIStatusError: an error status the SDK would not (or no longer) retry.
        openai.APITimeoutError: the last attempt timed out.
        openai.APIConnectionError: the last attempt could not connect or send.
    """
    client = route.client
    max_retries = client.max_retries
    for retries_taken in range(max_retries + 1):
        request = route.request(body, retries_taken)
        retry = retries_taken < max_retries
        try:
            response = route.http.send(request, stream=stream)
        except timeout_exceptions() as e:
            if not retry:
                raise openai.APITimeoutError(request=request) from e
            response = None
        except openai.OpenAIError:
            raise
        except request_exceptions() as e:
            if not retry:
                raise openai.APIConnectionError(request=request) from e
            response = None
        else:
            if response.is_success:
                return response
            if not (retry and seams.should_retry(client, response)):
                if not response.is_closed:
                    response.read()
                raise seams.status_error(client, response) from None
            response.close()
        route.backoff(retries_taken, response)
    raise AssertionError("unreachable: the last attempt returns or raises")


async def asend(
    route: Route[openai.AsyncOpenAI], body: bytes, stream: bool
) -> httpx2.Response:
    """`send` on an async client."""
    client = route.client
    max_retries = client.max_retries
    for retries_taken in range(max_retries + 1):
        request = route.request(body, retries_taken)
        retry = retries_taken < max_retries
        try:
            response = await route.http.send(request, stream=stream)
        except timeout_exceptions() as e:
            if not retry:
                raise openai.APITimeoutError(request=request) from e
            response = None
        except openai.OpenAIError:
            raise
        except request_exceptions() as e:
            if not retry:
                raise openai.APIConnectionError(request=request) from e
            response = None
        else:
            if response.is_success:
                return response
            if not (retry and seams.should_retry(client, response)):
                if not response.is_closed:
                    await response.aread()
                raise seams.status_error(client, response) from None
            await response.aclose()
        await route.backoff(retries_taken, response)
    raise AssertionError("unreachable: the last attempt returns or raises")


def answer(response: httpx2.Response) -> Any:
    """A whole answer as the SDK parses it with `cast_to=object`."""
    content_type = response.headers.get("content-type", "*").split(";", 1)[0]
    if content_type.endswith("json"):
        return json.loads(response.content)
    return response.text


class RawAnswer:
    """What `with_raw_response.create` gives: the HTTP response, `parse()` it."""

    def __init__(self, response: httpx2.Response, stream_cls: Any = None) -> None:
        self.http_response = response
        self.headers = response.headers
        self._stream_cls = stream_cls

    def parse(self) -> Any:
        """The decoded answer, or the stream of decoded chunks."""
        if self._stream_cls is not None:
            return self._stream_cls(self.http_response)
        return answer(self.http_response)


# -- server-sent events ------------------------------------------------------------
def _stream_error(error: Any, request: httpx2.Request) -> openai.APIError:
    """An event's `error` as `openai.Stream` raises it."""
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return openai.APIError(message=message, request=request, body=error)


_DONE = b"[DONE]"


def _split(buffer: bytes, piece: bytes) -> tuple[list[bytes], bytes, bytes]:
    """`buffer + piece` (CR-free) split in three.

    The data of its leading one-line `data:` events, the bytes from the first
    other event on (for the SDK's decoder; empty if none), the unfinished rest.
    """
    *blocks, rest = (buffer + piece).split(b"\n\n")
    for i, block in enumerate(blocks):
        if not block.startswith(b"data: ") or b"\n" in block:
            odd = b"".join(block + b"\n\n" for block in blocks[i:])
            return [block[6:] for block in blocks[:i]], odd, rest
    return [block[6:] for block in blocks], b"", rest


class SSEStream:
    """Decoded JSON chunks of a streamed answer, read like `openai.Stream`.

    vLLM's events are one `data: {...}` line each, split here on blank lines with
    no per-line decoding; any other shape (several fields, comments, carriage
    returns) is read by the SDK's own `SSEDecoder` from there on.
    """

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self._iterator = self._chunks()

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> SSEStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.response.close()

    def _chunks(self) -> Iterator[Any]:
        request = self.response.request
        try:
            for batch in self._data():
                for data in batch:
                    if data.startswith(_DONE):
                        return
                    chunk = json.loads(data.decode())
                    if type(chunk) is dict and chunk.get("error"):
                        raise _stream_error(chunk["error"], request)
                    yield chunk
        except timeout_exceptions() as e:
            raise openai.APITimeoutError(request=request) from e
        except request_exceptions() as e:
            raise openai.APIConnectionError(request=request) from e
        finally:
            self.response.close()

    def _data(self) -> Iterator[list[bytes]]:
        """Events' data, a list per piece read (one generator step per piece)."""
        pieces = self.response.iter_bytes()
        buffer = b""
        for piece in pieces:
            if b"\r" in piece:
                rest = _chain(buffer, piece, pieces)
                yield from _sdk_data(seams.sse_decoder().iter_bytes(rest))
                return
            data, odd, buffer = _split(buffer, piece)
            yield data
            if odd:  # this event and all after it: the SDK's decoder
                rest = _chain(odd, buffer, pieces)
                yield from _sdk_data(seams.sse_decoder().iter_bytes(rest))
                return
        if buffer:  # an unterminated last event: what the SDK's decoder makes of it
            yield from _sdk_data(seams.sse_decoder().iter_bytes(iter([buffer])))


class AsyncSSEStream:
    """`SSEStream` of an async response."""

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self._iterator = self._chunks()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator

    async def __anext__(self) -> Any:
        return await anext(self._iterator)

    async def __aenter__(self) -> AsyncSSEStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.response.aclose()

    async def _chunks(self) -> AsyncIterator[Any]:
        request = self.response.request
        try:
            async for batch in self._data():
                for data in batch:
                    if data.startswith(_DONE):
                        # as the SDK: the rest of an HTTP/1.1 body (0.1 s at most)
                        # read, so that the connection is reused
                        if self.response.http_version == "HTTP/1.1":
                            await seams.drain(self.response)
                        return
                    chunk = json.loads(data.decode())
                    if type(chunk) is dict and chunk.get("error"):
                        raise _stream_error(chunk["error"], request)
                    yield chunk
        except timeout_exceptions() as e:
            raise openai.APITimeoutError(request=request) from e
        except request_exceptions() as e:
            raise openai.APIConnectionError(request=request) from e
        finally:
            await self.response.aclose()

    async def _data(self) -> AsyncIterator[list[bytes]]:
        pieces = self.response.aiter_bytes()
        buffer = b""
        async for piece in pieces:
            if b"\r" in piece:
                rest = _achain(buffer, piece, pieces)
                async for sse in seams.sse_decoder().aiter_bytes(rest):
                    yield [sse.data.encode()]
                return
            data, odd, buffer = _split(buffer, piece)
            yield data
            if odd:  # this event and all after it: the SDK's decoder
                rest = _achain(odd, buffer, pieces)
                async for sse in seams.sse_decoder().aiter_bytes(rest):
                    yield [sse.data.encode()]
                return
        if buffer:
            for batch in _sdk_data(seams.sse_decoder().iter_bytes(iter([buffer]))):
                yield batch


def _sdk_data(events: Iterator[Any]) -> Iterator[list[bytes]]:
    """The data of the events the SDK's decoder read (empty: not JSON, as there)."""
    for sse in events:
        yield [sse.data.encode()]


def _chain(first: bytes, second: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield second
    yield from rest


async def _achain(
    first: bytes, second: bytes, rest: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    yield first
    yield second
    async for piece in rest:
        yield piece
