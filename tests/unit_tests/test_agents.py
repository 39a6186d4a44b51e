"""Agents on real templates and parsers: forced tool choice checked, parameterless
tools not strict, system messages merged, one thinking switch (no network)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import (
    VLLMResponseError,
    VLLMServerVersionError,
    VLLMToolChoiceError,
)
from tests.unit_tests.fake_vllm import (
    FakeVLLM,
    chat_completion,
    stream_chunks,
    tool_call,
)


def get_weather(city: str) -> str:
    """Weather in a city."""
    return city


def get_time() -> str:
    """The time now."""
    return "noon"


PROSE = chat_completion("I would call get_weather for Paris.")
"""What some parsers return for a forced choice: prose, no call."""
PROSE_TOOL_CALLS = chat_completion(
    "<tool_call>get_weather Paris", finish_reason="tool_calls"
)
"""Prose with finish_reason "tool_calls" (gpt-oss, gemma4, qwen3_xml issues)."""
CALLED = chat_completion(
    None,
    tool_calls=[tool_call("get_weather", {"city": "Paris"})],
    finish_reason="tool_calls",
)


def _chat(fake: FakeVLLM, **kwargs: Any) -> ChatVLLM:
    return ChatVLLM(**fake.kwargs(), model="smollm2", **kwargs)


def _call_stream(name: str, arguments: str, *, finish: str = "tool_calls") -> list:
    """A streamed tool call as vLLM's hermes parser sends it (name, then args)."""
    chunks = stream_chunks([], finish=False)
    first = copy.deepcopy(chunks[0])
    deltas = [
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "chatcmpl-tool-1",
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]},
    ]
    out = [first]
    for delta in deltas:
        chunk = copy.deepcopy(first)
        chunk["choices"][0]["delta"] = delta
        out.append(chunk)
    last = copy.deepcopy(first)
    last["choices"][0]["delta"] = {"content": ""}
    last["choices"][0]["finish_reason"] = finish
    out.append(last)
    return out


# -- forced tool choice -------------------------------------------------------------
@pytest.mark.parametrize("choice", ["required", "any", "get_weather", True])
@pytest.mark.parametrize("answer", [PROSE, PROSE_TOOL_CALLS], ids=["stop", "calls"])
def test_forced_choice_without_a_call_raises(
    fake: FakeVLLM, choice: Any, answer: dict
) -> None:
    fake.chat_response = answer
    bound = _chat(fake).bind_tools([get_weather], tool_choice=choice)
    with pytest.raises(VLLMToolChoiceError, match="--tool-call-parser") as caught:
        bound.invoke("Weather in Paris?")
    assert isinstance(caught.value, VLLMResponseError)
    assert "no tool call" in str(caught.value)
    assert answer["choices"][0]["finish_reason"] in str(caught.value)


def test_forced_choice_with_the_call_answers(fake: FakeVLLM) -> None:
    fake.chat_response = CALLED
    for choice in ("required", "any", "get_weather"):
        msg = _chat(fake).bind_tools([get_weather], tool_choice=choice).invoke("x")
        assert msg.tool_calls[0]["args"] == {"city": "Paris"}


def test_named_choice_answered_with_another_tool_raises(fake: FakeVLLM) -> None:
    fake.chat_response = chat_completion(None, tool_calls=[tool_call("get_time")])
    bound = _chat(fake).bind_tools([get_weather, get_time], tool_choice="get_weather")
    with pytest.raises(VLLMToolChoiceError, match="calls of 'get_time'"):
        bound.invoke("x")


def test_unforced_choice_may_answer_in_prose(fake: FakeVLLM) -> None:
    fake.chat_response = PROSE
    for choice in (None, "auto", "none"):
        msg = _chat(fake).bind_tools([get_weather], tool_choice=choice).invoke("x")
        assert msg.text.startswith("I would call")


