"""Reading vLLM's chat answers: checks, vLLM's own fields, markup, cut-off answers.

Works on the decoded JSON and on LangChain's generations; knows nothing of the
client object. ChatVLLM's hooks call these for whole answers and stream chunks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import openai
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from langchain_vllm._markup import (
    Markup,
    MarkupParser,
    split_markup,
    to_tool_call_chunks,
)
from langchain_vllm._plain_answer import plain_result
from langchain_vllm._tokens import token_problem
from langchain_vllm._tool_stream import (
    report_answer_cut,
)
from langchain_vllm._tools import TOOL_CALL_OPENERS, called_tools
from langchain_vllm.errors import VLLMEmptyAnswerError

REASONING = "reasoning_content"
"""The `additional_kwargs` key of a message's reasoning text (also the field of
older vLLM answers that carries it)."""

RESPONSE_FIELDS = (
    "prompt_logprobs",
    "prompt_token_ids",
    "kv_transfer_params",
    "prompt_text",
    # servers started with --enable-per-request-metrics: time to first token,
    # queue time, ... (a stream's last chunk)
    "metrics",
)
"""Top-level fields of a vLLM chat answer that OpenAI's has not."""
CHOICE_FIELDS = ("stop_reason", "token_ids", "weight_versions")
"""Per-choice fields of a vLLM chat answer that OpenAI's has not (vLLM 0.33+ sends
`weight_versions` as null unless `return_weight_versions`; nulls are skipped)."""


def read_chat_result(
    chat: Any,
    response: Any,
    generation_info: dict[str, Any] | None,
    parent: Callable[..., ChatResult],
) -> ChatResult:
    """A chat completion answer as LangChain's result, read once.

    The body is checked, `parent` (ChatOpenAI's reader) builds the result, and
    vLLM's parts go on it: reasoning, vLLM-only fields, client-side markup, a
    tool call cut by `max_tokens`, an answer that is all reasoning.

    Raises:
        VLLMResponseError: the body is not what vLLM sends.
        VLLMEmptyAnswerError: only reasoning came, with
            `error_on_empty_reasoning_only`.
    """
    data = (
        # `parsed` holds the user's own model (structured output): not ours
        # to dump; the parent copies it over from the typed response.
        response.model_dump(
            exclude={"choices": {"__all__": {"message": {"parsed"}}}},
            warnings=False,
        )
        if isinstance(response, openai.BaseModel)
        else response
    )
    problem = completion_problem(data)
    if problem:
        raise chat._malformed(problem)
    result = plain_result(response, generation_info, chat.model_name)
    if result is None:
        result = parent(response, generation_info)
    add_vllm_fields(result, data)
    if chat.parse_think_tags or chat.parse_tool_call_tags:
        split_generations(result, chat._markup)
    report_cut_generations(result)
    check_generations(result, error_on_empty=chat.error_on_empty_reasoning_only)
    return result


