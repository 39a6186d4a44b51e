"""ChatVLLM unit tests: defaults, the wire, reasoning, discovery (no network)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.load import dumpd, dumps, load
from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableConfig, RunnableLambda
from pydantic import BaseModel, Field
from pydantic.v1 import BaseModel as BaseModelV1
from pydantic.v1 import Field as FieldV1

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMModelDiscoveryError
from langchain_vllm.params import VLLMChatParams, param_names
from langchain_vllm.structured import StructuredOutputs
from tests.unit_tests.fake_vllm import (
    FakeVLLM,
    chat_completion,
    stream_chunks,
    tool_call,
)

# One valid value per vLLM chat parameter, and what must go on the wire for it.
VALUES: dict[str, Any] = {
    "truncate_prompt_tokens": 100,
    "add_special_tokens": True,
    "priority": -1,
    "top_k": 5,
    "min_p": 0.1,
    "repetition_penalty": 1.2,
    "length_penalty": 0.5,
    "use_beam_search": False,
    "min_tokens": 2,
    "stop_token_ids": [2],
    "ignore_eos": True,
    "include_stop_str_in_output": True,
    "skip_special_tokens": False,
    "spaces_between_special_tokens": False,
    "bad_words": ["bad"],
    "allowed_token_ids": [1, 2, 3],
    "prompt_logprobs": 1,
    "structured_outputs": {"choice": ["a", "b"]},
    "cache_salt": "tenant-1",
    "vllm_xargs": {"k": 1},
    "kv_transfer_params": {"p": 1},
    "return_token_ids": True,
    "return_weight_versions": True,
    "request_id": "req-1",
    "session_id": "conversation-1",
    "truncation_side": "right",
    "logprob_token_ids": [5, 7],
    "repetition_detection": {
        "max_pattern_size": 4,
        "min_pattern_size": 1,
        "min_count": 3,
    },
    "stream_interval": 4,
    "return_tokens_as_token_ids": True,
    "watermarking": False,
    "ec_transfer_params": {"e": 1},
    "return_prompt_text": True,
    "echo": False,
    "add_generation_prompt": True,
    "continue_final_message": False,
    "documents": [{"title": "t", "text": "x"}],
    "chat_template": "{{ messages }}",
    "chat_template_kwargs": {"enable_thinking": False},
    "mm_processor_kwargs": {"a": 1},
    "media_io_kwargs": {"video": {"num_frames": 8}},
    "include_reasoning": True,
    "thinking_token_budget": 8,
    "thinking": True,
}
WIRE: dict[str, tuple[str, Any]] = {
    "thinking": ("chat_template_kwargs", {"enable_thinking": True, "thinking": True}),
}
"""Parameters sent under another name: the body field and its value."""


def test_every_parameter_has_a_wire_case() -> None:
    assert set(VALUES) == set(param_names(VLLMChatParams))


def test_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    chat = ChatVLLM()
    assert chat.openai_api_base == "http://localhost:8000/v1"
    assert chat.openai_api_key is not None
    assert chat.stream_usage is True
    assert chat.model_name is None
    monkeypatch.setenv("VLLM_API_BASE", "http://vllm.example:9/v1")
    monkeypatch.setenv("VLLM_API_KEY", "sekret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-leak")
    chat = ChatVLLM()
    assert chat.openai_api_base == "http://vllm.example:9/v1"
    assert chat.openai_api_key.get_secret_value() == "sekret"  # type: ignore[union-attr]
    assert "sekret" not in repr(chat)
    assert "sekret" not in dumps(chat)
    seed_style = ChatVLLM(openai_api_base="http://a:1/v1", openai_api_key="k")
    assert seed_style.openai_api_base == "http://a:1/v1"


def test_construction_makes_no_request(fake: FakeVLLM) -> None:
    ChatVLLM(**fake.kwargs())
    assert fake.requests == []


@pytest.mark.parametrize("name", sorted(VALUES))
def test_each_parameter_on_the_wire_field_and_per_call(
    fake: FakeVLLM, name: str
) -> None:
    field, expected = WIRE.get(name, (name, VALUES[name]))
    fake.version = "0.34.0"  # reads every declared parameter
    if name == "structured_outputs":
        expected = StructuredOutputs.model_validate(expected).to_wire()
    ChatVLLM(**fake.kwargs(), **{name: VALUES[name]}).invoke("hi")
    assert fake.last_body()[field] == expected
    ChatVLLM(**fake.kwargs()).invoke("hi", **{name: VALUES[name]})
    assert fake.last_body()[field] == expected
    ChatVLLM(**fake.kwargs()).bind(**{name: VALUES[name]}).invoke("hi")
    assert fake.last_body()[field] == expected


def test_unset_parameters_are_not_sent(fake: FakeVLLM) -> None:
    ChatVLLM(**fake.kwargs()).invoke("hi")
    body = fake.last_body()
    assert not set(body) & set(VALUES)


def test_extra_body_merges_on_top(fake: FakeVLLM) -> None:
    chat = ChatVLLM(**fake.kwargs(), top_k=3, extra_body={"a": 1, "top_k": 4})
    chat.invoke("hi", min_p=0.2, extra_body={"b": 2})
    body = fake.last_body()
    assert body["a"] == 1
    assert body["b"] == 2
    assert body["top_k"] == 4
    assert body["min_p"] == 0.2


def test_max_tokens_sent_as_max_tokens(fake: FakeVLLM) -> None:
    ChatVLLM(**fake.kwargs(), max_tokens=7).invoke("hi")
    assert fake.last_body()["max_tokens"] == 7
    assert "max_completion_tokens" not in fake.last_body()
    ChatVLLM(**fake.kwargs()).invoke("hi", max_tokens=9)
    assert fake.last_body()["max_tokens"] == 9


def test_validation_at_construction_and_per_call(fake: FakeVLLM) -> None:
    with pytest.raises(ValueError, match="min_p"):
        ChatVLLM(min_p=1.5)
    with pytest.raises(ValueError, match="top_k"):
        ChatVLLM(**fake.kwargs()).invoke("hi", top_k="many")
    with pytest.raises(ValueError, match="exactly one constraint"):
        ChatVLLM(structured_outputs={"choice": ["a"], "regex": "a"})
    with pytest.raises(ValueError, match="regular expression"):
        ChatVLLM(**fake.kwargs()).invoke("x", structured_outputs={"regex": "("})
    with pytest.raises(ValueError, match="unknown type"):
        ChatVLLM(structured_outputs={"json": {"type": "strin"}})
    assert fake.paths() == []


def test_stream_usage_on_by_default(fake: FakeVLLM) -> None:
    chunks = list(ChatVLLM(**fake.kwargs()).stream("hi"))
    assert fake.last_body()["stream_options"] == {"include_usage": True}
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.usage_metadata == {
        "input_tokens": 10,
        "output_tokens": 3,
        "total_tokens": 13,
        "input_token_details": {},
        "output_token_details": {},
    }


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_invoke_both_field_names(fake: FakeVLLM, field: str) -> None:
    fake.chat_response = chat_completion(
        "4", reasoning="2 and 2 make 4.", reasoning_field=field
    )
    msg = ChatVLLM(**fake.kwargs()).invoke("2+2?")
    assert msg.additional_kwargs["reasoning_content"] == "2 and 2 make 4."
    assert msg.content_blocks[0] == {
        "type": "reasoning",
        "reasoning": "2 and 2 make 4.",
    }


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_stream_both_field_names(fake: FakeVLLM, field: str) -> None:
    fake.stream = stream_chunks(
        ["4"], reasoning=["2 and 2", " make 4."], reasoning_field=field
    )
    chunks = list(ChatVLLM(**fake.kwargs()).stream("2+2?"))
    total: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.additional_kwargs["reasoning_content"] == "2 and 2 make 4."
    assert total.content == "4"


def test_discovery_once_per_instance(fake: FakeVLLM) -> None:
    chat = ChatVLLM(**fake.kwargs())
    chat.invoke("a")
    chat.invoke("b")
    asyncio.run(chat.ainvoke("c"))
    assert fake.paths().count("GET /v1/models") == 1
    assert fake.last_body()["model"] == "smollm2"


def test_discovery_several_models_lists_them(fake: FakeVLLM) -> None:
    fake.models = ["a-model", "b-model"]
    with pytest.raises(VLLMModelDiscoveryError, match="a-model, b-model"):
        ChatVLLM(**fake.kwargs()).invoke("hi")
    fake.models = []
    with pytest.raises(VLLMModelDiscoveryError, match="serves no model"):
        ChatVLLM(**fake.kwargs()).invoke("hi")


def test_explicit_model_skips_discovery(fake: FakeVLLM) -> None:
    ChatVLLM(**fake.kwargs(), model="mine").invoke("hi")
    assert fake.paths() == ["POST /v1/chat/completions"]


def test_structured_outputs_on_old_server_use_guided_names(fake: FakeVLLM) -> None:
    fake.version = "0.10.2"
    chat = ChatVLLM(**fake.kwargs(), model="m")
    chat.invoke("x", structured_outputs={"choice": ["a", "b"]})
    chat.invoke("x", guided_regex="a+")
    bodies = fake.bodies()
    assert bodies[0]["guided_choice"] == ["a", "b"]
    assert "structured_outputs" not in bodies[0]
    assert bodies[1]["guided_regex"] == "a+"
    assert fake.paths().count("GET /version") == 1


def test_guided_names_on_new_server_become_structured_outputs(fake: FakeVLLM) -> None:
    ChatVLLM(**fake.kwargs(), model="m").invoke("x", guided_json={"type": "object"})
    assert fake.last_body()["structured_outputs"] == {"json": {"type": "object"}}
    with pytest.raises(ValueError, match="not both"):
        ChatVLLM(**fake.kwargs(), model="m").invoke(
            "x", guided_regex="a", structured_outputs={"regex": "b"}
        )


def test_bind_tools_strict_by_default(fake: FakeVLLM) -> None:
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    chat = ChatVLLM(**fake.kwargs(), model="m")
    fake.chat_response = chat_completion(
        None,
        tool_calls=[tool_call("add", {"a": 1, "b": 2})],
        finish_reason="tool_calls",
    )
    chat.bind_tools([add], tool_choice="add").invoke("x")
    tool = fake.last_body()["tools"][0]
    assert tool["function"]["strict"] is True
    assert fake.last_body()["tool_choice"] == {
        "type": "function",
        "function": {"name": "add"},
    }
    chat.bind_tools([add], strict=False).invoke("x")
    assert fake.last_body()["tools"][0]["function"]["strict"] is False
    with pytest.raises(ValueError, match="names no bound tool"):
        chat.bind_tools([add], tool_choice="sub")


def test_token_counts_are_cached(fake: FakeVLLM) -> None:
    chat = ChatVLLM(**fake.kwargs(), model="m")
    first = chat.get_num_tokens("hello world")
    assert chat.get_num_tokens("hello world") == first
    assert fake.paths().count("POST /tokenize") == 1


def test_deprecated_call_style(fake: FakeVLLM) -> None:
    chat = ChatVLLM(**fake.kwargs(), model="m")
    with pytest.warns(DeprecationWarning, match="invoke"):
        assert chat([("human", "hi")]).content == "Hello!"


def test_ls_params_and_serialization() -> None:
    chat = ChatVLLM(model="m", api_key="sekret")
    assert chat._get_ls_params()["ls_provider"] == "vllm"
    assert chat._llm_type == "vllm-chat"
    data = dumpd(chat)
    assert data["id"] == ["langchain_vllm", "chat_models", "ChatVLLM"]
    assert data["kwargs"]["openai_api_key"]["id"] == ["VLLM_API_KEY"]
    assert "sekret" not in str(data)
    restored = load(
        data,
        allowed_objects=[ChatVLLM],
        valid_namespaces=["langchain_vllm"],
        secrets_map={"VLLM_API_KEY": "other"},
    )
    assert restored.model_name == "m"
    assert restored.openai_api_key.get_secret_value() == "other"


# -- reasoning sent back (reasoning_round_trip) --------------------------------------
def _history() -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    call = {"name": "magic", "args": {"x": 1}, "id": "call_1", "type": "tool_call"}
    return [
        HumanMessage("hi"),
        AIMessage("Hello", additional_kwargs={"reasoning_content": "greet back"}),
        HumanMessage("use the tool"),
        AIMessage(
            "",
            tool_calls=[call],
            additional_kwargs={"reasoning_content": "need the tool"},
        ),
        ToolMessage("2", tool_call_id="call_1"),
    ]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("never", [None, None]),
        ("tool_calls", [None, "need the tool"]),
        ("always", ["greet back", "need the tool"]),
    ],
)
def test_reasoning_round_trip_policy(
    fake: FakeVLLM, policy: str, expected: list[str | None]
) -> None:
    chat = ChatVLLM(model="smollm2", reasoning_round_trip=policy, **fake.kwargs())
    chat.invoke(_history())
    sent = [m for m in fake.last_body()["messages"] if m["role"] == "assistant"]
    assert [m.get("reasoning") for m in sent] == expected


def test_reasoning_round_trip_reads_content_blocks(fake: FakeVLLM) -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    earlier = AIMessage(
        [
            {"type": "reasoning", "reasoning": "step one"},
            {"type": "text", "text": "Answer"},
        ]
    )
    chat = ChatVLLM(model="smollm2", reasoning_round_trip="always", **fake.kwargs())
    chat.invoke([HumanMessage("q"), earlier, HumanMessage("and?")])
    assistant = fake.last_body()["messages"][1]
    assert assistant["reasoning"] == "step one"


def test_reasoning_round_trip_rejects_unknown_policy() -> None:
    with pytest.raises(ValueError, match="reasoning_round_trip"):
        ChatVLLM(model="m", reasoning_round_trip="sometimes")


# -- every token spent on reasoning --------------------------------------------------
def _reasoning_only_stream() -> list[dict[str, Any]]:
    chunks = stream_chunks([], reasoning=["Let me", " think"])
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice["finish_reason"]:
                choice["finish_reason"] = "length"
    return chunks


def test_reasoning_only_answer_warns(fake: FakeVLLM) -> None:
    fake.chat_response = chat_completion(
        None, reasoning="Let me think", finish_reason="length"
    )
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    with pytest.warns(UserWarning, match="max_tokens.*thinking_token_budget"):
        chat.invoke("hard question")
    fake.stream = _reasoning_only_stream()
    with pytest.warns(UserWarning, match="finish_reason='length'"):
        list(chat.stream("hard question"))


def test_reasoning_only_answer_can_raise(fake: FakeVLLM) -> None:
    from langchain_vllm.errors import VLLMEmptyAnswerError

    fake.chat_response = chat_completion(
        None, reasoning="Let me think", finish_reason="length"
    )
    chat = ChatVLLM(
        model="smollm2", error_on_empty_reasoning_only=True, **fake.kwargs()
    )
    with pytest.raises(VLLMEmptyAnswerError, match="max_tokens"):
        chat.invoke("hard question")
    fake.stream = _reasoning_only_stream()

    async def run() -> None:
        async for _ in chat.astream("hard question"):
            pass

    with pytest.raises(VLLMEmptyAnswerError, match="thinking_token_budget"):
        asyncio.run(run())


def test_length_with_an_answer_does_not_warn(fake: FakeVLLM) -> None:
    import warnings

    fake.chat_response = chat_completion(
        "Partial answer", reasoning="thought", finish_reason="length"
    )
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert chat.invoke("q").content == "Partial answer"


# -- model profile from /v1/models ---------------------------------------------------
def test_profile_is_fetched_lazily_and_once(fake: FakeVLLM) -> None:
    fake.max_model_len = 4096
    chat = ChatVLLM(**fake.kwargs())
    assert fake.paths() == []  # construction asks nothing
    assert chat.profile is not None
    assert chat.profile.get("max_input_tokens") == 4096
    assert chat.profile["max_input_tokens"] == 4096
    assert dict(chat.profile)["tool_calling"] is True
    # the card, then one modality probe: the fake model is text-only
    assert fake.paths() == ["GET /v1/models", "POST /tokenize"]


def test_profile_given_by_user_wins(fake: FakeVLLM) -> None:
    chat = ChatVLLM(model="m", profile={"max_input_tokens": 10}, **fake.kwargs())
    assert chat.profile == {"max_input_tokens": 10}
    assert fake.paths() == []


def test_profile_of_dead_server_is_the_connection_error() -> None:
    import httpx2

    from langchain_vllm.errors import VLLMConnectionError

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    chat = ChatVLLM(
        base_url="http://127.0.0.1:9/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(refuse)),
    )
    assert chat.profile is not None
    with pytest.raises(VLLMConnectionError, match=r"127\.0\.0\.1:9"):
        chat.profile.get("max_input_tokens")


def test_vllm_answer_fields_reach_response_metadata(fake: FakeVLLM) -> None:
    answer = chat_completion("Hi")
    answer["prompt_logprobs"] = [None, {"42": {"logprob": -1.5, "rank": 3}}]
    answer["prompt_token_ids"] = [1, 42]
    answer["choices"][0]["token_ids"] = [7]
    answer["choices"][0]["stop_reason"] = 2
    fake.chat_response = answer
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    meta = chat.invoke("hi", prompt_logprobs=1, return_token_ids=True).response_metadata
    assert meta["prompt_logprobs"] == answer["prompt_logprobs"]
    assert meta["prompt_token_ids"] == [1, 42]
    assert meta["token_ids"] == [7]
    assert meta["stop_reason"] == 2


# -- client-side markup parsing (servers without parsers) ---------------------------
MARKUP = (
    "<think>Weather needs a tool.</think>\n\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
)


def _markup_chat(fake: FakeVLLM, **kwargs: Any) -> ChatVLLM:
    return ChatVLLM(
        model="smollm2",
        parse_think_tags=True,
        parse_tool_call_tags=True,
        **kwargs,
        **fake.kwargs(),
    )


def test_markup_is_parsed_in_invoke(fake: FakeVLLM) -> None:
    fake.chat_response = chat_completion(MARKUP)
    msg = _markup_chat(fake).invoke("weather in Paris?")
    assert msg.content == ""
    assert msg.additional_kwargs["reasoning_content"] == "Weather needs a tool."
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]


def test_markup_is_parsed_in_stream_and_callbacks_see_parsed_text(
    fake: FakeVLLM,
) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    tokens: list[str] = []

    class Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            tokens.append(str(token))

    pieces = [MARKUP[i : i + 5] for i in range(0, len(MARKUP), 5)] + [" Done."]
    fake.stream = stream_chunks(pieces)
    chat = _markup_chat(fake)
    chunks = list(chat.stream("weather?"))
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert isinstance(full, AIMessageChunk)
    assert full.content == "Done."
    assert full.additional_kwargs["reasoning_content"] == "Weather needs a tool."
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert not any("<" in str(c.content) for c in chunks)
    # invoke with streaming=True: the callbacks get parsed text, not markup.
    fake.stream = stream_chunks(pieces)
    streaming = _markup_chat(fake, streaming=True)
    msg = streaming.invoke("weather?", config={"callbacks": [Tokens()]})
    assert msg.content == "Done."
    assert "".join(tokens) == "Done."


def test_server_reasoning_wins_over_markup(fake: FakeVLLM) -> None:
    fake.chat_response = chat_completion("<think>x</think>y", reasoning="server's")
    msg = _markup_chat(fake).invoke("q")
    assert msg.additional_kwargs["reasoning_content"] == "server's"
    assert msg.content == "<think>x</think>y"


def test_think_tag_in_prompt(fake: FakeVLLM) -> None:
    fake.chat_response = chat_completion("still thinking</think>\nAnswer.")
    msg = ChatVLLM(
        model="smollm2",
        parse_think_tags=True,
        think_tag_in_prompt=True,
        **fake.kwargs(),
    ).invoke("q")
    assert msg.content == "Answer."
    assert msg.additional_kwargs["reasoning_content"] == "still thinking"


@pytest.mark.parametrize(
    ("given", "sent"), [(None, "none"), ("auto", "none"), ("required", "required")]
)
def test_tool_markup_parsing_sends_tool_choice_none(
    fake: FakeVLLM, given: str | None, sent: str
) -> None:
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return city

    bound = _markup_chat(fake).bind_tools([get_weather], tool_choice=given)
    fake.chat_response = chat_completion(
        None, tool_calls=[tool_call("get_weather", {"city": "Paris"})]
    )
    bound.invoke("weather?")
    body = fake.last_body()
    assert body["tool_choice"] == sent
    assert body["tools"][0]["function"]["name"] == "get_weather"


def test_cut_off_inside_a_tool_call_warns(fake: FakeVLLM) -> None:
    cut = '<tool_call>\n{"name": "Joke", "arguments": {"setup": "The cat was a cat, and'
    fake.chat_response = chat_completion(cut, finish_reason="length")
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    with pytest.warns(UserWarning, match="middle of a tool call.*max_tokens"):
        msg = chat.invoke("joke")
    assert msg.tool_calls == []
    chunks = stream_chunks([cut[:20], cut[20:]])
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice["finish_reason"]:
                choice["finish_reason"] = "length"
    fake.stream = chunks
    with pytest.warns(UserWarning, match="middle of a tool call"):
        list(chat.stream("joke"))


class _JokeV1(BaseModelV1):
    """Joke to tell user."""

    setup: str
    punchline: str = FieldV1(description="answer")


class _Joke(BaseModel):
    """Joke to tell user."""

    setup: str
    code: str = Field(pattern=r"^[A-Z]+$")


def test_max_json_string_length_bounds_enforced_strings(fake: FakeVLLM) -> None:
    fake.chat_response = chat_completion('{"setup": "a", "code": "B"}')
    chat = ChatVLLM(model="smollm2", max_json_string_length=30, **fake.kwargs())
    assert chat.with_structured_output(_Joke).invoke("joke") == _Joke(
        setup="a", code="B"
    )
    schema = fake.last_body()["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["setup"]["maxLength"] == 30
    assert "maxLength" not in schema["properties"]["code"]  # has a pattern
    chat.invoke("joke", structured_outputs={"json": _Joke})
    sent = fake.last_body()["structured_outputs"]["json"]
    assert sent["properties"]["setup"]["maxLength"] == 30

    def shout(text: str) -> str:
        """Shout the text."""
        return text

    joke = fake.chat_response
    fake.chat_response = chat_completion(None, tool_calls=[tool_call("shout")])
    chat.bind_tools([shout], tool_choice="shout").invoke("hi")
    fake.chat_response = joke
    parameters = fake.last_body()["tools"][0]["function"]["parameters"]
    assert parameters["properties"]["text"]["maxLength"] == 30
    chat.bind_tools([shout], strict=False).invoke("hi")  # not enforced: untouched
    parameters = fake.last_body()["tools"][0]["function"]["parameters"]
    assert "maxLength" not in parameters["properties"]["text"]
    ChatVLLM(model="smollm2", **fake.kwargs()).with_structured_output(_Joke).invoke(
        "joke"
    )
    schema = fake.last_body()["response_format"]["json_schema"]["schema"]
    assert "maxLength" not in schema["properties"]["setup"]  # no cap by default
    with pytest.raises(ValueError, match="max_json_string_length"):
        ChatVLLM(max_json_string_length=0)


def test_with_structured_output_pydantic_v1_uses_json_schema(fake: FakeVLLM) -> None:
    fake.chat_response = chat_completion('{"setup": "a", "punchline": "b"}')
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    joke = chat.with_structured_output(_JokeV1).invoke("joke")
    assert isinstance(joke, _JokeV1)
    assert (joke.setup, joke.punchline) == ("a", "b")
    body = fake.last_body()
    assert body["response_format"]["type"] == "json_schema"
    assert "tools" not in body
    fake.chat_response = chat_completion('{"setup": "a"}')
    raw = chat.with_structured_output(_JokeV1, include_raw=True).invoke("joke")
    assert raw["parsed"] is None  # type: ignore[index]
    assert "punchline" in str(raw["parsing_error"])  # type: ignore[index]


# -- sessions -------------------------------------------------------------------------
def test_session_id_goes_as_body_field_and_header(fake: FakeVLLM) -> None:
    ChatVLLM(**fake.kwargs(), session_id="s-1").invoke("hi")
    assert fake.last_session() == ("s-1", "s-1")
    ChatVLLM(**fake.kwargs()).invoke("hi", session_id="s-2")
    assert fake.last_session() == ("s-2", "s-2")
    list(ChatVLLM(**fake.kwargs()).stream("hi", session_id="s-3"))
    assert fake.last_session() == ("s-3", "s-3")
    ChatVLLM(**fake.kwargs()).invoke("hi")
    assert fake.last_session() == (None, None)


def test_a_header_the_caller_set_wins(fake: FakeVLLM) -> None:
    ChatVLLM(**fake.kwargs()).invoke(
        "hi", session_id="s-1", extra_headers={"x-session-id": "mine"}
    )
    assert fake.last_session() == ("s-1", "mine")


def test_session_from_the_running_thread(fake: FakeVLLM) -> None:
    chat = ChatVLLM(**fake.kwargs(), session_from_thread=True)
    chain = RunnableLambda(lambda text: text) | chat
    config: RunnableConfig = {"configurable": {"thread_id": "thread-7"}}
    chain.invoke("hi", config=config)
    assert fake.last_session() == ("thread-7", "thread-7")
    # an explicit session wins over the thread; no thread, no session
    chat.invoke("hi", session_id="explicit")
    assert fake.last_session() == ("explicit", "explicit")
    chat.invoke("hi")
    assert fake.last_session() == (None, None)
    # off by default
    (RunnableLambda(lambda text: text) | ChatVLLM(**fake.kwargs())).invoke(
        "hi", config=config
    )
    assert fake.last_session() == (None, None)