def test_cut_off_forced_call_raises_and_says_it_was_cut(fake: FakeVLLM) -> None:
    """A forced call cut by the token limit is no call: it raises, naming the cut
    and max_tokens (the warning about a call cut in the middle still comes)."""
    fake.chat_response = chat_completion(
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa',
        finish_reason="length",
    )
    bound = _chat(fake).bind_tools([get_weather], tool_choice="required")
    with (
        pytest.warns(UserWarning, match="middle of a tool call"),
        pytest.raises(VLLMToolChoiceError, match=r"cut in its arguments.*max_tokens"),
    ):
        bound.invoke("x")


@pytest.mark.parametrize("choice", ["required", "any", "get_weather"])
def test_forced_call_that_loops_on_whitespace_raises(
    fake: FakeVLLM, choice: str
) -> None:
    """The non-strict server's JSON-array grammar can run to max_tokens on
    whitespace: no call, no text. Raising max_tokens does not help: said."""
    fake.chat_response = chat_completion("\n" * 64, finish_reason="length")
    bound = _chat(fake).bind_tools([get_weather], tool_choice=choice)
    with pytest.raises(VLLMToolChoiceError, match="only whitespace") as raised:
        bound.invoke("x")
    assert "VLLM_ENFORCE_STRICT_TOOL_CALLING" in str(raised.value)


def test_cut_call_after_a_complete_one_keeps_the_answer(fake: FakeVLLM) -> None:
    """A complete forced call then a second one cut: the complete call stands."""
    fake.chat_response = chat_completion(
        None,
        tool_calls=[tool_call("get_weather"), tool_call("get_weather")],
        finish_reason="length",
    )
    bound = _chat(fake).bind_tools([get_weather], tool_choice="required")
    message = bound.invoke("x")
    assert [c["name"] for c in message.tool_calls] == ["get_weather"]
    assert message.invalid_tool_calls  # the cut one


async def test_cut_forced_call_raises_in_async_and_streams(fake: FakeVLLM) -> None:
    fake.chat_response = chat_completion("  \n ", finish_reason="length")
    bound = _chat(fake).bind_tools([get_weather], tool_choice="any")
    with pytest.raises(VLLMToolChoiceError, match="only whitespace"):
        await bound.ainvoke("x")
    fake.stream = stream_chunks(["  ", "\n"], finish_reason="length")
    with pytest.raises(VLLMToolChoiceError, match="only whitespace"):
        list(bound.stream("x"))
    with pytest.raises(VLLMToolChoiceError, match="only whitespace"):
        async for _ in bound.astream("x"):
            pass


