"""Text that cannot forge chat turns: the served model's special tokens made inert.

vLLM renders message content into the chat template as plain text, and its tokenizer
then turns every special-token string inside that text (``<|im_start|>``,
``<|eot_id|>``, ``<|start|>`` ...) into the real special token: a tool result or a
user's text can open a system turn of its own. No vLLM request field turns that off
(vLLM 0.11-0.32), so the client does it: `make_inert` puts a WORD JOINER (U+2060,
invisible, no meaning of its own) after the first character of each special-token
string. The tokenizer then sees ordinary text; the model still reads the words
(docs/security.md has the measured figures).

Which strings: the served model's, learned once per server (`_inert_probe`: from
``/tokenizer_info`` where the server enables it, ``/tokenize`` probes of the chat
template's markers, and the common markers of other families, `DEFAULT_MARKERS`,
each kept only if the server's tokenizer makes it one token); `DEFAULT_MARKERS`
alone where the server cannot be asked.

What is made inert: the content of user, tool and function messages (Chat
Completions, `inert_messages`), user messages and tool outputs (Responses API,
`inert_response_input`) and vLLM's ``documents`` (`inert_documents`). System,
developer and assistant messages stay as written. Nothing here knows LangChain's
message types: the functions take and return wire (JSON-ready) data, never mutating
their arguments.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = [
    "DEFAULT_MARKERS",
    "JOINER",
    "inert_documents",
    "inert_messages",
    "inert_request",
    "inert_response_input",
    "make_inert",
    "may_hold_specials",
    "usable",
]

JOINER = "\u2060"
"""WORD JOINER: put after the first character of a special-token string. Invisible,
no break opportunity, no other meaning (a zero-width joiner would join emoji, a
zero-width space marks a break); on SmolLM2 each costs the same two tokens."""

_DEEPSEEK = (
    "begin of sentence",
    "end of sentence",
    "User",
    "Assistant",
    *("tool calls begin", "tool calls end", "tool call begin", "tool call end"),
    *("tool sep", "tool outputs begin", "tool outputs end"),
    *("tool output begin", "tool output end"),
)


def _deepseek(name: str) -> str:
    """DeepSeek's marker for `name`: fullwidth bars (U+FF5C), U+2581 for spaces."""
    return "<\uff5c" + name.replace(" ", "\u2581") + "\uff5c>"


