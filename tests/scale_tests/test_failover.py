"""Failover: a replica dies under load; every request still completes.

Mixed async requests (invoke, stream, choice-constrained, JSON-schema structured
output, answer after a tool result; 200 at concurrency 16 in `make test`, more in
`make scale_test`) go through the round-robin router; after 30 % have finished, one
replica is killed (SIGKILL of its whole process group). The router retries
requests it could not deliver and stops routing to the dead replica after two
failed health checks (one per second); ChatVLLM's own ``max_retries`` covers what
the router gives up on. A stream that was already sending tokens from the dead
replica cannot be retried by anyone in between: it ends with a typed error and the
caller starts it again (counted as a stream restart).

Runs last: it leaves one replica dead. Then the dead replica is restarted and must
take traffic again.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Literal

import pytest
from pydantic import BaseModel

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMConnectionError, VLLMIncompleteStreamError
from langchain_vllm.server import VLLMServer
from tests.scale_tests.conftest import FIGURES, request_count, request_counts
from tests.scale_tests.router import VLLMRouter, http_get
from tests.scale_tests.test_chat import TOOL_HISTORY
from tests.server_faults import kill as kill_server

REQUESTS = int(os.environ.get("SCALE_REQUESTS", "200"))
"""Requests in the failover load (`make scale_test SCALE_N=...`)."""
CONCURRENCY = int(os.environ.get("SCALE_CONCURRENCY", "16"))
KILL_AFTER = REQUESTS * 3 // 10
"""Finished requests before a replica is killed."""
STREAM_RESTARTS = 3
"""Times the caller restarts one stream cut off by the dead replica."""


class Verdict(BaseModel):
    """A yes/no verdict."""

    answer: Literal["yes", "no"]


@dataclass
class Outcome:
    kind: str
    started: float
    ended: float = 0.0
    ok: bool = False
    restarts: int = 0
    error: str = ""
    interruptions: list[str] = field(default_factory=list)

    @property
    def latency(self) -> float:
        return self.ended - self.started


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


class Load:
    """The mixed request load; checks each answer, restarts cut-off streams."""

    def __init__(self, chat: ChatVLLM) -> None:
        self.chat = chat
        wide = chat.model_copy(update={"max_tokens": 48})
        self.verdict = wide.with_structured_output(Verdict)
        self.choice = chat.bind(structured_outputs={"choice": ["yes", "no"]})

    async def run(self, i: int, out: Outcome) -> None:
        if out.kind == "invoke":
            msg = await self.chat.ainvoke(f"Say hello to user {i}.")
            assert msg.content
        elif out.kind == "choice":
            msg = await self.choice.ainvoke(f"Is {i} an even number?")
            assert msg.content in ("yes", "no")
        elif out.kind == "structured":
            verdict = await self.verdict.ainvoke(f"Is {i} larger than ten?")
            assert isinstance(verdict, Verdict)
        elif out.kind == "tool_result":
            msg = await self.chat.ainvoke(TOOL_HISTORY)
            assert msg.content
        else:
            await self._stream(i, out)

    async def _stream(self, i: int, out: Outcome) -> None:
        while True:
            text = ""
            try:
                async for chunk in self.chat.astream(f"Count up to {i % 9 + 3}."):
                    text += chunk.text
            except (VLLMIncompleteStreamError, VLLMConnectionError) as e:
                # Tokens came from the replica that died: nobody between us and
                # it can resend them. Start over (what an app would do).
                out.interruptions.append(f"{type(e).__name__} after {len(text)} chars")
                if out.restarts >= STREAM_RESTARTS:
                    raise
                out.restarts += 1
                continue
            assert text
            return


@pytest.mark.timeout(900)
async def test_replica_killed_under_load(
    router: VLLMRouter, replicas: list[VLLMServer]
) -> None:
    victim, survivor = replicas
    chat = ChatVLLM(
        base_url=router.base_url,
        temperature=0,
        max_tokens=16,
        max_retries=3,
        timeout=60,
    )
    load = Load(chat)
    kinds = ("invoke", "stream", "choice", "structured", "tool_result")
    outcomes: list[Outcome] = []
    finished = 0
    killed_at: float | None = None
    survivor_before = 0
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def kill() -> None:
        nonlocal killed_at, survivor_before
        survivor_before = request_count(survivor)
        killed_at = time.monotonic()
        await asyncio.to_thread(kill_server, victim)

    async def one(i: int) -> None:
        nonlocal finished
        async with semaphore:
            out = Outcome(kind=kinds[i % len(kinds)], started=time.monotonic())
            outcomes.append(out)
            try:
                await load.run(i, out)
                out.ok = True
            except Exception as e:  # counted and shown below, never swallowed
                out.error = f"{type(e).__name__}: {e}"
            out.ended = time.monotonic()
            finished += 1
            if finished == KILL_AFTER:
                await kill()

    began = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    wall = time.monotonic() - began
    assert killed_at is not None

    failures = [o for o in outcomes if not o.ok]
    before = [o.latency for o in outcomes if o.ended <= killed_at]
    in_flight = [o.latency for o in outcomes if o.started < killed_at < o.ended]
    after = [o.latency for o in outcomes if o.started >= killed_at]
    survivor_served = request_count(survivor) - survivor_before
    figures = {
        "requests": len(outcomes),
        "concurrency": CONCURRENCY,
        "failures": len(failures),
        "stream_restarts": sum(o.restarts for o in outcomes),
        "interruptions": [i for o in outcomes for i in o.interruptions],
        "killed_after_s": round(killed_at - began, 1),
        "wall_s": round(wall, 1),
        "p50_before_kill_s": _p(before, 0.50),
        "p99_before_kill_s": _p(before, 0.99),
        "in_flight_at_kill": len(in_flight),
        "max_in_flight_latency_s": _p(in_flight, 1.0),
        "p50_after_kill_s": _p(after, 0.50),
        "p99_after_kill_s": _p(after, 0.99),
        "survivor_served_after_kill": survivor_served,
    }
    FIGURES["failover"] = figures
    print(figures)

    assert not failures, [o.error for o in failures][:5]
    assert len(outcomes) == REQUESTS
    # Requests sent after the kill can only have been served by the survivor.
    assert after
    assert survivor_served >= len(after)


def test_killed_replica_rejoins(router: VLLMRouter, replicas: list[VLLMServer]) -> None:
    victim = replicas[0]
    assert not victim.is_running
    began = time.monotonic()
    victim.restart()  # same port: the router's worker URL is valid again
    # The router health-checks every second; one success brings it back.
    deadline = time.monotonic() + 30
    chat = ChatVLLM(base_url=router.base_url, max_tokens=4)
    served = [0, 0]
    while time.monotonic() < deadline:
        before = request_counts(replicas)
        for i in range(4):
            chat.invoke(f"Hi {i}")
        served = [a - b for a, b in zip(request_counts(replicas), before, strict=True)]
        if served[0] > 0:
            break
        time.sleep(1)
    FIGURES["rejoin_s"] = round(time.monotonic() - began, 1)
    assert served[0] > 0, f"restarted replica got no traffic: {served}"
    assert http_get(f"{router.root_url}/health")[0] == 200