def test_structured_output_by_function_calling_checks_the_call(
    fake: FakeVLLM,
) -> None:
    fake.chat_response = PROSE
    structured = _chat(fake).with_structured_output(
        {
            "title": "get_weather",
            "description": "Weather.",
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        method="function_calling",
    )
    with pytest.raises(VLLMToolChoiceError):
        structured.invoke("x")


async def test_forced_choice_checked_async(fake: FakeVLLM) -> None:
    fake.chat_response = PROSE
    bound = _chat(fake).bind_tools([get_weather], tool_choice="required")
    with pytest.raises(VLLMToolChoiceError):
        await bound.ainvoke("x")
    fake.chat_response = CALLED
    assert (await bound.ainvoke("x")).tool_calls


def test_forced_choice_checked_at_the_end_of_a_stream(fake: FakeVLLM) -> None:
    fake.stream = stream_chunks(["I would ", "call it."])
    bound = _chat(fake).bind_tools([get_weather], tool_choice="required")
    seen: list[str] = []

    def consume() -> None:
        for chunk in bound.stream("x"):
            seen.append(chunk.text)

    with pytest.raises(VLLMToolChoiceError, match=r"'I would call it\.'"):
        consume()
    assert "".join(seen) == "I would call it."  # every chunk came first
    fake.stream = _call_stream("get_weather", '{"city": "Paris"}')
    chunks = list(bound.stream("x"))
    merged: Any = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert isinstance(merged, AIMessage)
    assert merged.tool_calls[0]["args"] == {"city": "Paris"}


async def test_forced_choice_checked_at_the_end_of_an_async_stream(
    fake: FakeVLLM,
) -> None:
    fake.stream = stream_chunks(["Sure."])
    bound = _chat(fake).bind_tools([get_weather], tool_choice="get_weather")
    with pytest.raises(VLLMToolChoiceError):
        async for _ in bound.astream("x"):
            pass
    fake.stream = _call_stream("get_time", "{}")
    with pytest.raises(VLLMToolChoiceError, match="calls of 'get_time'"):
        async for _ in bound.astream("x"):
            pass
    fake.stream = _call_stream("get_weather", '{"city": "Rome"}')
    async for _ in bound.astream("x"):
        pass


# -- parameterless tools --------------------------------------------------------------
def test_parameterless_tools_are_not_sent_strict(fake: FakeVLLM) -> None:
    @tool
    def now() -> str:
        """The time now."""
        return "noon"

    fake.chat_response = CALLED
    _chat(fake).bind_tools([get_weather, get_time, now]).invoke("x")
    sent = {t["function"]["name"]: t["function"] for t in fake.last_body()["tools"]}
    assert sent["get_weather"]["strict"] is True
    assert sent["get_time"]["strict"] is False
    assert sent["now"]["strict"] is False
    _chat(fake).bind_tools([get_weather, get_time], strict=True).invoke("x")
    assert all(t["function"]["strict"] for t in fake.last_body()["tools"])
    # A forced choice keeps them strict: the call's arguments are enforced to {}.
    _chat(fake).bind_tools([now], tool_choice="any").invoke("x")
    assert fake.last_body()["tools"][0]["function"]["strict"] is True


# -- system messages -----------------------------------------------------------------
def _roles(body: dict) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in body["messages"]]


def test_several_system_messages_are_merged_into_one_leading_one(
    fake: FakeVLLM,
) -> None:
    history = [
        SystemMessage("Be brief."),
        SystemMessage("Answer in English."),
        HumanMessage("Say hi"),
        AIMessage("Hi"),
        SystemMessage("Now in French."),
        HumanMessage("Again"),
    ]
    _chat(fake).invoke(history)
    assert _roles(fake.last_body()) == [
        ("system", "Be brief.\n\nAnswer in English.\n\nNow in French."),
        ("user", "Say hi"),
        ("assistant", "Hi"),
        ("user", "Again"),
    ]
    _chat(fake, merge_system_messages=False).invoke(history)
    assert [r for r, _ in _roles(fake.last_body())] == [
        "system",
        "system",
        "user",
        "assistant",
        "system",
        "user",
    ]


def test_one_leading_system_message_is_left_alone(fake: FakeVLLM) -> None:
    history = [SystemMessage("Be brief."), HumanMessage("Say hi")]
    _chat(fake).invoke(history)
    assert _roles(fake.last_body()) == [("system", "Be brief."), ("user", "Say hi")]
    _chat(fake).invoke([HumanMessage("Say hi")])
    assert _roles(fake.last_body()) == [("user", "Say hi")]


def test_a_late_system_message_moves_to_the_front(fake: FakeVLLM) -> None:
    _chat(fake).invoke([HumanMessage("Say hi"), SystemMessage("Be brief.")])
    assert _roles(fake.last_body()) == [("system", "Be brief."), ("user", "Say hi")]


def test_system_messages_with_content_parts_merge_as_parts(fake: FakeVLLM) -> None:
    history = [
        SystemMessage("Be brief."),
        SystemMessage([{"type": "text", "text": "Answer in English."}]),
        HumanMessage("Say hi"),
    ]
    _chat(fake).invoke(history)
    assert _roles(fake.last_body())[0] == (
        "system",
        [
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "\n\n"},
            {"type": "text", "text": "Answer in English."},
        ],
    )


