"""Async HTTP clients per event loop, and whether this thread runs an event loop.

One mechanism for every vLLM client class: a `LoopClients` registry keeps one
`AsyncOpenAI` per running event loop (httpx connection pools belong to the loop
that opened them), and a `LoopClient` stands in for "the running loop's client" on
the LangChain object, so async calls never write to the shared instance.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref
from typing import Any, Protocol

import httpx2
import openai


def in_event_loop() -> bool:
    """Whether this thread is running an event loop (a blocking request would stall it).

    True in async code, and in a Jupyter cell (the kernel runs one).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_SSL_CONTEXT: ssl.SSLContext | None = None
_SSL_LOCK = threading.Lock()


def shared_ssl_context() -> ssl.SSLContext:
    """The default SSL context of httpx, made once per process.

    Every new httpx client builds one, loading the CA bundle: 30-180 ms of CPU,
    which stalled the event loop on each object's first async call in each loop.
    One context serves every connection pool (an SSLContext is thread-safe).
    """
    global _SSL_CONTEXT
    with _SSL_LOCK:
        if _SSL_CONTEXT is None:
            _SSL_CONTEXT = httpx2.create_ssl_context()
        return _SSL_CONTEXT


async def ashared_ssl_context() -> ssl.SSLContext:
    """`shared_ssl_context`, made in a worker thread the first time (no stall)."""
    if _SSL_CONTEXT is not None:
        return _SSL_CONTEXT
    return await asyncio.to_thread(shared_ssl_context)


class LoopClients:
    """One async client per running event loop, copied from a template client."""

    def __init__(
        self,
        template: openai.AsyncOpenAI,
        *,
        max_connections: int,
        custom_http_client: bool = False,
    ) -> None:
        self.template = template
        self._custom = custom_http_client
        self._max_connections = max_connections
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, openai.AsyncOpenAI
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    async def aget(self) -> openai.AsyncOpenAI:
        """`get`, with the shared SSL context made off the event loop first."""
        if not self._custom:
            await ashared_ssl_context()
        return self.get()

    def get(self) -> openai.AsyncOpenAI:
        """The async client bound to the running event loop.

        A client reused from a closed loop fails with `Event loop is closed`. With
        the user's own http client, that client (theirs to manage).
        """
        if self._custom:
            return self.template
        loop = asyncio.get_running_loop()
        with self._lock:  # threads with their own loops share the registry
            client = self._clients.get(loop)
            if client is None:
                limits = httpx2.Limits(
                    max_connections=self._max_connections,
                    # Idle connections are checked on every request start and end:
                    # keep at most 100 (a larger idle pool costs O(N^2) syscalls).
                    max_keepalive_connections=min(100, self._max_connections),
                )
                http = openai.DefaultAsyncHttpxClient(
                    limits=limits, verify=shared_ssl_context()
                )
                client = self.template.copy(http_client=http)
                self._clients[loop] = client
        return client


class HasLoopClient(Protocol):
    """What `LoopClient` reads the running loop's client from (a `ServerLink`)."""

    def async_client(self) -> openai.AsyncOpenAI: ...


class LoopClient:
    """Stands for the running event loop's async client (or one of its resources).

    Set once on a client object in place of an `AsyncOpenAI`: each attribute read
    picks the client of the loop that runs the call (`source.async_client()`), so
    no call writes to the shared object and threads with their own event loops can
    use one instance at once.
    """

    def __init__(self, source: HasLoopClient, *path: str) -> None:
        self._source = source
        self._path = path

    def current(self) -> Any:
        """The running loop's client (or its resource)."""
        target: Any = self._source.async_client()
        for step in self._path:
            target = getattr(target, step)
        return target

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current(), name)
