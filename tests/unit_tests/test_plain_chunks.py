"""`_plain_chunks` builds exactly what the validated path builds (no network).

Every chunk of vLLM 0.32 streams recorded live (`data/token_answers.json`,
`data/tool_streams/*.json`), and variants of them, goes through ChatVLLM's chunk
converter twice: with the plain path, and with it switched off (langchain-openai's
validated construction, then ChatVLLM's metadata). Where the plain path answers,
the two generation chunks must be equal, dump equal, and have the same fields set;
everything it declines must be a chunk it cannot build alike.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
)

from langchain_vllm import ChatVLLM
from langchain_vllm import chat_models as chat_module
from langchain_vllm._plain_chunks import plain_chunk, prompt_of

DATA = Path(__file__).parent / "data"


def _recorded_chunks() -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = []
    answers = json.loads((DATA / "token_answers.json").read_text())
    for name, case in answers["cases"].items():
        if name.startswith("chat"):
            chunks += case["stream"]
    for path in sorted((DATA / "tool_streams").glob("*.json")):
        for case in json.loads(path.read_text())["cases"]:
            chunks += case["stream"]
    return chunks


RECORDED = _recorded_chunks()


def _variants(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunk, and the same with reasoning, vLLM's ids or nulls added."""
    out = [chunk]
    if chunk.get("choices") and isinstance(chunk["choices"][0].get("delta"), dict):
        change: dict[str, Any]
        for change in (
            {"reasoning": "Let me think."},
            {"reasoning_content": "Older field."},
            {"content": None},
            {"tool_calls": []},
            {"role": "assistant"},
        ):
            variant = copy.deepcopy(chunk)
            variant["choices"][0]["delta"].update(change)
            out.append(variant)
        for extra in (
            {"token_ids": [5, 6]},
            {"stop_reason": None, "token_ids": [7]},
            {"logprobs": None},  # the recorded answers asked for logprobs
        ):
            variant = copy.deepcopy(chunk)
            variant["choices"][0].update(extra)
            out.append(variant)
    usage_null = copy.deepcopy(chunk)
    usage_null["usage"] = None
    out.append(usage_null)
    return out


CHUNKS = [v for chunk in RECORDED for v in _variants(chunk)]
MODEL = ChatVLLM(base_url="http://vllm.test/v1", model="smollm2")
BASE = next(  # a recorded plain chunk with text
    c
    for c in CHUNKS
    if plain_chunk(c, AIMessageChunk, {}, MODEL) and c["choices"][0]["delta"]["content"]
)


@pytest.fixture
def chat() -> ChatVLLM:
    return ChatVLLM(base_url="http://vllm.test/v1", model="smollm2")


def _validated(
    chat: ChatVLLM, chunk: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(chat_module, "plain_chunk", lambda *args: None)
        return chat._convert_chunk_to_generation_chunk(
            copy.deepcopy(chunk), AIMessageChunk, {}
        )


def test_plain_chunks_equal_the_validated_ones(
    chat: ChatVLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = 0
    for chunk in CHUNKS:
        fast = chat._convert_chunk_to_generation_chunk(
            copy.deepcopy(chunk), AIMessageChunk, {}
        )
        slow = _validated(chat, chunk, monkeypatch)
        assert fast == slow, chunk
        assert fast is None or fast.model_dump() == slow.model_dump(), chunk
        if plain_chunk(chunk, AIMessageChunk, {}, chat) is None:
            continue
        plain += 1
        assert fast is not None
        assert slow is not None
        assert type(fast.message) is type(slow.message)
        assert fast.model_fields_set == slow.model_fields_set
        assert fast.message.model_fields_set == slow.message.model_fields_set
        assert fast.text == slow.text
        assert (fast + fast).message == (slow + slow).message
    # Plain and other chunks both came by (most recorded ones are tool calls or
    # carry logprobs: their variants without are plain).
    assert 500 < plain < len(CHUNKS), (plain, len(CHUNKS))


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"finish_reason": "stop"}, "choice"),
        ({"logprobs": {"content": []}}, "choice"),
        ({"index": 1}, "choice"),
        ({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}, "delta"),
        ({"role": "tool"}, "delta"),
        ({"content": ["a list"]}, "delta"),
        ({"id": "msg-1"}, "delta"),
        ({"function_call": {"name": "f"}}, "delta"),
        ({"usage": {"prompt_tokens": 1, "completion_tokens": 1}}, "top"),
        ({"prompt_token_ids": [1, 2]}, "top"),
        ({"type": "content.delta"}, "top"),
    ],
)
def test_other_chunks_take_the_validated_path(
    chat: ChatVLLM, change: dict[str, Any], where: str
) -> None:
    chunk = copy.deepcopy(BASE)
    assert plain_chunk(chunk, AIMessageChunk, {}, chat) is not None
    target = {
        "top": chunk,
        "choice": chunk["choices"][0],
        "delta": chunk["choices"][0]["delta"],
    }[where]
    target.update(change)
    assert plain_chunk(chunk, AIMessageChunk, {}, chat) is None


