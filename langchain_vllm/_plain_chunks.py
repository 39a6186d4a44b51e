"""Stream chunks of the common shape (and prompt values), built without validation.

Nearly every chunk of a chat stream is "plain": one choice whose delta holds text
(and maybe reasoning, the role, vLLM's token ids), no finish reason, logprobs,
usage or tool calls. langchain-openai turns each into an `AIMessageChunk` and a
`ChatGenerationChunk` through pydantic validation (~10 µs of CPU per chunk, as much
as the rest of LangChain's per-chunk work), and ChatVLLM then rewrote the message's
metadata. `plain_chunk` builds the same two objects directly from a prototype's
field values: equal (`==`, `model_dump`) to what the validated path gives, which
`tests/unit_tests/test_plain_chunks.py` checks against the installed
langchain-core and langchain-openai. Any other chunk takes the validated path, as
every chunk does when pydantic's instance layout is not what `_seams` checked.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.prompt_values import ChatPromptValue

from langchain_vllm import _seams as seams
from langchain_vllm._chat_answer import CHOICE_FIELDS, REASONING
from langchain_vllm._plain_answer import only_choice

PLAIN_DELTA = frozenset({"content", "role", "reasoning", REASONING})
"""Delta fields a plain chunk may set (others must be absent, null or empty)."""
SKIPPED_TOP = frozenset(
    {
        "id",
        "object",
        "created",
        "model",
        "choices",
        "system_fingerprint",
        "service_tier",
    }
)
"""Top-level fields langchain-openai ignores on a chunk without a finish reason
(any other set field, usage or vLLM's own, makes a chunk not plain)."""
_NO_METADATA = frozenset({"index", "delta", "logprobs", "finish_reason"})
"""Choice fields none of which goes into `response_metadata` (`CHOICE_FIELDS` do)."""


# What langchain-openai passes to the constructors (and validation marks set).
_MESSAGE_SET = frozenset({"content", "additional_kwargs", "id", "tool_call_chunks"})
_GENERATION_SET = frozenset({"message", "generation_info", "text"})
_message = seams.model_builder(
    AIMessageChunk(content=""), _MESSAGE_SET | {"response_metadata"}, _MESSAGE_SET
)
_generation = seams.model_builder(
    ChatGenerationChunk(message=AIMessageChunk(content="")),
    _GENERATION_SET,
    _GENERATION_SET,
)


def _plain_choice(chunk: Any) -> dict[str, Any] | None:
    """The one choice of a plain chunk (its delta a dict), or None."""
    if type(chunk) is not dict:
        return None
    if not chunk.keys() <= SKIPPED_TOP:  # other fields: null at most
        for name, value in chunk.items():
            if value is not None and name not in SKIPPED_TOP:
                return None
    choice = only_choice(chunk)
    if choice is None or type(delta := choice.get("delta")) is not dict:
        return None
    if (
        choice.get("finish_reason") is not None
        or choice.get("logprobs") is not None
        or choice.get("index", 0) != 0
    ):
        return None
    if not delta.keys() <= PLAIN_DELTA:  # other fields: null or empty at most
        for name, value in delta.items():
            if value and name not in PLAIN_DELTA:
                return None
    return choice


def plain_chunk(
    chunk: Any, chunk_class: type, base_info: dict | None, model: Any
) -> ChatGenerationChunk | None:
    """The generation chunk of a plain stream chunk, or None (validate it instead).

    `chunk_class` and `base_info` are langchain-openai's `default_chunk_class` and
    `base_generation_info`; `model` the chat model (its `output_version`).
    """
    if (
        chunk_class is not AIMessageChunk
        or base_info
        or model.output_version == "v1"
        or not seams.PYDANTIC_BUILD.ok
        or (choice := _plain_choice(chunk)) is None
    ):
        return None
    delta = choice["delta"]
    content = delta.get("content") or ""
    if type(content) is not str or delta.get("role") not in (None, "assistant"):
        return None
    metadata: dict[str, Any] = {"model_provider": "vllm"}
    if not choice.keys() <= _NO_METADATA:
        for name in CHOICE_FIELDS:
            if (value := choice.get(name)) is not None:
                metadata[name] = value
    reasoning = delta.get("reasoning") or delta.get(REASONING)
    message = _message(
        content=content,
        additional_kwargs={REASONING: reasoning} if reasoning else {},
        response_metadata=metadata,
        id=None,
        tool_call_chunks=[],
    )
    generation: ChatGenerationChunk = _generation(
        message=message, generation_info=None, text=content
    )
    return generation


_PROMPT_SET = frozenset({"messages"})
_prompt = seams.model_builder(ChatPromptValue(messages=[]), _PROMPT_SET, _PROMPT_SET)


def prompt_of(messages: list[BaseMessage]) -> ChatPromptValue:
    """The `ChatPromptValue` of a list that holds messages only, not validated again.

    What `_convert_input` builds from such a list (the same message objects).
    """
    if not seams.PYDANTIC_BUILD.ok:
        return ChatPromptValue(messages=messages)
    value: ChatPromptValue = _prompt(messages=messages)
    return value
