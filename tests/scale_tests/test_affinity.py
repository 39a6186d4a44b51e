"""Session affinity: with ``consistent_hash``, one session's requests land on one
replica, counted from the replicas' own ``/metrics``.

vllm-router's ``consistent_hash`` keys on the first of the headers ``x-session-id``,
``x-user-id``, ``x-tenant-id``, ``x-request-id``, ... and then on the body's
``session_params.session_id`` or ``user``; ChatVLLM sets a header per call with
``extra_headers={...}``, per instance with ``default_headers={...}``, and the body
field with ``user=...``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from langchain_core.runnables import RunnableConfig, RunnableLambda

from langchain_vllm import ChatVLLM, VLLMOpenAI
from langchain_vllm.server import VLLMServer
from langchain_vllm.sessions import (
    RolloutSession,
    arollout_session,
    finish_session,
    rollout_session,
)
from tests.scale_tests.conftest import FIGURES, request_counts
from tests.scale_tests.router import VLLMRouter

TURNS = 3
"""Requests per session."""
MIN_SESSIONS = 6
MAX_SESSIONS = 24


def _served(replicas: list[VLLMServer], run: Callable[[], object]) -> list[int]:
    """How many requests each replica finished while `run` ran."""
    before = request_counts(replicas)
    run()
    after = request_counts(replicas)
    return [a - b for a, b in zip(after, before, strict=True)]


def _pinned(replicas: list[VLLMServer], call: Callable[[int], object]) -> None:
    """`call(turn)` for `TURNS` turns: every request lands on one replica."""
    served = _served(replicas, lambda: [call(turn) for turn in range(TURNS)])
    assert sorted(served) == [0, TURNS], served


@pytest.fixture
def chat(hash_router: VLLMRouter) -> ChatVLLM:
    return ChatVLLM(base_url=hash_router.base_url, temperature=0, max_tokens=4)


def test_session_header_pins_one_replica(
    chat: ChatVLLM, replicas: list[VLLMServer]
) -> None:
    """Every session stays on one replica; the sessions use both replicas."""
    placement: dict[str, list[int]] = {}
    for n in range(MAX_SESSIONS):
        session = f"session-{n}"

        def turns(session: str = session) -> None:
            for turn in range(TURNS):
                chat.invoke(
                    f"Turn {turn}: say something.",
                    extra_headers={"x-session-id": session},
                )

        placement[session] = _served(replicas, turns)
        used = {tuple(v).index(TURNS) for v in placement.values() if TURNS in v}
        if len(placement) >= MIN_SESSIONS and len(used) == len(replicas):
            break
    FIGURES["affinity_sessions"] = {k: v for k, v in placement.items()}
    for session, served in placement.items():
        assert sorted(served) == [0, TURNS], f"{session} was split: {served}"
    homes = {served.index(TURNS) for served in placement.values()}
    assert homes == {0, 1}, f"all sessions on one replica: {placement}"


def test_stream_and_async_follow_the_session(
    chat: ChatVLLM, replicas: list[VLLMServer]
) -> None:
    headers = {"x-session-id": "streaming-session"}

    def mixed() -> None:
        chat.invoke("Hello.", extra_headers=headers)
        assert list(chat.stream("Hello again.", extra_headers=headers))
        chat.batch(["One.", "Two."], extra_headers=headers)

    served = _served(replicas, mixed)
    assert sorted(served) == [0, 4], served


def test_user_field_and_default_headers_pin(
    hash_router: VLLMRouter, replicas: list[VLLMServer]
) -> None:
    by_user = ChatVLLM(base_url=hash_router.base_url, max_tokens=4)
    _pinned(replicas, lambda i: by_user.invoke(f"Hi {i}", user="user-42"))
    by_default = ChatVLLM(
        base_url=hash_router.base_url,
        max_tokens=4,
        default_headers={"x-session-id": "pinned-client"},
    )
    _pinned(replicas, lambda i: by_default.invoke(f"Hi {i}"))


def test_round_robin_ignores_the_session(
    router: VLLMRouter, replicas: list[VLLMServer]
) -> None:
    """The contrast: the same session header through round_robin is split."""
    chat = ChatVLLM(base_url=router.base_url, max_tokens=4)
    served = _served(
        replicas,
        lambda: [
            chat.invoke(f"Hi {i}", extra_headers={"x-session-id": "session-0"})
            for i in range(4)
        ],
    )
    assert served == [2, 2]


def test_langgraph_threads_pin_one_replica(
    hash_router: VLLMRouter, replicas: list[VLLMServer]
) -> None:
    """`session_from_thread=True`: each thread's requests (the `thread_id` of the
    run's config, as a LangGraph graph or a chain passes it down) go to one
    replica, as `session_id` and the `X-Session-ID` header."""
    chat = ChatVLLM(
        base_url=hash_router.base_url, max_tokens=4, session_from_thread=True
    )
    chain = RunnableLambda(lambda text: text) | chat
    placement: dict[str, list[int]] = {}
    for n in range(MAX_SESSIONS):
        config: RunnableConfig = {"configurable": {"thread_id": f"thread-{n}"}}

        def turns(config: RunnableConfig = config) -> None:
            for turn in range(TURNS):
                chain.invoke(f"Turn {turn}: say something.", config=config)

        placement[f"thread-{n}"] = _served(replicas, turns)
        used = {tuple(v).index(TURNS) for v in placement.values() if TURNS in v}
        if len(placement) >= MIN_SESSIONS and len(used) == len(replicas):
            break
    FIGURES["affinity_threads"] = dict(placement)
    for thread, served in placement.items():
        assert sorted(served) == [0, TURNS], f"{thread} was split: {served}"
    assert {served.index(TURNS) for served in placement.values()} == {0, 1}


def test_completions_sessions_pin(
    hash_router: VLLMRouter, replicas: list[VLLMServer]
) -> None:
    """`VLLMOpenAI` sends its session as the header too: per call and per thread."""
    llm = VLLMOpenAI(base_url=hash_router.base_url, max_tokens=4)
    _pinned(replicas, lambda i: llm.invoke(f"Once {i}", session_id="story-7"))
    threads = VLLMOpenAI(
        base_url=hash_router.base_url, max_tokens=4, session_from_thread=True
    )
    chain = RunnableLambda(lambda text: text) | threads
    config: RunnableConfig = {"configurable": {"thread_id": "story-thread"}}
    _pinned(replicas, lambda i: chain.invoke(f"Once {i}", config=config))


# -- ending sessions: vllm-router's POST /finish_session -----------------------------
@pytest.fixture(scope="module")
def sticky_router(replicas: list[VLLMServer]) -> Iterator[VLLMRouter]:
    """``sticky_least_loaded``: the router keeps each session on the replica it
    first chose, until the session expires or is finished."""
    with VLLMRouter(
        [s.root_url for s in replicas], policy="sticky_least_loaded"
    ) as router:
        yield router


def test_a_rollout_session_is_pinned_then_finished(
    sticky_router: VLLMRouter, replicas: list[VLLMServer]
) -> None:
    chat = ChatVLLM(
        base_url=sticky_router.base_url,
        temperature=0,
        max_tokens=4,
        session_from_thread=True,
    )
    with rollout_session(chat) as session:
        _pinned(
            replicas,
            lambda turn: chat.invoke(
                f"Turn {turn}: say something.", session_id=session.session_id
            ),
        )
    assert session.finished is True
    failed: list[RolloutSession] = []

    def failing_rollout() -> None:
        with rollout_session(chat) as session:
            failed.append(session)
            chat.invoke("Hi", session_id=session.session_id)
            raise RuntimeError("the rollout failed")

    with pytest.raises(RuntimeError, match="the rollout failed"):
        failing_rollout()
    assert failed[0].finished is True


async def test_a_cancelled_rollout_finishes_its_session(
    sticky_router: VLLMRouter,
) -> None:
    chat = ChatVLLM(base_url=sticky_router.base_url, max_tokens=200, min_tokens=200)
    sessions: list[RolloutSession] = []

    async def rollout() -> None:
        async with arollout_session(chat) as session:
            sessions.append(session)
            await chat.ainvoke("Tell a long story.", session_id=session.session_id)

    task = asyncio.create_task(rollout())
    while not sessions:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sessions[0].finished is True


def test_a_server_without_router_has_no_session_to_finish(
    replicas: list[VLLMServer],
) -> None:
    chat = ChatVLLM(base_url=replicas[0].base_url)
    assert finish_session(chat, "never-routed") is False