def test_merged_system_messages_reach_the_prompt_count_too(fake: FakeVLLM) -> None:
    history = [SystemMessage("A."), SystemMessage("B."), HumanMessage("hi")]
    _chat(fake).get_num_tokens_from_messages(history)
    assert _roles(fake.last_body("/tokenize"))[0] == ("system", "A.\n\nB.")


# -- the thinking switch ---------------------------------------------------------------
@pytest.mark.parametrize("value", [True, False])
def test_thinking_sets_the_keys_templates_read(fake: FakeVLLM, value: bool) -> None:
    _chat(fake, thinking=value).invoke("x")
    body = fake.last_body()
    assert body["chat_template_kwargs"] == {"enable_thinking": value, "thinking": value}
    assert "thinking" not in body
    _chat(fake).invoke("x", thinking=value)
    assert fake.last_body()["chat_template_kwargs"]["enable_thinking"] is value


def test_thinking_unset_sends_nothing(fake: FakeVLLM) -> None:
    _chat(fake).invoke("x")
    body = fake.last_body()
    assert "chat_template_kwargs" not in body
    assert "thinking" not in body


def test_thinking_merges_with_the_users_template_kwargs(fake: FakeVLLM) -> None:
    chat = _chat(fake, thinking=False, chat_template_kwargs={"custom": 1})
    chat.invoke("x")
    assert fake.last_body()["chat_template_kwargs"] == {
        "custom": 1,
        "enable_thinking": False,
        "thinking": False,
    }
    # the same value given twice is no conflict
    chat.invoke("x", chat_template_kwargs={"enable_thinking": False})
    assert fake.last_body()["chat_template_kwargs"]["thinking"] is False
    # the per-call switch wins over the instance's
    chat.invoke("x", thinking=True)
    assert fake.last_body()["chat_template_kwargs"]["enable_thinking"] is True


def test_thinking_conflicting_with_template_kwargs_raises(fake: FakeVLLM) -> None:
    chat = _chat(fake, thinking=True)
    with pytest.raises(ValueError, match="enable_thinking"):
        chat.invoke("x", chat_template_kwargs={"enable_thinking": False})
    with pytest.raises(ValueError, match="thinking"):
        _chat(fake, thinking=True, chat_template_kwargs={"thinking": False})
    assert not fake.bodies()


def test_thinking_consistent_with_reasoning_effort(fake: FakeVLLM) -> None:
    with pytest.raises(ValueError, match="reasoning_effort"):
        _chat(fake, thinking=False, reasoning_effort="high")
    with pytest.raises(ValueError, match="reasoning_effort"):
        _chat(fake).invoke("x", thinking=True, reasoning_effort="none")
    with pytest.raises(ValueError, match="reasoning_effort"):
        _chat(fake, reasoning_effort="low").invoke("x", thinking=False)
    _chat(fake, thinking=True, reasoning_effort="low").invoke("x")
    body = fake.last_body()
    assert body["reasoning_effort"] == "low"
    assert body["chat_template_kwargs"]["enable_thinking"] is True
    _chat(fake, thinking=False, reasoning_effort="none").invoke("x")
    assert fake.last_body()["chat_template_kwargs"]["thinking"] is False


def test_thinking_with_the_responses_api(fake: FakeVLLM) -> None:
    chat = _chat(fake, use_responses_api=True, thinking=False)
    payload = chat._get_request_payload([HumanMessage("x")])
    assert payload["extra_body"]["chat_template_kwargs"] == {
        "enable_thinking": False,
        "thinking": False,
    }
    assert "thinking" not in payload["extra_body"]


# -- an answer schema beside tools, by server version ----------------------------------
class Weather(BaseModel):
    """The weather in a city."""

    city: str
    forecast: str


def _schema_beside_tools(chat: ChatVLLM) -> Any:
    return chat.bind_tools([get_weather], response_format=Weather, strict=True)


