"""vLLM chat models."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal, Self

import httpx2
import openai
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import (
    convert_to_json_schema,
    convert_to_openai_tool,
)
from langchain_core.utils.pydantic import is_basemodel_subclass
from langchain_openai import ChatOpenAI
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.v1 import BaseModel as BaseModelV1
from pydantic.v1 import ValidationError as ValidationErrorV1

from langchain_vllm._json_client import (
    CHAT_KEYWORDS,
    AsyncJSONEndpoint,
    JSONEndpoint,
)
from langchain_vllm._markup import MarkupParser, split_markup, to_tool_call_chunks
from langchain_vllm._params import (
    OpenAIRanges,
    VLLMChatParams,
    check_openai_params,
    param_names,
    request_body,
    to_wire,
    validate_call_params,
)
from langchain_vllm._server_api import (
    DEFAULT_MAX_CONNECTIONS,
    LoopClient,
    RebuiltOnCopy,
    ServerLink,
    api_key_field,
    base_url_field,
    response_error,
    vllm_secret_ids,
)
from langchain_vllm._structured import (
    LEGACY_NAMES,
    StructuredOutputs,
    cap_string_lengths,
    check_json_schema,
)
from langchain_vllm.errors import (
    VLLMConnectionError,
    VLLMEmptyAnswerError,
    VLLMIncompleteStreamError,
)

_CHAT_PARAMS = frozenset(param_names(VLLMChatParams))
_STRUCTURED_OUTPUTS_SINCE = (0, 12)
"""vLLM versions before this read `guided_*` fields instead of `structured_outputs`."""


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


class ChatVLLM(RebuiltOnCopy, ChatOpenAI, VLLMChatParams):  # type: ignore[misc]
    r"""vLLM chat model, through vLLM's OpenAI-compatible server.

    Everything `ChatOpenAI` offers, plus vLLM's own sampling and template parameters
    as typed, validated fields, reasoning text, server-side token counts, and an
    async client that survives successive event loops.

    Setup:
        Install `langchain-vllm` and start a vLLM server (or use the one at
        `VLLM_API_BASE`):

        ```bash
        pip install -U langchain-vllm
        vllm serve HuggingFaceTB/SmolLM2-135M-Instruct
        export VLLM_API_BASE="http://localhost:8000/v1"  # the default
        export VLLM_API_KEY="..."  # only if the server was started with --api-key
        ```

    Key init args — completion params:
        model: str | None
            Served model name. Omitted: the one model the server serves, asked from
            `GET /v1/models` on first use.
        temperature: float | None
            Sampling temperature.
        max_tokens: int | None
            Max number of tokens to generate (sent as `max_tokens`).
        top_k, min_p, repetition_penalty, min_tokens, ...:
            vLLM's own parameters: see the README's table or `VLLMChatParams`.
        structured_outputs: dict | None
            A server-enforced output constraint (`choice`, `regex`, `json`, ...).

    Key init args — client params:
        base_url: str
            Default `VLLM_API_BASE`, else `http://localhost:8000/v1`.
        api_key: SecretStr
            Default `VLLM_API_KEY`, else a placeholder.
        timeout: float | None
            Timeout for requests.
        max_retries: int | None
            Max number of retries.
        max_connections: int
            Connection pool size of the async client.

    Instantiate:
        ```python
        from langchain_vllm import ChatVLLM

        chat = ChatVLLM(temperature=0, max_tokens=32)  # model discovered on first use
        ```

    Invoke:
        ```python
        messages = [
            ("system", "You translate English to Italian."),
            ("human", "I love programming."),
        ]
        chat.invoke(messages)
        ```

    Stream:
        ```python
        for chunk in chat.stream(messages):
            print(chunk.text, end="")
        ```

    Async:
        ```python
        await chat.ainvoke(messages)
        async for chunk in chat.astream(messages):
            ...
        await chat.abatch([messages, messages])
        ```

    vLLM parameters, per instance or per call:
        ```python
        chat = ChatVLLM(top_k=1, repetition_penalty=1.1)
        chat.invoke("Hello", min_tokens=4)
        chat.bind(structured_outputs={"choice": ["yes", "no"]}).invoke("Is it?")
        ```

    Tool calling:
        ```python
        from pydantic import BaseModel, Field


        class GetWeather(BaseModel):
            '''Get the current weather in a given location.'''

            location: str = Field(..., description="City, e.g. Paris")


        chat.bind_tools([GetWeather], tool_choice="GetWeather").invoke(
            "What is the weather in Paris?"
        ).tool_calls
        ```

    Structured output:
        ```python
        class Joke(BaseModel):
            setup: str
            punchline: str


        chat.with_structured_output(Joke).invoke("Tell me a joke about cats")
        # A small model may never end a free-text string: bound them all.
        ChatVLLM(max_json_string_length=200).with_structured_output(Joke)
        ```

    Reasoning (servers started with `--reasoning-parser`):
        ```python
        msg = chat.invoke("What is 2 + 2?", thinking_token_budget=64)
        msg.additional_kwargs["reasoning_content"]
        ```

    Agents (reasoning sent back, context window, servers without parsers):
        ```python
        agent = ChatVLLM(reasoning_round_trip="tool_calls", thinking_token_budget=256)
        agent.profile["max_input_tokens"]  # max_model_len, from /v1/models
        ChatVLLM(parse_think_tags=True, parse_tool_call_tags=True)  # no-parser server
        ```

    Token usage:
        ```python
        chat.invoke(messages).usage_metadata  # also on the last chunk of a stream
        chat.get_num_tokens_from_messages(messages)  # from the server's tokenizer
        ```

    Response metadata:
        ```python
        chat.invoke(messages).response_metadata
        # {'finish_reason': 'stop', 'model_name': 'smollm2-135m-instruct', ...}
        ```
    """

    model_name: str | None = Field(default=None, alias="model")  # type: ignore[assignment]
    """Served model name; None discovers the only served model on first use."""

    openai_api_key: SecretStr | None = api_key_field()  # type: ignore[assignment]
    """API key: `VLLM_API_KEY`, else a placeholder (vLLM needs none by default)."""

    openai_api_base: str | None = base_url_field()
    """Base URL of the server's OpenAI API: `VLLM_API_BASE`, else
    `http://localhost:8000/v1`."""

    stream_usage: bool | None = True
    """Include token usage in streams (vLLM supports it; on by default)."""

    max_connections: int = Field(default=DEFAULT_MAX_CONNECTIONS, gt=0)
    """Connection pool size of the async HTTP client (per event loop)."""

    reasoning_round_trip: Literal["never", "tool_calls", "always"] = "never"
    """Send earlier assistant messages' reasoning back to the server, as the
    `reasoning` field vLLM reads on incoming assistant messages (the chat template
    decides whether the model sees it): `"never"` (default), `"tool_calls"` (only
    for assistant turns that called tools, as agent loops with interleaved thinking
    need), or `"always"`."""

    parse_think_tags: bool = False
    """Split `<think>…</think>` out of the content on the client, into
    `additional_kwargs["reasoning_content"]` (for servers started without
    `--reasoning-parser`; a server-side parser's reasoning is left as is)."""

    think_tag_in_prompt: bool = False
    """With `parse_think_tags`: the chat template opens `<think>` in the prompt,
    so the generated text starts inside the reasoning (only `</think>` appears)."""

    parse_tool_call_tags: bool = False
    """Parse hermes-style `<tool_call>{"name": ..., "arguments": ...}</tool_call>`
    blocks of the content into tool calls on the client (for servers started
    without `--tool-call-parser`). Such a server refuses `tool_choice="auto"`, so
    with bound tools an unset or `"auto"` tool choice is sent as `"none"`: the
    template still shows the tools to the model, and the client parses the calls."""

    max_json_string_length: int | None = Field(default=None, gt=0)
    """Cap, in characters, on every free-text string the server generates under a
    JSON schema (`with_structured_output`, `response_format` JSON schemas,
    `structured_outputs={"json": ...}`, strict tools' arguments) whose schema gives
    no `maxLength`, `pattern` or `format`. Constrained decoding then closes each
    string by that length, so a small model that keeps writing inside a string
    still returns complete JSON instead of hitting `max_tokens`. None: no cap."""

    error_on_empty_reasoning_only: bool = False
    """Raise `VLLMEmptyAnswerError` instead of warning when the model used every
    token on reasoning (`finish_reason="length"`, no content, no tool call)."""

    _link: ServerLink = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _vllm_key_default(cls, values: Any) -> Any:
        """A key given as None (e.g. `load()` without the secret) means the default.

        Without this the openai client would fall back to `OPENAI_API_KEY`.
        """
        if isinstance(values, dict):
            for name in ("api_key", "openai_api_key"):
                if name in values and values[name] is None:
                    values = {k: v for k, v in values.items() if k != name}
        return values

    # Unique validator name: pydantic replaces (does not chain) a parent validator
    # with the same name.
    @model_validator(mode="after")
    def _link_vllm_server(self) -> Self:
        check_openai_params(
            {name: getattr(self, name, None) for name in param_names(OpenAIRanges)}
        )
        if self.use_responses_api is not True:
            _to_chat_completions(
                {name: getattr(self, name, None) for name in _RESPONSES_ONLY}
            )
        self._link = ServerLink(
            self.root_client,
            self.root_async_client,
            max_connections=self.max_connections,
            custom_async_http_client=self.http_async_client is not None,
        )
        if self.profile is None:
            self.profile = ServedModelProfile(  # type: ignore[assignment]
                self._link, self.model_name
            )
        if self.root_client is not None:
            # Decoded JSON in, JSON out: no SDK models built and dumped again.
            self.client = JSONEndpoint(
                self.root_client, "/chat/completions", CHAT_KEYWORDS
            )
        # Async calls use the running loop's client, picked per call.
        self.root_async_client = LoopClient(self._link)
        self.async_client = AsyncJSONEndpoint(
            LoopClient(self._link),  # type: ignore[arg-type]
            "/chat/completions",
            CHAT_KEYWORDS,
        )
        return self

    def _constructor_values(self) -> dict[str, Any]:
        values = super()._constructor_values()
        if isinstance(values.get("profile"), ServedModelProfile):
            del values["profile"]  # fetched again, lazily, by the copy
        return values

    # -- LangChain integration details ------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "vllm-chat"

    @property
    def lc_secrets(self) -> dict[str, str]:
        """The key is a secret, read back from `VLLM_API_KEY`."""
        return {"openai_api_key": "VLLM_API_KEY"}

    def to_json(self) -> Any:
        """Serialize; the key is a secret read back from `VLLM_API_KEY`."""
        return vllm_secret_ids(super().to_json())

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        """The LangChain namespace: `["langchain_vllm", "chat_models"]`."""
        return ["langchain_vllm", "chat_models"]

    def _get_ls_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "vllm"
        if not params.get("ls_model_name"):
            params["ls_model_name"] = self.model_name or "vllm-served-model"
        return params

    def _resolve_model_profile(self) -> Any:
        return None

    def __call__(self, messages: LanguageModelInput, **kwargs: Any) -> BaseMessage:
        """Old call style of the LangChain docs; use `invoke` instead."""
        warnings.warn(
            "Calling ChatVLLM(...) directly is deprecated; "
            "use `chat.invoke(messages)`.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.invoke(messages, **kwargs)

    # -- request building ----------------------------------------------------------
    @property
    def _default_params(self) -> dict[str, Any]:
        params = super()._default_params
        if "max_completion_tokens" in params:
            params["max_tokens"] = params.pop("max_completion_tokens")
        body = {**request_body(self, VLLMChatParams), **(self.extra_body or {})}
        if body:
            params["extra_body"] = body
        return params

    def _get_request_payload(
        self,
        input_: LanguageModelInput,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> dict:
        vllm_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _CHAT_PARAMS}
        legacy = {k: kwargs.pop(k) for k in list(kwargs) if k in LEGACY_NAMES}
        call_extra = kwargs.pop("extra_body", None) or {}
        checked = validate_call_params(VLLMChatParams, vllm_kwargs)
        check_openai_params(kwargs)
        messages = self._convert_input(input_).to_messages()
        if not messages:
            msg = (
                "ChatVLLM got an empty message list: pass at least one message "
                "(vLLM refuses an empty conversation with HTTP 400)."
            )
            raise ValueError(msg)
        if legacy:
            if "structured_outputs" in checked:
                msg = (
                    "Pass either `structured_outputs` or the older `guided_*` "
                    f"parameters ({', '.join(legacy)}), not both."
                )
                raise ValueError(msg)
            checked["structured_outputs"] = StructuredOutputs.from_legacy(legacy)
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if not self._use_responses_api(payload):
            _to_chat_completions(payload)
            self._send_back_reasoning(messages, payload["messages"])
        if "max_completion_tokens" in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        extra = {
            **(payload.pop("extra_body", None) or {}),
            **{name: to_wire(value) for name, value in checked.items()},
            **call_extra,
        }
        structured = extra.get("structured_outputs")
        if structured is not None and self._server_is_legacy():
            extra.pop("structured_outputs")
            extra.update(StructuredOutputs.model_validate(structured).to_legacy_wire())
        if self.max_json_string_length:
            _cap_strings(payload, extra, self.max_json_string_length)
        _check_merged(payload, extra)
        if extra:
            payload["extra_body"] = extra
        if (
            self.parse_tool_call_tags
            and payload.get("tools")
            and payload.get("tool_choice") in (None, "auto")
        ):
            payload["tool_choice"] = "none"
        if not payload.get("model"):
            payload["model"] = self._link.resolve_model(self.model_name)
        return payload

    def _send_back_reasoning(
        self, messages: list[BaseMessage], wire: list[dict[str, Any]]
    ) -> None:
        """Add assistant messages' reasoning to their wire form, per the policy."""
        if self.reasoning_round_trip == "never":
            return
        for message, sent in zip(messages, wire, strict=True):
            if not isinstance(message, AIMessage) or sent.get("role") != "assistant":
                continue
            if self.reasoning_round_trip == "tool_calls" and not message.tool_calls:
                continue
            reasoning = _reasoning_of(message)
            if reasoning:
                sent["reasoning"] = reasoning

    def _server_is_legacy(self) -> bool:
        return _version_tuple(self._link.version()) < _STRUCTURED_OUTPUTS_SINCE

    async def _aprepare(self, kwargs: dict[str, Any]) -> None:
        """Fetch what a request needs from the server without blocking the loop.

        Discovery and the version check are cached, so `_get_request_payload` then
        finds them ready; an async call never makes a blocking request.
        """
        if not self.model_name and not kwargs.get("model"):
            await self._link.aresolve_model(None)
        if self._wants_structured_outputs(kwargs):
            await self._link.aversion()

    def _wants_structured_outputs(self, kwargs: dict[str, Any]) -> bool:
        return (
            self.structured_outputs is not None
            or kwargs.get("structured_outputs") is not None
            or any(kwargs.get(name) is not None for name in LEGACY_NAMES)
            or "structured_outputs" in (kwargs.get("extra_body") or {})
            or "structured_outputs" in (self.extra_body or {})
        )

    def _use_responses_api(self, payload: dict) -> bool:
        # vLLM is driven through Chat Completions; the parent would switch to
        # `/v1/responses` for some model names and fields. Only an explicit
        # `use_responses_api=True` does that here.
        return self.use_responses_api is True

    # -- tools and structured output ------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: dict | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; their schemas are strict unless `strict=False`.

        With `strict`, vLLM constrains the generated arguments to each tool's JSON
        schema, so even a small model returns arguments that validate. A dict tool
        that says `"strict": false` itself keeps it.

        Args:
            tools: Tools as pydantic models, functions, `BaseTool`s or OpenAI dicts.
            tool_choice: `"auto"`, `"none"`, `"required"`/`"any"`/`True`, a tool
                name, or an OpenAI tool-choice dict.
            strict: Constrain arguments to the schemas (default True).
            parallel_tool_calls: False asks for at most one call per turn.
            **kwargs: Passed to `bind`.

        Raises:
            ValueError: a tool schema is invalid, or `tool_choice` names no tool.
        """
        if strict is None:
            strict = not any(_says_not_strict(tool) for tool in tools)
        for tool in tools:
            _check_tool_schema(tool)
        if isinstance(tool_choice, str) and tool_choice not in _TOOL_CHOICE_WORDS:
            names = [_tool_name(tool) for tool in tools]
            if tool_choice not in names:
                msg = (
                    f"tool_choice={tool_choice!r} names no bound tool; tools: "
                    f"{', '.join(names) or 'none'}. Use a tool name or one of "
                    f"{', '.join(sorted(_TOOL_CHOICE_WORDS))}."
                )
                raise ValueError(msg)
        return super().bind_tools(
            tools,
            tool_choice=tool_choice,
            strict=strict,
            parallel_tool_calls=parallel_tool_calls,
            **kwargs,
        )

    def with_structured_output(
        self,
        schema: dict | type | None = None,
        *,
        method: Literal["function_calling", "json_mode", "json_schema"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict | BaseModel]:
        """Model wrapper whose output follows `schema`, enforced by the server.

        Args:
            schema: A pydantic class, TypedDict, JSON schema or OpenAI tool schema.
            method: `"json_schema"` (default: `response_format` JSON schema, which
                vLLM enforces during decoding), `"function_calling"` (a strict
                tool call, also enforced), or `"json_mode"` (any JSON object; with
                a schema, vLLM enforces the schema too).
            include_raw: Also return the raw message and any parsing error.
            strict: Passed on for `function_calling`/`json_schema` (default True).
            **kwargs: Passed to the parent implementation.
        """
        if method == "json_mode" and schema is not None:
            # vLLM can enforce the schema itself: better than JSON of any shape.
            method = "json_schema"
        if strict is None and method != "json_mode":
            strict = True
        if method == "json_schema" and _is_model_class(schema):
            # Pydantic v1 and v2 classes alike: the server enforces the class's
            # JSON schema (sent as a dict, so `max_json_string_length` applies),
            # and the JSON answer is validated into the class here.
            as_dict = super().with_structured_output(
                convert_to_json_schema(schema),  # type: ignore[arg-type]
                method="json_schema",
                include_raw=include_raw,
                strict=strict,
                **kwargs,
            )
            to_model = RunnableLambda(_ModelValidator(schema, include_raw))  # type: ignore[arg-type]
            return (as_dict | to_model).with_types(output_type=schema)  # type: ignore[arg-type]
        return super().with_structured_output(
            schema, method=method, include_raw=include_raw, strict=strict, **kwargs
        )

    # -- responses -----------------------------------------------------------------
    def _create_chat_result(
        self,
        response: dict | openai.BaseModel,
        generation_info: dict | None = None,
    ) -> ChatResult:
        data = (
            # `parsed` holds the user's own model (structured output): not ours
            # to dump; the parent copies it over from the typed response.
            response.model_dump(
                exclude={"choices": {"__all__": {"message": {"parsed"}}}},
                warnings=False,
            )
            if isinstance(response, openai.BaseModel)
            else response
        )
        problem = _completion_problem(data)
        if problem:
            raise response_error(self._completions_url, problem, "POST")
        # The typed response goes up: the parent copies `parsed` from it.
        result = super()._create_chat_result(response, generation_info)
        for generation, choice in zip(
            result.generations, data.get("choices") or [], strict=False
        ):
            message = choice.get("message") or {}
            reasoning = message.get("reasoning") or message.get("reasoning_content")
            if reasoning:
                generation.message.additional_kwargs["reasoning_content"] = reasoning
            metadata = generation.message.response_metadata
            metadata["model_provider"] = "vllm"
            # vLLM-only answer fields (prompt_logprobs=, return_token_ids=, ...).
            for name in _VLLM_RESPONSE_FIELDS:
                if data.get(name) is not None:
                    metadata[name] = data[name]
            for name in _VLLM_CHOICE_FIELDS:
                if choice.get(name) is not None:
                    metadata[name] = choice[name]
        if result.llm_output is not None:
            result.llm_output["model_provider"] = "vllm"
        if self.parse_think_tags or self.parse_tool_call_tags:
            result.generations = [self._split_markup(g) for g in result.generations]
        for generation in result.generations:
            info = generation.generation_info or {}
            message = generation.message
            if isinstance(message, AIMessage):
                seen = _AnswerSeen()
                seen.add_message(message, info.get("finish_reason"))
                self._check_answer(seen)
        return result

    def _split_markup(self, generation: ChatGeneration) -> ChatGeneration:
        """Client-side reasoning and tool-call parsing of one whole answer."""
        message = generation.message
        if not isinstance(message, AIMessage) or not isinstance(message.content, str):
            return generation
        think = (
            self.parse_think_tags
            and "reasoning_content" not in message.additional_kwargs
        )
        tools = self.parse_tool_call_tags and not message.tool_calls
        content, reasoning, calls, invalid = split_markup(
            message.content,
            think=think,
            tool_calls=tools,
            starts_inside=self.think_tag_in_prompt,
        )
        update: dict[str, Any] = {"content": content}
        if reasoning:
            update["additional_kwargs"] = {
                **message.additional_kwargs,
                "reasoning_content": reasoning,
            }
        if calls or invalid:
            update["tool_calls"] = [*message.tool_calls, *calls]
            update["invalid_tool_calls"] = [*message.invalid_tool_calls, *invalid]
        # A new generation: its `text` is computed at construction.
        return ChatGeneration(
            message=message.model_copy(update=update),
            generation_info=generation.generation_info,
        )

    def _markup_parser(self) -> MarkupParser | None:
        if not (self.parse_think_tags or self.parse_tool_call_tags):
            return None
        return MarkupParser(
            think=self.parse_think_tags,
            tool_calls=self.parse_tool_call_tags,
            starts_inside=self.think_tag_in_prompt,
        )

    def _check_answer(self, seen: _AnswerSeen) -> None:
        """Warn about answers cut off at the token limit that look like none.

        Every token spent on reasoning (no answer; an error with
        `error_on_empty_reasoning_only`), or the limit hit inside a tool call
        (vLLM then returns no tool call, and function-calling structured output
        gives None).
        """
        if seen.finish_reason != "length":
            return
        if not seen.answered and seen.reasoning_chars:
            msg = (
                "vLLM stopped at the token limit (finish_reason='length') while the "
                f"model was still reasoning: no answer, {seen.reasoning_chars} "
                "characters of reasoning. Raise `max_tokens`, or cap the reasoning "
                "below it with `thinking_token_budget`."
            )
            if self.error_on_empty_reasoning_only:
                raise VLLMEmptyAnswerError(msg)
            warnings.warn(msg, UserWarning, stacklevel=4)
        elif not seen.tool_calls and seen.head.lstrip().startswith(_TOOL_CALL_OPENERS):
            msg = (
                "vLLM stopped at the token limit (finish_reason='length') in the "
                "middle of a tool call: the call is incomplete, so the message has "
                "none (function-calling structured output returns None). Raise "
                "`max_tokens`; for a model that keeps writing inside a string "
                "argument, bound the strings with `max_json_string_length`."
            )
            warnings.warn(msg, UserWarning, stacklevel=4)

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict,
        default_chunk_class: type,
        base_generation_info: dict | None,
    ) -> ChatGenerationChunk | None:
        problem = _chunk_problem(chunk)
        if problem:
            raise response_error(self._completions_url, problem, "POST")
        generation_chunk = super()._convert_chunk_to_generation_chunk(
            chunk, default_chunk_class, base_generation_info
        )
        if generation_chunk is None:
            return None
        message = generation_chunk.message
        if isinstance(message, AIMessageChunk):
            choices = chunk.get("choices") or []
            delta = (choices[0].get("delta") or {}) if choices else {}
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if reasoning:
                message.additional_kwargs["reasoning_content"] = reasoning
            message.response_metadata["model_provider"] = "vllm"
        return generation_chunk

    # -- calls -----------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        try:
            return super()._generate(messages, stop, run_manager, **kwargs)
        except openai.APIError as e:
            raise self._link.translate(e) from e
        except json.JSONDecodeError as e:
            raise self._not_json(e) from e

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        try:
            await self._aprepare(kwargs)
            return await super()._agenerate(messages, stop, run_manager, **kwargs)
        except openai.APIError as e:
            raise await self._link.atranslate(e) from e
        except json.JSONDecodeError as e:
            raise self._not_json(e) from e

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        seen = _AnswerSeen()
        parser = self._markup_parser()
        # With a parser, token callbacks must see the parsed chunks: made here.
        inner_manager = None if parser else run_manager
        try:
            for raw in super()._stream(messages, stop, inner_manager, **kwargs):
                chunk = _split_chunk(parser, raw) if parser else raw
                if parser and run_manager:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                seen.add(chunk)
                yield chunk
        except openai.APIError as e:
            raise self._mid_stream(self._link.translate(e), seen.received) from e
        except json.JSONDecodeError as e:
            raise self._not_json(e) from e
        except _PARSE_ERRORS as e:
            if not seen.received:  # before any answer: not a response problem
                raise
            raise response_error(self._completions_url, repr(e), "POST") from e
        if seen.finish_reason is None:
            raise self._incomplete_stream()
        self._check_answer(seen)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        seen = _AnswerSeen()
        parser = self._markup_parser()
        inner_manager = None if parser else run_manager
        try:
            await self._aprepare(kwargs)
            async for raw in super()._astream(messages, stop, inner_manager, **kwargs):
                chunk = _split_chunk(parser, raw) if parser else raw
                if parser and run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                seen.add(chunk)
                yield chunk
        except openai.APIError as e:
            error = await self._link.atranslate(e)
            raise self._mid_stream(error, seen.received) from e
        except json.JSONDecodeError as e:
            raise self._not_json(e) from e
        except _PARSE_ERRORS as e:
            if not seen.received:  # before any answer: not a response problem
                raise
            raise response_error(self._completions_url, repr(e), "POST") from e
        if seen.finish_reason is None:
            raise self._incomplete_stream()
        self._check_answer(seen)

    @property
    def _completions_url(self) -> str:
        return f"{self._link.base_url}/chat/completions"

    def _mid_stream(self, error: BaseException, received: bool) -> BaseException:
        """A connection error after the first chunk: say the answer was cut off."""
        if not received or not isinstance(error, VLLMConnectionError):
            return error
        cause = error.__cause__ or (error.args[0] if error.args else "")
        return VLLMConnectionError(
            message=(
                f"The connection to the vLLM server at {self._link.base_url} broke "
                f"in the middle of the answer ({cause}): the server stopped or the "
                "network dropped. The partial text is not a complete answer."
            ),
            request=error.request,
        )

    def _not_json(self, error: json.JSONDecodeError) -> Exception:
        return response_error(self._completions_url, f"not JSON: {error}", "POST")

    def _incomplete_stream(self) -> VLLMIncompleteStreamError:
        url = self._completions_url
        return VLLMIncompleteStreamError(
            f"The stream from {url} ended before the server finished the answer "
            "(no finish_reason): the connection dropped or the server stopped. "
            "The partial text is not a complete answer.",
            httpx2.Request("POST", url),
            body=None,
        )

    # -- server-side tokenizer -----------------------------------------------------
    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of `text` from the served model's tokenizer (`/tokenize`)."""
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        body = {
            "model": self._link.resolve_model(self.model_name),
            "prompt": text,
            "add_special_tokens": False,
        }
        return list(self._link.tokenize(body)["tokens"])

    def get_num_tokens(self, text: str) -> int:
        """Number of tokens in `text`, from the served model's tokenizer."""
        return len(self.get_token_ids(text))

    def get_num_tokens_from_messages(
        self,
        messages: Sequence[BaseMessage],
        tools: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> int:
        """Prompt tokens the server counts for these messages (and tools).

        The server applies its chat template (with the generation prompt), so the
        count equals `usage.prompt_tokens` of the same request.
        """
        return int(self._link.tokenize(self._tokenize_body(messages, tools))["count"])

    def get_prompt_text(
        self, messages: LanguageModelInput, tools: Sequence[Any] | None = None
    ) -> str:
        """The exact prompt text the server builds from `messages`.

        The server's chat template is applied (tools included): what the model
        sees, for debugging prompts.
        """
        tokens = self._link.tokenize(self._tokenize_body(messages, tools))["tokens"]
        body = {"model": self._link.resolve_model(self.model_name), "tokens": tokens}
        return str(self._link.post("/detokenize", body, expect=("prompt",))["prompt"])

    def _tokenize_body(
        self, messages: LanguageModelInput, tools: Sequence[Any] | None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if tools:
            kwargs["tools"] = self.bind_tools(tools).kwargs["tools"]  # type: ignore[attr-defined]
        payload = self._get_request_payload(messages, **kwargs)
        body: dict[str, Any] = {
            "model": payload["model"],
            "messages": payload["messages"],
        }
        if payload.get("tools"):
            body["tools"] = payload["tools"]
        extra = payload.get("extra_body") or {}
        for name in (
            "chat_template",
            "chat_template_kwargs",
            "add_generation_prompt",
            "continue_final_message",
            "add_special_tokens",
            "documents",
        ):
            if name in extra:
                body[name] = extra[name]
        return body


_VLLM_RESPONSE_FIELDS = ("prompt_logprobs", "prompt_token_ids", "kv_transfer_params")
"""Top-level fields of a vLLM chat answer that OpenAI's has not."""
_VLLM_CHOICE_FIELDS = ("stop_reason", "token_ids")
"""Per-choice fields of a vLLM chat answer that OpenAI's has not."""

_TOOL_CHOICE_WORDS = frozenset({"auto", "none", "required", "any"})


_RESPONSES_ONLY = (
    "reasoning",
    "include",
    "truncation",
    "context_management",
    "previous_response_id",
)
"""Parameters that exist only in the Responses API (the parent's fields)."""


def _to_chat_completions(payload: dict[str, Any]) -> None:
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
    for name in _RESPONSES_ONLY[1:]:
        if payload.get(name) is not None:
            msg = (
                f"`{name}` is a Responses API parameter, and ChatVLLM uses vLLM's "
                "Chat Completions endpoint. Remove it, or set "
                "`use_responses_api=True` to use the server's /v1/responses."
            )
            raise ValueError(msg)


def _is_model_class(schema: Any) -> bool:
    return isinstance(schema, type) and is_basemodel_subclass(schema)


class _ModelValidator:
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
        if not self.include_raw:
            return self._validate(value)
        if value.get("parsing_error") is not None or value.get("parsed") is None:
            return value
        try:
            return {**value, "parsed": self._validate(value["parsed"])}
        except (ValidationError, ValidationErrorV1) as e:
            return {**value, "parsed": None, "parsing_error": e}


def _cap_strings(payload: dict[str, Any], extra: dict[str, Any], limit: int) -> None:
    """Apply `max_json_string_length` to every schema the server will enforce."""
    response_format = payload.get("response_format")
    if isinstance(response_format, dict) and isinstance(
        response_format.get("json_schema"), dict
    ):
        spec = response_format["json_schema"]
        payload["response_format"] = {
            **response_format,
            "json_schema": {
                **spec,
                "schema": cap_string_lengths(spec.get("schema"), limit),
            },
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
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not function.get("strict"):
        return tool
    parameters = cap_string_lengths(function.get("parameters"), limit)
    return {**tool, "function": {**function, "parameters": parameters}}


def _tool_name(tool: Any) -> str:
    if isinstance(tool, dict) and "function" in tool:
        return str(tool["function"].get("name"))
    if isinstance(tool, dict):
        return str(tool.get("name") or tool.get("title"))
    return str(convert_to_openai_tool(tool)["function"]["name"])


def _says_not_strict(tool: Any) -> bool:
    return (
        isinstance(tool, dict)
        and isinstance(tool.get("function"), dict)
        and tool["function"].get("strict") is False
    )


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


_PARSE_ERRORS = (AttributeError, KeyError, IndexError, TypeError)


def _completion_problem(data: Any) -> str | None:
    """What is wrong with a chat completion body, or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {data!r:.100}"
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return f"no choices in {data!r:.100}"
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            return f"a choice without a message: {choice!r:.100}"
        content = choice["message"].get("content")
        if content is not None and not isinstance(content, (str, list)):
            return f"message content is {type(content).__name__}, not text"
    if data.get("usage") is not None and not isinstance(data["usage"], dict):
        return f"usage is {data['usage']!r:.60}"
    return None


def _chunk_problem(chunk: Any) -> str | None:
    """What is wrong with a stream chunk, or None (usage-only chunks are fine)."""
    if not isinstance(chunk, dict):
        return f"a stream event that is not a JSON object: {chunk!r:.100}"
    choices = chunk.get("choices")
    if choices is None or choices == []:
        return None
    if not isinstance(choices, list):
        return f"choices is {choices!r:.60}"
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
            return f"a stream choice without a delta: {choice!r:.100}"
    return None


def _check_merged(payload: dict[str, Any], extra: dict[str, Any]) -> None:
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


def _split_chunk(
    parser: MarkupParser, generation: ChatGenerationChunk
) -> ChatGenerationChunk:
    """Client-side reasoning and tool-call parsing of one stream chunk."""
    message = generation.message
    if not isinstance(message, AIMessageChunk) or not isinstance(message.content, str):
        return generation
    index = parser.calls_emitted
    content, reasoning, calls = parser.feed(message.content)
    if (generation.generation_info or {}).get("finish_reason"):
        rest, more_reasoning, more_calls = parser.flush()
        content, reasoning = content + rest, reasoning + more_reasoning
        calls = calls + more_calls
    if content == message.content and not reasoning and not calls:
        return generation
    additional = dict(message.additional_kwargs)
    if reasoning:
        additional["reasoning_content"] = (
            additional.get("reasoning_content") or ""
        ) + reasoning
    parsed = AIMessageChunk(
        content=content,
        additional_kwargs=additional,
        response_metadata=message.response_metadata,
        tool_call_chunks=[
            *message.tool_call_chunks,
            *to_tool_call_chunks(calls, index),
        ],
        usage_metadata=message.usage_metadata,
        id=message.id,
    )
    return ChatGenerationChunk(
        message=parsed, generation_info=generation.generation_info
    )


_TOOL_CALL_OPENERS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>")
"""How tool-call markup starts (hermes, mistral, llama 3) when a parser failed."""


class _AnswerSeen:
    """What an answer (or a stream so far) delivered.

    Whether anything came, the finish reason (None at the end of a stream: it is
    incomplete), and what `_check_answer` needs.
    """

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.answered = False
        self.tool_calls = False
        self.reasoning_chars = 0
        self.head = ""
        self.received = False

    def add_message(self, message: AIMessage, finish_reason: str | None) -> None:
        self.finish_reason = finish_reason or self.finish_reason
        calls = bool(
            message.tool_calls
            or (isinstance(message, AIMessageChunk) and message.tool_call_chunks)
        )
        self.tool_calls = self.tool_calls or calls
        self.answered = self.answered or calls or bool(message.content)
        if len(self.head) < 32 and isinstance(message.content, str):
            self.head += message.content
        reasoning = message.additional_kwargs.get("reasoning_content")
        self.reasoning_chars += len(reasoning or "")

    def add(self, chunk: ChatGenerationChunk) -> None:
        self.received = True
        finish_reason = (chunk.generation_info or {}).get("finish_reason")
        if isinstance(chunk.message, AIMessageChunk):
            self.add_message(chunk.message, finish_reason)
        else:
            self.finish_reason = finish_reason or self.finish_reason


def _reasoning_of(message: AIMessage) -> str:
    """An assistant message's reasoning text (additional_kwargs or content blocks)."""
    reasoning = message.additional_kwargs.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        return reasoning
    if isinstance(message.content, list):
        return "".join(
            str(block.get("reasoning") or "")
            for block in message.content
            if isinstance(block, dict) and block.get("type") == "reasoning"
        )
    return ""


class ServedModelProfile(dict[str, Any]):
    """ChatVLLM's model profile: `max_input_tokens` from the server, fetched lazily.

    LangChain reads `chat.profile` (a dict) for the context window, e.g. middleware
    that summarizes at a fraction of it. vLLM's `/v1/models` card says
    `max_model_len`; it is asked on the first read of the profile (never at
    construction), once, through the model's own server link.
    """

    def __init__(self, link: ServerLink, model: str | None) -> None:
        super().__init__()
        self._link = link
        self._model = model
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        model = self._link.resolve_model(self._model)
        card = self._link.model_card(model) or {}
        limit = card.get("max_model_len")
        if isinstance(limit, int) and not isinstance(limit, bool):
            super().__setitem__("max_input_tokens", limit)
        super().update(tool_calling=True, structured_output=True)
        self._loaded = True

    def __bool__(self) -> bool:  # a profile exists, even before it is fetched
        return True

    def __getitem__(self, key: str) -> Any:
        self._load()
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        """As for dict, after fetching the profile."""
        self._load()
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._load()
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._load()
        return super().__iter__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()

    def keys(self) -> Any:
        """As for dict, after fetching the profile."""
        self._load()
        return super().keys()

    def items(self) -> Any:
        """As for dict, after fetching the profile."""
        self._load()
        return super().items()

    def values(self) -> Any:
        """As for dict, after fetching the profile."""
        self._load()
        return super().values()

    def copy(self) -> dict[str, Any]:
        """As for dict, after fetching the profile."""
        self._load()
        return dict(super().items())

    def __eq__(self, other: object) -> bool:
        self._load()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            super().__repr__() if self._loaded else "ServedModelProfile(<not fetched>)"
        )
