"""Live tests: every prompt helper through ChatVLLM in an LCEL chain."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser

from langchain_vllm import ChatVLLM
from langchain_vllm.prompts import (
    PromptVariablesError,
    chat_prompt,
    render_prompt,
    translation_prompt,
)
from tests.integration_tests.conftest import FIXED, FIXED_TEXT

SEED = {
    "input_language": "English",
    "output_language": "Italian",
    "text": "I love programming.",
}


@pytest.fixture
def chat(chat_url: str) -> ChatVLLM:
    return ChatVLLM(base_url=chat_url, temperature=0, max_tokens=12)


def test_translation_chain(chat: ChatVLLM) -> None:
    fixed = chat.bind(**FIXED)
    chain = translation_prompt() | fixed | StrOutputParser()
    assert chain.invoke(SEED) == FIXED_TEXT
    # The chain sends what the seed's format_prompt(...).to_messages() sends.
    messages = translation_prompt().format_prompt(**SEED).to_messages()
    usage = fixed.invoke(messages).usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == chat.get_num_tokens_from_messages(messages)


async def test_translation_chain_async_and_batch(chat: ChatVLLM) -> None:
    chain = translation_prompt() | chat.bind(**FIXED) | StrOutputParser()
    french = {**SEED, "output_language": "French"}
    answers = await chain.abatch([SEED, french])
    assert answers == [FIXED_TEXT, FIXED_TEXT]
    assert await chain.ainvoke(SEED) == FIXED_TEXT


def test_chat_prompt_with_examples_and_history_chain(chat: ChatVLLM) -> None:
    prompt = chat_prompt(
        "You answer with one word: {choices}.",
        "{question}",
        examples=[("Is fire hot?", "yes"), ("Is ice hot?", "no")],
        history="history",
    )
    chain = prompt | chat.bind(structured_outputs={"choice": ["yes", "no"]})
    history = [HumanMessage("Is the sun hot?"), AIMessage("yes")]
    message = chain.invoke(
        {"choices": "yes or no", "question": "Is snow hot?", "history": history}
    )
    assert message.text in {"yes", "no"}
    # The server saw the examples and the history: more prompt tokens than without.
    shorter = (prompt | chat).invoke({"choices": "yes or no", "question": "Is snow?"})
    assert message.usage_metadata is not None
    assert shorter.usage_metadata is not None
    assert (
        message.usage_metadata["input_tokens"] > shorter.usage_metadata["input_tokens"]
    )


def test_streamed_chain(chat: ChatVLLM) -> None:
    chain = translation_prompt() | chat.bind(**FIXED) | StrOutputParser()
    pieces = list(chain.stream(SEED))
    assert len(pieces) > 1
    assert "".join(pieces) == FIXED_TEXT == chain.invoke(SEED)


def test_extra_variable_fails_before_the_server(chat: ChatVLLM) -> None:
    chain = translation_prompt() | chat | StrOutputParser()
    with pytest.raises(PromptVariablesError, match=r"\['txt'\]"):
        chain.invoke({**SEED, "txt": "typo"})


def test_render_prompt_shows_what_the_model_reads(chat: ChatVLLM) -> None:
    prompt = translation_prompt(examples=[("Good morning.", "Buongiorno.")])
    value = prompt.format_prompt(**SEED)
    text = render_prompt(chat, value)
    # SmolLM2's ChatML template, applied by the server.
    assert text.startswith(
        "<|im_start|>system\nYou are a helpful assistant that translates "
        "English to Italian.<|im_end|>\n"
    )
    assert "<|im_start|>user\nGood morning.<|im_end|>\n" in text
    assert "<|im_start|>assistant\nBuongiorno.<|im_end|>\n" in text
    assert text.endswith(
        "<|im_start|>user\nI love programming.<|im_end|>\n<|im_start|>assistant\n"
    )
    # Same text from the template and its variables directly.
    assert render_prompt(chat, prompt, **SEED) == text
    # The rendered text is exactly what the server counts as the prompt.
    usage = (prompt | chat).invoke(SEED).usage_metadata
    assert usage is not None
    assert chat.get_num_tokens(text) == usage["input_tokens"]


def test_render_prompt_with_tools_shows_them(chat: ChatVLLM) -> None:
    def magic_function(x: int) -> int:
        """Apply a magic function to an input."""
        return x + 2

    text = render_prompt(chat, [("human", "What is magic_function(3)?")])
    with_tools = render_prompt(
        chat, [("human", "What is magic_function(3)?")], tools=[magic_function]
    )
    assert "magic_function" not in text.split("<|im_start|>user")[0]
    assert "Apply a magic function to an input." in with_tools
