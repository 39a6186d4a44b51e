"""The compat smoke: the rig's servers on another vLLM release, once per session.

`COMPAT_VLLM_VERSION` names the release (default: the rig's own, `RIG_VLLM_VERSION`);
its environment comes from ``python scripts/setup_rig.py --only chat embeddings
--vllm VERSION`` (``make compat VLLM_VERSION=...`` builds it and runs this folder).
A server that cannot start on that release fails the tests that need it with its
log tail: live tests never skip. At most two servers run at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from langchain_vllm._versions import version_tuple
from rig import RIG_VLLM_VERSION
from tests.rig_servers import RigServers, say_dtype

VERSION = os.environ.get("COMPAT_VLLM_VERSION") or RIG_VLLM_VERSION
"""The vLLM release under test."""
RELEASE = version_tuple(VERSION)
MAX_SERVERS = 2
"""The machine's limit: a third kind stops the one started first."""


RIG = RigServers(vllm_version=VERSION, max_servers=MAX_SERVERS)


@pytest.fixture(scope="session", autouse=True)
def _rig() -> Iterator[RigServers]:
    yield RIG
    RIG.stop_all()


@pytest.fixture(scope="session")
def chat_url() -> str:
    return RIG.url("chat")


@pytest.fixture(scope="session")
def embeddings_url() -> str:
    return RIG.url("embeddings")


@pytest.fixture(scope="session")
def reasoning_url() -> str:
    return RIG.url("reasoning")


def pytest_sessionstart(session: pytest.Session) -> None:
    say_dtype(session)
