"""The benchmark's HTTP stub and statistics helpers (routes called directly)."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

import httpx2
import pytest
from langchain_core.messages import HumanMessage

from benchmarks.common import Samples, paired_ratios, percentile, rotations
from benchmarks.floor import FloorChat
from benchmarks.stub import COMPLETION_TOKENS, EMBEDDING_DIM, MODEL, StubApp


def _events(body: bytes) -> list[str]:
    return [e.removeprefix("data: ") for e in body.decode().split("\n\n") if e]


def test_counts_requests_per_route_but_not_control_routes() -> None:
    app = StubApp()
    app.handle("GET", "/v1/models", b"")
    app.handle("POST", "/v1/chat/completions", b'{"messages": []}')
    app.handle("POST", "/v1/chat/completions", b'{"messages": []}')
    _, _, stats = app.handle("GET", "/_stats", b"")
    assert json.loads(stats) == {"GET /v1/models": 1, "POST /v1/chat/completions": 2}
    app.handle("POST", "/_reset", b"")
    assert json.loads(app.handle("GET", "/_stats?x=1", b"")[2]) == {}


def test_stream_has_max_tokens_content_chunks_then_finish_usage_done() -> None:
    app = StubApp()
    request = {
        "stream": True,
        "max_tokens": 5,
        "stream_options": {"include_usage": True},
    }
    status, content_type, body = app.handle(
        "POST", "/v1/chat/completions", json.dumps(request).encode()
    )
    assert (status, content_type) == (200, "text/event-stream")
    events = _events(body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert [t for t in content if t] == ["w0 ", "w1 ", "w2 ", "w3 ", "w4 "]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_stream_without_usage_option_sends_no_usage_chunk() -> None:
    body = StubApp().handle("POST", "/v1/chat/completions", b'{"stream": true}')[2]
    chunks = [json.loads(e) for e in _events(body)[:-1]]
    assert all("usage" not in c for c in chunks)
    assert sum(bool(c["choices"][0]["delta"].get("content")) for c in chunks) == 64


def test_whole_answer_and_discovery_routes() -> None:
    app = StubApp()
    answer = json.loads(app.handle("POST", "/v1/chat/completions", b"{}")[2])
    assert answer["choices"][0]["message"]["role"] == "assistant"
    assert answer["usage"]["total_tokens"] == 28
    models = json.loads(app.handle("GET", "/v1/models", b"")[2])
    assert [m["id"] for m in models["data"]] == [MODEL]
    assert json.loads(app.handle("GET", "/version", b"")[2]) == {"version": "0.32.0"}
    assert app.handle("GET", "/nowhere", b"")[0] == 404


def test_tokenize_counts_words_of_prompt_or_messages() -> None:
    app = StubApp()
    by_prompt = json.loads(app.handle("POST", "/tokenize", b'{"prompt": "a b c"}')[2])
    assert by_prompt["count"] == 3
    assert by_prompt["tokens"] == [0, 1, 2]
    body = json.dumps({"messages": [{"role": "user", "content": "one two"}]})
    assert json.loads(app.handle("POST", "/tokenize", body.encode())[2])["count"] == 2


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_one_vector_per_input(encoding: str) -> None:
    body = json.dumps({"input": ["a", "b", "c"], "encoding_format": encoding})
    data = json.loads(StubApp().handle("POST", "/v1/embeddings", body.encode())[2])
    vectors = [item["embedding"] for item in data["data"]]
    assert len(vectors) == 3
    if encoding == "base64":
        vectors = [
            list(struct.unpack(f"<{EMBEDDING_DIM}f", base64.b64decode(v)))
            for v in vectors
        ]
    assert all(len(v) == EMBEDDING_DIM for v in vectors)


def test_percentile_interpolates_and_rotations_cycle() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0], 100) == 3.0
    assert rotations(["a", "b", "c"], 1) == ["b", "c", "a"]
    assert rotations(["a", "b", "c"], 3) == ["a", "b", "c"]


def test_paired_ratios_pair_values_of_the_same_repetition() -> None:
    samples = {"raw": Samples([1.0, 2.0, 4.0]), "x": Samples([1.5, 2.0, 2.0])}
    ratios = paired_ratios(samples, "x", "raw")
    assert ratios.values == [1.5, 1.0, 0.5]
    assert ratios.median == 1.0
    assert Samples([1.0, 2.0, 3.0]).spread() == pytest.approx(0.5)


def _stub_transport(app: StubApp) -> httpx2.MockTransport:
    """The stub's routes in process (no socket): `StubApp.handle` per request."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        status, content_type, body = app.handle(
            request.method, request.url.path, request.read()
        )
        return httpx2.Response(
            status, headers={"content-type": content_type}, content=body
        )

    return httpx2.MockTransport(handle)


def test_floor_chat_invokes_streams_and_batches_against_the_stub() -> None:
    app = StubApp()
    chat = FloorChat(base_url="http://stub/v1", model=MODEL, max_tokens=16)
    chat._client = httpx2.Client(transport=_stub_transport(app))
    assert chat.invoke("Say hello.").content == "word " * COMPLETION_TOKENS
    # One chunk per SSE event with choices, then empty ones (the finish chunk's, and
    # LangChain's own last chunk): the benchmark counts the non-empty ones.
    for n in (64, 1):
        chunks = list(chat.stream("Say hello.", max_tokens=n))
        assert [c.content for c in chunks[:n]] == [f"w{i} " for i in range(n)]
        assert not any(c.content for c in chunks[n:])

    async def batch() -> list[Any]:
        loop = id(asyncio.get_running_loop())
        chat._aclients[loop] = httpx2.AsyncClient(transport=_stub_transport(app))
        return await chat.abatch(["Say hello."] * 3)

    assert [m.content for m in asyncio.run(batch())] == [
        "word " * COMPLETION_TOKENS
    ] * 3
    assert app.counts == {"POST /v1/chat/completions": 6}
    assert chat._payload([HumanMessage("hi")], True, {"max_tokens": 2}) == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
        "stream": True,
    }
