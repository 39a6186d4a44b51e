"""Streamed tool calls of real vLLM tool parsers merge into the whole answer's calls.

`data/tool_streams/<parser>.json` were recorded from vLLM 0.32's own parsers by
`scripts/record_tool_streams.py` (see the README there): per parser, a one-call
and a two-call answer, and the two-call answer cut by `max_tokens` in the second
call's arguments, each as the chunks vLLM's server streams and as its whole
answer. The pathological shapes other parsers and versions send (every call at
index 0, no ids, the name repeated, one call split over several ids and indices)
are derived from the recorded streams by the transformations below.
"""

from __future__ import annotations

import copy
import itertools
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.tool import tool_call_chunk

from langchain_vllm import ChatVLLM
from langchain_vllm._chat_answer import TOOL_CALL_OPENERS
from langchain_vllm._tool_stream import CUT_KEY, ToolCallStream
from tests.unit_tests.fake_vllm import FakeVLLM

DATA = Path(__file__).parent / "data" / "tool_streams"
PARSERS = sorted(p.stem for p in DATA.glob("*.json"))
WEATHER = ("get_weather", {"city": "Paris", "unit": "celsius"})
TIME = ("get_time", {"zone": "Europe/Berlin"})


def recorded(parser: str, case: str) -> dict[str, Any]:
    data = json.loads((DATA / f"{parser}.json").read_text())
    return next(c for c in data["cases"] if c["name"] == case)


def deltas(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every tool-call delta of a stream, in order."""
    return [
        tc
        for chunk in stream
        for choice in chunk.get("choices") or []
        for tc in choice["delta"].get("tool_calls") or []
    ]


def merged(fake: FakeVLLM, stream: list[dict[str, Any]]) -> AIMessageChunk:
    fake.stream = stream
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    chunks = list(chat.stream("Weather in Paris, time in Berlin?"))
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    return total


def whole(fake: FakeVLLM, answer: dict[str, Any]) -> AIMessage:
    fake.chat_response = answer
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    return chat.invoke("Weather in Paris, time in Berlin?")


def calls(message: AIMessage) -> list[tuple[str, dict[str, Any]]]:
    return [(c["name"], c["args"]) for c in message.tool_calls]


def check_shape(message: AIMessageChunk) -> None:
    """One chunk per call after merging: distinct indices, one non-empty id each."""
    chunks = message.tool_call_chunks
    assert len(chunks) == len(message.tool_calls) + len(message.invalid_tool_calls)
    assert len({c["index"] for c in chunks}) == len(chunks)
    ids = [c["id"] for c in chunks]
    assert all(ids)
    assert len(set(ids)) == len(ids)
    assert [c["id"] for c in message.tool_calls] == ids[: len(message.tool_calls)]


# -- transformations of recorded streams into the shapes other parsers send --------
def all_index_zero(stream: list[dict[str, Any]]) -> None:
    """Every delta at index 0 (parsers that count calls per delta, not per answer)."""
    for tc in deltas(stream):
        tc["index"] = 0


def no_ids(stream: list[dict[str, Any]]) -> None:
    """No delta carries an id."""
    for tc in deltas(stream):
        tc.pop("id", None)


def repeated_names(stream: list[dict[str, Any]]) -> None:
    """Every delta of a call repeats the call's name."""
    names: dict[int, str] = {}
    for tc in deltas(stream):
        function = tc.setdefault("function", {})
        if function.get("name"):
            names[tc["index"]] = function["name"]
        else:
            function["name"] = names[tc["index"]]


def split_ids(stream: list[dict[str, Any]]) -> None:
    """Each delta after a call's first comes with a fresh id and a fresh index
    (one call split over several ids and indices, as gpt-oss streamed)."""
    fresh = itertools.count(100)
    seen: set[int] = set()
    for tc in deltas(stream):
        if tc["index"] in seen:
            n = next(fresh)
            tc["id"], tc["index"] = f"split-{n}", n
        else:
            seen.add(tc["index"])


def everything(stream: list[dict[str, Any]]) -> None:
    for change in (repeated_names, split_ids, no_ids, all_index_zero):
        change(stream)


SHAPES: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "recorded": lambda stream: None,
    "all_index_zero": all_index_zero,
    "no_ids": no_ids,
    "repeated_names": repeated_names,
    "split_ids": split_ids,
    "everything": everything,
}


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("case", ["one", "two"])
def test_stream_merges_into_the_whole_answers_calls(
    fake: FakeVLLM, parser: str, case: str
) -> None:
    data = recorded(parser, case)
    answer = whole(fake, data["answer"])
    expected = [WEATHER] if case == "one" else [WEATHER, TIME]
    assert calls(answer) == expected
    streamed = merged(fake, data["stream"])
    assert calls(streamed) == expected
    assert streamed.invalid_tool_calls == []
    check_shape(streamed)
    assert CUT_KEY not in streamed.response_metadata


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_pathological_shapes_merge_the_same(
    fake: FakeVLLM, parser: str, shape: str
) -> None:
    stream = copy.deepcopy(recorded(parser, "two")["stream"])
    SHAPES[shape](stream)
    streamed = merged(fake, stream)
    assert calls(streamed) == [WEATHER, TIME]
    check_shape(streamed)


