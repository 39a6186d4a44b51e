"""Sessions: one conversation's requests under one id (`ChatVLLM`, `VLLMOpenAI`).

The session goes as vLLM's `session_id` body field (declared with the sampling
parameters) and as the `X-Session-ID` header, which vllm-router's
`consistent_hash` policy reads to keep a conversation on one replica.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables.config import ensure_config
from pydantic import BaseModel, ConfigDict

SESSION_HEADER = "X-Session-ID"


class SessionMixin(BaseModel):
    """The session option of the generation classes (not of embeddings or rerank).

    Example:
        ```python
        chat = ChatVLLM(session_from_thread=True)
        config = {"configurable": {"thread_id": "conversation-42"}}
        (RunnableLambda(lambda text: text) | chat).invoke("Hi", config=config)
        ```
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    session_from_thread: bool = False
    """Send the running thread's id (`configurable.thread_id` of the LangGraph graph
    or chain that calls the model) as `session_id`, body field and `X-Session-ID`
    header, when no `session_id` is set: one conversation's requests then share a
    session, which vllm-router's `consistent_hash` keeps on one replica."""


def add_session(
    payload: dict[str, Any], extra: dict[str, Any], *, from_thread: bool
) -> None:
    """Send a request's session as vLLM's `session_id` and the `X-Session-ID` header.

    The session is the call's or instance's `session_id` in `extra` (the request
    body's vLLM part), else (with `from_thread`) the `thread_id` of the run's
    config, which LangGraph and chains pass down to the model. The header goes into
    `payload["extra_headers"]`; a header the caller set there (any case) wins.

    Example:
        ```python
        payload: dict[str, Any] = {}
        add_session(payload, {"session_id": "s-1"}, from_thread=False)
        payload  # {'extra_headers': {'X-Session-ID': 's-1'}}
        ```
    """
    session = extra.get("session_id")
    if session is None and from_thread:
        thread = ensure_config().get("configurable", {}).get("thread_id")
        if thread is not None:
            session = extra["session_id"] = str(thread)
    if session is None:
        return
    headers = dict(payload.get("extra_headers") or {})
    if not any(name.lower() == SESSION_HEADER.lower() for name in headers):
        headers[SESSION_HEADER] = session
    payload["extra_headers"] = headers
