"""Unit tests for langchain_vllm.prompts (no network; render_prompt uses FakeVLLM)."""

from __future__ import annotations

import pytest
from langchain_core.load import dumpd
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_openai import ChatOpenAI

from langchain_vllm import ChatVLLM
from langchain_vllm.prompts import (
    TRANSLATION_HUMAN,
    TRANSLATION_SYSTEM,
    CheckedChatPromptTemplate,
    PromptVariablesError,
    chat_prompt,
    render_prompt,
    translation_prompt,
)
from tests.unit_tests.fake_vllm import FakeVLLM

SEED = {
    "input_language": "English",
    "output_language": "Italian",
    "text": "I love programming.",
}


# -- translation_prompt -------------------------------------------------------------
def test_translation_prompt_is_the_walkthrough_translator() -> None:
    prompt = translation_prompt()
    assert isinstance(prompt, CheckedChatPromptTemplate)
    assert isinstance(prompt, ChatPromptTemplate)
    assert sorted(prompt.input_variables) == [
        "input_language",
        "output_language",
        "text",
    ]
    assert prompt.format_prompt(**SEED).to_messages() == [
        SystemMessage(
            content="You are a helpful assistant that translates English to Italian."
        ),
        HumanMessage(content="I love programming."),
    ]
    assert TRANSLATION_SYSTEM.endswith("{input_language} to {output_language}.")
    assert TRANSLATION_HUMAN == "{text}"


def test_translation_prompt_matches_the_seed_built_by_hand() -> None:
    by_hand = ChatPromptTemplate.from_messages(
        [("system", TRANSLATION_SYSTEM), ("human", TRANSLATION_HUMAN)]
    )
    assert (
        translation_prompt().format_prompt(**SEED).to_messages()
        == by_hand.format_prompt(**SEED).to_messages()
    )


def test_translation_prompt_with_examples_and_history() -> None:
    prompt = translation_prompt(
        examples=[("Good morning.", "Buongiorno.")], history="history"
    )
    assert prompt.optional_variables == ["history"]
    earlier = [HumanMessage("Hi"), AIMessage("Ciao")]
    messages = prompt.format_messages(**SEED, history=earlier)
    assert [type(m) for m in messages] == [
        SystemMessage,
        HumanMessage,
        AIMessage,
        HumanMessage,
        AIMessage,
        HumanMessage,
    ]
    assert [m.content for m in messages[1:]] == [
        "Good morning.",
        "Buongiorno.",
        "Hi",
        "Ciao",
        "I love programming.",
    ]


# -- chat_prompt --------------------------------------------------------------------
def test_chat_prompt_order_system_examples_history_human() -> None:
    prompt = chat_prompt(
        "Answer in {language}.",
        "{question}",
        examples=[("Capital of France?", "Paris")],
        history="turns",
    )
    messages = prompt.format_messages(
        language="English",
        question="Capital of Italy?",
        turns=[HumanMessage("hello"), AIMessage("hi")],
    )
    assert [(m.type, m.content) for m in messages] == [
        ("system", "Answer in English."),
        ("human", "Capital of France?"),
        ("ai", "Paris"),
        ("human", "hello"),
        ("ai", "hi"),
        ("human", "Capital of Italy?"),
    ]


def test_chat_prompt_history_is_optional() -> None:
    prompt = chat_prompt("Be brief.", history="history")
    assert prompt.input_variables == ["input"]
    assert [m.type for m in prompt.format_messages(input="hi")] == ["system", "human"]


def test_chat_prompt_without_system_message() -> None:
    prompt = chat_prompt(None, "{q}")
    assert prompt.format_messages(q="why?") == [HumanMessage("why?")]


def test_chat_prompt_examples_are_literal_text() -> None:
    prompt = chat_prompt("Sys", examples=[("show {braces}", "{x: 1}")])
    assert prompt.input_variables == ["input"]
    messages = prompt.format_messages(input="go")
    assert [m.content for m in messages[1:3]] == ["show {braces}", "{x: 1}"]


