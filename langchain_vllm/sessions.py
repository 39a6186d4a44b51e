"""Ending sessions at vLLM's router when a conversation or rollout is over.

vllm-router keeps state for sticky sessions (the `sticky_least_loaded` policy pins
a session to a replica until it expires); `POST /finish_session?session_id=...`
releases it at once. `consistent_hash` keeps no state: the route answers there too,
with nothing to release. A vLLM server without a router has no such route.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import openai

__all__ = [
    "RolloutSession",
    "afinish_session",
    "arollout_session",
    "finish_session",
    "rollout_session",
]

logger = logging.getLogger(__name__)


def _path(session_id: str) -> str:
    return f"/finish_session?session_id={quote(session_id, safe='')}"


def finish_session(model: Any, session_id: str) -> bool:
    """Release `session_id` at the router `model` talks to (`POST /finish_session`).

    Args:
        model: A `ChatVLLM` or `VLLMOpenAI` (its `base_url` is the router's).
        session_id: The session its requests were sent under (`session_id=` or the
            thread of `session_from_thread=True`).

    Returns:
        True when the router released it; False when the server has no sessions to
        release (a vLLM server without a router answers 404).

    Example:
        ```python
        # needs a running vLLM server
        from langchain_vllm import ChatVLLM
        from langchain_vllm.sessions import finish_session

        chat = ChatVLLM(session_id="conversation-42")
        finish_session(chat, "conversation-42")  # False without a router
        ```
    """
    try:
        model._link.post(_path(session_id), {})
    except openai.NotFoundError:
        return False
    return True


async def afinish_session(model: Any, session_id: str) -> bool:
    """Async `finish_session`."""
    try:
        await model._link.apost(_path(session_id), {})
    except openai.NotFoundError:
        return False
    return True


@dataclass
class RolloutSession:
    """A session opened by `rollout_session`: its id, and whether it was released."""

    session_id: str
    finished: bool | None = None
    """After the block: True released at the router, False nothing to release
    (no router), None not finished (the finish request failed)."""

    @property
    def config(self) -> dict[str, Any]:
        """A run config whose thread is the session (`session_from_thread=True`)."""
        return {"configurable": {"thread_id": self.session_id}}


@contextmanager
def rollout_session(
    model: Any, session_id: str | None = None
) -> Iterator[RolloutSession]:
    """A session for one conversation or rollout, released when the block ends.

    The session is released on success, on an error and on cancellation. A failed
    release after an error is logged, not raised (the block's error stands).

    Example:
        ```python
        # needs a running vLLM server
        from langchain_vllm import ChatVLLM
        from langchain_vllm.sessions import rollout_session

        chat = ChatVLLM()
        with rollout_session(chat) as session:
            chat.invoke("Hi!", session_id=session.session_id)
        session.finished  # True behind vllm-router, False on a bare server
        ```
    """
    session = RolloutSession(session_id or f"rollout-{uuid.uuid4()}")
    try:
        yield session
    except BaseException:
        try:
            session.finished = finish_session(model, session.session_id)
        except Exception:
            logger.warning("Could not finish session %s", session.session_id)
        raise
    session.finished = finish_session(model, session.session_id)


@asynccontextmanager
async def arollout_session(
    model: Any, session_id: str | None = None
) -> AsyncIterator[RolloutSession]:
    """Async `rollout_session` (also released when the task is cancelled)."""
    session = RolloutSession(session_id or f"rollout-{uuid.uuid4()}")
    try:
        yield session
    except BaseException:
        try:
            session.finished = await afinish_session(model, session.session_id)
        except Exception:
            logger.warning("Could not finish session %s", session.session_id)
        raise
    session.finished = await afinish_session(model, session.session_id)
