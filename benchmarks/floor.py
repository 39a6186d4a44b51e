"""The floor: the least any LangChain chat model can cost per call (`make bench`).

`FloorChat` is a `BaseChatModel` that does only what no chat model can skip:
LangChain's own `invoke` / `stream` / `abatch` machinery (callbacks, run manager,
messages, `ChatResult`), plus one bare HTTP POST (`httpx`, a kept-alive connection)
and `json.loads` of the answer (per SSE event when streaming). No retries, no error
mapping, no usage or metadata, no validation: a client cannot go below this, so
the benchmark reports ChatVLLM's client CPU as a ratio to it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class FloorChat(BaseChatModel):
    """One `httpx` POST and `json.loads` per call, under LangChain's machinery."""

    base_url: str
    model: str
    max_tokens: int

    _client: httpx.Client = PrivateAttr()
    _aclients: dict[int, httpx.AsyncClient] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        self._client = httpx.Client(timeout=60)

    @property
    def _llm_type(self) -> str:
        return "floor"

    def _payload(
        self, messages: list[BaseMessage], stream: bool, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [
                {"role": _ROLES[m.type], "content": m.content} for m in messages
            ],
            "max_tokens": kwargs.get("max_tokens", self.max_tokens),
            **({"stream": True} if stream else {}),
        }

    @property
    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = self._client.post(
            self._url, json=self._payload(messages, False, kwargs)
        )
        return _result(json.loads(response.content))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        loop = id(asyncio.get_running_loop())
        client = self._aclients.get(loop)
        if client is None:
            # The pool limits of ChatVLLM's and the raw SDK's async clients (at most
            # 100 idle): the comparison is of client code, not of a pool setting.
            limits = httpx.Limits(max_connections=1024, max_keepalive_connections=100)
            client = self._aclients[loop] = httpx.AsyncClient(timeout=60, limits=limits)
        response = await client.post(
            self._url, json=self._payload(messages, False, kwargs)
        )
        return _result(json.loads(response.content))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        payload = self._payload(messages, True, kwargs)
        with self._client.stream("POST", self._url, json=payload) as response:
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:])["choices"]
                if not choices:
                    continue
                text = choices[0]["delta"].get("content") or ""
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk


def _result(answer: dict[str, Any]) -> ChatResult:
    message = AIMessage(content=answer["choices"][0]["message"]["content"] or "")
    return ChatResult(generations=[ChatGeneration(message=message)])
