"""Tools and structured output: checks before binding, validation after parsing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx2
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableLambda
from langchain_core.utils.function_calling import (
    convert_to_json_schema,
    convert_to_openai_tool,
)
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ValidationError
from pydantic.v1 import BaseModel as BaseModelV1
from pydantic.v1 import ValidationError as ValidationErrorV1

from langchain_vllm.errors import VLLMToolChoiceError
from langchain_vllm.structured import check_json_schema

TOOL_CHOICE_WORDS = frozenset({"auto", "none", "required", "any"})

TOOL_CALL_OPENERS = (
    "<tool_call>",
    "<tool_calls>",
    "<|tool_call|>",
    "[TOOL_CALLS]",
    "<|python_tag|>",
    "functools[",
)
"""How tool-call markup starts (hermes, jamba, granite, mistral, llama 3, phi-4
mini) when a parser failed."""


def check_tools(tools: Sequence[Any], tool_choice: Any) -> None:
    """Raise ValueError for an invalid tool schema or a choice naming no tool."""
    for tool in tools:
        _check_tool_schema(tool)
    if isinstance(tool_choice, str) and tool_choice not in TOOL_CHOICE_WORDS:
        names = [_tool_name(tool) for tool in tools]
        if tool_choice not in names:
            msg = (
                f"tool_choice={tool_choice!r} names no bound tool; tools: "
                f"{', '.join(names) or 'none'}. Use a tool name or one of "
                f"{', '.join(sorted(TOOL_CHOICE_WORDS))}."
            )
            raise ValueError(msg)


def default_strict(tools: Sequence[Any]) -> bool:
    """Strict schemas unless a dict tool says `"strict": false` itself."""
    return not any(
        isinstance(tool, dict)
        and isinstance(tool.get("function"), dict)
        and tool["function"].get("strict") is False
        for tool in tools
    )


def takes_no_arguments(tool: Any) -> bool:
    """A formatted (OpenAI-style) function tool whose schema has no parameters."""
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict):
        return False
    parameters = function.get("parameters")
    return not (isinstance(parameters, dict) and parameters.get("properties"))


def unstrict_parameterless(tools: Sequence[Any]) -> list[Any]:
    """Formatted tools with the strict mark taken off the parameterless ones.

    A strict tool without parameters sends Qwen3.x models into a token loop on vLLM
    (vllm #50989), and strictness constrains nothing there: such tools are sent
    with `"strict": false` when ChatVLLM chose strict by default.
    """
    return [
        {**tool, "function": {**tool["function"], "strict": False}}
        if takes_no_arguments(tool) and tool["function"].get("strict")
        else tool
        for tool in tools
    ]


def forced_tool(tool_choice: Any) -> str | None:
    """What a wire `tool_choice` forces: "" (any tool), a tool's name, or None.

    Args:
        tool_choice: The choice as `ChatOpenAI.bind_tools` sends it ("required",
            "any", `{"type": "function", "function": {"name": ...}}`, ...).
    """
    if tool_choice in ("required", "any"):
        return ""
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = (tool_choice.get("function") or {}).get("name")
        return name if isinstance(name, str) and name else ""
    return None


def called_tools(message: AIMessage) -> list[str]:
    """Names of the tools a message calls (calls LangChain could not read too)."""
    names = [call["name"] for call in message.tool_calls]
    return names + [call.get("name") or "" for call in message.invalid_tool_calls]


def tool_choice_problem(
    forced: str,
    names: Sequence[str],
    text: str,
    finish_reason: str | None,
    *,
    complete: bool | None = None,
) -> str | None:
    """Why an answer does not honour a forced tool choice, or None if it does.

    An answer cut off by `max_tokens` (finish_reason "length") honours it only
    with a complete call; else it says it was cut, and what to change.

    Args:
        forced: What `forced_tool` says the choice forces.
        names: The tools the answer calls (a call the parser found but LangChain
            could not read counts: it is reported as an invalid tool call).
        text: The answer's text.
        finish_reason: The answer's finish reason.
        complete: Whether a call is complete (of the forced tool, if named); None
            reads it from `names`.
    """
    called = bool(names) and (not forced or forced in names)
    cut = finish_reason == "length"
    if called and not (cut and complete is False):
        return None
    choice = f"tool_choice={forced!r}" if forced else 'tool_choice="required"'
    if cut:
        return cut_problem(choice, names, text)
    got = f"calls of {', '.join(map(repr, names))}" if names else "no tool call"
    text = text.strip()
    said = f", and the text {text[:80]!r}" if text else ""
    return (
        f"{choice} forces a tool call, but the answer (finish_reason="
        f"{finish_reason!r}) holds {got}{said}. The server did not turn the "
        "model's output into that call: check that its `--tool-call-parser` "
        "matches the model (with `--enable-auto-tool-choice`) and that its chat "
        "template shows the tools to the model; for a server without a parser, "
        "use `ChatVLLM(parse_tool_call_tags=True)`."
    )


def cut_problem(choice: str, names: Sequence[str], text: str) -> str:
    """A forced call cut off by the token limit: what happened, what to change."""
    head = (
        f"{choice} forces a tool call, but the server stopped at the token limit "
        "(finish_reason='length', max_tokens) before a complete call"
    )
    if names or text.lstrip().startswith(TOOL_CALL_OPENERS):
        what = f"the call of {names[-1]!r}" if names else "the call"
        return (
            f"{head}: {what} was cut in its arguments. Raise "
            "`max_tokens`; for a model that keeps writing inside a string argument, "
            "bound the strings with `max_json_string_length`."
        )
    if not text.strip():
        return (
            f"{head}: the answer is only whitespace. The server's grammar for a "
            "forced call (a JSON array when vLLM's strict tool calling is off) let "
            "the model write whitespace until the limit, and raising `max_tokens` "
            "will not help: start the server with strict tool calling "
            "(VLLM_ENFORCE_STRICT_TOOL_CALLING=1, vLLM's default), or discourage "
            "whitespace with `logit_bias`."
        )
    return (
        f"{head}: the answer is text ({text.strip()[:80]!r}), no call. Raise "
        "`max_tokens`, and check that the server's `--tool-call-parser` matches "
        "the model."
    )


def tool_choice_error(problem: str, url: str) -> VLLMToolChoiceError:
    """A forced tool choice came back without the call (see `forced_tool`)."""
    return VLLMToolChoiceError(
        f"{problem} (server: {url})", httpx2.Request("POST", url), body=None
    )


def check_result_tool_choice(result: ChatResult, tool_choice: Any, url: str) -> None:
    """Raise `VLLMToolChoiceError` for a generation that ignores a forced choice."""
    forced = forced_tool(tool_choice)
    if forced is None:
        return
    for generation in result.generations:
        info = generation.generation_info or {}
        message = generation.message
        if not isinstance(message, AIMessage):
            continue
        complete = any(
            not forced or call["name"] == forced for call in message.tool_calls
        )
        problem = tool_choice_problem(
            forced,
            called_tools(message),
            message.text,
            info.get("finish_reason"),
            complete=complete,
        )
        if problem:
            raise tool_choice_error(problem, url)


def _tool_name(tool: Any) -> str:
    if isinstance(tool, dict) and "function" in tool:
        return str(tool["function"].get("name"))
    if isinstance(tool, dict):
        return str(tool.get("name") or tool.get("title"))
    return str(convert_to_openai_tool(tool)["function"]["name"])


def _check_tool_schema(tool: Any) -> None:
    """Raise ValueError naming the tool whose parameter schema is invalid."""
    try:
        function = convert_to_openai_tool(tool)["function"]
    except Exception as e:
        msg = f"Cannot turn {tool!r:.80} into a tool schema: {e}"
        raise ValueError(msg) from e
    name = function.get("name")
    if not name or not isinstance(name, str):
        msg = f"Tool {tool!r:.80} has no name."
        raise ValueError(msg)
    try:
        check_json_schema(function.get("parameters", {}))
    except ValueError as e:
        msg = f"Tool `{name}` has an invalid parameter schema: {e}"
        raise ValueError(msg) from None


def is_model_class(schema: Any) -> bool:
    """A pydantic (v1 or v2) model class."""
    return isinstance(schema, type) and is_basemodel_subclass(schema)


class ModelValidator:
    """The parsed JSON of a structured answer, validated into a pydantic class.

    Works for pydantic v1 and v2 classes; with `include_raw`, a validation error
    goes to `parsing_error` as the parent's parsers do.
    """

    def __init__(self, schema: type, include_raw: bool) -> None:
        self.schema = schema
        self.include_raw = include_raw

    def _validate(self, data: Any) -> Any:
        if issubclass(self.schema, BaseModelV1):
            return self.schema.parse_obj(data)
        return self.schema.model_validate(data)  # type: ignore[attr-defined]

    def __call__(self, value: Any) -> Any:
        """Validate a parsed dict (or the `parsed` of an include_raw result)."""
        if not self.include_raw:
            return self._validate(value)
        if value.get("parsing_error") is not None or value.get("parsed") is None:
            return value
        try:
            return {**value, "parsed": self._validate(value["parsed"])}
        except (ValidationError, ValidationErrorV1) as e:
            return {**value, "parsed": None, "parsing_error": e}


def redacted_mcp(tool: Any) -> Any:
    """A built-in remote MCP tool without its credentials (as ChatOpenAI does)."""
    if isinstance(tool, dict) and tool.get("type") == "mcp":
        hidden = {k: "**REDACTED**" for k in ("headers", "authorization") if k in tool}
        return {**tool, **hidden}
    return tool


def bind_vllm_tools(
    parent: Callable[..., Any],
    tools: Sequence[Any],
    tool_choice: Any,
    strict: bool | None,
    parallel_tool_calls: bool | None,
    kwargs: dict[str, Any],
) -> Any:
    """ChatOpenAI's `bind_tools` (`parent`), strict by default, checked first.

    Unless `strict` is given, parameterless tools under a choice that forces no
    call go with `"strict": false` (vllm #50989).

    Raises:
        ValueError: a tool schema is invalid, or `tool_choice` names no tool.
    """
    check_tools(tools, tool_choice)
    bound = parent(
        tools,
        tool_choice=tool_choice,
        strict=default_strict(tools) if strict is None else strict,
        parallel_tool_calls=parallel_tool_calls,
        **kwargs,
    )
    wire: dict[str, Any] = bound.kwargs
    if strict is None and forced_tool(wire.get("tool_choice")) is None:
        bound.kwargs = {**wire, "tools": unstrict_parameterless(wire["tools"])}
    return bound


def structured_runnable(
    parent: Callable[..., Any],
    schema: Any,
    method: str,
    include_raw: bool,
    strict: bool | None,
    kwargs: dict[str, Any],
) -> Any:
    """ChatOpenAI's `with_structured_output` (`parent`), enforced by the server.

    `json_mode` with a schema enforces the schema; a pydantic class goes as its
    JSON schema and the answer is validated into the class (v1 and v2 alike).
    """
    if method == "json_mode" and schema is not None:
        method = "json_schema"  # vLLM can enforce the schema itself
    if strict is None and method != "json_mode":
        strict = True
    if method != "json_schema" or not is_model_class(schema):
        return parent(
            schema, method=method, include_raw=include_raw, strict=strict, **kwargs
        )
    as_dict = parent(
        convert_to_json_schema(schema),
        method="json_schema",
        include_raw=include_raw,
        strict=strict,
        **kwargs,
    )
    to_model = RunnableLambda(ModelValidator(schema, include_raw))
    return (as_dict | to_model).with_types(output_type=schema)
