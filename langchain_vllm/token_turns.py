"""Token-in/token-out turns: conversations that keep the exact ids they sampled."""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import openai
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.messages import AIMessage, BaseMessage, convert_to_openai_messages
from langchain_core.outputs import ChatResult
from pydantic import Field, PrivateAttr

from langchain_vllm.chat_models import ChatVLLM
from langchain_vllm.errors import VLLMModelNotFoundError, VLLMServerFeatureError

__all__ = ["ChatVLLMTokenTurns"]

SDK_ONLY = ("extra_headers", "extra_query", "extra_body", "timeout", "stream_options")
"""Payload keys the openai SDK consumes itself (not part of the JSON body)."""
ROUTES = (
    "/v1/chat/completions/render",
    "/inference/v1/generate",
    "/v1/chat/completions/derender",
)


@dataclass(frozen=True)
class _Turn:
    """One answered turn: what was sent before it and the ids it was sampled on."""

    history: str
    """The request's messages (OpenAI form, JSON), to recognize the conversation."""
    prompt_ids: list[int]
    completion_ids: list[int]


class ChatVLLMTokenTurns(ChatVLLM):
    """ChatVLLM whose multi-turn conversations keep the exact token ids sampled.

    A chat server re-renders the whole conversation each turn, and chat templates
    render earlier turns differently from how they were sampled (reasoning dropped,
    tool calls re-serialized). For training, each turn's prompt must be the previous
    prompt, the previous completion's ids as sampled, then the new messages (tool
    results, user turns). This model sends every turn as token ids through vLLM's
    scale-out endpoints (vLLM 0.32+, server started with `--enable-scale-out`):

    1. `/v1/chat/completions/render`: the request as the chat endpoint would build
       it (prompt ids and sampling parameters, tool-call grammars included);
    2. `/inference/v1/generate`: the prompt as ids in, completion ids and one
       logprob per token out;
    3. `/v1/chat/completions/derender`: the server's own tool and reasoning parsers
       turn the ids back into a chat answer (tool calls, reasoning, content).

    When a request continues a conversation this model answered (the last assistant
    message is one of its answers, and the messages before it are those it was
    asked with), the prompt is the previous prompt ids + completion ids + the ids
    of the new messages (the template's render of them, after the end of the
    previous turn); otherwise the server's render is used as it is. Each answer's
    `response_metadata` has `prompt_token_ids`, `token_ids`, `logprobs` and
    `token_turn` ("continued" or "rendered").

    Streaming is not offered (`stream` gives the whole answer as one chunk).

    Setup:
        ```bash
        vllm serve MODEL --enable-scale-out  # + your tool and reasoning parsers
        ```

    Instantiate:
        ```python
        from langchain_vllm.token_turns import ChatVLLMTokenTurns

        model = ChatVLLMTokenTurns(model="policy-v3", temperature=1.0)
        ```

    Invoke:
        ```python
        first = model.invoke([("user", "Hi!")])
        second = model.invoke([("user", "Hi!"), first, ("user", "And now?")])
        second.response_metadata["token_turn"]  # 'continued'
        ```
    """

    disable_streaming: bool = True  # type: ignore[assignment]
    """One whole answer per call (the generate endpoint is used without a stream)."""

    max_remembered_turns: int = Field(default=4096, ge=1)
    """Answered turns remembered to continue conversations (oldest forgotten first)."""

    _turns: OrderedDict[str, _Turn] = PrivateAttr(default_factory=OrderedDict)
    _turns_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # -- the three requests ----------------------------------------------------------
    def _generate(  # type: ignore[override]
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        body = self._chat_body(messages, stop, kwargs)
        with _scale_out(self._link.base_url):
            request = self._link.post(ROUTES[0], body, ("token_ids",))
            previous = self._continued(messages)
            if previous is not None:
                turn, before = previous
                prefix = self._link.post(ROUTES[0], _prefix_body(body, before))
                request["token_ids"], how = _continue(
                    turn, prefix["token_ids"], request["token_ids"]
                )
            else:
                how = "rendered"
            answer = self._link.post(ROUTES[1], _ask_logprobs(request), ("choices",))
            chat = self._link.post(ROUTES[2], _derender_body(body, request, answer))
        return self._finish(messages, body, request, answer, chat, how, kwargs)

    async def _agenerate(  # type: ignore[override]
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        await self._aprepare(kwargs)
        body = self._chat_body(messages, stop, kwargs)
        with _scale_out(self._link.base_url):
            request = await self._link.apost(ROUTES[0], body, ("token_ids",))
            previous = self._continued(messages)
            if previous is not None:
                turn, before = previous
                prefix = await self._link.apost(ROUTES[0], _prefix_body(body, before))
                request["token_ids"], how = _continue(
                    turn, prefix["token_ids"], request["token_ids"]
                )
            else:
                how = "rendered"
            answer = await self._link.apost(
                ROUTES[1], _ask_logprobs(request), ("choices",)
            )
            chat = await self._link.apost(
                ROUTES[2], _derender_body(body, request, answer)
            )
        return self._finish(messages, body, request, answer, chat, how, kwargs)

    # -- pieces ------------------------------------------------------------------------
    def _chat_body(
        self, messages: list[BaseMessage], stop: Any, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """The JSON body the chat endpoint would get for this call."""
        payload = self._get_request_payload(messages, stop=stop, **kwargs)
        body = {k: v for k, v in payload.items() if k not in SDK_ONLY}
        body.update(payload.get("extra_body") or {})
        body.pop("stream", None)
        return body

    def _continued(self, messages: list[BaseMessage]) -> tuple[_Turn, int] | None:
        """The remembered turn this request continues, and its message's index."""
        for index in range(len(messages) - 1, -1, -1):
            message = messages[index]
            if not isinstance(message, AIMessage) or message.id is None:
                continue
            with self._turns_lock:
                turn = self._turns.get(message.id)
            if turn is None or index == len(messages) - 1:
                return None
            history = _history(messages[:index])
            return (turn, index) if history == turn.history else None
        return None

    def _finish(
        self,
        messages: list[BaseMessage],
        body: dict[str, Any],
        request: dict[str, Any],
        answer: dict[str, Any],
        chat: dict[str, Any],
        how: str,
        kwargs: dict[str, Any],
    ) -> ChatResult:
        """The chat answer as a result, with the exact ids; remember the turn."""
        choice = answer["choices"][0]
        completion_ids = list(choice.get("token_ids") or [])
        chat["prompt_token_ids"] = request["token_ids"]
        chat_choice = chat["choices"][0]
        chat_choice["token_ids"] = completion_ids
        chat_choice["logprobs"] = choice.get("logprobs")  # one per completion id
        chat.setdefault("usage", answer.get("usage"))
        result = self._create_chat_result(chat)
        self._check_result(result, kwargs)
        message = result.generations[0].message
        message.response_metadata["token_turn"] = how
        # the id recognizes the answer when a conversation continues with it
        message.id = message.id or chat.get("id") or f"tito-{uuid.uuid4()}"
        turn = _Turn(_history(messages), request["token_ids"], completion_ids)
        with self._turns_lock:
            self._turns[message.id] = turn
            while len(self._turns) > self.max_remembered_turns:
                self._turns.popitem(last=False)
        return result


def _history(messages: list[BaseMessage]) -> str:
    return json.dumps(convert_to_openai_messages(messages), sort_keys=True, default=str)


def _prefix_body(body: dict[str, Any], before: int) -> dict[str, Any]:
    """The render request of the conversation up to the previous answer."""
    return {
        **body,
        "messages": body["messages"][: before + 1],
        "add_generation_prompt": False,
    }


def _continue(
    turn: _Turn, prefix_ids: list[int], full_ids: list[int]
) -> tuple[list[int], str]:
    """The prompt that extends the previous turn's exact ids, and how it was made.

    The new messages' ids are the template's render after the previous answer
    (`full_ids` past `prefix_ids`); between them goes what the template writes
    after the answer's last token (its end-of-turn), e.g. a newline.
    """
    last = turn.completion_ids[-1] if turn.completion_ids else None
    ends = [i for i, token in enumerate(prefix_ids) if token == last]
    if (
        full_ids[: len(prefix_ids)] != prefix_ids
        or not ends
        or len(prefix_ids) - ends[-1] > 8  # the answer was cut: no end-of-turn
    ):
        return full_ids, "rendered"
    glue = prefix_ids[ends[-1] + 1 :]
    new = full_ids[len(prefix_ids) :]
    return turn.prompt_ids + turn.completion_ids + glue + new, "continued"


def _ask_logprobs(request: dict[str, Any]) -> dict[str, Any]:
    """The generate request, asking for one logprob per sampled token."""
    sampling = dict(request.get("sampling_params") or {})
    if sampling.get("logprobs") is None:
        sampling["logprobs"] = 0
    return {**request, "sampling_params": sampling}


def _derender_body(
    body: dict[str, Any], request: dict[str, Any], answer: dict[str, Any]
) -> dict[str, Any]:
    """The derender request: the ids to parse, with the chat request for parsers.

    A final end-of-sequence token (a stop without a stop string or stop token of
    the request's) is left out, as the chat endpoint leaves it out of the text.
    """
    response = json.loads(json.dumps(answer))
    choice = response["choices"][0]
    choice["logprobs"] = None  # the answer's come from the generate response
    if choice.get("finish_reason") == "stop" and choice.get("stop_reason") is None:
        choice["token_ids"] = list(choice.get("token_ids") or [])[:-1]
    return {
        "model": body.get("model"),
        "generate_response": response,
        "prompt_tokens": len(request["token_ids"]),
        "prompt_token_ids": request["token_ids"],
        "chat_request": body,
    }


@contextmanager
def _scale_out(base_url: str) -> Iterator[None]:
    """Turn a refused or missing scale-out route into a typed error naming the flag."""
    try:
        yield
    except (openai.PermissionDeniedError, openai.NotFoundError) as error:
        if isinstance(error, VLLMModelNotFoundError):
            raise
        msg = (
            f"The vLLM server at {base_url} does not serve token turns: "
            "ChatVLLMTokenTurns needs vLLM 0.32+ started with `--enable-scale-out` "
            f"(routes {', '.join(ROUTES)}). Server said: {error.message}"
        )
        raise VLLMServerFeatureError(
            msg, response=error.response, body=error.body
        ) from error
