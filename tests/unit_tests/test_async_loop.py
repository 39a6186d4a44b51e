"""Async paths never block the event loop: profile, discovery, version, errors.

A slow double of the server (each answer 200 ms late) and a ticker task that wakes
every millisecond: a blocking request would stop the ticker for the whole delay.
The sync client records any use (`fake.blocking`): async paths must make none.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest
from langchain_core.documents import Document

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI, VLLMRerank
from tests.unit_tests.fake_vllm import BASE_URL, FakeVLLM

DELAY = 0.5
"""Seconds each answer of the slow server takes."""
MAX_GAP = DELAY / 2
"""Longest pause of the ticker during a model call that counts as "kept ticking":
a blocking request stalls it for DELAY; LangChain's own CPU work between awaits
(callbacks, payloads: up to ~30 ms on an idle machine, 120 ms seen beside a test
suite and a CPU burner) stays well below."""
READ_GAP = MAX_GAP
"""Longest pause during a profile read (no request: ~1 ms on an idle machine; a
blocking request would stall it for DELAY)."""


def slow_kwargs(fake: FakeVLLM) -> dict[str, Any]:
    """Clients for `fake` whose answers take DELAY; the sync one must not be used."""

    def sync_handler(request: httpx2.Request) -> httpx2.Response:
        fake.blocking.append(f"{request.method} {request.url.path}")  # type: ignore[attr-defined]
        time.sleep(DELAY)
        return fake.handler(request)

    async def async_handler(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(DELAY)
        return fake.handler(request)

    fake.blocking = []  # type: ignore[attr-defined]
    return {
        "base_url": BASE_URL,
        "http_client": httpx2.Client(transport=httpx2.MockTransport(sync_handler)),
        "http_async_client": httpx2.AsyncClient(
            transport=httpx2.MockTransport(async_handler)
        ),
        "max_retries": 0,
    }


async def longest_stall(work: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    """Run `work` beside a 1 ms ticker; its result and the ticker's longest gap."""
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.005)
    try:
        result = await work()
    finally:
        done.set()
        await task
    ticks.append(time.perf_counter())
    return result, max(b - a for a, b in itertools.pairwise(ticks))


# -- the profile -----------------------------------------------------------------
async def test_cold_profile_read_in_a_loop_makes_no_request(fake: FakeVLLM) -> None:
    chat = ChatVLLM(**slow_kwargs(fake))
    assert chat.profile is not None

    async def read() -> Any:
        return chat.profile.get("max_input_tokens")  # type: ignore[union-attr]

    value, gap = await longest_stall(read)
    assert value is None  # not fetched: what is known, at once
    assert fake.paths() == []
    assert gap < READ_GAP
    assert "max_input_tokens" not in chat.profile
    with pytest.raises(KeyError, match=r"await chat\.aget_profile\(\)"):
        chat.profile["max_input_tokens"]
    known = dict(chat.profile)  # the keys known without the server
    assert known["text_inputs"] is True
    assert "image_inputs" not in known
    assert fake.paths() == []


async def test_async_call_fills_the_profile_for_middleware(fake: FakeVLLM) -> None:
    """LangChain middleware reads `profile.get("max_input_tokens")` in async agents."""
    fake.max_model_len = 4096
    chat = ChatVLLM(model="smollm2", **slow_kwargs(fake))
    assert chat.profile is not None

    async def call() -> Any:
        await chat.ainvoke("hi")
        return chat.profile.get("max_input_tokens")  # type: ignore[union-attr]

    value, gap = await longest_stall(call)
    assert value == 4096
    assert gap < MAX_GAP
    # the card once, after the answer (a refused call would make none)
    assert fake.paths() == ["POST /v1/chat/completions", "GET /v1/models"]
    await chat.ainvoke("again")
    assert fake.paths().count("GET /v1/models") == 1
    assert fake.blocking == []  # type: ignore[attr-defined]


async def test_aget_profile_fetches_without_blocking(fake: FakeVLLM) -> None:
    chat = ChatVLLM(**slow_kwargs(fake))
    profile, gap = await longest_stall(chat.aget_profile)
    assert gap < MAX_GAP
    assert profile is not None
    assert dict(profile)["max_input_tokens"] == 2048
    assert profile["image_inputs"] is False  # the probes' answer: text-only
    assert fake.paths() == ["GET /v1/models", "POST /tokenize"]
    assert profile is chat.profile
    assert fake.blocking == []  # type: ignore[attr-defined]