@pytest.mark.parametrize("version", ["0.30.0", "0.11.2", "0.30.1+cpu"])
def test_schema_beside_auto_tools_refused_before_0_31(
    fake: FakeVLLM, version: str
) -> None:
    """vLLM < 0.31 enforces only one of the two: refused by name, no request sent."""
    fake.version = version
    fake.chat_response = CALLED
    shown = re.escape(version)
    with pytest.raises(VLLMServerVersionError, match=rf"version {shown},.*0\.31"):
        _schema_beside_tools(_chat(fake)).invoke("Weather in Paris?")
    assert not fake.bodies()


async def test_schema_beside_auto_tools_refused_before_0_31_async(
    fake: FakeVLLM,
) -> None:
    fake.version = "0.30.0"
    with pytest.raises(VLLMServerVersionError):
        await _schema_beside_tools(_chat(fake)).ainvoke("Weather in Paris?")
    with pytest.raises(VLLMServerVersionError):
        async for _ in _schema_beside_tools(_chat(fake)).astream("Weather?"):
            pass
    assert not fake.bodies()


@pytest.mark.parametrize("version", ["0.31.0", "0.32.0"])
def test_schema_beside_auto_tools_sent_to_0_31_and_later(
    fake: FakeVLLM, version: str
) -> None:
    """0.31+ composes both (for a parser with a structural tag: the server's
    side, documented)."""
    fake.version = version
    fake.chat_response = CALLED
    _schema_beside_tools(_chat(fake)).invoke("Weather in Paris?")
    body = fake.last_body()
    assert body["response_format"]["type"] == "json_schema"
    assert body["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("choice", ["required", "get_weather"])
def test_schema_beside_forced_tools_is_not_refused(fake: FakeVLLM, choice: str) -> None:
    """A forced call is enforced by every vLLM: only "auto" needs the composition."""
    fake.version = "0.30.0"
    fake.chat_response = CALLED
    chat = _chat(fake).bind_tools(
        [get_weather], tool_choice=choice, response_format=Weather
    )
    chat.invoke("Weather in Paris?")
    assert fake.last_body()["tools"]


def test_create_agent_sends_the_schema_as_a_forced_tool(fake: FakeVLLM) -> None:
    """The profile steers create_agent to ToolStrategy on every server: the schema
    goes out as a tool under a forced choice, never beside "auto" tools."""
    from langchain.agents import create_agent

    fake.version = "0.30.0"
    answer = tool_call("Weather", {"city": "Paris", "forecast": "Sunny"})
    final = chat_completion(None, tool_calls=[answer], finish_reason="tool_calls")
    fake.chat_response = lambda body: (
        final if body["messages"][-1]["role"] == "tool" else CALLED
    )
    agent = create_agent(_chat(fake), tools=[get_weather], response_format=Weather)
    result = agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
    assert result["structured_response"] == Weather(city="Paris", forecast="Sunny")
    bodies = fake.bodies()
    assert len(bodies) == 2
    for body in bodies:
        assert "response_format" not in body
        assert body["tool_choice"] == "required"
        names = [t["function"]["name"] for t in body["tools"]]
        assert names == ["get_weather", "Weather"]
        assert all(t["function"]["strict"] for t in body["tools"])


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream"])
async def test_create_agent_never_ends_without_a_structured_response(
    fake: FakeVLLM, mode: str
) -> None:
    """ToolStrategy forces a call; a non-strict server's grammar that runs to
    max_tokens on whitespace gives no call: the agent raises, it does not end
    with `structured_response=None`."""
    from langchain.agents import create_agent

    fake.chat_response = chat_completion("\n" * 32, finish_reason="length")
    fake.stream = stream_chunks(["\n" * 16, "\n" * 16], finish_reason="length")
    agent = create_agent(_chat(fake), tools=[get_weather], response_format=Weather)
    question: Any = {"messages": [HumanMessage("Weather in Paris?")]}

    async def run() -> None:
        if mode == "invoke":
            agent.invoke(question)
        elif mode == "ainvoke":
            await agent.ainvoke(question)
        else:
            for _ in agent.stream(question, stream_mode="messages"):
                pass

    with pytest.raises(VLLMToolChoiceError, match="only whitespace"):
        await run()