@pytest.mark.parametrize(
    "bad",
    [("only one",), ("a", "b", "c"), ("a", 1), "ab", {"human": "a", "ai": "b"}],
)
def test_chat_prompt_rejects_malformed_examples(bad: object) -> None:
    with pytest.raises(TypeError, match=r"examples\[1\] must be a \(human, ai\) pair"):
        chat_prompt("Sys", examples=[("ok", "ok"), bad])  # type: ignore[list-item]


def test_chat_prompt_rejects_history_clashing_with_a_variable() -> None:
    with pytest.raises(ValueError, match="'question' is also a variable"):
        chat_prompt("Sys", "{question}", history="question")


def test_chat_prompt_rejects_bad_history_name() -> None:
    with pytest.raises(ValueError, match="history must be a variable name"):
        chat_prompt("Sys", history="chat history")


def test_chat_prompt_other_template_formats() -> None:
    prompt = chat_prompt("Answer in {{language}}.", "{{q}}", template_format="mustache")
    assert prompt.format_messages(language="Latin", q="x")[0].content == (
        "Answer in Latin."
    )
    with pytest.raises(PromptVariablesError, match=r"unexpected variable\(s\) \['z'\]"):
        prompt.format_messages(language="Latin", q="x", z=1)


# -- variable checks ----------------------------------------------------------------
def test_missing_variable_is_named() -> None:
    prompt = translation_prompt()
    with pytest.raises(PromptVariablesError) as info:
        prompt.format_prompt(input_language="English", output_language="Italian")
    err = info.value
    assert err.missing == ("text",)
    assert err.extra == ()
    assert "missing variable(s) ['text']" in str(err)
    assert isinstance(err, KeyError)
    assert isinstance(err, ValueError)


def test_extra_variable_is_named() -> None:
    prompt = translation_prompt()
    with pytest.raises(PromptVariablesError) as info:
        prompt.format_prompt(**SEED, txt="typo")
    assert info.value.extra == ("txt",)
    assert info.value.missing == ()
    message = str(info.value)
    assert "unexpected variable(s) ['txt']" in message
    assert "Required: ['input_language', 'output_language', 'text']" in message


def test_missing_and_extra_together() -> None:
    with pytest.raises(PromptVariablesError) as info:
        translation_prompt().format_messages(
            input_language="English", output_language="Italian", txt="typo"
        )
    assert info.value.missing == ("text",)
    assert info.value.extra == ("txt",)
    assert "missing variable(s) ['text'] and got unexpected variable(s)" in str(
        info.value
    )


def test_plain_langchain_template_ignores_extras_ours_does_not() -> None:
    plain = ChatPromptTemplate.from_messages(
        [("system", TRANSLATION_SYSTEM), ("human", TRANSLATION_HUMAN)]
    )
    plain.format_messages(**SEED, txt="typo")  # LangChain drops it silently
    with pytest.raises(PromptVariablesError):
        translation_prompt().format_messages(**SEED, txt="typo")


def test_invoke_checks_variables() -> None:
    prompt = translation_prompt()
    assert prompt.invoke(SEED).to_messages()[1].content == "I love programming."
    with pytest.raises(PromptVariablesError, match=r"\['extra'\]"):
        prompt.invoke({**SEED, "extra": 1})
    with pytest.raises(PromptVariablesError, match=r"missing variable\(s\) \['text'\]"):
        prompt.invoke({"input_language": "a", "output_language": "b"})


def test_invoke_single_variable_with_bare_value() -> None:
    prompt = chat_prompt("Be brief.")
    assert prompt.invoke("hi").to_messages()[-1] == HumanMessage("hi")  # type: ignore[arg-type]


async def test_async_formatting_checks_variables() -> None:
    prompt = translation_prompt()
    value = await prompt.aformat_prompt(**SEED)
    assert value.to_messages()[1].content == "I love programming."
    assert (await prompt.ainvoke(SEED)).to_messages() == value.to_messages()
    with pytest.raises(PromptVariablesError, match=r"\['txt'\]"):
        await prompt.aformat_messages(**SEED, txt="typo")
    with pytest.raises(PromptVariablesError, match=r"\['text'\]"):
        await prompt.ainvoke({"input_language": "a", "output_language": "b"})


