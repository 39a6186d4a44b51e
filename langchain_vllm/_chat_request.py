"""Building a chat request for vLLM: pure functions on the payload and messages.

`ChatOpenAI` builds the OpenAI payload; these functions turn it into what vLLM
reads (Chat Completions fields, vLLM parameters in the body, reasoning sent back,
bounded JSON strings) and refuse what vLLM would answer with HTTP 400.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.prompt_values import ChatPromptValue

from langchain_vllm import _seams as seams
from langchain_vllm._chat_answer import REASONING
from langchain_vllm._inert import inert_request
from langchain_vllm._media import vllm_messages
from langchain_vllm._responses import check_responses_params
from langchain_vllm._session import add_session
from langchain_vllm._trajectory import RECORDING, ask_for_tokens
from langchain_vllm._versions import (
    CHAT_PARAMS_SINCE,
    check_chat_params,
    is_legacy,
)
from langchain_vllm.params import (
    OpenAIRanges,
    VLLMChatParams,
    check_openai_params,
    param_names,
    to_wire,
    validate_call_params,
)
from langchain_vllm.structured import (
    LEGACY_NAMES,
    StructuredOutputs,
    cap_strings,
)

RESPONSES_ONLY = (
    "reasoning",
    "include",
    "truncation",
    "context_management",
    "previous_response_id",
)
"""Parameters that exist only in the Responses API (the parent's fields)."""

TEMPLATE_FIELDS = (
    "chat_template",
    "chat_template_kwargs",
    "add_generation_prompt",
    "continue_final_message",
    "add_special_tokens",
    "documents",
    "mm_processor_kwargs",
    "media_io_kwargs",
)
"""Body fields that change the prompt the server builds (sent to `/tokenize` too;
the multimodal ones change how many tokens an image or a video takes)."""


CHAT_NAMES = frozenset(param_names(VLLMChatParams))
"""The vLLM parameters of a chat request (`VLLMChatParams`' fields)."""

OPENAI_RANGED = frozenset(param_names(OpenAIRanges))
"""The OpenAI parameters whose range vLLM narrows (checked per call)."""

THINKING_KEYS = ("enable_thinking", "thinking")
"""The chat template variables `thinking` sets: Qwen3-family templates (and
Granite's, Holo's, vLLM's `reasoning_effort` mapping) read `enable_thinking`,
DeepSeek-family ones `thinking`."""


def build_payload(
    chat: Any,
    input_: Any,
    stop: list[str] | None,
    kwargs: dict[str, Any],
    parent: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """The one request body of a ChatVLLM call, built and checked once.

    The call's vLLM parameters are split out and checked, the conversation becomes
    messages (media blocks in vLLM's form), `parent` (ChatOpenAI's payload builder)
    builds the OpenAI part, and the vLLM part is merged once: the instance's
    parameters and `extra_body` (`parent` copies them from `_default_params`), then
    the call's parameters and `extra_body`. What depends on the server (its
    version, the served model) is asked only when the request needs it.

    Raises:
        ValueError: a parameter is invalid or conflicts with another (named).
        VLLMServerVersionError: the server's release would ignore a parameter.
    """
    inert = kwargs.pop("inert_special_tokens", chat.inert_special_tokens)
    given = {k: kwargs.pop(k) for k in [*kwargs] if k in CHAT_NAMES}
    checked = validate_call_params(VLLMChatParams, given) if given else {}
    checked = {k: to_wire(v) for k, v in checked.items()}
    call_extra = kwargs.pop("extra_body", None) or {}
    if not LEGACY_NAMES.keys().isdisjoint(kwargs):
        take_legacy(kwargs, checked)
    if not OPENAI_RANGED.isdisjoint(kwargs):
        check_openai_params(kwargs)
    responses = chat.use_responses_api is True
    messages = chat_messages(chat, input_)
    if not responses and any(type(m.content) is list for m in messages):
        messages = vllm_messages(messages)  # media blocks in vLLM's form
    prompt = ChatPromptValue.model_construct(messages=messages)
    payload = parent(prompt, stop=stop, **kwargs)
    if not responses:
        to_chat_completions(payload)
        send_back_reasoning(messages, payload["messages"], chat.reasoning_round_trip)
        if chat.merge_system_messages:
            payload["messages"] = merge_system_messages(payload["messages"])
    extra = {**(payload.pop("extra_body", None) or {}), **checked, **call_extra}
    finish_request(chat, payload, extra, responses)
    if inert:  # last: outside text can forge no chat turn
        model = payload["model"]
        inert_request(payload, extra, lambda: chat._link.special_tokens(model))
    return payload


def finish_request(
    chat: Any, payload: dict[str, Any], extra: dict[str, Any], responses: bool
) -> None:
    """Merge the vLLM part into `payload`, in the server's dialect, and check it."""
    if "thinking" in extra:
        apply_thinking(extra, reasoning_effort_of(payload))
    if responses:
        check_responses_params(extra, chat._link.version)
    if chat.session_from_thread or extra.get("session_id") is not None:
        add_session(payload, extra, from_thread=chat.session_from_thread)
    if not responses:
        if RECORDING.get() is not None:  # under record_trajectories()
            ask_for_tokens(payload, extra)
        if not CHAT_PARAMS_SINCE.keys().isdisjoint(extra) or (
            payload.get("tools")
            and (payload.get("response_format") or extra.get("structured_outputs"))
        ):
            check_chat_params(payload, extra, chat._link.version)
    if not payload.get("model"):
        payload["model"] = chat._link.resolve_model(chat.model_name)
    finish_payload(
        payload,
        extra,
        server_is_legacy=lambda: is_legacy(chat._link.version()),
        max_json_string_length=chat.max_json_string_length,
        parse_tool_call_tags=chat.parse_tool_call_tags,
    )


def apply_thinking(extra: dict[str, Any], reasoning_effort: Any) -> None:
    """Turn the `thinking` switch in a request body into template variables.

    Raises:
        ValueError: `chat_template_kwargs` sets one of `THINKING_KEYS` to the other
            value, or `reasoning_effort` says the opposite ("none" with
            `thinking=True`, any other effort with `thinking=False`).
    """
    value = extra.pop("thinking", None)
    if value is None:
        return
    template_kwargs = dict(extra.get("chat_template_kwargs") or {})
    for key in THINKING_KEYS:
        if key in template_kwargs and template_kwargs[key] != value:
            msg = (
                f"thinking={value} conflicts with chat_template_kwargs={{{key!r}: "
                f"{template_kwargs[key]!r}}} (instance and per-call values merged): "
                "set one of them."
            )
            raise ValueError(msg)
        template_kwargs[key] = value
    extra["chat_template_kwargs"] = template_kwargs
    if reasoning_effort is not None and (reasoning_effort == "none") == value:
        msg = (
            f"thinking={value} conflicts with reasoning_effort={reasoning_effort!r}: "
            "thinking=False goes with no effort or 'none', thinking=True with any "
            "effort but 'none'."
        )
        raise ValueError(msg)


def merge_system_messages(wire: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One leading system message instead of several, or of a later one.

    Qwen3-family chat templates refuse a system message that is not the first
    (HTTP 400 "System message must be at the beginning."). The system messages'
    contents are joined in their order, separated by a blank line, into the first
    message; the other messages keep their order. A conversation with at most one
    system message, at the start, is returned as it is.
    """
    systems = [m for m in wire if m.get("role") == "system"]
    if not systems or (len(systems) == 1 and wire[0] is systems[0]):
        return wire
    contents = [m.get("content") or "" for m in systems]
    merged: str | list[Any]
    if all(isinstance(c, str) for c in contents):
        merged = "\n\n".join(c for c in contents if c)
    else:
        merged = []
        for content in contents:
            if not content:
                continue
            if merged:
                merged.append({"type": "text", "text": "\n\n"})
            if isinstance(content, str):
                merged.append({"type": "text", "text": content})
            else:
                merged.extend(content)
    first = {**systems[0], "content": merged}
    return [first, *(m for m in wire if m.get("role") != "system")]


def take_legacy(kwargs: dict[str, Any], checked: dict[str, Any]) -> None:
    """Move per-call `guided_*` values into `checked` as `structured_outputs`.

    Raises:
        ValueError: both `structured_outputs` and `guided_*` are given.
    """
    legacy = {k: kwargs.pop(k) for k in list(kwargs) if k in LEGACY_NAMES}
    if not legacy:
        return
    if "structured_outputs" in checked:
        msg = (
            "Pass either `structured_outputs` or the older `guided_*` "
            f"parameters ({', '.join(legacy)}), not both."
        )
        raise ValueError(msg)
    constraint = StructuredOutputs.from_legacy(legacy)
    if constraint is not None:
        checked["structured_outputs"] = constraint.to_wire()


def chat_messages(model: Any, input_: Any) -> list[BaseMessage]:
    """The call's conversation: `input_` as messages (`invoke` passes a list).

    Raises:
        ValueError: no message.
    """
    messages = input_
    is_list = type(input_) is list and input_
    if not (is_list and all(isinstance(m, BaseMessage) for m in input_)):
        messages = seams.convert_input(model, input_).to_messages()
    require_messages(messages)
    return messages  # type: ignore[no-any-return]


def require_messages(messages: Sequence[BaseMessage]) -> None:
    """Raise ValueError for an empty conversation (vLLM answers HTTP 400)."""
    if not messages:
        msg = (
            "ChatVLLM got an empty message list: pass at least one message "
            "(vLLM refuses an empty conversation with HTTP 400)."
        )
        raise ValueError(msg)


def to_chat_completions(payload: dict[str, Any]) -> None:
    """Map or refuse Responses-API-only parameters in a Chat Completions payload.

    `reasoning={"effort": ...}` becomes Chat Completions' `reasoning_effort`; the
    others have no Chat Completions meaning, and sending them would be a 400 (or
    silently ignored), so they are refused by name.

    Raises:
        ValueError: a Responses-API-only parameter is set.
    """
    reasoning = payload.pop("reasoning", None)
    if reasoning is not None:
        extra = (
            sorted(set(reasoning) - {"effort"}) if isinstance(reasoning, dict) else []
        )
        if not isinstance(reasoning, dict) or extra:
            msg = (
                f"`reasoning={reasoning!r}`: only `{{'effort': ...}}` maps to vLLM's "
                "Chat Completions (as `reasoning_effort`); "
                f"{', '.join(extra) or 'this value'} needs the Responses API "
                "(`use_responses_api=True`)."
            )
            raise ValueError(msg)
        if reasoning.get("effort") is not None:
            payload.setdefault("reasoning_effort", reasoning["effort"])
    for name in RESPONSES_ONLY[1:]:
        if payload.get(name) is not None:
            msg = (
                f"`{name}` is a Responses API parameter, and ChatVLLM uses vLLM's "
                "Chat Completions endpoint. Remove it, or set "
                "`use_responses_api=True` to use the server's /v1/responses."
            )
            raise ValueError(msg)


def reasoning_of(message: AIMessage) -> str:
    """An assistant message's reasoning text (additional_kwargs or content blocks)."""
    reasoning = message.additional_kwargs.get(REASONING)
    if isinstance(reasoning, str) and reasoning:
        return reasoning
    if isinstance(message.content, list):
        return "".join(
            str(block.get("reasoning") or "")
            for block in message.content
            if isinstance(block, dict) and block.get("type") == "reasoning"
        )
    return ""


def send_back_reasoning(
    messages: Sequence[BaseMessage], wire: list[dict[str, Any]], policy: str
) -> None:
    """Add assistant messages' reasoning to their wire form, per the policy."""
    if policy == "never":
        return
    for message, sent in zip(messages, wire, strict=True):
        if not isinstance(message, AIMessage) or sent.get("role") != "assistant":
            continue
        if policy == "tool_calls" and not message.tool_calls:
            continue
        reasoning = reasoning_of(message)
        if reasoning:
            sent["reasoning"] = reasoning


def finish_payload(
    payload: dict[str, Any],
    extra: dict[str, Any],
    *,
    server_is_legacy: Callable[[], bool],
    max_json_string_length: int | None,
    parse_tool_call_tags: bool,
) -> None:
    """Put the merged vLLM body into `payload`, in the server's dialect.

    `max_completion_tokens` goes back to `max_tokens`, `structured_outputs` becomes
    `guided_*` for servers older than vLLM 0.12, strings are bounded, the merged
    values are checked, and with client-side tool-call parsing an "auto" tool
    choice is sent as "none" (a server without a parser refuses "auto").
    """
    if "max_completion_tokens" in payload:
        payload["max_tokens"] = payload.pop("max_completion_tokens")
    structured = extra.get("structured_outputs")
    if structured is not None and server_is_legacy():
        extra.pop("structured_outputs")
        extra.update(StructuredOutputs.model_validate(structured).to_legacy_wire())
    if max_json_string_length:
        cap_strings(payload, extra, max_json_string_length)
    check_merged(payload, extra)
    if extra:
        payload["extra_body"] = extra
    if (
        parse_tool_call_tags
        and payload.get("tools")
        and payload.get("tool_choice") in (None, "auto")
    ):
        payload["tool_choice"] = "none"


def check_merged(payload: dict[str, Any], extra: dict[str, Any]) -> None:
    """Checks that need the instance's and the call's values together.

    Raises:
        ValueError: `min_tokens` above `max_tokens`, or `prompt_logprobs` in a
            stream (vLLM answers both with HTTP 400).
    """
    min_tokens, max_tokens = extra.get("min_tokens"), payload.get("max_tokens")
    if min_tokens is not None and max_tokens is not None and min_tokens > max_tokens:
        msg = (
            f"min_tokens={min_tokens} is above max_tokens={max_tokens} "
            "(instance and per-call values merged): lower min_tokens or raise "
            "max_tokens."
        )
        raise ValueError(msg)
    if payload.get("stream") and extra.get("prompt_logprobs") is not None:
        msg = (
            "prompt_logprobs is not available in streams (vLLM refuses it with "
            "stream=True): use invoke, or drop prompt_logprobs for this call."
        )
        raise ValueError(msg)


def tokenize_body(payload: dict[str, Any]) -> dict[str, Any]:
    """The `/tokenize` body that builds the same prompt as a chat `payload`."""
    body: dict[str, Any] = {"model": payload["model"], "messages": payload["messages"]}
    if payload.get("tools"):
        body["tools"] = payload["tools"]
    extra = payload.get("extra_body") or {}
    body.update({name: extra[name] for name in TEMPLATE_FIELDS if name in extra})
    return body


def reasoning_effort_of(values: dict[str, Any]) -> Any:
    """The reasoning effort of a payload (Chat Completions or Responses form)."""
    reasoning = values.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        return reasoning["effort"]
    return values.get("reasoning_effort")
