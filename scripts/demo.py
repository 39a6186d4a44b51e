"""`make demo`: vLLM's chat walkthrough against a local vLLM started for it.

Starts the rig's chat server (SmolLM2-135M-Instruct on CPU, about 25 s), then runs
the walkthrough's three steps -- a system + human message pair, the same request
built from a prompt template with `format_prompt(...).to_messages()`, and the old
`chat(messages)` call style -- prints each answer, and stops the server.

    python scripts/demo.py                       # start a local server
    python scripts/demo.py --base-url URL/v1     # use a running server instead
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

# Run as a file, this script has scripts/ on sys.path; rig.py is one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts.chat import (
    ChatPromptTemplate,
    HumanMessagePromptTemplate,
    SystemMessagePromptTemplate,
)

from langchain_vllm import ChatVLLM
from langchain_vllm.prompts import render_prompt, translation_prompt
from rig import rig_server


@contextlib.contextmanager
def _server(base_url: str | None) -> Iterator[str]:
    if base_url:
        yield base_url
        return
    print("Starting a local vLLM (SmolLM2-135M-Instruct, CPU) ...", flush=True)
    with rig_server("chat") as server:
        print(
            f"Server ready at {server.base_url} after {server.startup_seconds:.0f} s",
            flush=True,
        )
        yield server.base_url
    print("Server stopped.")


def _show(title: str, messages: list[BaseMessage], answer: BaseMessage) -> None:
    print(f"\n== {title}")
    for message in messages:
        print(f"  {message.type:>6}: {message.text}")
    print(f"  answer: {answer.text.strip()!r}")
    usage = getattr(answer, "usage_metadata", None)
    if usage:
        print(
            f"  tokens: {usage['input_tokens']} in, {usage['output_tokens']} out"
            f" ({answer.response_metadata.get('model_name')})"
        )


def run(base_url: str) -> None:
    # The walkthrough's client: `openai_api_base` / `openai_api_key` work as in
    # ChatOpenAI; the model is the one the server serves (asked on first use).
    chat = ChatVLLM(
        openai_api_base=base_url,
        openai_api_key="EMPTY",
        max_tokens=32,
        temperature=0,
    )

    # 1. Messages.
    messages: list[BaseMessage] = [
        SystemMessage(
            content="You are a helpful assistant that translates English to Italian."
        ),
        HumanMessage(
            content="Translate the following sentence from English to Italian: "
            "I love programming."
        ),
    ]
    _show("1. System + human messages", messages, chat.invoke(messages))

    # 2. A prompt template, formatted into messages.
    system = SystemMessagePromptTemplate.from_template(
        "You are a helpful assistant that translates {input_language} to "
        "{output_language}."
    )
    human = HumanMessagePromptTemplate.from_template("{text}")
    chat_prompt = ChatPromptTemplate.from_messages([system, human])
    variables = {
        "input_language": "English",
        "output_language": "Italian",
        "text": "I love programming.",
    }
    templated = chat_prompt.format_prompt(**variables).to_messages()
    _show(
        "2. ChatPromptTemplate -> format_prompt(...).to_messages()",
        templated,
        chat.invoke(templated),
    )

    # The same prompt from the package's helper, and what the model really reads.
    helper = translation_prompt().format_prompt(**variables).to_messages()
    assert helper == templated
    print("\n   translation_prompt() builds the same messages; the server's prompt:")
    for line in render_prompt(chat, helper).splitlines():
        print(f"   | {line}")

    # 3. The old call style of the walkthrough: works, with a DeprecationWarning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        old_style = chat(templated)
    _show("3. Old call style chat(messages)", templated, old_style)
    for warning in caught:
        if issubclass(warning.category, DeprecationWarning):
            print(f"  DeprecationWarning: {warning.message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="use the vLLM server at this /v1 URL")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with _server(args.base_url) as base_url:
        run(base_url)
    print(f"\nDone in {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
