"""What langchain_vllm relies on in `openai` and `langchain-openai` (no network).

`_json_client` posts through the SDK's private-ish transport and swaps langchain-
openai's `client`/`async_client` for JSON endpoints; `chat_models` overrides hooks
that langchain-openai calls from its own code. None of that is public API, so a new
release can break it without an error at import. Each test here covers one group of
assumptions and says, when it fails, which package changed and what depends on it.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import inspect
import json
import textwrap
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import httpx2
import openai
import pytest
from langchain_openai import OpenAI, OpenAIEmbeddings
from langchain_openai.chat_models import base as openai_chat
from langchain_openai.chat_models.base import BaseChatOpenAI, ChatOpenAI
from openai.types.responses import ResponseReasoningTextDeltaEvent

from langchain_vllm import ChatVLLM, VLLMEmbeddings
from langchain_vllm import _seams as seams
from langchain_vllm._json_client import (
    CHAT_KEYWORDS,
    EMBEDDINGS_KEYWORDS,
    AsyncJSONEndpoint,
    JSONEndpoint,
)
from langchain_vllm._responses import ResponsesEvents

BASE_URL = "http://vllm.test/v1"
OPENAI = f"openai {openai.__version__}"
LC_OPENAI = f"langchain-openai {version('langchain-openai')}"


def _compact(text: str) -> str:
    return "".join(text.split())


def _missing_calls(func: Callable[..., Any], *calls: str) -> list[str]:
    """The calls (whitespace ignored) that `func`'s source no longer contains."""
    source = _compact(inspect.getsource(func))
    return [call for call in calls if _compact(call) not in source]


def _params(func: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(func).parameters)


def _answer(request: httpx2.Request) -> httpx2.Response:
    body = json.loads(request.content)
    if body.get("stream"):
        events = [f"data: {json.dumps({'n': i})}\n\n" for i in range(2)]
        return httpx2.Response(
            200,
            content="".join([*events, "data: [DONE]\n\n"]).encode(),
            headers={"content-type": "text/event-stream"},
        )
    return httpx2.Response(200, json={"echo": body}, headers={"x-test": "1"})


def test_openai_transport_json_pass_through() -> None:
    """`_json_client`: `post(body, options, cast_to=object, stream, stream_cls)`."""
    for cls in (openai.OpenAI, openai.AsyncOpenAI):
        missing = {"body", "options", "cast_to", "stream", "stream_cls"} - set(
            _params(cls.post)
        )
        assert not missing, (
            f"{OPENAI} changed {cls.__name__}.post: no {sorted(missing)} keyword(s); "
            "langchain_vllm._json_client posts chat/embeddings payloads through it."
        )
    assert {"cast_to"} <= set(_params(openai.OpenAI.get)), (
        f"{OPENAI} changed OpenAI.get: no `cast_to`; langchain_vllm._link "
        "reads /v1/models and /version with get(url, cast_to=object)."
    )
    assert isinstance(seams.raw_header(), str), (
        f"{OPENAI} removed openai._constants.RAW_RESPONSE_HEADER; "
        "langchain_vllm._json_client sets it for `with_raw_response`."
    )

    client = openai.OpenAI(
        api_key="x",
        base_url=BASE_URL,
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(_answer)),
    )
    endpoint = JSONEndpoint(client, "/chat/completions", CHAT_KEYWORDS)
    what = (
        "langchain_vllm._json_client relies on post(cast_to=object) returning "
        "decoded JSON, stream_cls=openai.Stream[object] yielding decoded chunk "
        "dicts (as a context manager), and RAW_RESPONSE_HEADER giving a raw "
        "response with .parse() and .headers"
    )
    # Per-call headers take the SDK's own path (`_direct` takes the others).
    sdk = {"extra_headers": {"x-per-call": "1"}}
    answer = endpoint.create(model="m", **sdk)
    assert answer == {"echo": {"model": "m"}}, f"{OPENAI}: {what}"
    with endpoint.create(model="m", stream=True, **sdk) as stream:
        assert isinstance(stream, openai.Stream), f"{OPENAI}: {what}"
        assert list(stream) == [{"n": 0}, {"n": 1}], f"{OPENAI}: {what}"
    raw = endpoint.with_raw_response.create(model="m", **sdk)
    assert raw.parse() == {"echo": {"model": "m"}}, f"{OPENAI}: {what}"
    assert raw.headers["x-test"] == "1", f"{OPENAI}: {what}"

    async def run() -> tuple[Any, list[Any]]:
        async_client = openai.AsyncOpenAI(
            api_key="x",
            base_url=BASE_URL,
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(_answer)),
        )
        endpoint = AsyncJSONEndpoint(async_client, "/chat/completions", CHAT_KEYWORDS)
        answer = await endpoint.create(model="m", **sdk)
        async with await endpoint.create(model="m", stream=True, **sdk) as stream:
            assert isinstance(stream, openai.AsyncStream), f"{OPENAI}: {what}"
            chunks = [chunk async for chunk in stream]
        await async_client.close()
        return answer, chunks

    answer, chunks = asyncio.run(run())
    assert answer == {"echo": {"model": "m"}}, f"{OPENAI} (async): {what}"
    assert chunks == [{"n": 0}, {"n": 1}], f"{OPENAI} (async): {what}"


