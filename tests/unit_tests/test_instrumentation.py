"""openai instrumentations see ChatVLLM's calls as they see ChatOpenAI's (no network).

OpenInference's openai instrumentation wraps `OpenAI.request`/`AsyncOpenAI.request`
and names each span after the response type; OpenTelemetry's openai-v2 and
Langfuse wrap the resources' `create` with wrapt. Both kinds are installed here
over recorded HTTP (the fake server's MockTransport) and the spans (or wrapped
calls) of ChatVLLM, VLLMOpenAI and VLLMEmbeddings compared with those of
langchain-openai's own classes, for invoke, stream, ainvoke and astream. Without an
instrumentation, ChatVLLM keeps its direct path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import openinference.instrumentation.openai as oi
import opentelemetry.sdk.trace as otel_sdk
import pytest
import wrapt
from langchain_openai import ChatOpenAI, OpenAI, OpenAIEmbeddings
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI
from langchain_vllm import _traced as traced
from langchain_vllm._direct import Route
from tests.unit_tests.fake_vllm import BASE_URL, FakeVLLM, RawFakeVLLM, sse
from tests.unit_tests.test_responses import recorded

MODEL = "smollm2"


def clients(fake: FakeVLLM) -> dict[str, Any]:
    return {
        "http_client": fake.sync_client(),
        "http_async_client": fake.async_client(),
        "max_retries": 0,
    }


def chat_pair(fake: FakeVLLM) -> tuple[Any, Any]:
    """ChatOpenAI and ChatVLLM on the same fake server and model."""
    theirs = ChatOpenAI(model=MODEL, api_key="x", base_url=BASE_URL, **clients(fake))  # type: ignore[arg-type]
    ours = ChatVLLM(model=MODEL, base_url=BASE_URL, **clients(fake))
    return theirs, ours


def calls(model: Any) -> list[Any]:
    """invoke, stream, ainvoke, astream: what each gave."""

    async def astream() -> list[Any]:
        return [chunk async for chunk in model.astream("Hi")]

    return [
        model.invoke("Hi"),
        list(model.stream("Hi")),
        asyncio.run(model.ainvoke("Hi")),
        asyncio.run(astream()),
    ]


def embedding_calls(model: Any) -> list[Any]:
    return [model.embed_query("Hi"), asyncio.run(model.aembed_documents(["a", "b"]))]


@contextlib.contextmanager
def openinference() -> Iterator[InMemorySpanExporter]:
    """OpenInference's openai instrumentation, spans kept in memory."""
    exporter = InMemorySpanExporter()
    provider = otel_sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = oi.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with openinference() as exporter:
        yield exporter


def span_names(exporter: InMemorySpanExporter, run: Callable[[], Any]) -> list[str]:
    exporter.clear()
    run()
    return [span.name for span in exporter.get_finished_spans()]


def test_openinference_spans_of_chat_equal_chatopenai(
    spans: InMemorySpanExporter,
) -> None:
    fake = FakeVLLM()
    theirs, ours = chat_pair(fake)
    expected = span_names(spans, lambda: calls(theirs))
    assert expected == ["ChatCompletion"] * 4
    assert span_names(spans, lambda: calls(ours)) == expected
    # the profile's model list, fetched after the first async call: no span
    assert fake.paths().count("GET /v1/models") == 1
    headers = ChatVLLM(
        model=MODEL,
        base_url=BASE_URL,
        include_response_headers=True,
        **clients(FakeVLLM()),
    )
    assert span_names(spans, lambda: calls(headers)) == expected


def test_openinference_spans_of_completions_and_embeddings(
    spans: InMemorySpanExporter,
) -> None:
    fake = FakeVLLM()
    theirs = OpenAI(model=MODEL, api_key="x", base_url=BASE_URL, **clients(fake))  # type: ignore[call-arg]
    ours = VLLMOpenAI(model=MODEL, base_url=BASE_URL, **clients(fake))
    expected = span_names(spans, lambda: calls(theirs))
    assert expected == ["Completion"] * 4
    assert span_names(spans, lambda: calls(ours)) == expected
    where: dict[str, Any] = {"base_url": BASE_URL, **clients(fake)}
    key: dict[str, Any] = {"api_key": "x"}
    their_emb = OpenAIEmbeddings(
        model=MODEL, check_embedding_ctx_length=False, **where, **key
    )
    our_emb = VLLMEmbeddings(model=MODEL, **where)
    expected = span_names(spans, lambda: embedding_calls(their_emb))
    assert expected == ["CreateEmbeddings"] * 2
    assert span_names(spans, lambda: embedding_calls(our_emb)) == expected


def test_answers_are_the_same_with_and_without_instrumentation() -> None:
    def dumps(model: Any) -> list[Any]:
        out = calls(model)
        messages = [out[0], *out[1], out[2], *out[3]]
        return [m.model_dump(exclude={"id"}) for m in messages]

    fake = FakeVLLM()
    plain = dumps(chat_pair(fake)[1])
    with openinference() as exporter:
        traced_dumps = dumps(chat_pair(fake)[1])
    assert traced_dumps == plain
    assert len(exporter.get_finished_spans()) == 4


