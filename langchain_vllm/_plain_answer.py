"""Whole chat answers of the common shape, read without validation.

Most answers are "plain": one choice whose message is the assistant's text, no tool
or function call, audio or refusal, and a usage with the three token counts only.
langchain-openai reads each through pydantic validation of the message, the
generation and the result (~20 µs of CPU, as much as the rest of the request's
client work). `plain_result` builds the same `ChatResult` directly: equal (`==`,
`model_dump`, fields set) to what langchain-openai's `_create_chat_result` gives,
which `tests/unit_tests/test_plain_answer.py` checks against the installed
langchain-core and langchain-openai on recorded vLLM answers. Any other answer
takes the validated path, as every answer does when pydantic's instance layout is
not what `_seams` checked.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_vllm import _seams as seams

_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
_DETAILS = ("prompt_tokens_details", "completion_tokens_details")
_PLAIN_USAGE = frozenset({*_COUNTS, *_DETAILS})
_CALLS = ("tool_calls", "function_call", "audio", "refusal")
"""Message fields that, when set, make an answer not plain."""

# What langchain-openai passes to the constructors (and validation marks set).
_MESSAGE_SET = frozenset(
    {"content", "additional_kwargs", "name", "id", "tool_calls", "invalid_tool_calls"}
)
_message = seams.model_builder(
    AIMessage(content=""), _MESSAGE_SET | {"usage_metadata"}, _MESSAGE_SET
)
_GENERATION_SET = frozenset({"message", "generation_info", "text"})
_generation = seams.model_builder(
    ChatGeneration(message=AIMessage(content="")), _GENERATION_SET, _GENERATION_SET
)
_RESULT_SET = frozenset({"generations", "llm_output"})
_result = seams.model_builder(ChatResult(generations=[]), _RESULT_SET, _RESULT_SET)


def _usage_metadata(usage: Any) -> dict[str, Any] | None:
    """langchain-openai's usage metadata of three plain token counts, or None."""
    if type(usage) is not dict or not usage.keys() <= _PLAIN_USAGE:
        return None
    if any(usage.get(name) for name in _DETAILS):
        return None
    counts = [usage.get(name) for name in _COUNTS]
    if any(type(count) is not int for count in counts):
        return None
    return {
        "input_tokens": counts[0],
        "output_tokens": counts[1],
        "total_tokens": counts[2],
        "input_token_details": {},
        "output_token_details": {},
    }


def only_choice(data: dict[str, Any]) -> dict[str, Any] | None:
    """The one choice of an answer or a stream chunk (a dict), or None."""
    choices = data.get("choices")
    if type(choices) is not list or len(choices) != 1 or type(choices[0]) is not dict:
        return None
    return choices[0]  # type: ignore[no-any-return]


def _plain_message(response: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The one choice of a plain answer and its message, or None."""
    if (
        type(response) is not dict
        or response.get("error")
        or response.get("service_tier")
    ):
        return None
    choice = only_choice(response)
    if choice is None or type(message := choice.get("message")) is not dict:
        return None
    if message.get("role") != "assistant" or any(message.get(n) for n in _CALLS):
        return None
    if type(message.get("content") or "") is not str:
        return None
    for name in ("name", "id"):
        if message.get(name) is not None and type(message[name]) is not str:
            return None
    return choice, message


def plain_result(
    response: Any, generation_info: dict | None, model_name: str | None
) -> ChatResult | None:
    """The `ChatResult` of a plain answer, or None (read it the validated way).

    `generation_info` and `model_name` are what langchain-openai's reader gets and
    reads (any `generation_info`, e.g. response headers: validated way).
    """
    if generation_info or not seams.PYDANTIC_BUILD.ok:
        return None
    plain = _plain_message(response)
    if plain is None:
        return None
    choice, message = plain
    usage = response.get("usage")
    usage_metadata = _usage_metadata(usage) if usage else None
    if usage and usage_metadata is None:
        return None
    content = message.get("content") or ""
    ai = _message(
        content=content,
        additional_kwargs={},
        name=message.get("name"),
        id=message.get("id"),
        tool_calls=[],
        invalid_tool_calls=[],
        usage_metadata=usage_metadata,
    )
    if usage_metadata is not None:
        ai.model_fields_set.add("usage_metadata")  # set after validation there
    info = {"finish_reason": choice.get("finish_reason")}
    if "logprobs" in choice:
        info["logprobs"] = choice["logprobs"]
    llm_output = {
        "token_usage": usage,
        "model_provider": "openai",
        "model_name": response.get("model", model_name),
        "system_fingerprint": response.get("system_fingerprint", ""),
    }
    if "id" in response:
        llm_output["id"] = response["id"]
    generation = _generation(message=ai, generation_info=info, text=content)
    result: ChatResult = _result(generations=[generation], llm_output=llm_output)
    return result