def test_openai_create_keywords_cover_what_we_send() -> None:
    """`split_request` refuses keywords the SDK's `create` does not declare."""
    chat = ChatVLLM(
        model="m",
        base_url=BASE_URL,
        http_socket_options=(),  # no probe socket (blocked in unit tests)
        temperature=0.1,
        top_p=0.9,
        max_tokens=5,
        presence_penalty=0.1,
        frequency_penalty=0.1,
        seed=1,
        n=1,
        logprobs=True,
        top_logprobs=2,
        logit_bias={"1": 1},
        stop=["x"],
        reasoning_effort="low",
        top_k=3,
    )
    payload = chat._get_request_payload(
        "hi",
        stream=True,
        stream_options={"include_usage": True},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice="required",  # "auto" beside a schema asks /version
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
        extra_headers={"X-A": "b"},
        extra_query={"q": "1"},
        timeout=3.0,
    )
    missing = sorted(set(payload) - CHAT_KEYWORDS)
    assert not missing, (
        f"{OPENAI} changed openai.resources.chat.Completions.create: it no longer "
        f"takes {missing}, which ChatVLLM sends (langchain_vllm._json_client "
        "derives the accepted keywords from that signature)."
    )
    embeddings = VLLMEmbeddings(model="m", openai_api_base=BASE_URL, dimensions=4)
    params = embeddings._request_params("m", {"extra_headers": {}, "timeout": 2})
    missing = sorted({"input", *params} - EMBEDDINGS_KEYWORDS)
    assert not missing, (
        f"{OPENAI} changed openai.resources.Embeddings.create: it no longer takes "
        f"{missing}, which VLLMEmbeddings sends."
    )


def test_langchain_openai_sends_chat_through_client_create() -> None:
    """ChatVLLM swaps `client`/`async_client` for JSON endpoints: only their
    `create` and `with_raw_response.create` may be called, with the payload."""
    expected: dict[Callable[..., Any], tuple[str, ...]] = {
        BaseChatOpenAI._generate: (
            "self.client.with_raw_response.create(**payload)",
            "raw_response.parse()",
            "self._create_chat_result(response",
        ),
        BaseChatOpenAI._agenerate: (
            "self.async_client.with_raw_response.create(**payload)",
            "raw_response.parse()",
            "self._create_chat_result",
        ),
        BaseChatOpenAI._stream: (
            "self.client.create(**payload)",
            "self.client.with_raw_response.create(**payload)",
            "if not isinstance(chunk, dict)",
            "self._convert_chunk_to_generation_chunk(",
        ),
        BaseChatOpenAI._astream: (
            "self.async_client.create(**payload)",
            "self.async_client.with_raw_response.create(**payload)",
            "if not isinstance(chunk, dict)",
            "self._convert_chunk_to_generation_chunk(",
        ),
        ChatOpenAI._stream: ("self._use_responses_api(", "super()._stream("),
        ChatOpenAI._astream: ("self._use_responses_api(", "super()._astream("),
    }
    for method, calls in expected.items():
        missing = _missing_calls(method, *calls)
        assert not missing, (
            f"{LC_OPENAI} changed {method.__qualname__}: it no longer does "
            f"{missing}. ChatVLLM replaces `client`/`async_client` with "
            "langchain_vllm._json_client endpoints (only `create` and "
            "`with_raw_response.create`, returning dicts) and relies on the chat "
            "completions path calling exactly those, then its overridden hooks."
        )
    fields = {"client", "async_client", "root_client", "root_async_client"}
    missing_fields = sorted(fields - set(BaseChatOpenAI.model_fields))
    assert not missing_fields, (
        f"{LC_OPENAI} dropped BaseChatOpenAI fields {missing_fields}, which "
        "ChatVLLM reads and replaces (langchain_vllm.chat_models)."
    )


