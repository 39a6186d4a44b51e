"""Server-enforced structured outputs: the constraint type and its local checks.

vLLM (0.12 and newer) reads one `structured_outputs` object per request; older servers
read top-level `guided_*` fields instead. `StructuredOutputs` validates a constraint
before any request is made and renders it for either kind of server.
"""

from __future__ import annotations

import json
import re
from typing import Any, is_typeddict

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

__all__ = [
    "StructuredOutputs",
]

CONSTRAINTS = ("choice", "regex", "json", "grammar", "structural_tag", "json_object")
"""The mutually exclusive constraint kinds of vLLM's `structured_outputs`."""

LEGACY_NAMES = {
    "guided_choice": "choice",
    "guided_regex": "regex",
    "guided_json": "json",
    "guided_grammar": "grammar",
}
"""Per-call names of servers older than vLLM 0.12, mapped to the current kinds."""

_JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONES = ("items", "additionalProperties", "not", "contains", "if", "then")


def schema_of(value: Any) -> dict[str, Any]:
    """A JSON schema from a dict, a pydantic model class or a TypedDict."""
    if isinstance(value, dict):
        schema = value
    elif isinstance(value, type) and issubclass(value, BaseModel):
        schema = value.model_json_schema()
    elif is_typeddict(value):
        schema = TypeAdapter(value).json_schema()
    elif isinstance(value, str):
        try:
            schema = json.loads(value)
        except json.JSONDecodeError as e:
            msg = f"JSON schema string is not valid JSON: {e}"
            raise ValueError(msg) from None
    else:
        msg = (
            "A JSON schema must be a dict, a pydantic model class or a TypedDict, "
            f"not {type(value).__name__}"
        )
        raise TypeError(msg)
    check_json_schema(schema)
    return schema


def check_json_schema(schema: Any, path: str = "#") -> None:
    """Raise ValueError naming the place where `schema` is not a valid JSON Schema.

    A structural check of the keywords constrained decoding relies on (types,
    properties, items, combinators, required, enum, pattern); it needs no dependency.
    """
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        msg = f"JSON schema at {path} must be an object, not {type(schema).__name__}"
        raise ValueError(msg)
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        bad = [k for k in kinds if k not in _JSON_TYPES]
        if bad or not kinds:
            msg = f"JSON schema at {path}: unknown type {kind!r}"
            raise ValueError(msg)
    for key in _SCHEMA_MAPS:
        if key in schema:
            if not isinstance(schema[key], dict):
                msg = f"JSON schema at {path}: `{key}` must be an object"
                raise ValueError(msg)
            for name, sub in schema[key].items():
                check_json_schema(sub, f"{path}/{key}/{name}")
    for key in _SCHEMA_LISTS:
        if key in schema:
            if not isinstance(schema[key], list) or not schema[key]:
                msg = f"JSON schema at {path}: `{key}` must be a non-empty list"
                raise ValueError(msg)
            for i, sub in enumerate(schema[key]):
                check_json_schema(sub, f"{path}/{key}/{i}")
    for key in _SCHEMA_ONES:
        if key in schema:
            check_json_schema(schema[key], f"{path}/{key}")
    required = schema.get("required")
    if required is not None and (
        not isinstance(required, list) or not all(isinstance(r, str) for r in required)
    ):
        msg = f"JSON schema at {path}: `required` must be a list of strings"
        raise ValueError(msg)
    if "enum" in schema and not isinstance(schema["enum"], list):
        msg = f"JSON schema at {path}: `enum` must be a list"
        raise ValueError(msg)
    if "pattern" in schema:
        _compile(schema["pattern"], f"JSON schema at {path}: `pattern`")


def _compile(pattern: Any, what: str) -> None:
    if not isinstance(pattern, str):
        msg = f"{what} must be a string"
        raise ValueError(msg)
    try:
        re.compile(pattern)
    except re.error as e:
        msg = f"{what} is not a valid regular expression: {e}"
        raise ValueError(msg) from None