def test_only_for_the_default_chunk_class_and_output(chat: ChatVLLM) -> None:
    chunk = BASE
    assert plain_chunk(chunk, HumanMessageChunk, {}, chat) is None
    assert plain_chunk(chunk, AIMessageChunk, {"headers": {}}, chat) is None
    v1 = ChatVLLM(base_url="http://vllm.test/v1", model="m", output_version="v1")
    assert plain_chunk(chunk, AIMessageChunk, {}, v1) is None
    assert plain_chunk([chunk], AIMessageChunk, {}, chat) is None


def test_built_chunks_share_no_containers(chat: ChatVLLM) -> None:
    one = plain_chunk(BASE, AIMessageChunk, {}, chat)
    two = plain_chunk(BASE, AIMessageChunk, {}, chat)
    assert one is not None
    assert two is not None
    for name in ("tool_calls", "invalid_tool_calls", "tool_call_chunks"):
        assert getattr(one.message, name) is not getattr(two.message, name)
    one.message.additional_kwargs["x"] = 1
    one.message.response_metadata["y"] = 2
    assert isinstance(one.message, AIMessageChunk)
    assert isinstance(two.message, AIMessageChunk)
    one.message.tool_calls.append({"name": "t", "args": {}, "id": None})
    assert two.message.additional_kwargs == {}
    assert "y" not in two.message.response_metadata
    assert two.message.tool_calls == []
    again = plain_chunk(BASE, AIMessageChunk, {}, chat)
    assert again is not None
    assert isinstance(again.message, AIMessageChunk)
    assert again.message.tool_calls == []


def test_built_chunks_share_no_extras(chat: ChatVLLM) -> None:
    # An attribute set on one streamed chunk's message stays on that chunk.
    one = plain_chunk(BASE, AIMessageChunk, {}, chat)
    assert one is not None
    one.message.foo = 1  # type: ignore[attr-defined]
    assert one.message.model_dump()["foo"] == 1
    two = plain_chunk(BASE, AIMessageChunk, {}, chat)
    assert two is not None
    assert "foo" not in two.message.model_dump()
    assert two.message.__pydantic_extra__ is not one.message.__pydantic_extra__
    assert two.message == plain_chunk(BASE, AIMessageChunk, {}, chat).message  # type: ignore[union-attr]
    first, second = prompt_of([HumanMessage("a")]), prompt_of([HumanMessage("b")])
    for a, b in ((first, second), (one, two)):
        for slot in ("__pydantic_extra__", "__pydantic_private__"):
            if getattr(a, slot) is not None:
                assert getattr(a, slot) is not getattr(b, slot), slot


def test_prompt_of_messages_is_what_convert_input_builds(chat: ChatVLLM) -> None:
    messages = [SystemMessage("Be brief."), HumanMessage("Hi"), AIMessage("Hello")]
    built = prompt_of(messages)
    validated = chat._convert_input(messages)
    assert built == validated
    assert built.model_dump() == validated.model_dump()
    assert built.model_fields_set == validated.model_fields_set
    assert built.to_messages() == messages
    assert all(a is b for a, b in zip(built.to_messages(), messages, strict=True))
    assert built.to_string() == validated.to_string()


def test_model_builder_copies_extras_private_and_containers() -> None:
    # The generated maker on a model with every part filled: each instance equals
    # the validated one and owns its extras, private attributes and containers.
    from pydantic import BaseModel, ConfigDict, PrivateAttr

    from langchain_vllm._seams import model_builder

    class Part(BaseModel):
        model_config = ConfigDict(extra="allow")
        text: str
        tags: list[str] = []
        meta: dict[str, int] = {}
        kind: str = "part"
        _cache: dict[str, int] = PrivateAttr(default_factory=dict)

    prototype = Part(text="", color="red")
    prototype._cache["seen"] = 1
    build = model_builder(prototype, frozenset({"text"}), frozenset({"text"}))
    one, two = build(text="a"), build(text="a")
    validated = Part(text="a", color="red")
    validated._cache["seen"] = 1
    assert one == validated
    assert one.model_dump() == validated.model_dump()
    assert one.model_fields_set == {"text"}
    one.tags.append("x")
    one.meta["n"] = 1
    one.color = "blue"  # type: ignore[attr-defined]
    one._cache["seen"] = 2
    one.model_fields_set.add("kind")
    assert (two.tags, two.meta, two.color, two._cache) == ([], {}, "red", {"seen": 1})  # type: ignore[attr-defined]
    assert two.model_fields_set == {"text"}
    assert prototype.tags == []
    assert prototype._cache == {"seen": 1}