def test_langchain_openai_response_format_path() -> None:
    """With `response_format` in the payload langchain-openai bypasses `client`
    and uses the SDK's typed parse/stream helpers on the root clients."""
    expected: dict[Callable[..., Any], tuple[str, ...]] = {
        BaseChatOpenAI._generate: (
            "self.root_client.chat.completions.with_raw_response.parse(**payload)",
        ),
        BaseChatOpenAI._agenerate: (
            "self.root_async_client.chat.completions.with_raw_response.parse(",
        ),
        BaseChatOpenAI._stream: ("self.root_client.beta.chat.completions.stream(",),
        BaseChatOpenAI._astream: (
            "self.root_async_client.beta.chat.completions.stream(",
        ),
    }
    for method, calls in expected.items():
        missing = _missing_calls(method, *calls)
        assert not missing, (
            f"{LC_OPENAI} changed {method.__qualname__}'s `response_format` path: "
            f"no {missing}. ChatVLLM keeps real openai clients in "
            "`root_client`/`root_async_client` for it, and its _create_chat_result "
            "accepts the typed (openai.BaseModel) response it returns."
        )
    for client in (
        openai.OpenAI(api_key="x", base_url=BASE_URL),
        openai.AsyncOpenAI(api_key="x", base_url=BASE_URL),
    ):
        name = type(client).__name__
        completions = client.chat.completions
        assert callable(getattr(completions.with_raw_response, "parse", None)), (
            f"{OPENAI} removed {name}.chat.completions.with_raw_response.parse, "
            "used by langchain-openai (and so ChatVLLM) for `response_format`."
        )
        assert callable(getattr(client.beta.chat.completions, "stream", None)), (
            f"{OPENAI} removed {name}.beta.chat.completions.stream, used by "
            "langchain-openai (and so ChatVLLM) to stream with `response_format`."
        )
    assert isinstance(openai.BaseModel, type), (
        f"{OPENAI} removed openai.BaseModel; ChatVLLM._create_chat_result checks "
        "typed responses against it."
    )


@pytest.mark.parametrize(
    "name",
    [
        "_convert_chunk_to_generation_chunk",
        "_create_chat_result",
        "_get_request_payload",
        "_use_responses_api",
        "_get_ls_params",
        "_generate",
        "_agenerate",
        "_stream",
        "_astream",
    ],
)
def test_langchain_openai_hook_signatures(name: str) -> None:
    """ChatVLLM's overrides of hooks langchain-openai calls from its own code."""
    parent = getattr(BaseChatOpenAI, name)
    theirs = [p for p in _params(parent) if p not in {"stream_usage"}]
    ours = _params(getattr(ChatVLLM, name))
    if name in {"_generate", "_agenerate", "_stream", "_astream"}:
        # One override for chat and completions (langchain_vllm._client): the
        # input is passed positionally by LangChain, the rest by keyword.
        theirs, ours = theirs[2:], ours[2:]  # after self and the input
    assert theirs == ours, (
        f"{LC_OPENAI} changed BaseChatOpenAI.{name}{inspect.signature(parent)}; "
        f"ChatVLLM overrides it as {name}{inspect.signature(getattr(ChatVLLM, name))}"
        " and calls super() with those arguments (langchain_vllm.chat_models)."
    )