def test_partial_variables_may_be_given_or_not() -> None:
    prompt = translation_prompt().partial(input_language="English")
    assert isinstance(prompt, CheckedChatPromptTemplate)
    assert sorted(prompt.input_variables) == ["output_language", "text"]
    first = prompt.format_messages(output_language="Italian", text="x")
    assert first[0].text.startswith(
        "You are a helpful assistant that translates English"
    )
    again = prompt.format_messages(
        input_language="French", output_language="Italian", text="x"
    )
    assert "translates French" in again[0].text
    with pytest.raises(PromptVariablesError, match="optional: \\['input_language'\\]"):
        prompt.format_messages(output_language="Italian")


def test_required_placeholder_is_checked_like_any_variable() -> None:
    prompt = CheckedChatPromptTemplate.from_messages(
        [("system", "Sys"), MessagesPlaceholder("history"), ("human", "{input}")]
    )
    with pytest.raises(PromptVariablesError, match=r"\['history'\]"):
        prompt.format_messages(input="hi")


def test_serializes_under_the_package_namespace() -> None:
    data = dumpd(translation_prompt())
    assert data["id"] == ["langchain_vllm", "prompts", "CheckedChatPromptTemplate"]


# -- render_prompt --------------------------------------------------------------------
def _chat(fake: FakeVLLM, **kwargs: object) -> ChatVLLM:
    return ChatVLLM(model="smollm2", **fake.kwargs(), **kwargs)


def test_render_prompt_delegates_to_the_server(fake: FakeVLLM) -> None:
    fake.tokens = lambda body: [7, 8, 9]
    chat = _chat(fake)
    value = translation_prompt().format_prompt(**SEED)
    assert render_prompt(chat, value) == "7 8 9"
    sent = fake.last_body("/tokenize")
    assert sent["model"] == "smollm2"
    assert sent["messages"] == [
        {
            "role": "system",
            "content": TRANSLATION_SYSTEM.format(
                input_language="English", output_language="Italian"
            ),
        },
        {"role": "user", "content": "I love programming."},
    ]
    assert fake.last_body("/detokenize") == {"model": "smollm2", "tokens": [7, 8, 9]}
    assert not fake.bodies("/chat/completions")


def test_render_prompt_accepts_templates_messages_and_strings(fake: FakeVLLM) -> None:
    fake.tokens = lambda body: [len(body["messages"])]
    chat = _chat(fake)
    assert render_prompt(chat, translation_prompt(), **SEED) == "2"
    assert fake.last_body("/tokenize")["messages"][1]["content"] == (
        "I love programming."
    )
    assert render_prompt(chat, [("system", "s"), ("human", "h"), ("ai", "a")]) == "3"
    assert render_prompt(chat, "just text") == "1"
    assert fake.last_body("/tokenize")["messages"] == [
        {"role": "user", "content": "just text"}
    ]


def test_render_prompt_passes_template_settings_and_tools(fake: FakeVLLM) -> None:
    chat = _chat(fake, chat_template="{{ messages }}", add_generation_prompt=False)

    def magic_function(x: int) -> int:
        """Apply a magic function to x."""
        return x + 2

    render_prompt(chat, "hi", tools=[magic_function])
    sent = fake.last_body("/tokenize")
    assert sent["chat_template"] == "{{ messages }}"
    assert sent["add_generation_prompt"] is False
    assert sent["tools"][0]["function"]["name"] == "magic_function"


def test_render_prompt_checks_template_variables_before_the_network(
    fake: FakeVLLM,
) -> None:
    chat = _chat(fake)
    with pytest.raises(PromptVariablesError, match=r"\['txt'\]"):
        render_prompt(chat, translation_prompt(), **SEED, txt="typo")
    assert fake.requests == []


def test_render_prompt_rejects_variables_without_a_template(fake: FakeVLLM) -> None:
    with pytest.raises(TypeError, match=r"variables \['text'\] were given"):
        render_prompt(_chat(fake), "hi", text="x")
    assert fake.requests == []


def test_render_prompt_needs_a_chat_vllm() -> None:
    other = ChatOpenAI(model="gpt-x", api_key="k", base_url="http://vllm.test/v1")
    with pytest.raises(
        TypeError, match="render_prompt needs a ChatVLLM, got ChatOpenAI"
    ):
        render_prompt(other, "hi")  # type: ignore[arg-type]
