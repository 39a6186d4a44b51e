"""Tools and structured output: checks before binding, validation after parsing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ValidationError
from pydantic.v1 import BaseModel as BaseModelV1
from pydantic.v1 import ValidationError as ValidationErrorV1

from langchain_vllm.structured import check_json_schema

TOOL_CHOICE_WORDS = frozenset({"auto", "none", "required", "any"})


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
