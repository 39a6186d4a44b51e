"""vLLM's Responses API (`/v1/responses`, `use_responses_api=True`) for ChatVLLM.

langchain-openai reads OpenAI's Responses events and answers. vLLM also sends the
model's reasoning as text (`reasoning_text` content and
`response.reasoning_text.delta` events, where OpenAI sends summaries), which the
parent keeps in invoke's content blocks but drops from streams. Here a stream reads
the same events as the parent plus vLLM's reasoning deltas, and both invoke and
stream carry the reasoning text in `additional_kwargs["reasoning_content"]` too,
as on Chat Completions, so a stream adds up to the message invoke returns.

The stream readers below (used while `_seams.RESPONSES_CONVERTER` holds; else the
parent's own, which leave vLLM's reasoning text out of streams) are a fork of
langchain-openai's
`BaseChatOpenAI._stream_responses` / `_astream_responses`: the parent's event
converter drops `response.reasoning_text.delta` and its readers have no hook to add
it. They thread the same per-stream state into the parent's converter;
tests/unit_tests/test_contract.py fails when the parent's readers or the converter's
parameters change, so the fork is re-read against them. Left out on purpose, as of
langchain-openai 1.8.1: the LangSmith gateway metadata (`_uses_gateway`), the
parent's error mapping (ChatVLLM's clients raise vLLM's errors) and, not yet
carried over, `stream_chunk_timeout` on async streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from langchain_vllm import _seams as seams
from langchain_vllm._chat_answer import (
    REASONING,
    check_generations,
    report_cut_generations,
    responses_finish_reason,
)
from langchain_vllm._versions import RESPONSES_PARAMS_SINCE, version_tuple
from langchain_vllm.errors import VLLMIncompleteStreamError
from langchain_vllm.params import (
    RESPONSES_PARAMS,
    TEMPLATE_SWITCHES,
    VLLMChatParams,
    param_names,
)


def check_responses_params(
    extra: dict[str, Any], version: Callable[[], str] | None = None
) -> None:
    """Refuse the vLLM parameters that `/v1/responses` does not read.

    Those it reads from some vLLM version on (`RESPONSES_PARAMS_SINCE`, e.g.
    `thinking_token_budget` from 0.34) are checked against the server's
    `version()` (asked once, only when one of them is set; "" for a server that
    does not say passes) before a request, and let through without `version`.

    Raises:
        ValueError: naming them (vLLM would accept and ignore them).
    """
    reads = RESPONSES_PARAMS | TEMPLATE_SWITCHES | RESPONSES_PARAMS_SINCE.keys()
    ignored = [n for n in extra if n in param_names(VLLMChatParams) and n not in reads]
    served = ""
    if version is not None and RESPONSES_PARAMS_SINCE.keys() & extra.keys():
        served = version()
    release = version_tuple(served) if served else None
    late = {
        name: since
        for name, since in RESPONSES_PARAMS_SINCE.items()
        if name in extra and release is not None and release < since
    }
    if ignored or late:
        later = ", ".join(f"{n} from vLLM {v[0]}.{v[1]} on" for n, v in late.items())
        names = ", ".join(sorted([*ignored, *late]))
        msg = (
            f"vLLM's /v1/responses does not read {names} (it would accept and "
            "ignore them); they work on Chat Completions (`use_responses_api` "
            "unset). It reads: "
            f"{', '.join(sorted(RESPONSES_PARAMS))}"
            + (f"; {later} (this server: {served})." if late else ".")
        )
        raise ValueError(msg)


class ResponsesEvents:
    """One response's stream events, read into message chunks."""

    def __init__(self, url: str, schema: Any, output_version: str | None) -> None:
        self.url = url
        self.schema = schema
        self.output_version = output_version
        self.index = self.output_index = self.sub_index = -1
        self.has_reasoning = False
        self.item_output_indices: dict[str, int] = {}
        self.function_call_arguments: dict[str, str] = {}
        """Each function call's arguments so far (by item id): the `.done` event's
        arguments fill in what its deltas did not carry."""
        self.metadata: dict[str, Any] = {}
        """Goes into the first chunk's metadata (`include_response_headers`)."""

    def with_headers(self, raw: Any) -> Any:
        """The parsed stream of a raw response; its headers go on the first chunk."""
        self.metadata = {"headers": dict(raw.headers)}
        return raw.parse()

    def chunk(self, event: Any) -> ChatGenerationChunk | None:
        """The chunk for one event, or None for events that carry nothing."""
        if event.type in ("response.failed", "error"):
            raise self._failed(event)
        if event.type == "response.reasoning_text.delta":
            return self._reasoning(event.delta)
        convert = seams.RESPONSES_CONVERTER.value
        self.index, self.output_index, self.sub_index, chunk = convert(
            event,
            self.index,
            self.output_index,
            self.sub_index,
            schema=self.schema,
            metadata=self.metadata,
            has_reasoning=self.has_reasoning,
            output_version=self.output_version,
            item_output_indices=self.item_output_indices,
            function_call_arguments=self.function_call_arguments,
        )
        if chunk is not None:
            self.metadata = {}
            if "reasoning" in chunk.message.additional_kwargs:
                self.has_reasoning = True
            if event.type in ("response.completed", "response.incomplete"):
                add_finish_reason(chunk)  # the cut-call check reads it
        return chunk

    def _reasoning(self, delta: str) -> ChatGenerationChunk | None:
        if not delta:
            return None
        content: Any = ""
        if self.output_version != "v0":
            # Merges into the reasoning item's block (opened at `index` by its
            # `output_item.added` event), like invoke's `reasoning_text` content.
            text = {"type": "reasoning_text", "text": delta, "index": 0}
            content = [{"type": "reasoning", "index": self.index, "content": [text]}]
        message = AIMessageChunk(content=content, additional_kwargs={REASONING: delta})
        return ChatGenerationChunk(message=message)

    def _failed(self, event: Any) -> VLLMIncompleteStreamError:
        response = getattr(event, "response", None)
        problem = getattr(response, "error", None) or getattr(event, "message", "")
        return VLLMIncompleteStreamError(
            f"The server reported that the response from {self.url} failed "
            f"({problem or 'no reason given'}): the answer is not complete.",
            httpx2.Request("POST", self.url),
            body=None,
        )


