"""Faults against real processes on loopback: a vLLM server killed mid-stream,
restarted, started with `--api-key`; a stdlib server that is slow or fails first.

This module starts its OWN chat server (with an API key) and kills/restarts it; the
session-shared servers of conftest are never touched. Nothing here asserts on time:
the "within the timeout" property is that the error is not a timeout error although
the client's `timeout` is generous. The elapsed times are printed (run with `-s`) and
recorded in docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import openai
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import (
    VLLMAuthenticationError,
    VLLMBadRequestError,
    VLLMConnectionError,
    VLLMContextOverflowError,
    VLLMIncompleteStreamError,
    VLLMModelNotFoundError,
    VLLMTimeoutError,
)
from langchain_vllm.server import VLLMServer
from rig import rig_server
from tests.server_faults import kill
from tests.unit_tests.fake_vllm import chat_completion, stream_chunks

pytestmark = pytest.mark.timeout(900)

API_KEY = "fault-test-key-7f3a9c"
LONG = {"max_tokens": 400, "ignore_eos": True, "temperature": 0.0}
"""A stream that runs for seconds on the 135M CPU model (400 tokens, no early EOS)."""
CLIENT_TIMEOUT = 60.0
"""Generous client timeout: a hang would end as VLLMTimeoutError, which tests reject."""


def note(what: str, seconds: float) -> None:
    print(f"\n[fault timing] {what}: {seconds:.3f} s")


# -- our own vLLM server --
@pytest.fixture(scope="module")
def own_server() -> Iterator[VLLMServer]:
    server = rig_server("chat", api_key=API_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def server(own_server: VLLMServer) -> VLLMServer:
    """The module's server, (re)started if an earlier test killed it."""
    if not own_server.is_running:
        own_server.start()
    return own_server


def live_chat(server: VLLMServer, **kwargs: Any) -> ChatVLLM:
    params: dict[str, Any] = {
        "base_url": server.base_url,
        "api_key": API_KEY,
        "model": server.served_model_name,
        "timeout": CLIENT_TIMEOUT,
        "max_retries": 0,
        **kwargs,
    }
    return ChatVLLM(**params)


class KillAfterTokens(BaseCallbackHandler):
    """Kill the server once `n` tokens have streamed in."""

    def __init__(self, server: VLLMServer, n: int = 3) -> None:
        self.server, self.n, self.seen = server, n, 0
        self.killed_at: float | None = None

    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.seen += 1
        if self.seen == self.n:
            kill(self.server)
            self.killed_at = time.monotonic()


# -- server killed in the middle of a stream --
class StreamKiller:
    """Consume a stream, killing the server after the third chunk."""

    def __init__(self, server: VLLMServer) -> None:
        self.server = server
        self.chunks: list[AIMessageChunk] = []
        self.killed_at = 0.0

    def _take(self, chunk: AIMessageChunk) -> None:
        self.chunks.append(chunk)
        if len(self.chunks) == 3:
            kill(self.server)
            self.killed_at = time.monotonic()

    def consume(self, chat: ChatVLLM) -> None:
        for chunk in chat.stream("Count from one to one thousand."):
            self._take(chunk)

    async def aconsume(self, chat: ChatVLLM) -> None:
        async for chunk in chat.astream("Count from one to one thousand."):
            self._take(chunk)

    def check(self, error: BaseException) -> None:
        assert self.killed_at, "the server was never killed: the stream ended first"
        assert not isinstance(error, VLLMTimeoutError)
        if isinstance(error, VLLMConnectionError):  # says what happened
            assert "middle of the answer" in str(error), error
        # No chunk claimed the answer was complete, and none carried final usage.
        assert not any(c.response_metadata.get("finish_reason") for c in self.chunks)
        assert not any(c.usage_metadata for c in self.chunks)


def test_kill_mid_stream_sync(server: VLLMServer) -> None:
    killer = StreamKiller(server)
    with pytest.raises((VLLMIncompleteStreamError, VLLMConnectionError)) as info:
        killer.consume(live_chat(server, **LONG))
    note(
        f"sync stream, kill -> {type(info.value).__name__}",
        time.monotonic() - killer.killed_at,
    )
    killer.check(info.value)
    assert server.base_url in str(info.value)


