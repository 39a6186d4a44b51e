"""ChatVLLM against the live rig servers (started once per session by conftest)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import warnings
from typing import Any, Literal

import pytest
from langchain_core.load import dumpd, load
from langchain_core.messages import (
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel, Field
from pydantic.v1 import BaseModel as BaseModelV1
from pydantic.v1 import Field as FieldV1

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import (
    VLLMConnectionError,
    VLLMModelNotFoundError,
    VLLMServerFeatureError,
    VLLMToolChoiceError,
)
from tests.integration_tests.conftest import FIXED, FIXED_TEXT

SEED = [
    SystemMessage("You are a helpful assistant that translates English to Italian."),
    HumanMessage("Translate the following sentence: I love programming."),
]


@pytest.fixture(scope="module")
def chat(chat_url: str) -> ChatVLLM:
    return ChatVLLM(base_url=chat_url, temperature=0, max_tokens=24)


# -- the core --------------------------------------------------------------------
def test_invoke_discovers_model_and_reports_usage(chat: ChatVLLM) -> None:
    msg = chat.invoke(SEED)
    assert isinstance(msg.content, str)
    assert msg.content.strip()
    assert msg.response_metadata["model_name"] == "smollm2-135m-instruct"
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["input_tokens"] > 10
    assert msg.usage_metadata["output_tokens"] > 0


def test_stream_adds_up_with_usage(chat: ChatVLLM) -> None:
    chunks = list(chat.stream(SEED, **FIXED))
    assert len(chunks) > 2
    full = add_ai_message_chunks(*chunks)
    assert full.content == FIXED_TEXT == chat.invoke(SEED, **FIXED).content
    assert full.usage_metadata is not None
    assert full.usage_metadata["output_tokens"] > 0
    assert full.response_metadata["finish_reason"] == "stop"


def test_batch_and_async(chat: ChatVLLM) -> None:
    answers = chat.batch(["Say hi.", "Say bye."], **FIXED)
    assert [a.content for a in answers] == [FIXED_TEXT, FIXED_TEXT]

    async def run() -> list[str]:
        one = await chat.ainvoke("Say hi.", **FIXED)
        many = await chat.abatch(["Say hi.", "Say bye."], **FIXED)
        streamed = [c async for c in chat.astream("Say hi.", **FIXED)]
        return [
            str(one.content),
            *(str(m.content) for m in many),
            str(add_ai_message_chunks(*streamed).content),
        ]

    assert asyncio.run(run()) == [FIXED_TEXT] * 4


def test_successive_event_loops(chat: ChatVLLM) -> None:
    """ChatOpenAI fails 2 of 5 of these with `Event loop is closed`."""
    for _ in range(3):
        assert asyncio.run(chat.ainvoke("Hello", **FIXED)).content == FIXED_TEXT

    async def stream() -> str:
        return "".join([str(c.content) async for c in chat.astream("Hello", **FIXED)])

    for _ in range(2):
        assert asyncio.run(stream()) == FIXED_TEXT


async def test_pytest_asyncio_loop_one(chat: ChatVLLM) -> None:
    assert (await chat.ainvoke("Hello", **FIXED)).content == FIXED_TEXT


async def test_pytest_asyncio_loop_two(chat: ChatVLLM) -> None:
    assert (await chat.ainvoke("Hello", **FIXED)).content == FIXED_TEXT


def _off_top(message: object) -> int:
    """How many sampled tokens were not the most likely one (raw logprobs).

    vLLM lists the sampled token first in `top_logprobs`, then the most likely
    ones: with 2 of them, the best logprob at a position is their maximum.
    """
    entries = message.response_metadata["logprobs"]["content"]  # type: ignore[attr-defined]
    assert entries
    return sum(
        e["logprob"] < max(t["logprob"] for t in e["top_logprobs"]) for e in entries
    )


def test_top_k_reaches_server(chat: ChatVLLM) -> None:
    """At temperature 1, top_k=1 leaves only the most likely token to sample.

    vLLM's logprobs are the model's raw ones, so each sampled token's logprob must
    be the best logprob at its position: decided by the server honouring top_k,
    whatever the model writes.
    """
    hot = chat.bind(temperature=1.0, max_tokens=24, logprobs=True, top_logprobs=2)
    for seed in range(2):
        assert _off_top(hot.invoke("Write a short poem.", top_k=1, seed=seed)) == 0
    # The control: without top_k, sampling at temperature 1 leaves the top token
    # somewhere in 4 x 24 tokens (this check would catch a top_k that always bites).
    free = [hot.invoke("Write a short poem.", seed=s) for s in range(4)]
    assert sum(_off_top(m) for m in free) > 0


def test_min_tokens_and_stop_token_ids(chat: ChatVLLM) -> None:
    eos = chat.get_token_ids("<|im_end|>")
    assert len(eos) == 1
    short = chat.invoke("Say OK.", max_tokens=40, min_tokens=30, stop_token_ids=eos)
    assert short.usage_metadata is not None
    assert short.usage_metadata["output_tokens"] >= 30


def test_seed_walkthrough(chat: ChatVLLM) -> None:
    template = ChatPromptTemplate.from_messages(
        [
            (
                "system",
                "You are a helpful assistant that translates {input_language} to "
                "{output_language}.",
            ),
            ("human", "{text}"),
        ]
    )
    messages = template.format_prompt(
        input_language="English", output_language="Italian", text="I love programming."
    ).to_messages()
    with pytest.warns(DeprecationWarning, match="invoke"):
        old_style = chat(messages, **FIXED)
    assert old_style.content == FIXED_TEXT == chat.invoke(messages, **FIXED).content


def test_serialization_round_trip(chat: ChatVLLM) -> None:
    restored = load(
        dumpd(chat),
        allowed_objects=[ChatVLLM],
        valid_namespaces=["langchain_vllm"],
        secrets_from_env=True,
    )
    assert isinstance(restored, ChatVLLM)
    assert restored._get_request_payload(SEED) == chat._get_request_payload(SEED)
    assert restored.invoke("Hello", **FIXED).content == FIXED_TEXT


# -- errors ------------------------------------------------------------------------
def test_dead_port_names_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = ChatVLLM(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(
        VLLMConnectionError, match=f"127.0.0.1:{port}.*vllm serve MODEL"
    ):
        dead.invoke("hi")
    with pytest.raises(VLLMConnectionError, match=f"127.0.0.1:{port}"):
        dead.get_num_tokens("hi")


def test_unknown_model_lists_served(chat_url: str) -> None:
    bad = ChatVLLM(base_url=chat_url, model="gpt-5", max_retries=0)
    with pytest.raises(VLLMModelNotFoundError, match="smollm2-135m-instruct"):
        bad.invoke("hi")


def test_no_tool_parser_says_which_flags(plain_url: str) -> None:
    plain = ChatVLLM(base_url=plain_url, max_tokens=16, max_retries=0)

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    with pytest.raises(VLLMServerFeatureError, match="--tool-call-parser"):
        plain.bind_tools([add], tool_choice="auto").invoke("What is 2 + 3?")


def test_lora_adapters_on_a_server_without_runtime_updating(chat: ChatVLLM) -> None:
    """The chat server runs without --enable-lora: no adapters, no runtime loading."""
    assert [(m.name, m.parent) for m in chat.list_models()] == [
        ("smollm2-135m-instruct", None)
    ]
    for call in (
        lambda: chat.load_lora_adapter("pine", "/nowhere"),
        lambda: chat.unload_lora_adapter("pine"),
    ):
        with pytest.raises(VLLMServerFeatureError) as err:
            call()
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=1" in str(err.value)
        assert "--enable-lora" in str(err.value)


# -- structured outputs ------------------------------------------------------------
def test_structured_outputs_choice(chat: ChatVLLM) -> None:
    out = chat.invoke(
        "Is the sky blue? Answer yes or no.",
        structured_outputs={"choice": ["yes", "no"]},
    )
    assert out.content in ("yes", "no")


def test_structured_outputs_regex(chat: ChatVLLM) -> None:
    out = chat.invoke(
        "Give a phone number.", structured_outputs={"regex": r"\d{3}-\d{4}"}
    )
    assert re.fullmatch(r"\d{3}-\d{4}", str(out.content))


def test_structured_outputs_json_pydantic(chat: ChatVLLM) -> None:
    class City(BaseModel):
        name: str = Field(max_length=20)
        country: Literal["France", "Italy", "Spain"]

    out = chat.invoke(
        "Describe Paris as JSON.",
        max_tokens=80,
        structured_outputs={"json": City, "disable_any_whitespace": True},
    )
    City.model_validate_json(str(out.content))


def test_structured_outputs_grammar(chat: ChatVLLM) -> None:
    grammar = 'root ::= ("cat" | "dog") " and " ("fish" | "bird")'
    out = chat.invoke("Name two pets.", structured_outputs={"grammar": grammar})
    assert re.fullmatch(r"(cat|dog) and (fish|bird)", str(out.content))


def test_legacy_guided_names_are_translated(chat: ChatVLLM) -> None:
    """vLLM 0.32 ignores top-level guided_*; ChatVLLM sends structured_outputs."""
    out = chat.invoke("Pick a colour.", guided_choice=["red", "green"])
    assert out.content in ("red", "green")


def test_structured_outputs_in_stream(chat: ChatVLLM) -> None:
    chunks = list(
        chat.stream("Pick one.", structured_outputs={"choice": ["alpha", "beta"]})
    )
    assert add_ai_message_chunks(*chunks).content in ("alpha", "beta")


class Answer(BaseModel):
    """An answer with a verdict."""

    verdict: Literal["yes", "no"]
    confidence: int = Field(ge=0, le=10)


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_with_structured_output_methods(chat: ChatVLLM, method: str) -> None:
    # A fresh model: `bind(...).with_structured_output` would drop the binding.
    roomy = ChatVLLM(base_url=chat.openai_api_base, temperature=0, max_tokens=60)
    runnable = roomy.with_structured_output(Answer, method=method)  # type: ignore[arg-type]
    result = runnable.invoke("Is water wet?")
    assert isinstance(result, Answer)


def test_with_structured_output_typed_dict_json_schema_include_raw(
    chat: ChatVLLM,
) -> None:
    schema = Answer.model_json_schema()
    out = ChatVLLM(
        base_url=chat.openai_api_base, temperature=0, max_tokens=60
    ).with_structured_output(schema, include_raw=True)
    result = out.invoke("Is water wet?")
    assert isinstance(result, dict)
    assert result["parsing_error"] is None
    assert set(result["parsed"]) == {"verdict", "confidence"}
    assert json.loads(str(result["raw"].content)) == result["parsed"]


def test_with_structured_output_stream(chat: ChatVLLM) -> None:
    runnable = ChatVLLM(
        base_url=chat.openai_api_base, temperature=0, max_tokens=60
    ).with_structured_output(Answer)
    parts = list(runnable.stream("Is water wet?"))
    assert isinstance(parts[-1], Answer)


# -- tools -------------------------------------------------------------------------
def magic_function(input: int) -> int:
    """Apply a magic function to an input."""
    return input + 2


@pytest.mark.parametrize(
    "tool_choice",
    [
        "magic_function",
        "required",
        "any",
        {"type": "function", "function": {"name": "magic_function"}},
    ],
)
def test_strict_tool_calls(chat: ChatVLLM, tool_choice: object) -> None:
    bound = chat.bind_tools([magic_function], tool_choice=tool_choice)  # type: ignore[arg-type]
    msg = bound.invoke("What is the value of magic_function(3)?", max_tokens=60)
    assert msg.tool_calls, msg
    call = msg.tool_calls[0]
    assert call["name"] == "magic_function"
    assert call["args"] == {"input": 3}


def test_tool_call_chunks_add_up(chat: ChatVLLM) -> None:
    bound = chat.bind_tools([magic_function], tool_choice="magic_function")
    chunks = bound.stream("magic_function(3)?", max_tokens=60)
    full = add_ai_message_chunks(*[c for c in chunks if isinstance(c, AIMessageChunk)])
    assert full.tool_calls[0]["args"] == {"input": 3}


def test_strict_false_is_sent_as_such(chat: ChatVLLM) -> None:
    bound = chat.bind_tools([magic_function], strict=False)
    assert bound.kwargs["tools"][0]["function"]["strict"] is False  # type: ignore[attr-defined]


def test_structured_output_cut_inside_a_tool_call_raises(chat: ChatVLLM) -> None:
    """A token limit below the shortest possible call cuts it, whatever the model
    writes: the forced call is incomplete, and the client raises saying why (no
    silent None)."""

    class Joke(BaseModel):
        setup: str
        punchline: str

    tight = ChatVLLM(base_url=chat.openai_api_base, temperature=0, max_tokens=12)
    short = tight.with_structured_output(Joke, method="function_calling")
    with warnings.catch_warnings():  # the cut call is also reported as a warning
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(VLLMToolChoiceError, match="max_json_string_length"):
            short.invoke("Tell me a joke about cats")
    # What the warning suggests works: bounded strings close, the object is valid
    # (the 135M model otherwise keeps writing inside `setup` until the limit).
    fixed = ChatVLLM(
        base_url=chat.openai_api_base,
        temperature=0,
        max_json_string_length=40,
        max_tokens=400,
    )
    joke = fixed.with_structured_output(Joke, method="function_calling").invoke(
        "Tell me a joke about cats"
    )
    assert isinstance(joke, Joke)
    assert len(joke.setup) <= 40
    assert len(joke.punchline) <= 40


class JokeV1(BaseModelV1):
    """Joke to tell user."""

    setup: str = FieldV1(description="question to set up a joke")
    punchline: str = FieldV1(description="answer to resolve the joke")


def test_with_structured_output_pydantic_v1_is_server_enforced(chat: ChatVLLM) -> None:
    """A pydantic v1 class goes the json_schema way too (not function calling)."""
    model = ChatVLLM(
        base_url=chat.openai_api_base,
        temperature=0,
        max_tokens=256,
        max_json_string_length=40,
    )
    runnable = model.with_structured_output(JokeV1)
    bound = runnable.first  # type: ignore[attr-defined]
    assert bound.kwargs["response_format"]["type"] == "json_schema"
    assert "tools" not in bound.kwargs
    payload = model._get_request_payload("hi", **bound.kwargs)
    sent = payload["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["setup"]["maxLength"] == 40
    joke = runnable.invoke("Tell me a joke about cats.")
    assert isinstance(joke, JokeV1)
    parts = list(runnable.stream("Tell me a joke about cats."))
    assert parts
    assert all(isinstance(p, JokeV1) for p in parts)
    raw = model.with_structured_output(JokeV1, include_raw=True).invoke("Cats?")
    assert raw["parsing_error"] is None  # type: ignore[index]
    assert isinstance(raw["parsed"], JokeV1)  # type: ignore[index]


# -- reasoning ---------------------------------------------------------------------
def test_reasoning_invoke(thinker: ChatVLLM) -> None:
    msg = thinker.invoke("What is 2+2?")
    reasoning = msg.additional_kwargs.get("reasoning_content")
    assert reasoning
    assert msg.content
    assert any(b["type"] == "reasoning" for b in msg.content_blocks)


def test_reasoning_stream_matches_invoke(thinker: ChatVLLM) -> None:
    """Reasoning first, then the answer, in both; the answer is fixed by a regex
    (enforced after the reasoning ends), so both must carry exactly it."""
    # min_tokens must not outlast the fixed answer (its EOS would be masked): 6
    # keeps the model from stopping before the budget ends the reasoning.
    whole = thinker.invoke("What is 2+2?", min_tokens=6, **FIXED)
    chunks = list(thinker.stream("What is 2+2?", min_tokens=6, **FIXED))
    streamed = add_ai_message_chunks(*chunks)
    for message in (whole, streamed):
        assert message.additional_kwargs["reasoning_content"]
        assert message.content == FIXED_TEXT
    thinking = [
        i for i, c in enumerate(chunks) if c.additional_kwargs.get("reasoning_content")
    ]
    answering = [i for i, c in enumerate(chunks) if c.content]
    assert thinking
    assert answering
    assert max(thinking) < min(answering)


def test_include_reasoning_false(thinker: ChatVLLM) -> None:
    msg = thinker.invoke("What is 2+2?", include_reasoning=False)
    assert "reasoning_content" not in msg.additional_kwargs
    assert msg.content


def test_thinking_token_budget_bounds_reasoning(thinker: ChatVLLM) -> None:
    short = thinker.invoke("What is 2+2?", thinking_token_budget=2)
    long = thinker.invoke("What is 2+2?", thinking_token_budget=12)
    short_n = thinker.get_num_tokens(
        short.additional_kwargs.get("reasoning_content", "")
    )
    long_n = thinker.get_num_tokens(long.additional_kwargs["reasoning_content"])
    assert short_n < long_n
    assert short_n <= 2


def test_chat_template_kwargs_reach_the_template(thinker: ChatVLLM) -> None:
    on = thinker.get_prompt_text([HumanMessage("hi")])
    off = thinker.bind(chat_template_kwargs={"enable_thinking": False})
    assert on.endswith("<think>\n")
    off_chat = ChatVLLM(
        base_url=thinker.openai_api_base,
        chat_template_kwargs={"enable_thinking": False},
    )
    assert not off_chat.get_prompt_text([HumanMessage("hi")]).endswith("<think>\n")
    msg = off.invoke("What is 2+2?", max_tokens=16, min_tokens=4)
    assert msg.content
    assert "reasoning_content" not in msg.additional_kwargs


def test_reasoning_round_trip_in_a_tool_loop(reasoning_url: str) -> None:
    """The second request of a tool loop carries the first turn's reasoning."""
    agent = ChatVLLM(
        base_url=reasoning_url,
        temperature=0,
        max_tokens=80,
        # The 135M model never ends its reasoning by itself: the budget ends it,
        # and min_tokens keeps it from stopping before it (a reliable recipe here).
        thinking_token_budget=8,
        min_tokens=12,
        reasoning_round_trip="tool_calls",
    )
    bound = agent.bind_tools([magic_function], tool_choice="magic_function")
    question = HumanMessage("What is magic_function(3)?")
    first = bound.invoke([question])
    reasoning = first.additional_kwargs.get("reasoning_content")
    assert reasoning, first
    assert first.tool_calls, first
    history = [
        question,
        first,
        ToolMessage("5", tool_call_id=first.tool_calls[0]["id"]),
    ]
    prompt = agent.get_prompt_text(history, tools=[magic_function])
    print("second request's prompt, as the server builds it:\n" + prompt)
    default = ChatVLLM(base_url=reasoning_url)  # policy "never"
    default_prompt = default.get_prompt_text(history, tools=[magic_function])
    # One more <think> section: the first turn's, in the assistant message.
    assert prompt.count("</think>") == default_prompt.count("</think>") + 1
    turn = prompt.split("<|im_start|>assistant\n")[1]
    assert turn.startswith("<think>\n")
    assert "</think>" in turn
    assert agent.get_num_tokens_from_messages(
        history
    ) > default.get_num_tokens_from_messages(history)
    # The prompt shown is the one the second request really sends.
    second = bound.invoke(history, tool_choice="none", max_tokens=16)
    assert second.usage_metadata is not None
    counted = agent.get_num_tokens_from_messages(history, tools=[magic_function])
    assert second.usage_metadata["input_tokens"] == counted