def completion_problem(data: Any) -> str | None:
    """What is wrong with a chat completion body, or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {data!r:.100}"
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return f"no choices in {data!r:.100}"
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            return f"a choice without a message: {choice!r:.100}"
        content = choice["message"].get("content")
        if content is not None and not isinstance(content, (str, list)):
            return f"message content is {type(content).__name__}, not text"
        ids, logprobs = choice.get("token_ids"), choice.get("logprobs")
        if ids is not None or logprobs is not None:
            tokens = token_problem(ids, logprobs)
            if tokens:
                return tokens
    if data.get("usage") is not None and not isinstance(data["usage"], dict):
        return f"usage is {data['usage']!r:.60}"
    return None


def chunk_problem(chunk: Any) -> str | None:
    """What is wrong with a stream chunk, or None (usage-only chunks are fine)."""
    if not isinstance(chunk, dict):
        return f"a stream event that is not a JSON object: {chunk!r:.100}"
    choices = chunk.get("choices")
    if choices is None or choices == []:
        return None
    if not isinstance(choices, list):
        return f"choices is {choices!r:.60}"
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
            return f"a stream choice without a delta: {choice!r:.100}"
    return None


def add_vllm_fields(result: ChatResult, data: dict[str, Any]) -> None:
    """Reasoning, `model_provider` and vLLM-only answer fields into the messages."""
    for generation, choice in zip(
        result.generations, data.get("choices") or [], strict=False
    ):
        message = choice.get("message") or {}
        reasoning = message.get("reasoning") or message.get(REASONING)
        if reasoning:
            generation.message.additional_kwargs[REASONING] = reasoning
        metadata = generation.message.response_metadata
        metadata["model_provider"] = "vllm"
        # vLLM-only answer fields (prompt_logprobs=, return_token_ids=, ...).
        for name in RESPONSE_FIELDS:
            if data.get(name) is not None:
                metadata[name] = data[name]
        for name in CHOICE_FIELDS:
            if choice.get(name) is not None:
                metadata[name] = choice[name]
        annotations = message.get("annotations")  # one (vLLM < 0.34) or a list
        if annotations:
            metadata["annotations"] = (
                annotations if isinstance(annotations, list) else [annotations]
            )
    if result.llm_output is not None:
        result.llm_output["model_provider"] = "vllm"


def add_chunk_reasoning(chunk: dict[str, Any], message: AIMessageChunk) -> None:
    """Put a stream delta's reasoning, vLLM's fields and the provider on its message."""
    choices = chunk.get("choices") or []
    delta = (choices[0].get("delta") or {}) if choices else {}
    reasoning = delta.get("reasoning") or delta.get(REASONING)
    if reasoning:
        message.additional_kwargs[REASONING] = reasoning
    message.response_metadata["model_provider"] = "vllm"
    for name in RESPONSE_FIELDS:  # each on the first or the last chunk only
        if chunk.get(name) is not None:
            message.response_metadata[name] = chunk[name]
    choice = choices[0] if choices else {}
    # each chunk's new ids (joined when chunks merge), the last one's stop reason
    for name in CHOICE_FIELDS:
        if choice.get(name) is not None:
            message.response_metadata[name] = choice[name]


def markup_parser(markup: Markup) -> MarkupParser | None:
    """A streaming parser of the `markup` asked for, or None when none is."""
    if not (markup.think or markup.tool_calls):
        return None
    return MarkupParser(markup)


def split_generations(result: ChatResult, markup: Markup) -> None:
    """Client-side reasoning and tool-call parsing of each whole answer."""
    if markup.think or markup.tool_calls:
        result.generations = [split_generation(g, markup) for g in result.generations]


def split_generation(generation: ChatGeneration, markup: Markup) -> ChatGeneration:
    """Client-side reasoning and tool-call parsing of one whole answer.

    A server-side parser's results win: reasoning already split out, or tool calls
    already parsed, are left as they are.
    """
    message = generation.message
    if not isinstance(message, AIMessage) or not isinstance(message.content, str):
        return generation
    content, reasoning, calls, invalid = split_markup(
        message.content,
        replace(
            markup,
            think=markup.think and REASONING not in message.additional_kwargs,
            tool_calls=markup.tool_calls and not message.tool_calls,
        ),
    )
    update: dict[str, Any] = {"content": content}
    if reasoning:
        update["additional_kwargs"] = {
            **message.additional_kwargs,
            REASONING: reasoning,
        }
    if calls or invalid:
        update["tool_calls"] = [*message.tool_calls, *calls]
        update["invalid_tool_calls"] = [*message.invalid_tool_calls, *invalid]
    # A new generation: its `text` is computed at construction.
    return ChatGeneration(
        message=message.model_copy(update=update),
        generation_info=generation.generation_info,
    )


def split_chunk(
    parser: MarkupParser, generation: ChatGenerationChunk
) -> ChatGenerationChunk:
    """Client-side reasoning and tool-call parsing of one stream chunk."""
    message = generation.message
    if not isinstance(message, AIMessageChunk) or not isinstance(message.content, str):
        return generation
    index = parser.calls_emitted
    content, reasoning, calls = parser.feed(message.content)
    if (generation.generation_info or {}).get("finish_reason"):
        rest, more_reasoning, more_calls = parser.flush()
        content, reasoning = content + rest, reasoning + more_reasoning
        calls = calls + more_calls
    if content == message.content and not reasoning and not calls:
        return generation
    additional = dict(message.additional_kwargs)
    if reasoning:
        additional[REASONING] = (additional.get(REASONING) or "") + reasoning
    parsed = AIMessageChunk(
        content=content,
        additional_kwargs=additional,
        response_metadata=message.response_metadata,
        tool_call_chunks=[
            *message.tool_call_chunks,
            *to_tool_call_chunks(calls, index),
        ],
        usage_metadata=message.usage_metadata,
        id=message.id,
    )
    return ChatGenerationChunk(
        message=parsed, generation_info=generation.generation_info
    )


class AnswerSeen:
    """What an answer (or a stream so far) delivered.

    Whether anything came, the finish reason (None at the end of a stream: it is
    incomplete), and what `check_answer` needs.
    """

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.answered = False
        self.tool_calls = False
        self.tool_names: list[str] = []
        self.reasoning_chars = 0
        self.head = ""
        self.received = False

    def add_message(self, message: AIMessage, finish_reason: str | None) -> None:
        """Account for a whole message or a stream chunk's message."""
        self.finish_reason = finish_reason or self.finish_reason
        chunks = message.tool_call_chunks if isinstance(message, AIMessageChunk) else []
        calls = bool(message.tool_calls or chunks)
        if calls or message.invalid_tool_calls:
            self.tool_calls = self.tool_calls or calls
            self.tool_names += called_tools(message)
            self.tool_names += [c["name"] for c in chunks if c["name"]]
        content = message.content
        if not self.answered:
            # text only: a Responses answer's content also holds reasoning blocks
            text = content if isinstance(content, str) else message.text
            self.answered = calls or bool(text)
        if len(self.head) < 32 and isinstance(content, str):
            self.head += content
        reasoning = message.additional_kwargs.get(REASONING)
        if reasoning:
            self.reasoning_chars += len(reasoning)

    def add_text(self, content: str, extra: dict[str, Any]) -> None:
        """Account for a stream chunk of text (and reasoning) only."""
        self.received = True
        if content:
            self.answered = True
            if len(self.head) < 32:
                self.head += content
        reasoning = extra.get(REASONING)
        if reasoning:
            self.reasoning_chars += len(reasoning)

    def add(self, chunk: ChatGenerationChunk) -> None:
        """Account for one stream chunk."""
        self.received = True
        metadata = chunk.message.response_metadata
        finish_reason = (chunk.generation_info or {}).get("finish_reason") or (
            responses_finish_reason(metadata) if "status" in metadata else None
        )
        if isinstance(chunk.message, AIMessageChunk):
            self.add_message(chunk.message, finish_reason)
        else:
            self.finish_reason = finish_reason or self.finish_reason