async def test_kill_mid_stream_async(server: VLLMServer) -> None:
    killer = StreamKiller(server)
    with pytest.raises((VLLMIncompleteStreamError, VLLMConnectionError)) as info:
        await killer.aconsume(live_chat(server, **LONG))
    note(
        f"async stream, kill -> {type(info.value).__name__}",
        time.monotonic() - killer.killed_at,
    )
    killer.check(info.value)
    assert server.base_url in str(info.value)


def test_kill_mid_streamed_invoke_gives_no_partial_message(server: VLLMServer) -> None:
    """`invoke` with streaming=True must raise, not return the truncated text."""
    chat = live_chat(server, streaming=True, **LONG)
    killer = KillAfterTokens(server)
    with pytest.raises((VLLMIncompleteStreamError, VLLMConnectionError)) as info:
        chat.invoke("Count from one to one thousand.", config={"callbacks": [killer]})
    assert killer.killed_at is not None
    note(
        f"streamed invoke, kill -> {type(info.value).__name__}",
        time.monotonic() - killer.killed_at,
    )
    assert not isinstance(info.value, VLLMTimeoutError)
    if isinstance(info.value, VLLMConnectionError):  # says what happened
        assert "middle of the answer" in str(info.value), info.value


async def test_kill_mid_streamed_ainvoke_gives_no_partial_message(
    server: VLLMServer,
) -> None:
    chat = live_chat(server, streaming=True, **LONG)
    killer = KillAfterTokens(server)
    with pytest.raises((VLLMIncompleteStreamError, VLLMConnectionError)) as info:
        await chat.ainvoke(
            "Count from one to one thousand.", config={"callbacks": [killer]}
        )
    assert killer.killed_at is not None
    note(
        f"streamed ainvoke, kill -> {type(info.value).__name__}",
        time.monotonic() - killer.killed_at,
    )
    assert not isinstance(info.value, VLLMTimeoutError)
    if isinstance(info.value, VLLMConnectionError):  # says what happened
        assert "middle of the answer" in str(info.value), info.value


# -- server down, then restarted --
class CountingClients:
    """httpx clients that count the requests they send (retries included)."""

    def __init__(self) -> None:
        self.sent = 0

    def _count(self, request: httpx2.Request) -> None:
        self.sent += 1

    async def _acount(self, request: httpx2.Request) -> None:
        self.sent += 1

    def kwargs(self) -> dict[str, Any]:
        return {
            "http_client": httpx2.Client(event_hooks={"request": [self._count]}),
            "http_async_client": httpx2.AsyncClient(
                event_hooks={"request": [self._acount]}
            ),
        }


def test_server_down_then_restarted(server: VLLMServer) -> None:
    counter = CountingClients()
    chat = live_chat(server, max_tokens=8, max_retries=2, **counter.kwargs())
    assert chat.invoke("Say hi.").response_metadata  # warm connection in the pool
    counter.sent = 0

    kill(server)
    began = time.monotonic()
    with pytest.raises(VLLMConnectionError) as info:
        chat.invoke("Say hi.")
    note("server down, max_retries=2 -> VLLMConnectionError", time.monotonic() - began)
    assert counter.sent == 3, "max_retries=2 means three attempts"
    assert server.base_url in str(info.value)
    assert "VLLM_API_BASE" in str(info.value)

    began = time.monotonic()
    server.restart()
    note("server restart (eager) until healthy", time.monotonic() - began)
    counter.sent = 0
    reply = chat.invoke("Say hi.")  # the same object, stale pooled connection
    assert reply.response_metadata["finish_reason"] in ("stop", "length")
    assert counter.sent >= 1


async def test_server_down_then_restarted_async(server: VLLMServer) -> None:
    counter = CountingClients()
    chat = live_chat(server, max_tokens=8, max_retries=1, **counter.kwargs())
    assert (await chat.ainvoke("Say hi.")).response_metadata
    counter.sent = 0
    kill(server)
    with pytest.raises(VLLMConnectionError):
        await chat.ainvoke("Say hi.")
    assert counter.sent == 2, "max_retries=1 means two attempts"
    await asyncio.to_thread(server.restart)
    reply = await chat.ainvoke("Say hi.")
    assert reply.response_metadata["finish_reason"] in ("stop", "length")


