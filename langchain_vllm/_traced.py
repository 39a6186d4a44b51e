"""The SDK's own resource methods, for when an instrumentation wraps them.

OpenTelemetry-style instrumentations of the openai SDK wrap its methods:
OpenInference wraps `OpenAI.request`/`AsyncOpenAI.request` (and names each span
after the response type, e.g. `ChatCompletion`), OpenTelemetry's openai-v2 and
Langfuse wrap the resources' `create` (`chat.completions.create`, ...). A wrapped
method carries `__wrapped__` (wrapt and `functools.wraps` both set it; the SDK's
own `create` does too, from its argument checks: a plain function of the SDK's own
files is never counted as a wrapper). The JSON
endpoints (`_json_client`) ask `instrumented` on every call (instrumentation may
be set up after a client was built) and, when something is wrapped, send the
payload through the SDK resource's own `create`, as `ChatOpenAI` does, so each
call shows up as it would for `ChatOpenAI`. The typed answer is handed back as the
JSON dict it was read from (`to_dict`), so everything after it is the same as on
the direct path.
"""

from __future__ import annotations

import contextlib
import os
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai

_SDK_DIR = os.path.dirname(openai.__file__) + os.sep

_REQUEST = ((openai.OpenAI, "request"), (openai.AsyncOpenAI, "request"))
_RESOURCES: dict[str, tuple[str, ...]] = {
    "/chat/completions": ("chat", "completions"),
    "/completions": ("completions",),
    "/embeddings": ("embeddings",),
}
"""The SDK resource of each endpoint path (others have no `create`)."""
_CLASSES = {
    "/chat/completions": (
        openai.resources.chat.Completions,
        openai.resources.chat.AsyncCompletions,
    ),
    "/completions": (openai.resources.Completions, openai.resources.AsyncCompletions),
    "/embeddings": (openai.resources.Embeddings, openai.resources.AsyncEmbeddings),
}
WATCHED: dict[str, tuple[tuple[type, str], ...]] = {
    path: (*_REQUEST, *((cls, "create") for cls in classes))
    for path, classes in _CLASSES.items()
}
"""The methods an instrumentation wraps, per endpoint path."""

_SEEN: dict[str, tuple[list[Any], ...]] = {
    path: tuple([owner, name, None] for owner, name in places)
    for path, places in WATCHED.items()
}
"""Per path: each watched place with the last object seen there unwrapped."""


def instrumented(path: str) -> bool:
    """Whether an instrumentation wraps an SDK method that `path`'s calls go through.

    Half a microsecond: an identity check per watched method while nothing
    changed, `__wrapped__` looked up only for an object not seen before.
    """
    for place in _SEEN.get(path, ()):
        method = getattr(place[0], place[1], None)
        if method is not place[2]:
            if _wrapper(method):
                return True
            place[2] = method
    return False


def quiet() -> contextlib.AbstractContextManager[Any]:
    """No spans for the package's own bookkeeping requests (`_link`).

    Where an instrumentation wraps the SDK's `request` (OpenInference), the model
    list, `/version` and `/tokenize` requests would show up as spans of their own
    (named `object`) that `ChatOpenAI` never makes: they run with OpenTelemetry's
    instrumentation suppressed (its public `suppress_instrumentation`).
    """
    if not any(_wrapper(getattr(cls, name, None)) for cls, name in _REQUEST):
        return contextlib.nullcontext()
    try:
        from opentelemetry.instrumentation.utils import suppress_instrumentation
    except ImportError:
        return contextlib.nullcontext()
    return suppress_instrumentation()


def _wrapper(method: Any) -> bool:
    """Whether `method` wraps another and is not the SDK's own function."""
    if getattr(method, "__wrapped__", None) is None:
        return False
    return not (
        type(method) is types.FunctionType
        and method.__code__.co_filename.startswith(_SDK_DIR)
    )


def resource(client: Any, path: str) -> Any:
    """The SDK resource of `path` on `client` (`client.chat.completions`, ...)."""
    target = client
    for step in _RESOURCES[path]:
        target = getattr(target, step)
    return target


def to_dict(answer: Any) -> Any:
    """A typed SDK answer as the JSON it was read from (fields the server sent)."""
    if isinstance(answer, openai.BaseModel):
        return answer.to_dict(warnings=False)  # base64 vectors are strings
    return answer


class DictStream:
    """An SDK stream whose typed chunks come out as JSON dicts."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.response = getattr(stream, "response", None)

    def __iter__(self) -> Iterator[Any]:
        for chunk in self.stream:
            yield to_dict(chunk)

    def __enter__(self) -> DictStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the SDK stream (and its HTTP response)."""
        self.stream.close()


class AsyncDictStream:
    """An async SDK stream whose typed chunks come out as JSON dicts."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.response = getattr(stream, "response", None)

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for chunk in self.stream:
            yield to_dict(chunk)

    async def __aenter__(self) -> AsyncDictStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the SDK stream (and its HTTP response)."""
        await self.stream.close()


def typed_answer(answer: Any, stream: bool, *, is_async: bool) -> Any:
    """The SDK's typed answer (or stream) as the JSON endpoints give theirs."""
    if stream:
        return AsyncDictStream(answer) if is_async else DictStream(answer)
    return to_dict(answer)


class TypedRawAnswer:
    """`with_raw_response` of the SDK's resource: `parse()` gives JSON dicts."""

    def __init__(self, raw: Any, stream: bool, *, is_async: bool) -> None:
        self.raw = raw
        self.http_response = raw.http_response
        self.headers = raw.headers
        self._stream = stream
        self._async = is_async

    def parse(self) -> Any:
        """The decoded answer, or the stream of decoded chunks."""
        return typed_answer(self.raw.parse(), self._stream, is_async=self._async)


def sdk_create(client: Any, path: str, payload: dict[str, Any], raw: bool) -> Any:
    """`create(**payload)` through the SDK resource (sync), JSON dicts back."""
    target = resource(client, path)
    stream = bool(payload.get("stream"))
    if raw:
        answer = target.with_raw_response.create(**payload)
        return TypedRawAnswer(answer, stream, is_async=False)
    return typed_answer(target.create(**payload), stream, is_async=False)


async def asdk_create(
    client: Any, path: str, payload: dict[str, Any], raw: bool
) -> Any:
    """Async `sdk_create`."""
    target = resource(client, path)
    stream = bool(payload.get("stream"))
    if raw:
        answer = await target.with_raw_response.create(**payload)
        return TypedRawAnswer(answer, stream, is_async=True)
    return typed_answer(await target.create(**payload), stream, is_async=True)