@pytest.fixture
def wrapped_create() -> Iterator[list[str]]:
    """`chat.completions.create` wrapped with wrapt, as openai-v2 and Langfuse do."""
    seen: list[str] = []

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(type(instance).__name__)
        return wrapped(*args, **kwargs)

    module = "openai.resources.chat.completions"
    originals = {
        name: vars(getattr(openai.resources.chat, name))["create"]
        for name in ("Completions", "AsyncCompletions")
    }
    for name in originals:
        wrapt.wrap_function_wrapper(module, f"{name}.create", wrapper)
    try:
        yield seen
    finally:
        for name, original in originals.items():
            getattr(openai.resources.chat, name).create = original


def test_wrapped_resource_methods_see_chat_calls(wrapped_create: list[str]) -> None:
    theirs, ours = chat_pair(FakeVLLM())
    calls(theirs)
    expected = list(wrapped_create)
    assert expected == ["Completions", "Completions"] + ["AsyncCompletions"] * 2
    wrapped_create.clear()
    calls(ours)
    assert wrapped_create == expected


def test_without_instrumentation_chat_goes_direct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path stays: no SDK `create` and no `post` for a plain call."""
    assert not traced.instrumented("/chat/completions")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the SDK's path was taken")

    monkeypatch.setattr(openai.OpenAI, "post", refuse)
    monkeypatch.setattr(openai.AsyncOpenAI, "post", refuse)
    _, ours = chat_pair(FakeVLLM())
    assert [m.text for m in calls(ours)[::2]] == ["Hello!", "Hello!"]
    assert Route.of(ours.root_client, "/chat/completions") is not None


def test_instrumentation_set_up_after_the_model_is_seen() -> None:
    """The check runs per call: wrapping after the first call is seen by the next."""
    fake = FakeVLLM()
    _, ours = chat_pair(fake)
    ours.invoke("Hi")
    assert not traced.instrumented("/chat/completions")
    seen: list[str] = []

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append("create")
        return wrapped(*args, **kwargs)

    cls = openai.resources.chat.Completions
    original = vars(cls)["create"]
    wrapt.wrap_function_wrapper(cls, "create", wrapper)
    try:
        assert traced.instrumented("/chat/completions")
        assert not traced.instrumented("/rerank")  # no SDK resource: never
        assert ours.invoke("Hi").text == "Hello!"
    finally:
        setattr(cls, "create", original)  # noqa: B010 - a method, put back
    assert seen == ["create"]
    assert not traced.instrumented("/chat/completions")  # unwrapped again


def test_sdk_own_argument_check_wrapper_is_not_an_instrumentation() -> None:
    create = vars(openai.resources.chat.Completions)["create"]
    assert getattr(create, "__wrapped__", None) is not None  # the SDK's own
    assert not traced._wrapper(create)


def one_call(model: Any, step: str) -> str:
    """One of invoke, stream, ainvoke, astream: the answer's text."""
    if step == "invoke":
        return str(model.invoke("Hi").text)
    if step == "stream":
        return "".join(chunk.text for chunk in model.stream("Hi"))
    if step == "ainvoke":
        return str(asyncio.run(model.ainvoke("Hi")).text)

    async def astream() -> str:
        return "".join([chunk.text async for chunk in model.astream("Hi")])

    return asyncio.run(astream())


def test_openinference_spans_of_the_responses_api(
    spans: InMemorySpanExporter,
) -> None:
    """`use_responses_api=True`: the SDK's `responses.create`, as ChatOpenAI."""
    events = recorded("text")

    def names(make: Callable[[RawFakeVLLM], Any]) -> list[tuple[str, list[str]]]:
        out = []
        for step in ("invoke", "stream", "ainvoke", "astream"):
            fake = RawFakeVLLM()
            if step.endswith("stream"):
                answer = sse(*events, done=False)
                fake.raw["/responses"] = (200, "text/event-stream", answer)
            else:
                answer = json.dumps(events[-1]["response"]).encode()
                fake.raw["/responses"] = (200, "application/json", answer)
            model = make(fake)
            spans.clear()
            text = one_call(model, step)
            out.append((text, [span.name for span in spans.get_finished_spans()]))
        return out

    def theirs(fake: RawFakeVLLM) -> Any:
        kw = clients(fake)
        return ChatOpenAI(  # type: ignore[call-arg]
            model=MODEL, api_key="x", base_url=BASE_URL, use_responses_api=True, **kw
        )

    def ours(fake: RawFakeVLLM) -> Any:
        kw = clients(fake)
        return ChatVLLM(model=MODEL, base_url=BASE_URL, use_responses_api=True, **kw)

    expected = names(theirs)
    assert expected == [("I'm glad to", ["Response"])] * 4
    assert names(ours) == expected