def test_openai_internals_of_direct_requests() -> None:
    """`_direct`: the SDK's request builder, retry helpers and client fields."""
    from langchain_vllm._direct import Route
    from langchain_vllm._seams import SDK_ONLY

    needed = (
        "_build_request",
        "_should_retry",
        "_sleep_for_retry",
        "_make_status_error_from_response",
        "_client",
        "_base_url",
        "_custom_headers",
        "_strict_response_validation",
        *SDK_ONLY,
    )
    clients: list[Any] = [
        openai.OpenAI(api_key="x", base_url=BASE_URL),
        openai.AsyncOpenAI(api_key="x", base_url=BASE_URL),
    ]
    for client in clients:
        cls = type(client)
        missing = [name for name in needed if not hasattr(client, name)]
        assert not missing, (
            f"{OPENAI} changed {cls.__name__}: no {missing}. langchain_vllm._direct "
            "builds each route's request with `_build_request`, retries with "
            "`_should_retry`/`_sleep_for_retry`, raises the status errors of "
            "`_make_status_error_from_response`, and checks these fields to keep "
            "clients with more than a key on the SDK's path."
        )
        route = Route.of(client, "/chat/completions")
        assert route is not None
        assert route.headers["authorization"] == "Bearer x", (
            f"{OPENAI}: `_build_request` no longer adds the key's header."
        )
    assert isinstance(getattr(httpx2.Headers(), "_list", None), list), (
        "httpx2 changed Headers: no `_list`; langchain_vllm._direct compares it to "
        "see a client's headers changed (it falls back to `Headers.raw`, slower)."
    )


