"""JSON pass-through endpoints: the openai client's transport without its models.

`ChatOpenAI` calls `client.chat.completions.create(**payload)` (`OpenAI`, for text
completions, `client.create(prompt=..., **params)`). The SDK then copies the
payload LangChain already built through `maybe_transform` (a recursive TypedDict-driven
walk), builds pydantic models of the answer, and langchain-openai turns them straight
back into dicts with `model_dump`: once per response and once per stream chunk. That
was most of ChatVLLM's client overhead (docs/BENCHMARKS.md). The classes here post the
payload as JSON and hand back decoded JSON (or a stream of decoded chunk dicts), which
langchain-openai's `_generate`/`_stream` accept as they are: through the SDK's own
httpx client with the SDK's request, retries, timeouts and errors (`_direct`), or,
for per-call options and clients with more than a key, through the SDK's `post` with
`cast_to=object`. Where an instrumentation wraps the SDK's methods (`_traced`), the
payload goes through the SDK resource's own `create` instead, so that the call is
traced as `ChatOpenAI`'s are. Every vLLM class (chat, completions, embeddings,
rerank) uses these endpoints, the async one over the running event loop's client
(`_loop.LoopClient`).
"""

from __future__ import annotations

import base64
import inspect
import sys
from array import array
from collections.abc import Callable, Iterable
from typing import Any, Generic, Self, TypeVar

import openai

from langchain_vllm import _seams as seams
from langchain_vllm import _traced as traced
from langchain_vllm._direct import (
    Route,
    apost,
    post,
)
from langchain_vllm._loop import LoopClient


def keywords_of(create: Callable[..., Any]) -> frozenset[str]:
    """The keyword arguments an openai SDK `create` method accepts."""
    return frozenset(inspect.signature(create).parameters) - {"self"}


CHAT_KEYWORDS = keywords_of(openai.resources.chat.Completions.create)
COMPLETIONS_KEYWORDS = keywords_of(openai.resources.Completions.create)
EMBEDDINGS_KEYWORDS = keywords_of(openai.resources.Embeddings.create)


def check_keywords(given: Iterable[str], accepted: frozenset[str]) -> None:
    """Refuse request keywords the endpoint does not take, naming them.

    Raises:
        TypeError: a keyword the SDK's `create` would refuse too (a misspelt
            parameter must not reach the server silently, nor be blamed on it).
    """
    unknown = sorted(set(given) - accepted)
    if unknown:
        msg = (
            f"Unexpected request parameter(s) {', '.join(map(repr, unknown))}: not "
            "OpenAI API parameters nor vLLM ones. Check the spelling, or send "
            "server-specific fields in `extra_body`."
        )
        raise TypeError(msg)


ANY_KEYWORD = None
"""`accepted` of an endpoint without an SDK `create` (vLLM's own routes, e.g.
`/rerank`): every keyword is a body field."""