def _retries_covering(seconds: float) -> int:
    """Retries whose back-off waits at least `seconds` in all.

    openai waits 0.5 s doubling up to 8 s before each retry, less up to 25 %
    jitter: at least 0.375, 0.75, 1.5, 3, then 6 s per retry.
    """
    return 4 + math.ceil(seconds / 6)


def test_client_retries_while_server_comes_back(server: VLLMServer) -> None:
    """A call made while the server is down succeeds once it is back, within
    `max_retries`. The retries cover the server's whole startup timeout, so the
    outcome does not depend on how long the restart takes on a busy machine (an
    eager start took 25-130 s here, and longer beside other jobs): either the
    server comes back and the call succeeds, or the restart itself fails."""
    retries = _retries_covering(server.startup_timeout)
    chat = live_chat(server, max_tokens=8, max_retries=retries)
    kill(server)
    failed: list[BaseException] = []

    def restart() -> None:
        try:
            server.start()
        except BaseException as e:
            failed.append(e)

    restarter = threading.Thread(target=restart)
    began = time.monotonic()
    restarter.start()
    try:
        reply = chat.invoke("Say hi.")
    finally:
        restarter.join()
    note("call during restart -> success after retries", time.monotonic() - began)
    assert not failed, f"the server did not come back: {failed[0]!r}"
    assert reply.response_metadata["finish_reason"] in ("stop", "length")


# -- API key --
def test_right_api_key_works(server: VLLMServer) -> None:
    assert live_chat(server, max_tokens=4).invoke("Hi").response_metadata