@pytest.mark.parametrize("seam", seams.SEAMS, ids=lambda seam: seam.name)
def test_upstream_seam_holds(seam: seams.Seam, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each private upstream name of `langchain_vllm._seams` is there, as expected.

    A failure here is a warning, not a broken install: the package takes the
    seam's public path (slower) with one debug log line. Adapt `_seams` to the new
    release (or drop the seam) to get the fast path back.
    """
    monkeypatch.setattr(seam, "_value", seams.UNCHECKED)  # checked again here
    assert seam.ok, (
        f"{OPENAI}, {LC_OPENAI}: the upstream seam {seam.name} is missing or "
        f"changed (see the `langchain_vllm` debug log). The package now takes the "
        f"public path ({seam.public}): correct, but slower."
    )


def test_client_plumbing_of_link() -> None:
    """`_link.ServerLink`, `VLLMOpenAI` and `VLLMEmbeddings` client handling."""
    http = openai.DefaultAsyncHttpxClient(
        limits=httpx2.Limits(max_connections=8, max_keepalive_connections=8)
    )
    assert isinstance(http, httpx2.AsyncClient), (
        f"{OPENAI}: DefaultAsyncHttpxClient(limits=httpx2.Limits(...)) is no longer "
        "an httpx2.AsyncClient; langchain_vllm._link builds one per event loop."
    )
    template = openai.AsyncOpenAI(api_key="x", base_url=BASE_URL)
    copied = template.copy(http_client=http)
    assert isinstance(copied, openai.AsyncOpenAI), (
        f"{OPENAI} changed AsyncOpenAI.copy(http_client=...); langchain_vllm."
        "_link copies the template client onto each loop's HTTP client."
    )
    assert copied._client is http, (
        f"{OPENAI}: AsyncOpenAI.copy(http_client=...) no longer uses the given "
        "client; langchain_vllm._link relies on it for per-loop pools."
    )
    assert template.completions._client is template, (
        f"{OPENAI}: resources no longer keep their client in `._client`; "
        "VLLMOpenAI/VLLMEmbeddings read it from langchain-openai's `client`."
    )
    for cls in (OpenAI, OpenAIEmbeddings):
        model = cls(model="m", api_key="x", base_url=BASE_URL)  # type: ignore[call-arg]
        for attr in ("client", "async_client"):
            root = getattr(getattr(model, attr), "_client", None)
            assert isinstance(root, openai.OpenAI | openai.AsyncOpenAI), (
                f"{LC_OPENAI}: {cls.__name__}.{attr} is no longer an openai "
                "resource (`openai.OpenAI(...).<resource>`); langchain_vllm.llms "
                "and .embeddings take the root client from its `._client`."
            )
    asyncio.run(http.aclose())


# langchain_vllm._responses forks langchain-openai's Responses stream readers: the
# parent's converter drops vLLM's `response.reasoning_text.delta` events and the
# readers offer no hook to add them. The fork follows the readers as they were in
# this release; the hashes (sha256, first 16 hex digits) are of their source with
# whitespace removed.
RESPONSES_READERS_SEEN_IN = "langchain-openai 1.8.1"
RESPONSES_READERS_SHA256 = {
    "_stream_responses": "82a046e8a31056df",
    "_astream_responses": "e530a82e64c7b02f",
}
RESPONSES_CONVERTER_PARAMS = list(seams.RESPONSES_CONVERTER_PARAMS)
FORK = (
    "langchain_vllm._responses forks the parent's Responses stream readers "
    "(ResponsesAPI._stream_responses/_astream_responses, ResponsesEvents.chunk)"
)


def _converter_keywords(
    func: Callable[..., Any],
    name: str = "_convert_responses_chunk_to_generation_chunk",
) -> set[str]:
    """The keywords `func` passes to the converter (called by `name`)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return {
        keyword.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == name
        for keyword in node.keywords
        if keyword.arg is not None
    }


def test_responses_stream_fork_passes_the_parents_converter_state() -> None:
    """The fork threads the same per-stream state into the converter as the parent."""
    ours = _converter_keywords(ResponsesEvents.chunk, "convert")  # from _seams
    for name in RESPONSES_READERS_SHA256:
        theirs = _converter_keywords(getattr(BaseChatOpenAI, name))
        assert theirs, f"{LC_OPENAI}: BaseChatOpenAI.{name} calls no converter"
        assert theirs == ours, (
            f"{LC_OPENAI}: BaseChatOpenAI.{name} passes {sorted(theirs)} to "
            "_convert_responses_chunk_to_generation_chunk, ResponsesEvents.chunk "
            f"passes {sorted(ours)}. {FORK}: give it the missing state "
            f"({sorted(theirs - ours)}) as the parent does, or drop what the "
            f"parent dropped ({sorted(ours - theirs)})."
        )


def test_responses_stream_fork_follows_the_parents_readers() -> None:
    """Fails on any change to the parent's readers or the converter's parameters:
    re-read them against the fork, then record the new values here."""
    converter = openai_chat._convert_responses_chunk_to_generation_chunk
    assert _params(converter) == RESPONSES_CONVERTER_PARAMS, (
        f"{LC_OPENAI} changed _convert_responses_chunk_to_generation_chunk"
        f"{inspect.signature(converter)} (last checked: {RESPONSES_READERS_SEEN_IN}). "
        f"{FORK} and calls it: pass any new per-stream state as the parent's "
        "readers do, then record the new parameter list in "
        "langchain_vllm._seams.RESPONSES_CONVERTER_PARAMS (until then ChatVLLM "
        "streams Responses through the parent's readers, without reasoning text)."
    )
    for name, recorded in RESPONSES_READERS_SHA256.items():
        source = _compact(inspect.getsource(getattr(BaseChatOpenAI, name)))
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        assert digest == recorded, (
            f"{LC_OPENAI} changed BaseChatOpenAI.{name} (source hash {digest}, "
            f"recorded {recorded} from {RESPONSES_READERS_SEEN_IN}). {FORK}: diff "
            "the parent's reader against the fork and carry over what applies to "
            "vLLM (converter state, first-chunk metadata, client checks, error "
            "handling, chunk timeouts); then record the new hash and version in "
            "RESPONSES_READERS_SHA256 and RESPONSES_READERS_SEEN_IN."
        )
    # The reason for the fork; also that ChatOpenAI still routes to these readers
    # through super(), past ResponsesAPI (which is why it overrides _stream too).
    delta = ResponseReasoningTextDeltaEvent(
        type="response.reasoning_text.delta",
        content_index=0,
        delta="hm",
        item_id="rs_1",
        output_index=0,
        sequence_number=3,
    )
    *_, chunk = converter(delta, 0, 0, 0)
    assert chunk is None, (
        f"{LC_OPENAI}'s converter now reads response.reasoning_text.delta. {FORK} "
        "only to stream vLLM's reasoning text: check whether the parent's readers "
        "now carry it, and if so drop the fork (ResponsesAPI._stream/_astream and "
        "_stream_responses/_astream_responses)."
    )
    missing = _missing_calls(ChatOpenAI._stream, "super()._stream_responses(")
    missing += _missing_calls(ChatOpenAI._astream, "super()._astream_responses(")
    assert not missing, (
        f"{LC_OPENAI} changed how ChatOpenAI routes Responses streams: no "
        f"{missing}. ResponsesAPI._stream/_astream route to the fork themselves."
    )