async def test_aget_profile_without_modalities_costs_one_request(
    fake: FakeVLLM,
) -> None:
    chat = ChatVLLM(**slow_kwargs(fake))
    profile = await chat.aget_profile(modalities=False)
    assert profile is not None
    assert profile["max_input_tokens"] == 2048
    assert "image_inputs" not in profile  # not probed, and no probe in a loop
    assert fake.paths() == ["GET /v1/models"]


def test_sync_profile_probes_only_for_modality_keys(fake: FakeVLLM) -> None:
    chat = ChatVLLM(**fake.kwargs())
    assert chat.profile is not None
    assert chat.profile["max_input_tokens"] == 2048
    assert chat.profile["pdf_inputs"] is False
    assert fake.paths() == ["GET /v1/models"]
    assert chat.profile["image_inputs"] is False
    assert fake.paths() == ["GET /v1/models", "POST /tokenize"]


def test_user_profile_is_what_aget_profile_gives(fake: FakeVLLM) -> None:
    chat = ChatVLLM(model="m", profile={"max_input_tokens": 7}, **fake.kwargs())
    assert asyncio.run(chat.aget_profile()) == {"max_input_tokens": 7}
    assert fake.paths() == []


async def test_profile_after_async_adapter_load_is_fresh(fake: FakeVLLM) -> None:
    fake.runtime_lora = True
    chat = ChatVLLM(model="pine2", **slow_kwargs(fake))
    assert chat.profile is not None
    await chat.aget_profile(modalities=False)
    assert "max_input_tokens" not in chat.profile  # not served yet
    await chat.aload_lora_adapter("pine2", "/lora/pine")
    assert chat.profile.get("max_input_tokens") == 2048
    await chat.aunload_lora_adapter("pine2")
    assert "max_input_tokens" not in chat.profile
    assert fake.blocking == []  # type: ignore[attr-defined]


# -- every class: async calls never use the blocking client ----------------------
async def test_async_calls_of_every_class_never_block(fake: FakeVLLM) -> None:
    kwargs = slow_kwargs(fake)
    chat = ChatVLLM(**kwargs)
    llm = VLLMOpenAI(**kwargs)
    embed = VLLMEmbeddings(**kwargs)
    rerank = VLLMRerank(**kwargs)

    async def calls() -> None:
        await chat.ainvoke("hi", structured_outputs={"choice": ["a", "b"]})
        async for _ in chat.astream("hi"):
            pass
        await llm.ainvoke("hi")
        async for _ in llm.astream("hi"):
            pass
        await embed.aembed_query("hi")
        await rerank.acompress_documents([Document(page_content="a b")], "a")

    _, gap = await longest_stall(calls)
    assert gap < MAX_GAP
    assert fake.blocking == []  # type: ignore[attr-defined]
    assert "GET /version" in fake.paths()  # the version check ran, async


async def test_async_errors_are_translated_without_blocking(fake: FakeVLLM) -> None:
    fake.status = 404
    fake.error_body = {
        "error": {
            "message": "The model `nope` does not exist.",
            "type": "NotFoundError",
            "code": 404,
        }
    }
    chat = ChatVLLM(model="nope", **slow_kwargs(fake))

    async def call() -> str:
        try:
            await chat.ainvoke("hi")
        except Exception as e:
            return str(e)
        return ""

    message, gap = await longest_stall(call)
    assert "smollm2" in message  # the served models, listed asynchronously
    assert gap < MAX_GAP
    assert fake.blocking == []  # type: ignore[attr-defined]


async def test_max_context_size_in_a_loop(fake: FakeVLLM) -> None:
    llm = VLLMOpenAI(model="smollm2", **slow_kwargs(fake))
    with pytest.raises(RuntimeError, match=r"await llm\.aget_max_context_size\(\)"):
        _ = llm.max_context_size
    assert fake.paths() == []
    size, gap = await longest_stall(llm.aget_max_context_size)
    assert size == 2048
    assert gap < MAX_GAP
    assert llm.max_context_size == 2048  # cached now: no request
    assert fake.paths() == ["GET /v1/models"]
    assert fake.blocking == []  # type: ignore[attr-defined]
