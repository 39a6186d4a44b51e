"""Learn the served model's special-token strings from the server, once per server.

What `langchain_vllm._inert` makes inert. The discovery is a generator of `Probe`
requests, driven by `discover_special_tokens` (sync) or `adiscover_special_tokens`
(async) with the caller's own request function, so one logic serves both and the
caller keeps its clients, error translation and cache. Endpoints it uses, all in
every vLLM release the package supports (0.11-0.32, read from their sources):

* ``GET /tokenizer_info``: the tokenizer's ``init_kwargs``, with every added token
  (``added_tokens_decoder``); only on servers started with
  ``--enable-tokenizer-info-endpoint`` (off by default: most answer 404);
* ``POST /tokenize`` with ``messages`` and ``return_token_strs``: the chat template's
  rendering of a small conversation, token by token (its markers among them);
* ``POST /tokenize`` with a ``prompt``: which candidates the tokenizer turns into a
  single token even glued inside a word, i.e. which ones text can forge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Literal, NamedTuple

import openai

from langchain_vllm._inert import DEFAULT_MARKERS, usable
from langchain_vllm.errors import VLLMModelNotFoundError, VLLMResponseError

__all__ = [
    "Probe",
    "SpecialTokens",
    "adiscover_special_tokens",
    "discover_special_tokens",
]

_MAX_CANDIDATES = 20_000
"""At most this many candidates in the checking request (a tokenizer's added tokens
run to a few thousand at most)."""


class Probe(NamedTuple):
    """One request of the discovery: the caller sends it and returns the JSON answer."""

    method: Literal["GET", "POST"]
    path: str
    """Under the server's root URL (``/tokenize``, ``/tokenizer_info``)."""
    body: dict[str, Any] | None


class SpecialTokens(NamedTuple):
    """The special-token strings of one served model, and how they were learned."""

    strings: frozenset[str]
    """What `make_inert` breaks up."""
    source: Literal["server", "defaults"]
    """``"server"``: strings the server's tokenizer was seen to make one token (cache
    it per server); ``"defaults"``: the server could not be asked (`DEFAULT_MARKERS`
    plus whatever it told; ask again later)."""


_HTTP_REFUSALS = (openai.APIStatusError, VLLMResponseError, ValueError)
"""A route that is missing, disabled or refuses the probe (or answers malformed):
the discovery goes on without it. Connection errors and timeouts propagate."""

_CALL = {"id": "call00001", "type": "function", "function": {"name": "f"}}
_TOOL = {"type": "function", "function": {"name": "f", "parameters": {}}}
_PROBE_CHATS: tuple[dict[str, Any], ...] = (
    {
        "messages": [
            {"role": "system", "content": "a"},
            {"role": "user", "content": "a"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{**_CALL, "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": _CALL["id"], "content": "a"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "a"},
        ],
        "tools": [_TOOL],
    },
    {
        "messages": [
            {"role": "system", "content": "a"},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "a"},
        ]
    },
    {"messages": [{"role": "user", "content": "a"}]},
)
"""Conversations whose rendering shows the chat template's markers, richest first (a
strict template may refuse tools or a system message: the next one is tried)."""


def _token_strs(answer: Any) -> list[str] | None:
    strs = answer.get("token_strs") if isinstance(answer, dict) else None
    if isinstance(strs, list) and all(isinstance(s, str) for s in strs):
        return strs
    return None


def _marker_shaped(token: str) -> bool:
    """Whether a token of the template's rendering may be a marker.

    Bracketed (a non-alphanumeric first and last character) around a letter or
    digit: ``<|im_start|>``, ``[INST]``, ``<start_of_turn>``. Ordinary tokens of the
    template's own text (``</``, ``":``, ``<tool``) never are: the usual
    pre-tokenizers split letters from punctuation, except one leading character.
    """
    return (
        usable(token)
        and not token[0].isalnum()
        and not token[-1].isalnum()
        and any(ch.isalnum() for ch in token)
    )