def split_request(
    payload: dict[str, Any],
    accepted: frozenset[str] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split `create(**payload)` keywords into the JSON body and request options.

    Raises:
        TypeError: a keyword the SDK's `create` would refuse too.
    """
    if accepted is not None:
        check_keywords(payload, accepted)
    body = dict(payload)
    body.update(body.pop("extra_body", None) or {})
    options: dict[str, Any] = {}
    headers = dict(body.pop("extra_headers", None) or {})
    if headers:
        options["headers"] = headers
    if (query := body.pop("extra_query", None)) is not None:
        options["params"] = query
    if (timeout := body.pop("timeout", None)) is not None:
        options["timeout"] = timeout
    return body, options


Client = TypeVar("Client", openai.OpenAI, openai.AsyncOpenAI)


class _Endpoint(Generic[Client]):
    """What the sync and async endpoints share: the client, path and options."""

    def __init__(
        self,
        client: Client,
        path: str,
        accepted: frozenset[str] | None,
        *,
        raw: bool = False,
    ) -> None:
        self._client: Client = client
        self._path = path
        self._accepted = accepted
        self._raw = raw

    @property
    def with_raw_response(self) -> Self:
        """The same endpoint, returning the raw HTTP response (`.parse()` it)."""
        return type(self)(self._client, self._path, self._accepted, raw=True)

    def _split(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return split_request(payload, self._accepted)

    def _raw_needs_typed(self) -> bool:
        """Whether a raw response must come from the SDK resource's own `create`.

        On the SDK's path, when the SDK's raw-response header is not known
        (`_seams.RAW_HEADER`). (Calls under an instrumentation take that path
        anyway: `_traced.instrumented`, checked per call.)
        """
        return self._path in traced.WATCHED and self._raw and seams.raw_header() is None

    def _sdk_request(
        self, body: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        """`post` keywords of the SDK's own path (per-call options, other clients)."""
        if self._raw:
            options = {**options}
            options["headers"] = {
                **options.get("headers", {}),
                seams.raw_header(): "true",
            }
        return {
            "body": body,
            "options": options,
            "cast_to": object,
            "stream": bool(body.get("stream")),
        }


class JSONEndpoint(_Endpoint[openai.OpenAI]):
    """A `client.<resource>` look-alike whose `create` returns decoded JSON.

    With `stream=True` in the payload, `create` returns an `openai.Stream` of decoded
    chunk dicts. `with_raw_response` gives the same endpoint returning the raw HTTP
    response (langchain-openai uses it for `include_response_headers`).
    """

    def create(self, **payload: Any) -> Any:
        """POST the payload as JSON; decoded JSON (or a stream of dicts) back."""
        body, options = self._split(payload)
        traced_ = traced.instrumented(self._path)
        route = None if options or traced_ else Route.of(self._client, self._path)
        if route is not None:  # the fast path: one hand-off
            return post(route, body, self._raw)
        if traced_ or self._raw_needs_typed():
            return traced.sdk_create(self._client, self._path, payload, self._raw)
        return self._client.post(  # type: ignore[call-overload]
            self._path,
            **self._sdk_request(body, options),
            stream_cls=openai.Stream[object],
        )


class AsyncJSONEndpoint(_Endpoint[openai.AsyncOpenAI]):
    """Async `JSONEndpoint`."""

    async def create(self, **payload: Any) -> Any:
        """POST the payload as JSON; decoded JSON (or a stream of dicts) back."""
        body, options = self._split(payload)
        client = self._client
        if isinstance(client, LoopClient):
            client = client.current()
        traced_ = traced.instrumented(self._path)
        route = None if options or traced_ else Route.of(client, self._path)
        if route is not None:  # the fast path: one hand-off
            return await apost(route, body, self._raw)
        if traced_ or self._raw_needs_typed():
            return await traced.asdk_create(client, self._path, payload, self._raw)
        return await client.post(  # type: ignore[call-overload]
            self._path,
            **self._sdk_request(body, options),
            stream_cls=openai.AsyncStream[object],
        )


def decode_base64_vector(text: str) -> list[float]:
    """A base64 `embedding` string of vLLM's answer as a list of floats.

    vLLM's `encoding_format="base64"` sends each vector as little-endian float32
    bytes: one `b64decode` per vector instead of parsing thousands of JSON numbers.

    Raises:
        ValueError: not base64 (`binascii.Error`), or not a whole number of float32s.
    """
    packed = base64.b64decode(text, validate=True)
    if len(packed) % 4:
        msg = f"a base64 embedding of {len(packed)} bytes is not float32s"
        raise ValueError(msg)
    floats = array("f", packed)
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tolist()


_FLOAT_ONLY = frozenset({float})
_NUMBERS = frozenset({float, int})


def embedding_floats(embedding: Any) -> list[float] | None:
    """An answer's `embedding` as a list of floats; None when it is not a vector.

    A base64 string is decoded (floats by construction). A JSON list is checked with
    one pass over its item types (C speed) rather than an `isinstance` per item: a
    list of floats is returned as it is, one with JSON integers is converted.
    Booleans and anything else that is not a number give None.

    Raises:
        ValueError: a base64 string that is not float32 bytes.
    """
    if isinstance(embedding, str):
        return decode_base64_vector(embedding)
    if not isinstance(embedding, list):
        return None
    types = set(map(type, embedding))
    if types <= _FLOAT_ONLY:
        return embedding
    if types <= _NUMBERS:
        try:
            return array("d", embedding).tolist()
        except OverflowError:  # an integer beyond float range
            return None
    if all(isinstance(x, int | float) and not isinstance(x, bool) for x in embedding):
        return [float(x) for x in embedding]  # number subclasses (not from JSON)
    return None
