"""Two chat replicas of the rig's test model behind vLLM's own router.

Started once per session (in parallel), shared by the scale tests: a round-robin
router with fast health checks (failover) and a ``consistent_hash`` router
(session affinity) in front of the same two replicas. The failover test kills a
replica, so it runs last (files run in name order; ``test_failover.py`` is last).
``test_adapters.py`` runs first with two LoRA replicas of its own, stopped before
the chat replicas start.

The figures the tests measure are printed at the end of the run and stored in
pytest's cache (``.pytest_cache/v/scale/figures``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_vllm.server import VLLMServer
from rig import rig_server
from tests.rig_servers import say_dtype
from tests.scale_tests.router import VLLMRouter, http_get

REPLICAS = 2

FIGURES: dict[str, Any] = {}
"""What the tests measured, by test, printed in the terminal summary."""

_SESSION_START = time.monotonic()
_SUCCESS = re.compile(r"^vllm:request_success_total\{[^}]*\} ([0-9.eE+]+)$", re.M)


def request_count(server: VLLMServer) -> int:
    """Requests the replica finished, from its own ``/metrics``."""
    status, text = http_get(f"{server.root_url}/metrics")
    if status != 200:
        msg = f"{server.root_url}/metrics answered {status}"
        raise RuntimeError(msg)
    return round(sum(float(v) for v in _SUCCESS.findall(text)))


def request_counts(servers: list[VLLMServer]) -> list[int]:
    """`request_count` of each replica."""
    return [request_count(s) for s in servers]


def started_side_by_side(
    kind: str, count: int, figure: str
) -> Iterator[list[VLLMServer]]:
    """Start `count` rig servers of `kind` in parallel; yield them, stop them after.

    The startup time goes to `FIGURES[figure]`; a server that fails to start fails
    the caller (in its thread) with that server's error.
    """
    servers = [rig_server(kind) for _ in range(count)]
    errors: list[BaseException] = []

    def start(server: VLLMServer) -> None:
        try:
            server.start()
        except BaseException as e:  # re-raised below, in the test's thread
            errors.append(e)

    began = time.monotonic()
    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if errors:
            raise errors[0]
        FIGURES[figure] = round(time.monotonic() - began, 1)
        yield servers
    finally:
        for s in servers:
            s.stop()


@pytest.fixture(scope="session")
def replicas() -> Iterator[list[VLLMServer]]:
    """Two chat replicas (same served model name), started side by side."""
    yield from started_side_by_side("chat", REPLICAS, "replicas_startup_s")


@pytest.fixture(scope="session")
def router(replicas: list[VLLMServer]) -> Iterator[VLLMRouter]:
    """Round-robin router; health checks every second, so a dead replica is
    taken out of rotation quickly (the router's own retries cover the gap)."""
    with VLLMRouter(
        [s.root_url for s in replicas],
        policy="round_robin",
        args=[
            "--health-check-interval-secs",
            "1",
            "--health-failure-threshold",
            "2",
            "--health-success-threshold",
            "1",
            "--retry-max-retries",
            "5",
        ],
    ) as r:
        yield r


@pytest.fixture(scope="session")
def hash_router(replicas: list[VLLMServer]) -> Iterator[VLLMRouter]:
    """``consistent_hash`` router: requests with the same session key (header
    ``x-session-id``, ``x-user-id``, ... or body ``user``) go to one replica."""
    with VLLMRouter([s.root_url for s in replicas], policy="consistent_hash") as r:
        yield r


def pytest_terminal_summary(
    terminalreporter: Any, exitstatus: int, config: pytest.Config
) -> None:
    FIGURES["scale_test_wall_s"] = round(time.monotonic() - _SESSION_START, 1)
    if config.cache is not None:
        config.cache.set("scale/figures", FIGURES)
    terminalreporter.section("scale-out figures")
    for key, value in FIGURES.items():
        terminalreporter.write_line(f"{key}: {value}")


def pytest_sessionstart(session: pytest.Session) -> None:
    say_dtype(session)