def _info_strings(info: Any) -> set[str]:
    """Added and special tokens from a ``/tokenizer_info`` answer.

    The answer is the tokenizer's ``init_kwargs``: ``added_tokens_decoder``,
    ``bos_token``, ``additional_special_tokens`` ...
    """
    if not isinstance(info, dict):
        return set()
    found: list[Any] = []
    added = info.get("added_tokens_decoder")
    if isinstance(added, dict):
        found += [
            v.get("content") if isinstance(v, dict) else v for v in added.values()
        ]
    for key, value in info.items():
        if key.endswith("_token"):
            found.append(value)
        elif key.endswith("special_tokens") and isinstance(value, list):
            found += value
    return {s for s in found if isinstance(s, str) and usable(s)}


def _ask(probe: Probe) -> Generator[Probe, Any, Any]:
    """Send one probe; None when the server refuses it (`_HTTP_REFUSALS`)."""
    try:
        return (yield probe)
    except VLLMModelNotFoundError:
        raise  # the model is not served: the request itself would fail
    except _HTTP_REFUSALS:
        return None


def _discovery(model: str | None) -> Generator[Probe, Any, SpecialTokens]:
    """The discovery as a generator of probes (one logic for sync and async)."""
    named = {"model": model} if model else {}
    candidates = set(DEFAULT_MARKERS)
    candidates |= _info_strings(
        (yield from _ask(Probe("GET", "/tokenizer_info", None)))
    )
    for chat in _PROBE_CHATS:
        body = {**named, **chat, "add_generation_prompt": True}
        body.update(add_special_tokens=True, return_token_strs=True)
        strs = _token_strs((yield from _ask(Probe("POST", "/tokenize", body))))
        if strs is not None:
            candidates.update(filter(_marker_shaped, strs))
            break
    listed = sorted(candidates)[:_MAX_CANDIDATES]
    # Glued between letters: only a string the tokenizer matches before it splits
    # words (an added token) comes back as one token string.
    prompt = "\n".join(f"a{c}a" for c in listed)
    body = {**named, "prompt": prompt, "add_special_tokens": False}
    body["return_token_strs"] = True
    strs = _token_strs((yield from _ask(Probe("POST", "/tokenize", body))))
    if strs is None:
        return SpecialTokens(frozenset(listed), "defaults")
    seen = set(strs)
    return SpecialTokens(frozenset(c for c in listed if c in seen), "server")


def _advance(
    gen: Generator[Probe, Any, SpecialTokens], answer: Any, error: Exception | None
) -> Probe | SpecialTokens:
    """The next probe, or the result when the discovery is done."""
    try:
        return gen.throw(error) if error is not None else gen.send(answer)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def discover_special_tokens(
    send: Callable[[Probe], Any], model: str | None = None
) -> SpecialTokens:
    """Learn the served model's special-token strings from the server (2-3 requests).

    ``GET /tokenizer_info`` (vLLM 0.10+, only with
    ``--enable-tokenizer-info-endpoint``: the tokenizer's added tokens), then
    ``POST /tokenize`` of a small conversation (the chat template's markers, with
    ``return_token_strs``), then one ``POST /tokenize`` that keeps the candidates
    (those, `DEFAULT_MARKERS`) the tokenizer makes one token even inside a word.
    A refused or missing route is skipped; without ``/tokenize`` the result is
    `DEFAULT_MARKERS` (plus what ``/tokenizer_info`` said), source ``"defaults"``.

    Args:
        send: Sends a `Probe` to the server (``probe.path`` under its root URL) and
            returns the decoded JSON answer; raises on HTTP errors.
        model: The served model's name (None: the server's only one).

    Returns:
        The strings and their source: cache a ``"server"`` result per server.

    Raises:
        VLLMModelNotFoundError: `model` is not served.
        Exception: Whatever `send` raises for a connection error or a timeout.
    """
    gen = _discovery(model)
    step: Probe | SpecialTokens = next(gen)
    while isinstance(step, Probe):
        try:
            answer, error = send(step), None
        except Exception as e:
            answer, error = None, e
        step = _advance(gen, answer, error)
    return step


async def adiscover_special_tokens(
    send: Callable[[Probe], Awaitable[Any]], model: str | None = None
) -> SpecialTokens:
    """Async `discover_special_tokens` (`send` is a coroutine function)."""
    gen = _discovery(model)
    step: Probe | SpecialTokens = next(gen)
    while isinstance(step, Probe):
        try:
            answer, error = await send(step), None
        except Exception as e:
            answer, error = None, e
        step = _advance(gen, answer, error)
    return step
