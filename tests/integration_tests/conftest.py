"""Live vLLM servers for the integration suite: started once per session, shared.

`VLLM_API_BASE` (and `VLLM_API_KEY`) point the chat tests at a server of your own
instead, `VLLM_LORA_API_BASE` the LoRA tests (a server like the rig's "lora" one).
A server that cannot start fails the tests that need it, with its log tail: live
tests never skip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_vllm import ChatVLLM
from tests.rig_servers import RigServers, say_dtype

OWN_SERVER_ENV = {"chat": "VLLM_API_BASE", "lora": "VLLM_LORA_API_BASE"}
"""Environment variables that point a kind's tests at a server of your own."""


RIG = RigServers(own_env=OWN_SERVER_ENV)

# Greedy output of the 135M test model on vLLM's CPU build changes with load and
# batching, so no test compares two generations' free text. Where a test needs two
# answers to agree (stream vs invoke, a chain vs its parts), the server is made to
# write one fixed answer (a single-string regex): the comparison then checks the
# client, not the model's luck.
FIXED_TEXT = "Amo programmare."
FIXED: dict[str, Any] = {
    "structured_outputs": {"regex": re.escape(FIXED_TEXT)},
    "max_tokens": 40,
}
"""Per-call arguments that make the chat server answer exactly FIXED_TEXT."""
FIXED_COMPLETION = " Paris."
FIXED_COMPLETION_ARGS: dict[str, Any] = {
    "structured_outputs": {"regex": re.escape(FIXED_COMPLETION)},
    "max_tokens": 40,
}
"""The same for completions (VLLMOpenAI)."""


@pytest.fixture(scope="session", autouse=True)
def _rig() -> Iterator[RigServers]:
    yield RIG
    RIG.stop_all()


@pytest.fixture(scope="session")
def chat_url() -> str:
    return RIG.url("chat")


@pytest.fixture(scope="session")
def reasoning_url() -> str:
    return RIG.url("reasoning")


@pytest.fixture(scope="session")
def plain_url() -> str:
    return RIG.url("plain")


@pytest.fixture
def lora_url() -> str:
    """The LoRA server (base model + adapter `pineapple`, runtime loading on).

    Shared by test_lora.py and the notebook test (one start for both: the two
    modules run one after the other); the notebook test releases it when done, so
    it does not hold memory for the rest of the suite (function scope: a later
    test gets it started again, never a stale URL).
    """
    return RIG.url("lora")


@pytest.fixture(scope="session")
def embeddings_url() -> str:
    return RIG.url("embeddings")


@pytest.fixture(scope="session")
def vision_url() -> str:
    """The rig's vision server (synthetic SmolVLM, at most two images a prompt).

    Started on first use and shared by test_vision.py, the standard suite's vision
    configuration and the notebook; stopped with the other servers at the end of
    the session (test_vision.py is the last module, so it is not held for long).
    """
    return RIG.url("vision")


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Deselect the tests a class leaves out by its `only_tests` attribute.

    The standard suite's vision configuration runs only its multimodal tests: the
    rest already run against the chat server (same text model, same flags).
    Deselected tests are counted in pytest's summary ("N deselected").
    """
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        only = getattr(getattr(item, "cls", None), "only_tests", None)
        name = getattr(item, "originalname", item.name)
        (drop if only is not None and name not in only else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="module")
def thinker(reasoning_url: str) -> ChatVLLM:
    """The reasoning tests' recipe: the budget ends the reasoning after 6 tokens,
    min_tokens keeps the model from stopping before an answer."""
    return ChatVLLM(
        base_url=reasoning_url,
        temperature=0,
        max_tokens=40,
        min_tokens=16,
        thinking_token_budget=6,
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    say_dtype(session)