DEFAULT_MARKERS: frozenset[str] = frozenset(
    {
        # ChatML (Qwen, SmolLM, Hermes) and Qwen's added tool/think tags
        *("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
        *("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"),
        *("<think>", "</think>"),
        # Llama 3.x
        *("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>"),
        *("<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"),
        # gpt-oss (harmony)
        *("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>"),
        *("<|return|>", "<|call|>", "<|startoftext|>"),
        # Mistral
        *("<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"),
        *("[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"),
        *("[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[THINK]", "[/THINK]"),
        # Gemma
        *("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"),
        # DeepSeek V3 / R1 (fullwidth bars, "\u2581" for spaces)
        *(_deepseek(name) for name in _DEEPSEEK),
        # Phi-3/4, Granite, Command R
        *("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"),
        *("<|start_of_role|>", "<|end_of_role|>"),
        *("<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|SYSTEM_TOKEN|>"),
        *("<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>"),
        # Media placeholders (a forged one misaligns or refuses the media) and
        # SmolVLM's turn end
        *("<image>", "<|image|>", "<|image_pad|>", "<|video_pad|>"),
        *("<|vision_start|>", "<|vision_end|>", "<start_of_image>", "<end_of_image>"),
        *("<fake_token_around_image>", "<end_of_utterance>"),
    }
)
"""Turn and control markers of common chat-model families: the candidates every
discovery checks against the served tokenizer, and the whole list where the server
cannot be asked (making a string inert that the tokenizer does not treat as one token
changes nothing the model reads but one invisible character)."""

_ROLES = frozenset({"user", "tool", "function"})
"""Chat Completions roles whose content is made inert (never system, developer or
assistant: the application's own words)."""
_TEXT_PARTS = frozenset({"text", "input_text"})
_TOOL_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output"})


# -- neutralizing --------------------------------------------------------------------
def usable(marker: str) -> bool:
    """Whether `make_inert` handles `marker`.

    Two characters or more, no whitespace, not only letters and digits (plain words
    stay words), no `JOINER`.
    """
    return (
        len(marker) >= 2
        and not any(ch.isspace() for ch in marker)
        and not marker.isalnum()
        and JOINER not in marker
    )


@functools.lru_cache(maxsize=32)
def _pattern(specials: frozenset[str]) -> re.Pattern[str] | None:
    """One regex for all `usable` specials, None when there is none.

    Built as a trie, so a scan stays linear in the text however many thousand
    strings a tokenizer adds.
    """
    trie: dict[str, Any] = {}
    for marker in filter(usable, specials):
        node = trie
        for ch in marker:
            node = node.setdefault(ch, {})
        node[""] = {}
    return re.compile(_trie_regex(trie)) if trie else None


def _trie_regex(node: dict[str, Any]) -> str:
    """The regex of a trie node: its branches, longer matches first."""
    branches = [re.escape(ch) + _trie_regex(child) for ch, child in node.items() if ch]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if "" in node:  # a marker ends here and longer ones go on: prefer the longer
        return f"(?:{body})?"
    return body


def make_inert(text: str, specials: frozenset[str]) -> str:
    """Return `text` with every special-token string in it made ordinary text.

    A `JOINER` goes after the first character of each occurrence, so the server's
    tokenizer no longer matches the special token, and the text reads the same (the
    joiner is invisible; ``text.replace(JOINER, "")`` gives back the original if it
    had no joiners). Idempotent; text without specials is returned as is.

    Args:
        text: Text from outside the application (a user's input, a tool result).
        specials: The served model's special-token strings (`SpecialTokens.strings`,
            or `DEFAULT_MARKERS`). Strings that are not `usable` are left alone.

    Returns:
        The text to send.
    """
    pattern = _pattern(specials)
    if pattern is None:
        return text
    # Overlapping markers: a match hides one that starts inside it; a joiner never
    # makes a new match, so every pass removes some and the loop ends.
    while pattern.search(text):
        text = pattern.sub(lambda m: m[0][0] + JOINER + m[0][1:], text)
    return text


# -- wire messages -------------------------------------------------------------------
def _inert_content(content: Any, specials: frozenset[str]) -> Any:
    """A message content (a string or a list of parts) with its text parts inert."""
    if isinstance(content, str):
        return make_inert(content, specials)
    if not isinstance(content, list):
        return content
    parts = []
    for part in content:
        if (
            isinstance(part, dict)
            and part.get("type") in _TEXT_PARTS
            and isinstance(part.get("text"), str)
        ):
            part = {**part, "text": make_inert(part["text"], specials)}
        parts.append(part)
    return parts


def inert_messages(
    messages: Iterable[dict[str, Any]], specials: frozenset[str]
) -> list[dict[str, Any]]:
    """Chat Completions wire messages with outside text made inert (`make_inert`).

    The content of ``user``, ``tool`` and ``function`` messages (a string, or the
    ``text`` of its text parts; images, audio and files untouched); ``system``,
    ``developer`` and ``assistant`` messages stay as written.

    Args:
        messages: The request's ``messages``; not modified.
        specials: The served model's special-token strings.

    Returns:
        New message list (untouched messages are the same objects).
    """
    out = []
    for message in messages:
        if message.get("role") in _ROLES and "content" in message:
            content = _inert_content(message["content"], specials)
            if content is not message["content"]:
                message = {**message, "content": content}
        out.append(message)
    return out


def _inert_item(item: Any, specials: frozenset[str]) -> Any:
    """One Responses API input item with outside text made inert."""
    if not isinstance(item, dict):
        return item
    if item.get("type") in _TOOL_OUTPUTS and "output" in item:
        return {**item, "output": _inert_content(item["output"], specials)}
    if item.get("role") == "user" and item.get("type", "message") == "message":
        return {**item, "content": _inert_content(item.get("content"), specials)}
    return item


def inert_response_input(
    items: str | list[Any], specials: frozenset[str]
) -> str | list[Any]:
    """A Responses API ``input`` with outside text made inert (`make_inert`).

    A plain string input (a user message), user message items (their string content
    or ``input_text`` parts) and tool outputs (``function_call_output``,
    ``custom_tool_call_output``: string or ``input_text`` parts). ``instructions``
    (not part of ``input``), system, developer and assistant items and reasoning
    items stay as written.

    Args:
        items: The request's ``input``; not modified.
        specials: The served model's special-token strings.

    Returns:
        The new ``input``.
    """
    if isinstance(items, str):
        return make_inert(items, specials)
    return [_inert_item(item, specials) for item in items]


def inert_documents(
    documents: Iterable[dict[str, Any]], specials: frozenset[str]
) -> list[dict[str, Any]]:
    """Return vLLM's ``documents`` field (RAG templates) with its strings inert.

    Args:
        documents: The request's ``documents`` (dicts of strings); not modified.
        specials: The served model's special-token strings.
    """
    return [
        {k: make_inert(v, specials) if isinstance(v, str) else v for k, v in d.items()}
        for d in documents
    ]


# -- a whole request -------------------------------------------------------------------
MAYBE_MARKER = re.compile(r"[^\sA-Za-z0-9.,;:!?'\"()]")
"""A character that text holding a special-token string has: every `usable` marker
has one besides letters, digits and common punctuation (``<``, ``[``, ``|``, ...).
Text without any (most prose) is left as it is without asking the server."""


def may_hold_specials(texts: Iterable[str]) -> bool:
    """Whether any of `texts` could hold a special-token string (`MAYBE_MARKER`)."""
    return any(MAYBE_MARKER.search(text) for text in texts)


def _texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]


def _outside_texts(payload: dict[str, Any], extra: dict[str, Any]) -> Iterator[str]:
    """The texts `inert_request` would change (before it asks for the specials)."""
    items = payload.get("messages") or payload.get("input") or []
    if isinstance(items, str):
        yield items
        items = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("role") in _ROLES or item.get("type") in _TOOL_OUTPUTS:
            yield from _texts(item.get("content", item.get("output")))
    for document in extra.get("documents") or []:
        yield from (v for v in document.values() if isinstance(v, str))


def inert_request(
    payload: dict[str, Any],
    extra: dict[str, Any],
    specials_of: Callable[[], frozenset[str]],
) -> None:
    """Make a chat or Responses request's outside text inert, in place.

    `specials_of` (the served model's special-token strings, asked once per server)
    is called only when some outside text could hold a special-token string.
    """
    if not may_hold_specials(_outside_texts(payload, extra)):
        return
    specials = specials_of()
    if "messages" in payload:
        payload["messages"] = inert_messages(payload["messages"], specials)
    elif "input" in payload:
        payload["input"] = inert_response_input(payload["input"], specials)
    if extra.get("documents"):
        extra["documents"] = inert_documents(extra["documents"], specials)
