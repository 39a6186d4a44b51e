"""Live: under an openai instrumentation ChatVLLM's spans equal ChatOpenAI's.

Both models talk to the rig's chat server; the spans go to an in-memory OpenTelemetry
exporter. invoke, stream, ainvoke and astream must each give the span ChatOpenAI's
give (`ChatCompletion`), with nothing more (ChatVLLM's own bookkeeping requests,
such as the model list fetched for its profile, make no span).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from langchain_vllm import ChatVLLM

ARGS: dict[str, Any] = {"temperature": 0, "max_tokens": 8}


@pytest.fixture(scope="module")
def served(chat_url: str) -> str:
    """The chat server's model name (ChatOpenAI needs one)."""
    return openai.OpenAI(base_url=chat_url, api_key="EMPTY").models.list().data[0].id


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        instrumentor.uninstrument()


def span_names_per_call(model: Any, exporter: InMemorySpanExporter) -> dict[str, Any]:
    """Each call's span names, and that each call answered.

    The async calls share one event loop (ChatOpenAI's async client keeps its
    connections on the loop of its first call).
    """
    out: dict[str, Any] = {}

    def record(name: str, text: str) -> None:
        assert text, f"{name}: no answer"
        out[name] = [span.name for span in exporter.get_finished_spans()]
        exporter.clear()

    exporter.clear()
    record("invoke", model.invoke("Say hi").text)
    record("stream", "".join(chunk.text for chunk in model.stream("Say hi")))

    async def run_async() -> None:
        record("ainvoke", (await model.ainvoke("Say hi")).text)
        chunks = [chunk.text async for chunk in model.astream("Say hi")]
        record("astream", "".join(chunks))

    asyncio.run(run_async())
    return out


def test_chatvllm_spans_equal_chatopenai(
    chat_url: str, served: str, spans: InMemorySpanExporter
) -> None:
    theirs = ChatOpenAI(model=served, base_url=chat_url, api_key="EMPTY", **ARGS)  # type: ignore[arg-type]
    ours = ChatVLLM(model=served, base_url=chat_url, **ARGS)
    expected = span_names_per_call(theirs, spans)
    names = ["invoke", "stream", "ainvoke", "astream"]
    assert expected == {name: ["ChatCompletion"] for name in names}
    assert span_names_per_call(ours, spans) == expected
