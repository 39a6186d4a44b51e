"""ChatOpenAI's invocation parameters, with its defaults built once per call."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_openai.chat_models.base import BaseChatOpenAI


class InvocationParams:
    """ChatOpenAI's `_get_invocation_params`, with `_default_params` made once.

    LangChain calls it twice per call (callbacks, tracing); each time ChatOpenAI
    and `BaseChatModel.dict()` built the same defaults twice, under a
    warnings-catching context. The result is the parents' exactly (same keys, same
    order, MCP tool credentials redacted), which `tests/unit_tests/test_chat_models
    .py` compares; a subclass that overrides `dict`, `asdict` or
    `_identifying_params` gets the parents' own method.
    """

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        cls: Any = type(self)
        if (
            cls.dict is not BaseChatModel.dict
            or cls.asdict is not BaseChatModel.asdict
            or cls._identifying_params is not BaseChatOpenAI._identifying_params
        ):
            return super()._get_invocation_params(stop=stop, **kwargs)  # type: ignore[misc,no-any-return]
        model = self.model_name  # type: ignore[attr-defined]
        defaults = self._default_params  # type: ignore[attr-defined]
        params = {
            "model": model,
            "model_name": model,
            **defaults,
            "_type": self._llm_type,  # type: ignore[attr-defined]
            "stop": stop,
            **defaults,
            **kwargs,
        }
        if (tools := params.get("tools")) and isinstance(tools, list):
            params["tools"] = [redacted_mcp(tool) for tool in tools]
        return params

    def _get_ls_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> LangSmithParams:
        """ChatOpenAI's tracing parameters, read from the fields and the call.

        What ChatOpenAI reads from the invocation parameters (model, temperature,
        max tokens, stop) without building them a third time per call.
        """
        if (
            type(self)._get_invocation_params
            is not InvocationParams._get_invocation_params
        ):
            return super()._get_ls_params(stop=stop, **kwargs)  # type: ignore[misc,no-any-return]
        me: Any = self
        params = LangSmithParams(
            ls_provider="openai",
            ls_model_name=kwargs.get("model", me.model_name),
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", me.temperature),
        )
        if max_tokens := kwargs.get("max_tokens", me.max_tokens) or kwargs.get(
            "max_completion_tokens", me.max_tokens
        ):
            params["ls_max_tokens"] = max_tokens
        if ls_stop := stop or me.stop:
            params["ls_stop"] = ls_stop
        return params


def redacted_mcp(tool: Any) -> Any:
    """A built-in remote MCP tool without its credentials (as ChatOpenAI does)."""
    if isinstance(tool, dict) and tool.get("type") == "mcp":
        hidden = {k: "**REDACTED**" for k in ("headers", "authorization") if k in tool}
        return {**tool, **hidden}
    return tool
