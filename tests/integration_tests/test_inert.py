"""Inert text, live on three marker families (tests/inert_cases.py).

ChatML on the rig's chat server; Llama 3 and harmony (gpt-oss) on the rig's markers
server (SmolLM2 with those markers as special tokens, `rig.MARKER_TOKENS`), started
here for this module only and released at its end. A user text and a tool result
that try to open a system turn of their own are sent as is and made inert; in the
server's ``prompt_token_ids`` the inert ones add no turn-marker id, and the words
still reach the model (the detokenized prompt holds them).

`SENDERS` are the ways a conversation reaches the server with its outside text made
inert: each takes the injected wire messages as the application has them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from langchain_core.messages import convert_to_messages

from langchain_vllm import ChatVLLM
from langchain_vllm._inert import JOINER, inert_messages, inert_response_input
from langchain_vllm._inert_probe import discover_special_tokens
from tests.inert_cases import (
    ASK,
    CALL_ID,
    FAMILIES,
    RESULT,
    RULE,
    Family,
    cases,
    chat_body,
    count_ids,
    marker_ids,
    prompt_of,
    send_to,
)
from tests.integration_tests.conftest import RIG

Sender = Callable[[Family, str, list[dict[str, Any]]], tuple[list[int], str]]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def markers_url() -> Iterator[str]:
    """The markers server, for this module only (its memory back at the end)."""
    yield RIG.url("markers")
    RIG.release("markers")


@pytest.fixture(scope="module")
def roots(chat_url: str, markers_url: str) -> dict[str, str]:
    """Server roots by rig kind."""
    return {"chat": chat_url, "markers": markers_url}


def _root(roots: dict[str, str], family: Family) -> str:
    return roots[family.kind].removesuffix("/v1")


def send_wire(
    family: Family, root: str, messages: list[dict[str, Any]]
) -> tuple[list[int], str]:
    """Discover the served specials, make the messages inert, send them."""
    with httpx2.Client(timeout=120) as client:
        specials = discover_special_tokens(send_to(root, client)).strings
        inert = inert_messages(messages, specials)
        return prompt_of(root, client, chat_body(family, inert))


def send_chat_vllm(
    family: Family, root: str, messages: list[dict[str, Any]]
) -> tuple[list[int], str]:
    """ChatVLLM as an application uses it: LangChain messages, nothing switched on.

    Its own request path learns the served specials and makes the user and tool
    text inert (`inert_special_tokens`, on by default).
    """
    template = {} if family.template is None else {"chat_template": family.template}
    chat = ChatVLLM(base_url=f"{root}/v1", temperature=0, max_tokens=1, **template)
    answer = chat.invoke(convert_to_messages(messages), return_token_ids=True)
    ids = answer.response_metadata["prompt_token_ids"]
    with httpx2.Client(timeout=120) as client:
        text = client.post(f"{root}/detokenize", json={"tokens": ids})
        text.raise_for_status()
        return ids, text.json()["prompt"]


SENDERS: dict[str, Sender] = {"wire": send_wire, "chat_vllm": send_chat_vllm}
"""Name -> sender: the package's functions on wire messages, and ChatVLLM's own
request path (`invoke`, outside text inert by default)."""


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_discovery_finds_the_family_markers(
    family: str, roots: dict[str, str], client: httpx2.Client
) -> None:
    found = discover_special_tokens(send_to(_root(roots, FAMILIES[family]), client))
    assert found.source == "server"
    assert set(FAMILIES[family].markers) <= found.strings
    assert "[INST]" not in found.strings  # a default these tokenizers lack


@pytest.mark.parametrize("sender", sorted(SENDERS))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_injected_text_adds_no_turn_markers(
    family: str, sender: str, roots: dict[str, str], client: httpx2.Client
) -> None:
    chosen = FAMILIES[family]
    root = _root(roots, chosen)
    ids = marker_ids(root, client, chosen.markers).values()
    conversations = cases(chosen, frozenset())  # nothing inert yet
    harmless, _ = prompt_of(root, client, chat_body(chosen, conversations["harmless"]))
    raw, _ = prompt_of(root, client, chat_body(chosen, conversations["injected"]))
    sent, prompt = SENDERS[sender](chosen, root, conversations["injected"])
    # As is, the user text and the tool result open two turns each.
    assert count_ids(raw, ids) > count_ids(harmless, ids)
    assert count_ids(sent, ids) == count_ids(harmless, ids)
    assert RULE in prompt
    assert chosen.forge in prompt.replace(JOINER, "")


def _response_input(user_text: str, tool_text: str) -> list[dict[str, Any]]:
    """`tests.inert_cases.conversation` as Responses API input items."""
    call = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    return [
        {"role": "user", "content": user_text},
        {"type": "function_call", "call_id": CALL_ID, **call},
        {"type": "function_call_output", "call_id": CALL_ID, "output": tool_text},
    ]


def _responses_prompt(
    root: str, client: httpx2.Client, items: list[dict[str, Any]]
) -> tuple[list[int], str]:
    """The prompt's ids and text of a Responses request (``input_messages``)."""
    body = {
        "input": items,
        "instructions": "You are a weather assistant.",
        "max_output_tokens": 1,
        "enable_response_messages": True,
    }
    answer = client.post(f"{root}/v1/responses", json=body)
    answer.raise_for_status()
    (prompt,) = answer.json()["input_messages"]
    return prompt["tokens"], prompt["message"]


@pytest.mark.parametrize("family", ["chatml", "llama3"])  # the servers' own templates
def test_responses_input_adds_no_turn_markers(
    family: str, roots: dict[str, str], client: httpx2.Client
) -> None:
    chosen = FAMILIES[family]
    root = _root(roots, chosen)
    ids = marker_ids(root, client, chosen.markers).values()
    specials = discover_special_tokens(send_to(root, client)).strings
    injected = _response_input(ASK + chosen.forge, RESULT + chosen.forge)
    harmless, _ = _responses_prompt(root, client, _response_input(ASK, RESULT))
    raw, _ = _responses_prompt(root, client, injected)
    inert = inert_response_input(injected, specials)
    assert isinstance(inert, list)
    sent, prompt = _responses_prompt(root, client, inert)
    assert count_ids(raw, ids) > count_ids(harmless, ids)
    assert count_ids(sent, ids) == count_ids(harmless, ids)
    assert RULE in prompt
    assert chosen.forge in prompt.replace(JOINER, "")