class StructuredOutputs(BaseModel):
    """One server-enforced output constraint (vLLM's `structured_outputs`).

    Exactly one of `choice`, `regex`, `json`, `grammar`, `structural_tag` or
    `json_object` is set; the others are options of the constraint.

    Example:
        ```python
        StructuredOutputs(choice=["positive", "negative"])
        StructuredOutputs(json=MyPydanticModel)
        ```
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    choice: list[str] | None = None
    """The output is exactly one of these strings."""
    regex: str | None = None
    """The output matches this regular expression."""
    json_schema: dict[str, Any] | None = Field(default=None, alias="json")
    """The output is JSON valid against this schema (a dict, pydantic model or
    TypedDict)."""
    grammar: str | None = None
    """The output follows this EBNF/Lark grammar."""
    structural_tag: str | dict[str, Any] | None = None
    """A structural-tag specification (JSON string or dict)."""
    json_object: bool | None = None
    """The output is any JSON object."""
    disable_any_whitespace: bool | None = None
    """Forbid free whitespace in generated JSON."""
    disable_additional_properties: bool | None = None
    """Treat JSON objects as closed (no properties beyond the schema's)."""
    whitespace_pattern: str | None = None
    """Regular expression of whitespace allowed in generated JSON."""

    @model_validator(mode="before")
    @classmethod
    def _schema_inputs(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("json", "json_schema"):
                if key in data and data[key] is not None:
                    data = {**data, key: schema_of(data[key])}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutputs:
        set_kinds = [k for k in CONSTRAINTS if self._get(k) not in (None, False)]
        if len(set_kinds) != 1:
            msg = (
                "structured_outputs needs exactly one constraint of "
                f"{', '.join(CONSTRAINTS)}; got "
                + (", ".join(set_kinds) if set_kinds else "none")
            )
            raise ValueError(msg)
        if self.choice is not None and (
            not self.choice or not all(isinstance(c, str) for c in self.choice)
        ):
            msg = "structured_outputs `choice` must be a non-empty list of strings"
            raise ValueError(msg)
        if self.regex is not None:
            _compile(self.regex, "structured_outputs `regex`")
        if self.grammar is not None and not self.grammar.strip():
            msg = "structured_outputs `grammar` must not be empty"
            raise ValueError(msg)
        if isinstance(self.structural_tag, str):
            try:
                json.loads(self.structural_tag)
            except json.JSONDecodeError as e:
                msg = f"structured_outputs `structural_tag` is not valid JSON: {e}"
                raise ValueError(msg) from None
        return self

    def _get(self, kind: str) -> Any:
        return self.json_schema if kind == "json" else getattr(self, kind)

    @property
    def kind(self) -> str:
        """Which constraint this is (`choice`, `regex`, `json`, ...)."""
        return next(k for k in CONSTRAINTS if self._get(k) not in (None, False))

    def to_wire(self) -> dict[str, Any]:
        """The `structured_outputs` request object of vLLM 0.12 and newer."""
        return self.model_dump(by_alias=True, exclude_none=True)

    def to_legacy_wire(self) -> dict[str, Any]:
        """Top-level `guided_*` fields for servers older than vLLM 0.12."""
        kind = self.kind
        if kind not in LEGACY_NAMES.values():
            msg = (
                f"structured_outputs `{kind}` needs vLLM 0.12 or newer; the server "
                "only understands guided_choice, guided_regex, guided_json and "
                "guided_grammar"
            )
            raise ValueError(msg)
        body: dict[str, Any] = {f"guided_{kind}": self._get(kind)}
        if self.whitespace_pattern is not None:
            body["guided_whitespace_pattern"] = self.whitespace_pattern
        return body

    @classmethod
    def from_legacy(cls, values: dict[str, Any]) -> StructuredOutputs | None:
        """Build from per-call `guided_*` names (None when none is given)."""
        given = {LEGACY_NAMES[k]: v for k, v in values.items() if v is not None}
        return cls.model_validate(given) if given else None


def cap_string_lengths(schema: Any, limit: int) -> Any:
    """A copy of `schema` whose free-text strings are at most `limit` characters.

    Every string subschema without a `maxLength`, `pattern`, `format`, `enum` or
    `const` of its own gets `maxLength: limit`. Under constrained decoding the server
    then closes each string by then, so a small model that keeps writing inside a
    string still produces complete, valid JSON. Strings with a pattern or format are
    left alone (xgrammar cannot combine them with a length bound).
    """
    if isinstance(schema, list):
        return [cap_string_lengths(item, limit) for item in schema]
    if not isinstance(schema, dict):
        return schema
    capped = {key: cap_string_lengths(value, limit) for key, value in schema.items()}
    kinds = schema.get("type")
    is_string = kinds == "string" or (isinstance(kinds, list) and "string" in kinds)
    if is_string and not any(
        key in schema for key in ("maxLength", "pattern", "format", "enum", "const")
    ):
        capped["maxLength"] = limit
    return capped


def cap_strings(payload: dict[str, Any], extra: dict[str, Any], limit: int) -> None:
    """Apply `max_json_string_length` to every schema the server will enforce."""
    response_format = payload.get("response_format")
    if isinstance(response_format, dict) and isinstance(
        response_format.get("json_schema"), dict
    ):
        spec = response_format["json_schema"]
        schema = cap_string_lengths(spec.get("schema"), limit)
        payload["response_format"] = {
            **response_format,
            "json_schema": {**spec, "schema": schema},
        }
    text_format = (payload.get("text") or {}).get("format")  # Responses API
    if isinstance(text_format, dict) and isinstance(text_format.get("schema"), dict):
        schema = cap_string_lengths(text_format["schema"], limit)
        payload["text"] = {
            **payload["text"],
            "format": {**text_format, "schema": schema},
        }
    tools = payload.get("tools")
    if isinstance(tools, list):
        payload["tools"] = [_cap_tool(tool, limit) for tool in tools]
    structured = extra.get("structured_outputs")
    if isinstance(structured, dict) and structured.get("json") is not None:
        extra["structured_outputs"] = {
            **structured,
            "json": cap_string_lengths(structured["json"], limit),
        }


def _cap_tool(tool: Any, limit: int) -> Any:
    if isinstance(tool, dict) and "parameters" in tool:  # Responses API: flat
        if not tool.get("strict"):
            return tool
        return {**tool, "parameters": cap_string_lengths(tool["parameters"], limit)}
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not function.get("strict"):
        return tool
    parameters = cap_string_lengths(function.get("parameters"), limit)
    return {**tool, "function": {**function, "parameters": parameters}}