@pytest.mark.parametrize("parser", PARSERS)
def test_a_call_cut_by_max_tokens_is_reported(fake: FakeVLLM, parser: str) -> None:
    data = recorded(parser, "cut")
    with pytest.warns(UserWarning, match="cut off by max_tokens"):
        streamed = merged(fake, data["stream"])
    cut = streamed.response_metadata[CUT_KEY]
    assert (cut["index"], cut["name"]) == (1, "get_time")
    assert "cut off by max_tokens" in cut["error"]
    # xlam streams a call's arguments only once they parse: none came for it
    assert cut["args"].startswith('{"zone": "Europe/B') or parser == "xlam"
    assert streamed.response_metadata["finish_reason"] == "length"
    assert calls(streamed)[0] == WEATHER
    check_shape(streamed)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = whole(fake, data["answer"])
    if str(answer.content).startswith(TOOL_CALL_OPENERS):  # markup left as text
        assert any("middle of a tool call" in str(w.message) for w in caught)
    if answer.tool_calls or answer.invalid_tool_calls:  # the parser kept them
        assert calls(answer) == [WEATHER]
        (invalid,) = answer.invalid_tool_calls
        assert invalid["name"] == "get_time"
        assert "cut off by max_tokens" in (invalid["error"] or "")
        assert answer.response_metadata[CUT_KEY]["name"] == "get_time"
    else:  # the parser returned the markup as text
        assert answer.content == data["output"]


def test_async_stream_is_normalized_too(fake: FakeVLLM) -> None:
    import asyncio

    stream = copy.deepcopy(recorded("hermes", "two")["stream"])
    everything(stream)
    fake.stream = stream
    chat = ChatVLLM(model="smollm2", **fake.kwargs())

    async def run() -> AIMessageChunk:
        total: Any = None
        async for chunk in chat.astream("Hi"):
            total = chunk if total is None else total + chunk
        return total

    streamed = asyncio.run(run())
    assert calls(streamed) == [WEATHER, TIME]
    check_shape(streamed)


# -- the normalizer on hand-made edge cases -------------------------------------------
def normalize(*chunks: list[dict[str, Any]]) -> AIMessageChunk:
    stream = ToolCallStream()
    out = [
        AIMessageChunk(
            content="",
            tool_call_chunks=stream.normalize(
                [
                    tool_call_chunk(**{"name": None, "args": None, "id": None, **c})
                    for c in cs
                ]
            ),
        )
        for cs in chunks
    ]
    total = out[0]
    for message in out[1:]:
        total += message
    assert isinstance(total, AIMessageChunk)
    return total


def test_two_calls_to_the_same_tool_at_one_index_stay_two() -> None:
    message = normalize(
        [{"name": "f", "args": '{"a": 1}', "index": 0}],
        [{"name": "f", "args": '{"a": 2}', "index": 0}],
    )
    assert [c["args"] for c in message.tool_calls] == [{"a": 1}, {"a": 2}]
    check_shape(message)


def test_a_name_that_comes_after_the_arguments_starts_no_new_call() -> None:
    message = normalize(
        [{"id": "x", "args": '{"a": ', "index": 0}],
        [{"name": "f", "index": 0}],
        [{"args": "1}", "index": 0}],
    )
    assert calls(message) == [("f", {"a": 1})]
    assert message.tool_calls[0]["id"] == "x"


def test_arguments_sent_twice_at_the_end_count_once() -> None:
    message = normalize(
        [{"id": "x", "name": "f", "args": "{", "index": 0}],
        [{"args": '"a": 1}{"a": 1}', "index": 0}],
    )
    assert calls(message) == [("f", {"a": 1})]


def test_generated_ids_are_stable_per_call() -> None:
    stream = ToolCallStream()
    first = stream.normalize([tool_call_chunk(name="f", args="{", id=None, index=0)])
    more = stream.normalize([tool_call_chunk(name=None, args="}", id=None, index=0)])
    assert (first[0]["id"] or "").startswith("call_")
    assert more[0]["id"] is None  # only the call's first chunk carries it
    assert [c["index"] for c in first + more] == [0, 0]


def test_callbacks_and_streamed_invoke_see_the_normalized_calls(
    fake: FakeVLLM,
) -> None:
    """Callback consumers (LangGraph's "messages" stream mode) add up what they see;
    `invoke` on a streaming model adds up the same chunks."""
    from langchain_core.callbacks import BaseCallbackHandler

    seen: list[AIMessageChunk] = []

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            seen.append(kwargs["chunk"].message)

    stream = copy.deepcopy(recorded("hermes", "two")["stream"])
    everything(stream)
    fake.stream = stream
    chat = ChatVLLM(model="smollm2", streaming=True, **fake.kwargs())
    answer = chat.invoke("Hi", config={"callbacks": [Collect()]})
    assert calls(answer) == [WEATHER, TIME]
    total = seen[0]
    for message in seen[1:]:
        total += message
    assert isinstance(total, AIMessageChunk)
    assert calls(total) == [WEATHER, TIME]
    check_shape(total)


def test_an_id_before_the_name_starts_the_next_call() -> None:
    message = normalize(
        [{"id": "a", "name": "f", "args": '{"a": 1}', "index": 0}],
        [{"id": "b", "index": 0}],
        [{"name": "g", "index": 0}],
        [{"args": '{"b": 2}', "index": 0}],
    )
    assert calls(message) == [("f", {"a": 1}), ("g", {"b": 2})]
    assert [c["id"] for c in message.tool_calls] == ["a", "b"]


def test_an_empty_delta_with_a_new_id_after_the_last_call_adds_nothing() -> None:
    message = normalize(
        [{"id": "a", "name": "f", "args": '{"a": 1}', "index": 0}],
        [{"id": "z", "args": "", "index": 3}],
    )
    assert calls(message) == [("f", {"a": 1})]
    check_shape(message)