# -- token counts ------------------------------------------------------------------
def test_token_counts_equal_usage(chat: ChatVLLM) -> None:
    usage = chat.invoke(SEED).usage_metadata
    assert usage is not None
    assert chat.get_num_tokens_from_messages(SEED) == usage["input_tokens"]
    tools = [magic_function]
    bound = chat.bind_tools(tools, tool_choice="magic_function")
    with_tools = chat.get_num_tokens_from_messages(SEED, tools=tools)
    tool_usage = bound.invoke(SEED, max_tokens=40).usage_metadata
    assert tool_usage is not None
    assert with_tools == tool_usage["input_tokens"]
    assert with_tools > chat.get_num_tokens_from_messages(SEED)


def test_token_ids_from_served_tokenizer(chat: ChatVLLM) -> None:
    ids = chat.get_token_ids("Hello world")
    assert ids == chat.get_token_ids("Hello world")
    assert chat.get_num_tokens("Hello world") == len(ids) == 2


def test_prompt_text_is_the_chat_template(chat: ChatVLLM) -> None:
    text = chat.get_prompt_text(SEED)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant")
    assert text.endswith("<|im_start|>assistant\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert chat.get_num_tokens_from_messages(SEED) == len(chat.get_token_ids(text))


# -- vLLM 0.32's newer request fields -------------------------------------------------
PROMPT = [("system", "Be brief."), ("human", "Say hi")]


def test_return_prompt_text(chat: ChatVLLM) -> None:
    expected = chat.get_prompt_text(PROMPT)
    whole = chat.invoke(PROMPT, return_prompt_text=True, **FIXED)
    assert whole.response_metadata["prompt_text"] == expected
    chunks = list(chat.stream(PROMPT, return_prompt_text=True, **FIXED))
    assert chunks[0].response_metadata["prompt_text"] == expected
    assert add_ai_message_chunks(*chunks).response_metadata["prompt_text"] == expected
    assert "prompt_text" not in chat.invoke(PROMPT, **FIXED).response_metadata


def test_truncation_side(chat: ChatVLLM) -> None:
    ids = chat.invoke(PROMPT, return_token_ids=True, **FIXED).response_metadata[
        "prompt_token_ids"
    ]
    assert len(ids) > 10
    for side, kept in (("left", ids[-5:]), ("right", ids[:5])):
        msg = chat.invoke(
            PROMPT,
            return_token_ids=True,
            truncate_prompt_tokens=5,
            truncation_side=side,
            **FIXED,
        )
        assert msg.response_metadata["prompt_token_ids"] == kept, side


def test_logprob_token_ids(chat: ChatVLLM) -> None:
    wanted = chat.get_token_ids(" yes no")
    msg = chat.invoke(
        PROMPT,
        logprobs=True,
        logprob_token_ids=wanted,
        return_tokens_as_token_ids=True,
        max_tokens=3,
    )
    entries = msg.response_metadata["logprobs"]["content"]
    assert entries
    for entry in entries:
        # vLLM lists the sampled token first, then exactly the requested ids
        listed = [t["token"] for t in entry["top_logprobs"]]
        assert listed[0] == entry["token"]
        assert listed[-len(wanted) :] == [f"token_id:{i}" for i in wanted]


def test_repetition_detection_ends_a_loop(chat: ChatVLLM) -> None:
    # The regex admits only "la " repeated and EOS is ignored: without detection
    # the answer runs to the token limit, with it it ends after a few repeats.
    loop: dict[str, Any] = {
        "structured_outputs": {"regex": "(la )+"},
        "ignore_eos": True,
    }
    endless = chat.invoke(PROMPT, max_tokens=60, **loop)
    assert endless.usage_metadata
    assert endless.usage_metadata["output_tokens"] == 60
    stopped = chat.invoke(
        PROMPT,
        max_tokens=60,
        repetition_detection={"max_pattern_size": 4, "min_count": 3},
        **loop,
    )
    assert stopped.usage_metadata
    assert stopped.usage_metadata["output_tokens"] < 20
    assert stopped.response_metadata["finish_reason"] == "repetition"


def test_repetition_detection_is_checked_before_the_request(chat: ChatVLLM) -> None:
    with pytest.raises(ValueError, match="repetition_detection"):
        chat.invoke(PROMPT, repetition_detection={"max_pattern_size": 4})


# -- per-request metrics (the rig chat server has --enable-per-request-metrics) -----
def test_server_metrics_in_the_answer(chat: ChatVLLM, plain_url: str) -> None:
    whole = chat.invoke(PROMPT, **FIXED)
    metrics = whole.response_metadata["metrics"]
    assert metrics["time_to_first_token_ms"] > 0
    assert {"queue_time_ms", "generation_time_ms"} <= set(metrics)
    chunks = list(chat.stream(PROMPT, **FIXED))
    # one chunk carries them: the usage chunk, after the answer's text
    carrying = [i for i, c in enumerate(chunks) if "metrics" in c.response_metadata]
    assert len(carrying) == 1
    assert carrying[0] > max(i for i, c in enumerate(chunks) if c.text)
    assert (
        add_ai_message_chunks(*chunks).response_metadata["metrics"][
            "time_to_first_token_ms"
        ]
        > 0
    )
    # a server without the flag sends none: nothing is made up
    quiet = ChatVLLM(base_url=plain_url, temperature=0, max_tokens=8)
    assert "metrics" not in quiet.invoke(PROMPT).response_metadata