def test_api_key_from_env(server: VLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", API_KEY)
    chat = ChatVLLM(
        base_url=server.base_url, model=server.served_model_name, max_tokens=4
    )
    assert chat.invoke("Hi").response_metadata


@pytest.mark.parametrize("key", ["wrong-key-0d9e1b", None], ids=["wrong", "missing"])
def test_wrong_or_missing_api_key(
    server: VLLMServer, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    params: dict[str, Any] = {"base_url": server.base_url, "max_retries": 0}
    if key is not None:
        params["api_key"] = key
    chat = ChatVLLM(model=server.served_model_name, **params)
    with pytest.raises(VLLMAuthenticationError) as info:
        chat.invoke("Hi")
    message = str(info.value)
    assert "VLLM_API_KEY" in message
    assert server.base_url in message
    if key is not None:
        assert key not in message


async def test_wrong_api_key_async_and_stream(server: VLLMServer) -> None:
    chat = live_chat(server, api_key="wrong-key-0d9e1b")
    with pytest.raises(VLLMAuthenticationError, match="VLLM_API_KEY"):
        await chat.ainvoke("Hi")
    with pytest.raises(VLLMAuthenticationError, match="VLLM_API_KEY"):
        async for _ in chat.astream("Hi"):
            pass
    with pytest.raises(VLLMAuthenticationError, match="VLLM_API_KEY"):
        list(chat.stream("Hi"))


def test_wrong_api_key_on_model_discovery(server: VLLMServer) -> None:
    """Discovery (`GET /v1/models`, no model given) names the key too."""
    chat = ChatVLLM(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(VLLMAuthenticationError, match="VLLM_API_KEY"):
        chat.invoke("Hi")


# -- bad input the server knows about (live counterparts of test_bad_inputs) --
def test_unknown_model_live(server: VLLMServer) -> None:
    chat = live_chat(server, model="no-such-model")
    with pytest.raises(VLLMModelNotFoundError) as info:
        chat.invoke("Hi")
    assert "no-such-model" in str(info.value)
    assert f"Served models: {server.served_model_name}" in str(info.value)


def test_context_overflow_live(server: VLLMServer) -> None:
    chat = live_chat(server, max_tokens=4)
    with pytest.raises(VLLMContextOverflowError) as info:
        chat.invoke("word " * 3000)
    message = str(info.value)
    print(f"context overflow: {message}")
    assert "context is 2048 tokens" in message
    assert "The prompt has at least 2049 tokens" in message


def test_max_tokens_above_context_live(server: VLLMServer) -> None:
    with pytest.raises(VLLMBadRequestError, match="max_tokens"):
        live_chat(server).invoke("Hi", max_tokens=5000)


# -- a stdlib HTTP server on loopback: slow, or failing first --
class StubServer:
    """A tiny vLLM-shaped server: answers after `delay` s, or 503 the first
    `fail_first` requests; `stall_stream` sends one chunk then stalls."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.fail_first = 0
        self.stall_stream = False
        self.hits = 0
        self.stop = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                stub.hits += 1
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if stub.hits <= stub.fail_first:
                    self._send(503, {"error": {"message": "busy", "code": 503}})
                    return
                if body.get("stream"):
                    self._stream()
                    return
                if stub.stop.wait(stub.delay):
                    return
                self._send(200, chat_completion(model="stub"))

            def _send(self, status: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                chunks = stream_chunks(["one ", "two "], model="stub")
                for i, chunk in enumerate(chunks):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if stub.stall_stream and i == 1 and stub.stop.wait(stub.delay):
                        return
                self.wfile.write(b"data: [DONE]\n\n")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def stub_chat(stub: StubServer, **kwargs: Any) -> ChatVLLM:
    return ChatVLLM(base_url=stub.base_url, model="stub", **kwargs)


def test_slow_server_times_out(stub: StubServer) -> None:
    stub.delay = 30.0
    chat = stub_chat(stub, timeout=0.5, max_retries=0)
    began = time.monotonic()
    with pytest.raises(VLLMTimeoutError) as info:
        chat.invoke("Hi")
    note(
        "slow server, timeout=0.5, max_retries=0 -> VLLMTimeoutError",
        time.monotonic() - began,
    )
    assert stub.base_url in str(info.value)
    assert "timeout" in str(info.value)


async def test_slow_server_times_out_async(stub: StubServer) -> None:
    stub.delay = 30.0
    chat = stub_chat(stub, timeout=0.5, max_retries=0)
    began = time.monotonic()
    with pytest.raises(VLLMTimeoutError):
        await chat.ainvoke("Hi")
    note("slow server async -> VLLMTimeoutError", time.monotonic() - began)


def test_slow_server_timeout_retried(stub: StubServer) -> None:
    stub.delay = 30.0
    chat = stub_chat(stub, timeout=0.5, max_retries=2)
    began = time.monotonic()
    with pytest.raises(VLLMTimeoutError):
        chat.invoke("Hi")
    note(
        "slow server, timeout=0.5, max_retries=2 -> VLLMTimeoutError",
        time.monotonic() - began,
    )
    assert stub.hits == 3


def test_stream_stalls_past_timeout(stub: StubServer) -> None:
    """A stream whose server stops sending mid-way ends with VLLMTimeoutError."""
    stub.delay, stub.stall_stream = 30.0, True
    chat = stub_chat(stub, timeout=0.5, max_retries=0)
    chunks: list[AIMessageChunk] = []
    began = time.monotonic()
    with pytest.raises(VLLMTimeoutError):
        chunks.extend(chat.stream("Hi"))
    note("stalled stream -> VLLMTimeoutError", time.monotonic() - began)


async def test_stream_stalls_past_timeout_async(stub: StubServer) -> None:
    stub.delay, stub.stall_stream = 30.0, True
    chat = stub_chat(stub, timeout=0.5, max_retries=0)
    with pytest.raises(VLLMTimeoutError):
        async for _ in chat.astream("Hi"):
            pass


@pytest.mark.parametrize(("retries", "succeeds"), [(2, True), (1, False)])
def test_max_retries_honoured(stub: StubServer, retries: int, succeeds: bool) -> None:
    stub.fail_first = 2
    chat = stub_chat(stub, max_retries=retries)
    if succeeds:
        assert chat.invoke("Hi").content == "Hello!"
    else:
        with pytest.raises(openai.InternalServerError):
            chat.invoke("Hi")
    assert stub.hits == retries + 1