def add_finish_reason(generation: ChatGeneration | ChatGenerationChunk) -> None:
    """A finished response's Chat Completions finish reason, as on Chat Completions.

    From its `status` (`responses_finish_reason`): "length" for a response cut
    short by `max_output_tokens` (vLLM 0.33+ ends such a stream with
    `response.incomplete`, 0.32 with `response.completed`; both say "incomplete").
    Into `response_metadata` and `generation_info`, where the cut-off checks read it.
    """
    reason = responses_finish_reason(generation.message.response_metadata)
    if reason is not None:
        generation.message.response_metadata["finish_reason"] = reason
        info = generation.generation_info or {}
        generation.generation_info = {**info, "finish_reason": reason}


def add_reasoning_text(result: ChatResult) -> None:
    """Copy each answer's reasoning text into `additional_kwargs`.

    As on Chat Completions: `reasoning_content`.
    """
    for generation in result.generations:
        message = generation.message
        if not isinstance(message, AIMessage) or not isinstance(message.content, list):
            continue
        text = "".join(
            part.get("text", "")
            for block in message.content
            if isinstance(block, dict) and block.get("type") == "reasoning"
            for part in block.get("content") or ()
            if isinstance(part, dict) and part.get("type") == "reasoning_text"
        )
        if text:
            message.additional_kwargs[REASONING] = text


def read_responses(chat: Any, result: ChatResult) -> None:
    """A whole Responses API answer: reasoning text, finish reasons, checks."""
    add_reasoning_text(result)
    for generation in result.generations:
        add_finish_reason(generation)
    report_cut_generations(result)  # a call cut short: invalid, named
    check_generations(result, error_on_empty=chat.error_on_empty_reasoning_only)


def _start(
    chat: Any, messages: Any, stop: Any, kwargs: dict[str, Any]
) -> tuple[dict[str, Any], ResponsesEvents]:
    """A streamed request's payload, and the reader of its events."""
    kwargs["stream"] = True
    payload = chat._get_request_payload(messages, stop=stop, **kwargs)
    url: str = chat._endpoint_url
    events = ResponsesEvents(url, kwargs.get("response_format"), chat.output_version)
    return payload, events


def stream_responses(
    chat: Any, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
) -> Iterator[ChatGenerationChunk]:
    """ChatOpenAI's `_stream_responses`, reading vLLM's reasoning deltas too."""
    payload, events = _start(chat, messages, stop, kwargs)
    client = chat.root_client
    if chat.include_response_headers:
        context = events.with_headers(
            client.with_raw_response.responses.create(**payload)
        )
    else:
        context = client.responses.create(**payload)
    with context as stream:
        for event in stream:
            chunk = events.chunk(event)
            if chunk is not None:
                if run_manager:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk


async def astream_responses(
    chat: Any, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
) -> AsyncIterator[ChatGenerationChunk]:
    """ChatOpenAI's `_astream_responses`, reading vLLM's reasoning deltas too."""
    payload, events = _start(chat, messages, stop, kwargs)
    client = chat.root_async_client
    if chat.include_response_headers:
        raw = await client.with_raw_response.responses.create(**payload)
        stream = events.with_headers(raw)
    else:
        stream = await client.responses.create(**payload)
    async with stream:
        async for event in stream:
            chunk = events.chunk(event)
            if chunk is not None:
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
