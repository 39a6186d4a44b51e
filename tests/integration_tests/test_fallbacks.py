"""Client-side markup fallbacks against the live server started without parsers.

The `plain` rig server runs without `--reasoning-parser` and `--tool-call-parser`,
so `<think>…</think>` and `<tool_call>…</tool_call>` reach the client as content
text. A 135M model does not emit such markup on its own: a regex constraint
(`structured_outputs={"regex": ...}`) makes the real server generate it, token by
token (tags arrive split over several stream chunks), with the words and the city
left to the model.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.tools import tool

from langchain_vllm import ChatVLLM

REASONING = r"[A-Z][a-z]{1,10}( [a-z]{1,10}){2,6}\."
ANSWER = r"[A-Z][a-z]{1,10}( [a-z]{1,10}){1,5}\."
CITY = r"[A-Z][a-z]{2,12}"
THINK_REGEX = rf"<think>{REASONING}</think>\n\n{ANSWER}"
TOOL_REGEX = (
    r'<tool_call>\n\{"name": "get_weather", "arguments": \{"city": "'
    + CITY
    + r'"\}\}\n</tool_call>'
)
THINK_THEN_TOOL_REGEX = rf"<think>{REASONING}</think>\n\n{TOOL_REGEX}"
THINK_PROMPT = "What is 2 + 2? Think step by step first."
TOOL_PROMPT = "What is the weather in Paris?"
CALL_ID = re.compile(r"call_[0-9a-f]{32}")
TAGS = ("<think>", "</think>", "<tool_call>", "</tool_call>")


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is sunny in {city}."


def _chat(url: str, **kwargs: Any) -> ChatVLLM:
    return ChatVLLM(base_url=url, **{"temperature": 0, "max_tokens": 96, **kwargs})


def _assert_split(message: AIMessage) -> None:
    """Reasoning and answer of THINK_REGEX, each on its own side, tags gone."""
    reasoning = message.additional_kwargs.get("reasoning_content")
    assert isinstance(reasoning, str)
    assert re.fullmatch(REASONING, reasoning), reasoning
    assert isinstance(message.content, str)
    assert re.fullmatch(ANSWER, message.content), message.content


def _assert_weather_call(message: AIMessage) -> None:
    assert message.invalid_tool_calls == []
    assert len(message.tool_calls) == 1, message
    call = message.tool_calls[0]
    assert call["name"] == "get_weather"
    assert set(call["args"]) == {"city"}
    assert re.fullmatch(CITY, call["args"]["city"])
    assert CALL_ID.fullmatch(call["id"] or "")
    assert not any(tag in str(message.content) for tag in TAGS)


def test_plain_server_sends_markup_as_text(plain_url: str) -> None:
    """The premise: without parsers (and fallbacks) the markup stays in content."""
    chat = _chat(plain_url)
    thought = chat.invoke(THINK_PROMPT, structured_outputs={"regex": THINK_REGEX})
    assert isinstance(thought.content, str)
    assert re.fullmatch(THINK_REGEX, thought.content), thought.content
    assert "reasoning_content" not in thought.additional_kwargs
    called = chat.invoke(TOOL_PROMPT, structured_outputs={"regex": TOOL_REGEX})
    assert isinstance(called.content, str)
    assert re.fullmatch(TOOL_REGEX, called.content), called.content
    assert called.tool_calls == []


def test_think_fallback_invoke(plain_url: str) -> None:
    chat = _chat(plain_url, parse_think_tags=True)
    message = chat.invoke(THINK_PROMPT, structured_outputs={"regex": THINK_REGEX})
    _assert_split(message)


def test_think_fallback_stream(plain_url: str) -> None:
    chat = _chat(plain_url, parse_think_tags=True)
    chunks = list(chat.stream(THINK_PROMPT, structured_outputs={"regex": THINK_REGEX}))
    for chunk in chunks:
        text = str(chunk.content) + chunk.additional_kwargs.get("reasoning_content", "")
        assert not any(tag in text for tag in TAGS), chunk
    full = add_ai_message_chunks(*chunks)
    _assert_split(full)
    # Streamed as it comes: reasoning over several chunks, then the answer.
    thinking = [
        i for i, c in enumerate(chunks) if c.additional_kwargs.get("reasoning_content")
    ]
    answering = [i for i, c in enumerate(chunks) if c.content]
    assert len(thinking) > 1
    assert len(answering) > 1
    assert max(thinking) < min(answering)


def test_think_tag_in_prompt(plain_url: str) -> None:
    """A template that opens `<think>` in the prompt: only `</think>` is generated."""
    chat = _chat(
        plain_url,
        parse_think_tags=True,
        think_tag_in_prompt=True,
        chat_template_kwargs={"enable_thinking": True},
    )
    assert chat.get_prompt_text([HumanMessage(THINK_PROMPT)]).endswith("<think>\n")
    regex = {"regex": rf"{REASONING}</think>\n\n{ANSWER}"}
    message = chat.invoke(THINK_PROMPT, structured_outputs=regex)
    _assert_split(message)
    streamed = add_ai_message_chunks(
        *chat.stream(THINK_PROMPT, structured_outputs=regex)
    )
    _assert_split(streamed)


def test_tool_fallback_invoke(plain_url: str) -> None:
    chat = _chat(plain_url, parse_tool_call_tags=True)
    message = chat.invoke(TOOL_PROMPT, structured_outputs={"regex": TOOL_REGEX})
    _assert_weather_call(message)
    assert message.content == ""


def test_tool_fallback_stream(plain_url: str) -> None:
    chat = _chat(plain_url, parse_tool_call_tags=True)
    chunks = list(chat.stream(TOOL_PROMPT, structured_outputs={"regex": TOOL_REGEX}))
    full = add_ai_message_chunks(*chunks)
    _assert_weather_call(full)
    assert full.content == ""
    assert sum(len(chunk.tool_call_chunks) for chunk in chunks) == 1


def test_tool_fallback_with_bound_tools(plain_url: str) -> None:
    """An agent's usual call: tools bound, no tool_choice, server without parser.

    vLLM refuses the default ("auto") tool choice without a tool parser (HTTP
    400); with the fallback on, the request must still go through, the template
    must still show the tools (the prompt is longer than without them), and the
    markup must come back as the tool call.
    """
    chat = _chat(plain_url, parse_tool_call_tags=True)
    bound = chat.bind_tools([get_weather])
    message = bound.invoke(TOOL_PROMPT, structured_outputs={"regex": TOOL_REGEX})
    _assert_weather_call(message)
    assert message.usage_metadata is not None
    without_tools = chat.get_num_tokens_from_messages([HumanMessage(TOOL_PROMPT)])
    assert message.usage_metadata["input_tokens"] > without_tools


def test_both_fallbacks_async(plain_url: str) -> None:
    """Reasoning, then a tool call, in one answer: ainvoke and astream."""
    chat = _chat(plain_url, parse_think_tags=True, parse_tool_call_tags=True)
    regex = {"regex": THINK_THEN_TOOL_REGEX}

    async def run() -> tuple[AIMessage, list[AIMessageChunk]]:
        message = await chat.ainvoke(TOOL_PROMPT, structured_outputs=regex)
        chunks = [
            chunk async for chunk in chat.astream(TOOL_PROMPT, structured_outputs=regex)
        ]
        return message, chunks

    message, chunks = asyncio.run(run())
    for result in (message, add_ai_message_chunks(*chunks)):
        _assert_weather_call(result)
        assert result.content == ""
        reasoning = result.additional_kwargs.get("reasoning_content")
        assert isinstance(reasoning, str)
        assert re.fullmatch(REASONING, reasoning), reasoning


@pytest.mark.parametrize("flag", ["parse_think_tags", "parse_tool_call_tags"])
def test_fallbacks_leave_plain_answers_alone(plain_url: str, flag: str) -> None:
    """No markup in the answer: the fallback changes nothing."""
    plain = _chat(plain_url, max_tokens=40)
    parsed = _chat(plain_url, max_tokens=40, **{flag: True})
    # One possible answer: the comparison is about the client, not the model.
    regex = {"regex": re.escape("Four is the answer.")}
    expected = plain.invoke(THINK_PROMPT, structured_outputs=regex)
    got = parsed.invoke(THINK_PROMPT, structured_outputs=regex)
    streamed = add_ai_message_chunks(
        *list(parsed.stream(THINK_PROMPT, structured_outputs=regex))
    )
    assert expected.content == "Four is the answer."
    for message in (got, streamed):
        assert message.content == expected.content
        assert "reasoning_content" not in message.additional_kwargs
        assert message.tool_calls == []