def responses_finish_reason(metadata: Mapping[str, Any]) -> str | None:
    """A Responses API answer's end as a Chat Completions finish reason.

    `/v1/responses` has no finish reason: its last event carries the response's
    `status` ("completed", or "incomplete" with `incomplete_details.reason`).

    Returns:
        "stop", "length" (`max_output_tokens`), another incomplete reason, or None
        while the response has not ended.
    """
    status = metadata.get("status")
    if status == "completed":
        return "stop"
    if status == "incomplete":
        reason = (metadata.get("incomplete_details") or {}).get("reason")
        return "length" if reason == "max_output_tokens" else str(reason)
    return None


def check_generations(result: ChatResult, *, error_on_empty: bool) -> None:
    """`check_answer` for each whole answer of a result."""
    for generation in result.generations:
        seen = AnswerSeen()
        finish_reason = (generation.generation_info or {}).get(
            "finish_reason"
        ) or responses_finish_reason(generation.message.response_metadata)
        if isinstance(generation.message, AIMessage):
            seen.add_message(generation.message, finish_reason)
        check_answer(seen, error_on_empty=error_on_empty)


def check_answer(seen: AnswerSeen, *, error_on_empty: bool) -> None:
    """Warn about answers cut off at the token limit that look like none.

    Every token spent on reasoning (no answer; an error with `error_on_empty`), or
    the limit hit inside a tool call (vLLM then returns no tool call, and
    function-calling structured output gives None).

    Raises:
        VLLMEmptyAnswerError: only reasoning came back, and `error_on_empty`.
    """
    if seen.finish_reason != "length":
        return
    if not seen.answered and seen.reasoning_chars:
        msg = (
            "vLLM stopped at the token limit (finish_reason='length') while the "
            f"model was still reasoning: no answer, {seen.reasoning_chars} "
            "characters of reasoning. Raise `max_tokens`, or cap the reasoning "
            "below it with `thinking_token_budget`."
        )
        if error_on_empty:
            raise VLLMEmptyAnswerError(msg)
        warnings.warn(msg, UserWarning, stacklevel=5)
    elif not seen.tool_calls and seen.head.lstrip().startswith(TOOL_CALL_OPENERS):
        msg = (
            "vLLM stopped at the token limit (finish_reason='length') in the "
            "middle of a tool call: the call is incomplete, so the message has "
            "none (function-calling structured output returns None). Raise "
            "`max_tokens`; for a model that keeps writing inside a string "
            "argument, bound the strings with `max_json_string_length`."
        )
        warnings.warn(msg, UserWarning, stacklevel=5)


def report_cut_generations(result: ChatResult) -> None:
    """Whole answers stopped by `max_tokens` inside a tool call: say it is cut.

    The last call moves to `invalid_tool_calls` with an error saying so, and
    `response_metadata["cut_tool_call"]` names it (as a stream's last chunk does).
    """
    for generation in result.generations:
        finish_reason = (generation.generation_info or {}).get("finish_reason")
        message = generation.message
        if (
            finish_reason == "length"
            and isinstance(message, AIMessage)
            and (message.tool_calls or message.invalid_tool_calls)
        ):
            generation.message = report_answer_cut(message)
