"""ChatVLLM on vLLM's Responses API (`use_responses_api=True`), against recorded events.

The event streams in `data/` were recorded from the rig's servers (vLLM 0.32 CPU):
a reasoning answer (reasoning server, `ignore_eos`), a text answer (chat server)
and a forced tool call (chat server, `get_weather` bound with
`tool_choice="get_weather"` and `strict=True`). `combined_stream` splices the first
two into one response, reasoning then text, and the invoke answer is that
response's final object, so "a stream adds up to invoke" is checked on the same
answer.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from pydantic import BaseModel, Field

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import (
    VLLMBadRequestError,
    VLLMEmptyAnswerError,
    VLLMIncompleteStreamError,
)
from tests.unit_tests.fake_vllm import RawFakeVLLM, sse

DATA = Path(__file__).parent / "data"


def recorded(name: str) -> list[dict[str, Any]]:
    path = DATA / f"responses_{name}_stream.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def combined_stream() -> list[dict[str, Any]]:
    """Reasoning (output 0) then text (output 1), ending with response.completed."""
    reasoning, text = recorded("reasoning"), recorded("text")
    items = list(reasoning[2:-1])
    for event in text[2:-1]:
        event = copy.deepcopy(event)
        event["output_index"] = 1
        items.append(event)
    final = copy.deepcopy(text[-1])
    final["response"]["output"] = (
        reasoning[-1]["response"]["output"] + text[-1]["response"]["output"]
    )
    return [*reasoning[:2], *items, final]


@pytest.fixture
def fake() -> RawFakeVLLM:
    return RawFakeVLLM()


def answer(fake: RawFakeVLLM, events: list[dict[str, Any]], *, stream: bool) -> None:
    if stream:
        body = sse(*events, done=False)
        fake.raw["/responses"] = (200, "text/event-stream", body)
    else:
        body = json.dumps(events[-1]["response"]).encode()
        fake.raw["/responses"] = (200, "application/json", body)


def chat(fake: RawFakeVLLM, **kwargs: Any) -> ChatVLLM:
    return ChatVLLM(use_responses_api=True, **fake.kwargs(), **kwargs)


def invoke_and_stream(
    fake: RawFakeVLLM, events: list[dict[str, Any]]
) -> tuple[AIMessage, list[Any], Any]:
    """The same recorded events answered whole, then streamed: the message, the
    chunks and their sum."""
    answer(fake, events, stream=False)
    whole = chat(fake).invoke("Hi")
    answer(fake, events, stream=True)
    chunks = list(chat(fake).stream("Hi"))
    streamed = chunks[0]
    for chunk in chunks[1:]:
        streamed += chunk
    return whole, chunks, streamed


def test_stream_adds_up_to_invoke(fake: RawFakeVLLM) -> None:
    whole, chunks, streamed = invoke_and_stream(fake, combined_stream())
    assert isinstance(streamed, AIMessageChunk)
    assert whole.text == streamed.text == "I'm glad to"
    reasoning = whole.additional_kwargs["reasoning_content"]
    assert reasoning == streamed.additional_kwargs["reasoning_content"] == "system\n"
    assert whole.usage_metadata == streamed.usage_metadata
    assert streamed.usage_metadata is not None
    assert streamed.response_metadata["status"] == "incomplete"
    # reasoning first, then the answer
    thinking = [
        i for i, c in enumerate(chunks) if c.additional_kwargs.get("reasoning_content")
    ]
    answering = [i for i, c in enumerate(chunks) if c.text]
    assert thinking
    assert answering
    assert max(thinking) < min(answering)
    assert fake.paths()[-1] == "POST /v1/responses"


async def test_astream_adds_up_to_ainvoke(fake: RawFakeVLLM) -> None:
    events = combined_stream()
    answer(fake, events, stream=False)
    whole = await chat(fake).ainvoke("Hi")
    answer(fake, events, stream=True)
    streamed = None
    async for chunk in chat(fake).astream("Hi"):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None
    assert whole.text == streamed.text
    assert (
        whole.additional_kwargs["reasoning_content"]
        == streamed.additional_kwargs["reasoning_content"]
    )


def test_stream_cut_before_the_end_names_the_responses_endpoint(
    fake: RawFakeVLLM,
) -> None:
    answer(fake, recorded("text")[:-1], stream=True)
    with pytest.raises(VLLMIncompleteStreamError, match="/v1/responses ended"):
        list(chat(fake).stream("Hi"))


def test_failed_response_is_an_incomplete_stream(fake: RawFakeVLLM) -> None:
    events = recorded("text")
    failed = copy.deepcopy(events[-1])
    failed["type"] = "response.failed"
    failed["response"]["status"] = "failed"
    failed["response"]["error"] = {"code": "server_error", "message": "engine died"}
    answer(fake, [*events[:-1], failed], stream=True)
    with pytest.raises(VLLMIncompleteStreamError, match="engine died"):
        list(chat(fake).stream("Hi"))


def test_http_errors_are_vllm_errors(fake: RawFakeVLLM) -> None:
    error = {"error": {"message": "bad input", "type": "BadRequestError", "code": 400}}
    fake.raw["/responses"] = (400, "application/json", json.dumps(error).encode())
    with pytest.raises(VLLMBadRequestError, match="bad input"):
        chat(fake).invoke("Hi")


def test_parameters_the_responses_api_ignores_are_refused(fake: RawFakeVLLM) -> None:
    with pytest.raises(ValueError, match="does not read min_tokens"):
        chat(fake, min_tokens=4)
    model = chat(fake)
    with pytest.raises(ValueError, match="does not read bad_words, min_tokens"):
        model.invoke("Hi", min_tokens=4, bad_words=["x"])
    assert not fake.requests


def test_parameters_the_responses_api_reads_are_sent(fake: RawFakeVLLM) -> None:
    answer(fake, recorded("text"), stream=False)
    chat(fake, top_k=3).invoke("Hi", structured_outputs={"choice": ["a", "b"]})
    body = fake.last_body("/responses")
    assert body["top_k"] == 3
    assert body["structured_outputs"] == {"choice": ["a", "b"]}


class Joke(BaseModel):
    setup: str
    punchline: str = Field(max_length=10)


def test_bounded_strings_reach_the_responses_schema(fake: RawFakeVLLM) -> None:
    final = recorded("text")[-1]["response"]
    final["output"][0]["content"][0]["text"] = '{"setup": "a", "punchline": "b"}'
    fake.raw["/responses"] = (200, "application/json", json.dumps(final).encode())
    model = chat(fake, max_json_string_length=60).with_structured_output(
        Joke, method="json_schema"
    )
    assert model.invoke("A joke") == Joke(setup="a", punchline="b")
    schema = fake.last_body("/responses")["text"]["format"]["schema"]
    assert schema["properties"]["setup"]["maxLength"] == 60
    assert schema["properties"]["punchline"]["maxLength"] == 10


def test_unknown_previous_response_names_the_store_setting(fake: RawFakeVLLM) -> None:
    error = {
        "error": {
            "message": "Response with id 'resp_1' not found.",
            "type": "NotFoundError",
            "code": 404,
        }
    }
    fake.raw["/responses"] = (404, "application/json", json.dumps(error).encode())
    with pytest.raises(openai.NotFoundError, match="VLLM_ENABLE_RESPONSES_API_STORE"):
        chat(fake).invoke("Hi", previous_response_id="resp_1")
    assert fake.last_body("/responses")["previous_response_id"] == "resp_1"


def test_client_side_markup_parsing_is_refused(fake: RawFakeVLLM) -> None:
    with pytest.raises(ValueError, match="parse_think_tags, parse_tool_call_tags"):
        chat(fake, parse_think_tags=True, parse_tool_call_tags=True)


def test_an_answer_that_is_all_reasoning_is_reported(fake: RawFakeVLLM) -> None:
    """The recorded reasoning answer hit max_output_tokens inside the reasoning."""
    events = recorded("reasoning")
    answer(fake, events, stream=False)
    with pytest.warns(UserWarning, match="still reasoning"):
        chat(fake).invoke("Hi")
    answer(fake, events, stream=True)
    with pytest.warns(UserWarning, match="still reasoning"):
        list(chat(fake).stream("Hi"))
    answer(fake, events, stream=False)
    with pytest.raises(VLLMEmptyAnswerError):
        chat(fake, error_on_empty_reasoning_only=True).invoke("Hi")


async def test_stream_with_response_headers(fake: RawFakeVLLM) -> None:
    """`include_response_headers`: the first chunk carries the HTTP headers."""
    answer(fake, recorded("text"), stream=True)
    chunks = list(chat(fake, include_response_headers=True).stream("Hi"))
    assert chunks[0].response_metadata["headers"]["content-type"] == "text/event-stream"
    assert all("headers" not in c.response_metadata for c in chunks[1:])
    async_chunks = [
        c async for c in chat(fake, include_response_headers=True).astream("Hi")
    ]
    assert "headers" in async_chunks[0].response_metadata
    assert [c.text for c in async_chunks] == [c.text for c in chunks]


def tool_call_stream(kept: int | None) -> list[dict[str, Any]]:
    """The recorded tool call with only its first `kept` argument deltas (None:
    all). What the dropped deltas carried then arrives only in the
    `response.function_call_arguments.done` event, which holds the whole
    arguments, as from a server that skips deltas; sequence numbers are renumbered.
    """
    events = recorded("tool_call")
    deltas = [
        i
        for i, e in enumerate(events)
        if e["type"] == "response.function_call_arguments.delta"
    ]
    assert len(deltas) > 1  # the recording streamed its arguments in pieces
    dropped = set(deltas[kept:]) if kept is not None else set()
    kept_events = [copy.deepcopy(e) for i, e in enumerate(events) if i not in dropped]
    for number, event in enumerate(kept_events):
        event["sequence_number"] = number
    return kept_events


def done_arguments(events: list[dict[str, Any]]) -> dict[str, Any]:
    kind = "response.function_call_arguments.done"
    (done,) = [e for e in events if e["type"] == kind]
    arguments: dict[str, Any] = json.loads(done["arguments"])
    return arguments


@pytest.mark.parametrize(
    "kept", [None, 1, 0], ids=["recorded", "first-delta-only", "done-event-only"]
)
def test_streamed_tool_call_keeps_its_arguments(
    fake: RawFakeVLLM, kept: int | None
) -> None:
    events = tool_call_stream(kept)
    whole, _, streamed = invoke_and_stream(fake, events)
    assert isinstance(streamed, AIMessageChunk)
    arguments = done_arguments(events)
    assert arguments  # the recorded call has arguments to lose
    assert not streamed.invalid_tool_calls
    assert streamed.tool_calls == whole.tool_calls
    assert [c["args"] for c in streamed.tool_calls] == [arguments]
    blocks = [
        b
        for b in streamed.content
        if isinstance(b, dict) and b.get("type") == "function_call"
    ]
    assert [json.loads(b["arguments"]) for b in blocks] == [arguments]


async def test_astreamed_tool_call_keeps_arguments_sent_only_when_done(
    fake: RawFakeVLLM,
) -> None:
    events = tool_call_stream(0)
    answer(fake, events, stream=True)
    streamed = None
    async for chunk in chat(fake).astream("Hi"):
        streamed = chunk if streamed is None else streamed + chunk
    assert isinstance(streamed, AIMessageChunk)
    assert [c["args"] for c in streamed.tool_calls] == [done_arguments(events)]
