"""vLLM 0.33 and 0.34 answers, built by those releases' own code.

`data/vllm_0_33.json` and `data/vllm_0_34.json` were made by
`scripts/record_vllm_answers.py`, which runs each release's protocol classes and
serving-layer builders (their wheels are GPU builds; the rig cannot serve them):
chat streams and answers with the new null fields and `weight_versions`, a stream
that finishes without a token, a hermes tool call cut by `max_tokens`, Responses
streams cut by `max_output_tokens` (ending with `response.incomplete`), a per-token
embedding model's `/v1/embeddings` answer and 400, and the 400 of a schema whose
structured-output backend is not the engine's.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI
from langchain_vllm._tool_stream import CUT_KEY
from langchain_vllm.errors import (
    VLLMMultiVectorEmbeddingError,
    VLLMStructuredOutputError,
)
from tests.unit_tests.fake_vllm import FakeVLLM, RawFakeVLLM, sse

DATA = Path(__file__).parent / "data"
VERSIONS = ["0_33", "0_34"]


def case(version: str, name: str) -> dict[str, Any]:
    data = json.loads((DATA / f"vllm_{version}.json").read_text())
    return data["cases"][name]  # type: ignore[no-any-return]


def streamed(fake: FakeVLLM, chunks: list[dict[str, Any]], **kwargs: Any) -> Any:
    fake.stream = chunks
    chat = ChatVLLM(model="smollm2", stream_usage=True, **fake.kwargs(), **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parts = list(chat.stream("Hi"))
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total, [str(w.message) for w in caught]


def invoked(fake: FakeVLLM, answer: dict[str, Any], **kwargs: Any) -> Any:
    fake.chat_response = answer
    chat = ChatVLLM(model="smollm2", **fake.kwargs(), **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        message = chat.invoke("Hi")
    return message, [str(w.message) for w in caught]


# -- null fields, weight_versions --
@pytest.mark.parametrize("version", VERSIONS)
def test_null_fields_are_no_metadata(version: str) -> None:
    fake = FakeVLLM()
    total, caught = streamed(fake, case(version, "chat_stream")["stream"])
    assert total.text == "I'm glad to"
    assert caught == []
    metadata = total.response_metadata
    assert metadata["finish_reason"] == "length"
    for name in ("kv_transfer_params", "weight_versions"):
        assert name not in metadata
    message, _ = invoked(fake, case(version, "chat_answer")["answer"])
    for name in ("kv_transfer_params", "weight_versions", "annotations"):
        assert name not in message.response_metadata
        assert name not in message.additional_kwargs
    assert message.usage_metadata["input_tokens"] == 3


@pytest.mark.parametrize("version", VERSIONS)
def test_weight_versions_are_response_metadata(version: str) -> None:
    spans = [
        {"version": "step-41", "start": 0, "end": 2},
        {"version": "step-42", "start": 2, "end": 4},
    ]
    fake = FakeVLLM()
    fake.version = version.replace("_", ".") + ".0"  # the field is 0.33+
    total, _ = streamed(
        fake,
        case(version, "chat_stream_weight_versions")["stream"],
        return_weight_versions=True,
    )
    assert total.response_metadata["weight_versions"] == spans
    assert fake.last_body()["return_weight_versions"] is True
    answer = case(version, "chat_answer_weight_versions")["answer"]
    message, _ = invoked(fake, answer, return_weight_versions=True)
    assert message.response_metadata["weight_versions"] == spans


@pytest.mark.parametrize("version", VERSIONS)
def test_completion_weight_versions_are_generation_info(version: str) -> None:
    fake = FakeVLLM()
    fake.version = version.replace("_", ".") + ".0"  # the field is 0.33+
    answer = case(version, "completion_weight_versions")["answer"]
    fake.completion_response = answer  # type: ignore[attr-defined]
    llm = VLLMOpenAI(model="smollm2", return_weight_versions=True, **fake.kwargs())
    result = llm.generate(["Hi"])
    info = result.generations[0][0].generation_info or {}
    assert info["weight_versions"] == answer["choices"][0]["weight_versions"]
    assert fake.last_body("/completions")["return_weight_versions"] is True


@pytest.mark.parametrize("version", VERSIONS)
def test_annotations_are_a_list(version: str) -> None:
    """One annotation in vLLM 0.33, a list from 0.34: a list either way."""
    answer = case(version, "chat_answer_annotations")["answer"]
    message, _ = invoked(FakeVLLM(), answer)
    assert message.text == "I'm glad to"
    annotations = message.response_metadata["annotations"]
    assert annotations[0]["url_citation"]["url"] == "https://docs.vllm.ai/"


# -- a stream that finishes without a token --
@pytest.mark.parametrize("version", VERSIONS)
def test_stream_finished_without_tokens_is_an_empty_answer(version: str) -> None:
    total, caught = streamed(
        FakeVLLM(), case(version, "chat_stream_zero_tokens")["stream"]
    )
    assert total.content == ""
    assert not total.tool_call_chunks
    assert total.response_metadata["finish_reason"] == "stop"
    assert "weight_versions" not in total.response_metadata
    assert total.usage_metadata["output_tokens"] == 0
    assert caught == []


# -- a tool call cut by max_tokens --
@pytest.mark.parametrize("version", VERSIONS)
def test_tool_call_cut_by_the_limit_is_reported(version: str) -> None:
    recorded = case(version, "tool_cut")
    fake = FakeVLLM()
    total, caught = streamed(fake, recorded["stream"])
    assert total.response_metadata["finish_reason"] == "length"
    cut = total.response_metadata[CUT_KEY]
    assert cut["name"] == "get_time"
    assert any("cut off by max_tokens" in w for w in caught)
    # the whole answer: "length" (0.32 said "tool_calls"), the markup unparsed
    message, caught = invoked(fake, recorded["answer"])
    assert isinstance(message, AIMessage)
    assert message.response_metadata["finish_reason"] == "length"
    assert not message.tool_calls
    assert any("middle of a tool call" in w for w in caught)


# -- Responses API: response.incomplete --
def _responses(fake: RawFakeVLLM, events: list[dict[str, Any]], *, stream: bool) -> Any:
    if stream:
        fake.raw["/responses"] = (200, "text/event-stream", sse(*events, done=False))
    else:
        body = json.dumps(events[-1]["response"]).encode()
        fake.raw["/responses"] = (200, "application/json", body)
    chat = ChatVLLM(use_responses_api=True, **fake.kwargs())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        message: AIMessage
        if stream:
            parts = list(chat.stream("Hi"))
            message = parts[0]
            for part in parts[1:]:
                message += part
        else:
            message = chat.invoke("Hi")
    return message, [str(w.message) for w in caught]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("stream", [True, False])
def test_responses_cut_short_reads_like_chat_completions(
    version: str, stream: bool
) -> None:
    events = case(version, "responses_text_incomplete")["stream"]
    assert events[-1]["type"] == "response.incomplete"
    message, caught = _responses(RawFakeVLLM(), events, stream=stream)
    assert message.text == "I'm glad to"
    metadata = message.response_metadata
    assert metadata["status"] == "incomplete"
    assert metadata["finish_reason"] == "length"
    assert message.usage_metadata["output_tokens"] == 4
    assert caught == []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("stream", [True, False])
def test_responses_tool_call_cut_short_is_no_tool_call(
    version: str, stream: bool
) -> None:
    """As on Chat Completions: a whole answer's cut call is invalid, a stream
    warns and names it (its chunks already went out)."""
    events = case(version, "responses_tool_call_incomplete")["stream"]
    message, caught = _responses(RawFakeVLLM(), events, stream=stream)
    assert message.response_metadata["finish_reason"] == "length"
    assert message.response_metadata[CUT_KEY]["name"] == "get_weather"
    assert message.response_metadata[CUT_KEY]["args"] == '{"city": "Par'
    if stream:
        assert isinstance(message, AIMessageChunk)
        assert any("cut off by max_tokens" in w for w in caught)
    else:
        assert not message.tool_calls
        assert message.invalid_tool_calls[0]["name"] == "get_weather"
        assert "cut off by max_tokens" in message.invalid_tool_calls[0]["error"]


# -- /v1/responses reads thinking_token_budget from vLLM 0.34 on --
@pytest.mark.parametrize("server", ["0.34.0", "0.35.1+cu130", ""])
def test_thinking_token_budget_goes_to_newer_responses_servers(server: str) -> None:
    fake = RawFakeVLLM()
    fake.version = server
    if not server:  # a gateway that forwards /v1 only: no /version
        fake.raw["/version"] = (404, "application/json", b'{"detail": "Not Found"}')
    events = case("0_34", "responses_text_incomplete")["stream"]
    body = json.dumps(events[-1]["response"]).encode()
    fake.raw["/responses"] = (200, "application/json", body)
    chat = ChatVLLM(use_responses_api=True, thinking_token_budget=8, **fake.kwargs())
    assert chat.invoke("Hi").text == "I'm glad to"
    assert fake.last_body("/responses")["thinking_token_budget"] == 8


async def test_thinking_token_budget_goes_to_newer_responses_servers_async() -> None:
    fake = RawFakeVLLM()
    fake.version = "0.34.0"
    events = case("0_34", "responses_text_incomplete")["stream"]
    fake.raw["/responses"] = (200, "text/event-stream", sse(*events, done=False))
    chat = ChatVLLM(use_responses_api=True, **fake.kwargs())
    text = ""
    async for chunk in chat.astream("Hi", thinking_token_budget=8):
        text += chunk.text
    assert text == "I'm glad to"
    assert fake.last_body("/responses")["thinking_token_budget"] == 8
    assert "GET /version" in fake.paths()


def test_thinking_token_budget_is_refused_by_older_responses_servers() -> None:
    fake = RawFakeVLLM()
    fake.version = "0.33.0"
    chat = ChatVLLM(use_responses_api=True, **fake.kwargs())
    with pytest.raises(ValueError, match=r"thinking_token_budget from vLLM 0\.34 on"):
        chat.invoke("Hi", thinking_token_budget=8)
    assert "POST /v1/responses" not in fake.paths()


@pytest.mark.parametrize(
    ("name", "value", "older", "newer"),
    [
        ("spaces_between_special_tokens", False, "0.32.0", "0.33.0"),
        ("thinking_token_budget", 8, "0.33.0", "0.34.0"),
    ],
)
def test_responses_params_follow_the_server_version(
    name: str, value: Any, older: str, newer: str
) -> None:
    events = case("0_34", "responses_text_incomplete")["stream"]
    body = json.dumps(events[-1]["response"]).encode()
    for version in (older, newer):
        fake = RawFakeVLLM()
        fake.version = version
        fake.raw["/responses"] = (200, "application/json", body)
        chat = ChatVLLM(use_responses_api=True, **fake.kwargs())
        if version == older:
            with pytest.raises(ValueError, match=f"does not read {name}"):
                chat.invoke("Hi", **{name: value})
        else:
            chat.invoke("Hi", **{name: value})
            assert fake.last_body("/responses")[name] == value


# -- errors --
@pytest.mark.parametrize("version", VERSIONS)
def test_second_structured_output_backend_is_a_schema_error(version: str) -> None:
    recorded = case(version, "structured_backend_refused")
    fake = FakeVLLM()
    fake.status, fake.error_body = recorded["status"], recorded["answer"]
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    with pytest.raises(VLLMStructuredOutputError, match="one backend per engine") as e:
        chat.invoke("Hi")
    assert "structured_outputs_config" in str(e.value)
    assert "schema" in str(e.value)


@pytest.mark.parametrize("version", VERSIONS)
def test_second_structured_output_backend_in_a_stream(version: str) -> None:
    """A stream gets the refusal as its one data event (no HTTP 400)."""
    fake = FakeVLLM()
    fake.stream = case(version, "structured_backend_refused")["stream"]
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    with pytest.raises(VLLMStructuredOutputError, match="one backend per engine"):
        list(chat.stream("Hi"))


@pytest.mark.parametrize("version", VERSIONS)
def test_per_token_embeddings_are_refused(version: str) -> None:
    fake = FakeVLLM()
    fake.embeddings_response = case(version, "token_embeddings")["answer"]  # type: ignore[attr-defined]
    embeddings = VLLMEmbeddings(
        model="colbert", model_kwargs={"encoding_format": "float"}, **fake.kwargs()
    )
    with pytest.raises(VLLMMultiVectorEmbeddingError, match="one vector per token"):
        embeddings.embed_documents(["a b c", "d"])


@pytest.mark.parametrize("version", VERSIONS)
def test_per_token_embeddings_refusing_base64_is_named(version: str) -> None:
    recorded = case(version, "token_embeddings_base64")
    fake = FakeVLLM()
    fake.status, fake.error_body = recorded["status"], recorded["answer"]
    embeddings = VLLMEmbeddings(model="colbert", **fake.kwargs())
    with pytest.raises(VLLMMultiVectorEmbeddingError, match="one vector per token"):
        embeddings.embed_documents(["a b c", "d"])
