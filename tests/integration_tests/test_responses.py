"""ChatVLLM on vLLM's Responses API (`use_responses_api=True`), live.

Where two answers must agree (stream vs invoke), the server is made to write one
fixed answer (`FIXED`, a single-string regex) or only reasoning (`ignore_eos`
below the token limit): the comparison checks the client, not the model's luck.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.runnables import Runnable
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMContextOverflowError, VLLMModelNotFoundError
from tests.integration_tests.conftest import FIXED, FIXED_TEXT


@pytest.fixture(scope="module")
def responder(chat_url: str) -> ChatVLLM:
    return ChatVLLM(
        base_url=chat_url, use_responses_api=True, temperature=0, max_tokens=40
    )


def streamed(chunks: list[Any]) -> AIMessageChunk:
    return add_ai_message_chunks(*chunks)


def test_stream_adds_up_to_invoke(responder: ChatVLLM) -> None:
    whole = responder.invoke("Translate: I love programming.", **FIXED)
    chunks = list(responder.stream("Translate: I love programming.", **FIXED))
    total = streamed(chunks)
    assert whole.text == total.text == FIXED_TEXT
    assert whole.usage_metadata
    assert total.usage_metadata
    for key in ("input_tokens", "output_tokens"):
        assert whole.usage_metadata[key] == total.usage_metadata[key]
    assert whole.response_metadata["status"] == "completed"
    assert total.response_metadata["status"] == "completed"
    assert chunks[-1].chunk_position == "last"


async def test_astream_adds_up_to_ainvoke(responder: ChatVLLM) -> None:
    whole = await responder.ainvoke("Translate: I love programming.", **FIXED)
    chunks = [c async for c in responder.astream("Translate: I love.", **FIXED)]
    assert whole.text == streamed(chunks).text == FIXED_TEXT


def test_one_instance_on_several_event_loops(responder: ChatVLLM) -> None:
    async def ask() -> str:
        return (await responder.ainvoke("Hi", **FIXED)).text

    assert [asyncio.run(ask()) for _ in range(2)] == [FIXED_TEXT, FIXED_TEXT]


def test_reasoning_streams_like_invoke(reasoning_url: str) -> None:
    """`ignore_eos` below the limit: every token is reasoning in both answers
    (the rig's reasoning template opens the thinking section)."""
    thinker = ChatVLLM(
        base_url=reasoning_url,
        use_responses_api=True,
        temperature=0,
        max_tokens=12,
        ignore_eos=True,
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        whole = thinker.invoke("What is 2+2?")
        chunks = list(thinker.stream("What is 2+2?"))
    total = streamed(chunks)
    for message in (whole, total):
        assert message.additional_kwargs["reasoning_content"]
        assert not message.text
        assert message.response_metadata["incomplete_details"] == {
            "reason": "max_output_tokens"
        }
        blocks = [b for b in message.content if isinstance(b, dict)]
        texts = [
            part["text"]
            for b in blocks
            if b.get("type") == "reasoning"
            for part in b.get("content") or []
        ]
        assert "".join(texts) == message.additional_kwargs["reasoning_content"]
    # the answer-less result is reported, for invoke and stream
    reports = [w for w in seen if "still reasoning" in str(w.message)]
    assert len(reports) == 2


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny in {city}."


def _weather_model(chat_url: str) -> Runnable[Any, AIMessage]:
    """`get_weather` forced by `tool_choice` and strict: every answer holds a call."""
    return ChatVLLM(
        base_url=chat_url,
        use_responses_api=True,
        temperature=0,
        max_tokens=60,
        max_json_string_length=20,
    ).bind_tools([get_weather], tool_choice="get_weather", strict=True)


def test_tool_calls_stream_like_invoke(chat_url: str) -> None:
    model = _weather_model(chat_url)
    whole = model.invoke("What is the weather in Paris?")
    total = streamed(list(model.stream("What is the weather in Paris?")))
    for message in (whole, total):
        assert [c["name"] for c in message.tool_calls] == ["get_weather"]
        assert set(message.tool_calls[0]["args"]) == {"city"}
    # a tool result goes back as the next turn
    answer = model.invoke(
        [
            ("human", "What is the weather in Paris?"),
            whole,
            get_weather.invoke(whole.tool_calls[0]),
        ],
        tool_choice="none",
        **FIXED,
    )
    assert answer.text == FIXED_TEXT


def _weather_call(message: AIMessage) -> dict[str, Any]:
    """The one get_weather call, its arguments checked against the tool's schema."""
    assert not message.invalid_tool_calls
    assert [c["name"] for c in message.tool_calls] == ["get_weather"]
    args = message.tool_calls[0]["args"]
    schema = get_weather.tool_call_schema
    assert isinstance(schema, type)
    assert issubclass(schema, BaseModel)
    schema.model_validate(args)
    return args


async def test_streamed_tool_call_keeps_its_arguments(chat_url: str) -> None:
    """`tool_choice` forces the call and `strict` its JSON, so both answers hold
    a call: the merged stream's arguments parse like invoke's (sync and async)."""
    model = _weather_model(chat_url)
    question = "What is the weather in Rome?"
    invoked = _weather_call(model.invoke(question))
    total = streamed(list(model.stream(question)))
    args = _weather_call(total)
    assert set(args) == set(invoked) == {"city"}
    assert isinstance(args["city"], str)
    # the streamed function_call block carries the same arguments
    calls = [
        b
        for b in total.content
        if isinstance(b, dict) and b.get("type") == "function_call"
    ]
    assert [json.loads(b["arguments"]) for b in calls] == [args]
    chunks = [c async for c in model.astream(question)]
    assert set(_weather_call(streamed(chunks))) == {"city"}


class Joke(BaseModel):
    setup: str = Field(description="the question")
    punchline: str = Field(description="the answer")


def test_structured_output(chat_url: str) -> None:
    model = ChatVLLM(
        base_url=chat_url,
        use_responses_api=True,
        temperature=0,
        max_tokens=200,
        max_json_string_length=40,
    ).with_structured_output(Joke, method="json_schema")
    joke = model.invoke("Tell me a joke about cats.")
    assert isinstance(joke, Joke)
    assert len(joke.setup) <= 40


def test_previous_response_id(responder: ChatVLLM) -> None:
    """The rig keeps responses (VLLM_ENABLE_RESPONSES_API_STORE=1): a follow-up
    that names the first answer carries its whole conversation as input."""
    first = responder.invoke("My name is Ada.", **FIXED)
    assert first.usage_metadata
    follow = responder.invoke(
        "What is my name?", previous_response_id=first.id, **FIXED
    )
    assert follow.usage_metadata
    assert follow.usage_metadata["input_tokens"] > first.usage_metadata["total_tokens"]
    with pytest.raises(openai.NotFoundError, match="VLLM_ENABLE_RESPONSES_API_STORE"):
        responder.invoke("Hi", previous_response_id="resp_unknown")


def test_errors_name_the_problem(responder: ChatVLLM, chat_url: str) -> None:
    with pytest.raises(VLLMContextOverflowError):
        responder.invoke("word " * 3000)
    lost = ChatVLLM(base_url=chat_url, use_responses_api=True, model="nope")
    with pytest.raises(VLLMModelNotFoundError, match="Served models"):
        lost.invoke("Hi")
    with pytest.raises(ValueError, match="does not read min_tokens"):
        responder.invoke("Hi", min_tokens=3)


def test_answers_are_ai_messages(responder: ChatVLLM) -> None:
    assert isinstance(responder.invoke("Hi", **FIXED), AIMessage)
