"""Ending sessions (`sessions.py`): vllm-router's `POST /finish_session`.

The router's answer is vllm-router 0.1.17's (`{"status": "ok", "session_id": ...}`,
tests/scale_tests/test_affinity.py runs it live); a bare vLLM server answers 404.
"""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from langchain_vllm import ChatVLLM
from langchain_vllm.sessions import (
    RolloutSession,
    afinish_session,
    arollout_session,
    finish_session,
    rollout_session,
)
from tests.unit_tests.fake_vllm import FakeVLLM


class RouterDouble(FakeVLLM):
    """A FakeVLLM behind a router: `/finish_session` answers, and is counted."""

    def __init__(self) -> None:
        super().__init__()
        self.finished: list[str] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path != "/finish_session" or self.status != 200:
            return super().handler(request)
        assert request.method == "POST"
        session = request.url.params["session_id"]
        self.finished.append(session)
        return httpx2.Response(200, json={"status": "ok", "session_id": session})


def chat(fake: FakeVLLM) -> ChatVLLM:
    return ChatVLLM(model="smollm2", **fake.kwargs())


def test_finish_session_at_a_router_and_at_a_bare_server(fake: FakeVLLM) -> None:
    router = RouterDouble()
    assert finish_session(chat(router), "a b/c") is True
    assert router.finished == ["a b/c"]  # quoted in the query, read back as is
    assert finish_session(chat(fake), "s-1") is False


async def test_afinish_session() -> None:
    router = RouterDouble()
    assert await afinish_session(chat(router), "s-2") is True
    assert router.finished == ["s-2"]


def test_rollout_session_finishes_on_success_and_on_error() -> None:
    router = RouterDouble()
    model = chat(router)
    with rollout_session(model, "ok-1") as session:
        model.invoke("Hi", session_id=session.session_id)
        assert session.config == {"configurable": {"thread_id": "ok-1"}}
    assert session.finished is True
    failed: list[RolloutSession] = []

    def failing() -> None:
        with rollout_session(model) as session:
            failed.append(session)
            raise RuntimeError("the rollout failed")

    with pytest.raises(RuntimeError, match="the rollout failed"):
        failing()
    assert failed[0].finished is True
    assert failed[0].session_id.startswith("rollout-")
    assert router.finished == ["ok-1", failed[0].session_id]
    assert router.last_session() == ("ok-1", "ok-1")


async def test_arollout_session_finishes_when_cancelled() -> None:
    router = RouterDouble()
    started: list[RolloutSession] = []

    async def rollout() -> None:
        async with arollout_session(chat(router), "cancelled-1") as session:
            started.append(session)
            await asyncio.sleep(60)

    task = asyncio.create_task(rollout())
    while not started:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert started[0].finished is True
    assert router.finished == ["cancelled-1"]


def test_a_failed_release_after_an_error_keeps_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = RouterDouble()
    router.status = 500  # every route but /models and /version fails

    def failing() -> None:
        model = ChatVLLM(model="smollm2", **{**router.kwargs(), "max_retries": 0})
        with rollout_session(model, "s-3"):
            raise RuntimeError("the rollout failed")

    with pytest.raises(RuntimeError, match="the rollout failed"):
        failing()
    assert "Could not finish session s-3" in caplog.text
