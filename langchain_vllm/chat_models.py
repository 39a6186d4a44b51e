"""vLLM chat models."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal, Self

import openai
from langchain_core.language_models import (
    BaseChatModel,
    LangSmithParams,
    LanguageModelInput,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import BaseModel, Field, field_validator, model_validator

from langchain_vllm import _seams as seams
from langchain_vllm._chat_answer import (
    add_chunk_reasoning,
    check_answer,
    chunk_problem,
    markup_parser,
    read_chat_result,
)
from langchain_vllm._chat_request import (
    CHAT_NAMES,
    OPENAI_RANGED,
    RESPONSES_ONLY,
    apply_thinking,
    build_payload,
    reasoning_effort_of,
    to_chat_completions,
    tokenize_body,
)
from langchain_vllm._chat_stream import ChatStreamState
from langchain_vllm._client import VLLMClient
from langchain_vllm._inert import may_hold_specials
from langchain_vllm._json_client import CHAT_KEYWORDS
from langchain_vllm._markup import Markup
from langchain_vllm._plain_chunks import plain_chunk
from langchain_vllm._profile import ServedModelProfile
from langchain_vllm._responses import (
    astream_responses,
    check_responses_params,
    read_responses,
    stream_responses,
)
from langchain_vllm._tokens import StreamState
from langchain_vllm._tools import (
    bind_vllm_tools,
    check_result_tool_choice,
    forced_tool,
    redacted_mcp,
    structured_runnable,
    tool_choice_error,
)
from langchain_vllm._versions import needs_version
from langchain_vllm.params import VLLMChatParams, check_openai_params, request_body

__all__ = ["ChatVLLM"]


class ChatVLLM(VLLMClient, ChatOpenAI, VLLMChatParams):  # type: ignore[misc]
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
            vLLM's own parameters: see docs/parameters.md or `VLLMChatParams`.
        structured_outputs: dict | None
            A server-enforced output constraint (`choice`, `regex`, `json`, ...).

    Key init args — client params:
        base_url: str
            Default `VLLM_API_BASE`, else `http://localhost:8000/v1`.
        api_key: SecretStr
            Default `VLLM_API_KEY`, else a placeholder.
        timeout, max_retries, max_connections (async pool size):

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
        await chat.aget_profile()  # in a running loop, `profile` makes no request
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
        ChatVLLM(max_json_string_length=200)  # bounded strings: JSON always closes
        ```

    Reasoning and agents:
        ```python
        msg = chat.invoke("What is 2 + 2?", thinking_token_budget=64)
        msg.additional_kwargs["reasoning_content"]  # --reasoning-parser servers
        agent = ChatVLLM(reasoning_round_trip="tool_calls", thinking=False)
        agent.profile["max_input_tokens"]  # max_model_len, from /v1/models
        ```

    LoRA adapters, token counts:
        ```python
        chat.list_models()  # ServedModel(name, parent, max_model_len, root), ...
        chat.load_lora_adapter("pineapple", "/models/pineapple-lora")
        chat.invoke(messages, model="pineapple").usage_metadata
        chat.get_num_tokens_from_messages(messages)  # the server's tokenizer
        ```
    """

    model_name: str | None = Field(default=None, alias="model")  # type: ignore[assignment]
    """Served model name; None discovers the only served model on first use."""

    stream_usage: bool | None = True
    """Include token usage in streams (vLLM supports it; on by default)."""

    reasoning_round_trip: Literal["never", "tool_calls", "always"] = "never"
    """Send earlier assistant turns' reasoning back (vLLM's `reasoning` field):
    never, only on turns that called tools (agent loops), or always."""

    parse_think_tags: bool = False
    """Split `<think>…</think>` out of the content on the client (no parser)."""

    think_tag_in_prompt: bool = False
    """With `parse_think_tags`: the chat template opens `<think>` in the prompt."""

    parse_tool_call_tags: bool = False
    """Parse hermes-style `<tool_call>` blocks into tool calls on the client (servers
    without `--tool-call-parser`; an "auto" tool choice is then sent as "none")."""

    max_json_string_length: int | None = Field(default=None, gt=0)
    """Bound every free-text string of the JSON schemas the server enforces
    (`maxLength`), so enforced JSON always closes before `max_tokens`."""

    merge_system_messages: bool = True
    """Send several or later system messages as one, first (texts joined by a blank
    line, in order): Qwen3-family chat templates refuse them with HTTP 400. False
    sends them where they are. Chat Completions only."""

    error_on_empty_reasoning_only: bool = False
    """Raise `VLLMEmptyAnswerError` instead of warning when every token went to
    reasoning."""

    use_responses_api: bool | None = False
    """True: the server's `/v1/responses`; False (or None): Chat Completions (never
    chosen from the model name, as ChatOpenAI does)."""

    session_from_thread: bool = False
    """Send the thread's id (`configurable.thread_id`) as `session_id` (and
    `X-Session-ID`) when none is set: vllm-router then keeps it on one replica."""

    inert_special_tokens: bool = True
    """Make the served model's special-token strings in user, tool and function
    messages (and `documents`) ordinary text: outside text then opens no chat turn
    (docs/security.md). Per call: `inert_special_tokens=False`."""

    _vllm_params: ClassVar[type[BaseModel]] = VLLMChatParams
    _path: ClassVar[str] = "/chat/completions"
    _kind: ClassVar[str] = "vllm-chat"
    _answer_errors: ClassVar[tuple[type[Exception], ...]] = (json.JSONDecodeError,)

    @field_validator("use_responses_api", mode="before")
    @classmethod
    def _chat_completions_unless_asked(cls, value: Any) -> Any:
        return False if value is None else value

    # Unique validator name: pydantic replaces (does not chain) a parent validator
    # with the same name.
    @model_validator(mode="after")
    def _link_vllm_server(self) -> Self:
        check_instance(self)
        self.client, self.async_client = self._connect(
            self.root_client, self.root_async_client, CHAT_KEYWORDS
        )
        if self.profile is None:
            self.profile = ServedModelProfile(self._link, self.model_name)  # type: ignore[assignment]
        self.root_async_client = self.async_client._client
        return self

    def __call__(self, messages: LanguageModelInput, **kwargs: Any) -> BaseMessage:
        """Old call style of the LangChain docs; use `invoke` instead."""
        msg = "Calling ChatVLLM(...) directly is deprecated; use `chat.invoke(...)`."
        warnings.warn(msg, DeprecationWarning, stacklevel=2)
        return self.invoke(messages, **kwargs)

    # -- what LangChain asks before a call ---------------------------------------------
    def _resolve_model_profile(self) -> Any:
        return None  # OpenAI's table knows no vLLM model: see ServedModelProfile

    async def aget_profile(
        self, *, modalities: bool = True
    ) -> Mapping[str, Any] | None:
        """The model profile, fetched without blocking the event loop.

        In a running loop, reading `profile` makes no request (it serves what was
        fetched); await this first, e.g. before middleware reads
        `profile["max_input_tokens"]`. `modalities=False`: only `/v1/models`.
        """
        if isinstance(self.profile, ServedModelProfile):
            await self.profile.aload(modalities=modalities)
        return self.profile

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """ChatOpenAI's result, `_default_params` built once (subclasses: parents')."""
        cls: Any = type(self)
        if (
            cls.dict is not BaseChatModel.dict
            or cls.asdict is not BaseChatModel.asdict
            or cls._identifying_params is not BaseChatOpenAI._identifying_params
        ):
            return super()._get_invocation_params(stop=stop, **kwargs)
        defaults = self._default_params
        params = {
            "model": self.model_name,
            "model_name": self.model_name,
            **defaults,
            "_type": self._kind,
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
        params = openai_ls_params(self, stop, kwargs)
        params["ls_provider"] = "vllm"
        if not params.get("ls_model_name"):
            params["ls_model_name"] = self.model_name or "vllm-served-model"
        return params

    # -- request building ----------------------------------------------------------
    @property
    def _default_params(self) -> dict[str, Any]:
        params = super()._default_params
        if "max_completion_tokens" in params:
            params["max_tokens"] = params.pop("max_completion_tokens")
        if self.extra_body or not CHAT_NAMES.isdisjoint(self.model_fields_set):
            params["extra_body"] = self._instance_body()
        return params

    def _get_request_payload(
        self,
        input_: LanguageModelInput,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> dict:
        return build_payload(self, input_, stop, kwargs, super()._get_request_payload)

    async def _aprepare(self, kwargs: dict[str, Any], input_: Any = None) -> None:
        """Fetch (cached) what `_get_request_payload` needs, off the event loop."""
        await super()._aprepare(kwargs, input_)
        instance_set = self.structured_outputs is not None
        body = self._instance_body()
        if needs_version(kwargs, body, instance_set, self.session_from_thread):
            await self._link.aversion()
        if kwargs.get("inert_special_tokens", self.inert_special_tokens):
            await prefetch_specials(self, input_, kwargs, body)

    @property
    def _endpoint_url(self) -> str:
        path = "/responses" if self.use_responses_api is True else self._path
        return f"{self._link.base_url}{path}"

    # -- calls ------------------------------------------------------------------------
    def _generate(  # type: ignore[override]
        self, input_: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        try:
            result = ChatOpenAI._generate(self, input_, stop, run_manager, **kwargs)
            if self.use_responses_api is True:
                read_responses(self, result)
        except openai.APIError as e:
            raise self._link.translate(e) from e
        except self._answer_errors as e:
            raise self._malformed(e) from e
        if kwargs.get("tool_choice") is not None:
            self._check_result(result, kwargs)
        return result

    async def _agenerate(  # type: ignore[override]
        self, input_: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        try:
            await self._aprepare(kwargs, input_)
            result = await ChatOpenAI._agenerate(
                self, input_, stop, run_manager, **kwargs
            )
            if self.use_responses_api is True:
                read_responses(self, result)
        except openai.APIError as e:
            raise await self._link.atranslate(e) from e
        except self._answer_errors as e:
            raise self._malformed(e) from e
        if kwargs.get("tool_choice") is not None:
            self._check_result(result, kwargs)
        await self._afinish()
        return result

    async def _afinish(self) -> None:
        """After a call: the profile's context window, fetched once (middleware)."""
        if isinstance(self.profile, ServedModelProfile):
            await self.profile.awarm()

    # Responses: the fork reads vLLM's reasoning deltas (else the parent's readers)
    def _chunks(self, input_: Any, stop: Any, kwargs: dict[str, Any]) -> Iterator[Any]:
        if self.use_responses_api is True and seams.RESPONSES_CONVERTER.ok:
            return stream_responses(self, input_, stop, None, **kwargs)
        return super()._chunks(input_, stop, kwargs)

    def _achunks(
        self, input_: Any, stop: Any, kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        if self.use_responses_api is True and seams.RESPONSES_CONVERTER.ok:
            return astream_responses(self, input_, stop, None, **kwargs)
        return super()._achunks(input_, stop, kwargs)

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
        """Bind tools, strict unless `strict=False` (vLLM then enforces schemas).

        Unset `strict` with a choice that forces no call sends parameterless tools
        non-strict (vllm #50989). A forced `tool_choice` ("required", "any", a
        name) answered without the call raises `VLLMToolChoiceError`.

        Raises:
            ValueError: a tool schema is invalid, or `tool_choice` names no tool.
        """
        return bind_vllm_tools(
            super().bind_tools, tools, tool_choice, strict, parallel_tool_calls, kwargs
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

        `json_mode` with a schema enforces the schema; pydantic v1 and v2 classes
        go the `json_schema` way, and the answer is validated into the class.
        """
        parent = super().with_structured_output
        return structured_runnable(parent, schema, method, include_raw, strict, kwargs)

    # -- answers ---------------------------------------------------------------------
    def _create_chat_result(
        self,
        response: dict | openai.BaseModel,
        generation_info: dict | None = None,
    ) -> ChatResult:
        parent = super()._create_chat_result
        return read_chat_result(self, response, generation_info, parent)

    @property
    def _markup(self) -> Markup:
        """What client-side markup parsing `parse_*_tags` ask for."""
        return Markup(
            think=self.parse_think_tags,
            tool_calls=self.parse_tool_call_tags,
            starts_inside=self.think_tag_in_prompt,
        )

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict,
        default_chunk_class: type,
        base_generation_info: dict | None,
    ) -> ChatGenerationChunk | None:
        plain = plain_chunk(chunk, default_chunk_class, base_generation_info, self)
        if plain is not None:  # most chunks: built without validating them twice
            return plain
        problem = chunk_problem(chunk)
        if problem:
            raise self._malformed(problem)
        generation_chunk = super()._convert_chunk_to_generation_chunk(
            chunk, default_chunk_class, base_generation_info
        )
        if generation_chunk is not None and isinstance(
            generation_chunk.message, AIMessage
        ):
            add_chunk_reasoning(chunk, generation_chunk.message)  # type: ignore[arg-type]
        return generation_chunk

    # -- streams --------------------------------------------------------------------
    def _stream_state(self, kwargs: dict[str, Any]) -> ChatStreamState:
        parser = markup_parser(self._markup)
        return ChatStreamState(parser, forced_tool(kwargs.get("tool_choice")))

    def _end_stream(self, state: StreamState) -> None:
        super()._end_stream(state)
        if isinstance(state, ChatStreamState):
            check_answer(state.seen, error_on_empty=self.error_on_empty_reasoning_only)
            problem = state.tool_choice_problem()
            if problem:
                raise tool_choice_error(problem, self._endpoint_url)

    def _check_result(self, result: Any, kwargs: dict[str, Any]) -> None:
        check_result_tool_choice(result, kwargs.get("tool_choice"), self._endpoint_url)

    # -- server-side tokenizer -----------------------------------------------------
    def get_num_tokens_from_messages(
        self,
        messages: Sequence[BaseMessage],
        tools: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> int:
        """Prompt tokens as the server counts them (`usage.prompt_tokens`)."""
        return int(self._link.tokenize(self._tokenize_body(messages, tools))["count"])

    def get_prompt_text(
        self, messages: LanguageModelInput, tools: Sequence[Any] | None = None
    ) -> str:
        """The exact prompt text the server builds (chat template, tools)."""
        return self._link.prompt_text(self._tokenize_body(messages, tools))

    def _tokenize_body(
        self, messages: LanguageModelInput, tools: Sequence[Any] | None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if tools:
            kwargs["tools"] = self.bind_tools(tools).kwargs["tools"]  # type: ignore[attr-defined]
        return tokenize_body(self._get_request_payload(messages, **kwargs))


def openai_ls_params(
    chat: Any, stop: list[str] | None, kwargs: dict[str, Any]
) -> LangSmithParams:
    """ChatOpenAI's tracing parameters, read from the fields and the call."""
    params = LangSmithParams(
        ls_provider="openai",
        ls_model_name=kwargs.get("model", chat.model_name),
        ls_model_type="chat",
        ls_temperature=kwargs.get("temperature", chat.temperature),
    )
    if max_tokens := kwargs.get("max_tokens", chat.max_tokens) or kwargs.get(
        "max_completion_tokens", chat.max_tokens
    ):
        params["ls_max_tokens"] = max_tokens
    if ls_stop := stop or chat.stop:
        params["ls_stop"] = ls_stop
    return params


def check_instance(chat: Any) -> None:
    """Refuse an instance whose fields vLLM would refuse or ignore (at creation).

    Raises:
        ValueError: naming the field(s) and what to do instead.
    """
    check_openai_params({name: getattr(chat, name, None) for name in OPENAI_RANGED})
    if chat.use_responses_api is not True:
        to_chat_completions({n: getattr(chat, n, None) for n in RESPONSES_ONLY})
    effort = reasoning_effort_of(
        {n: getattr(chat, n, None) for n in ("reasoning", "reasoning_effort")}
    )
    body = request_body(chat, VLLMChatParams)
    apply_thinking(dict(body), effort)  # it pops `thinking`: the check keeps `body`
    if chat.use_responses_api is True:
        check_responses_params(body)
        check_responses_markup(chat._markup)


def check_responses_markup(markup: Markup) -> None:
    """Refuse client-side markup parsing with the Responses API.

    Raises:
        ValueError: a `parse_*_tags` / `think_tag_in_prompt` option is set.
    """
    names = {
        "parse_think_tags": markup.think,
        "parse_tool_call_tags": markup.tool_calls,
        "think_tag_in_prompt": markup.starts_inside,
    }
    on = [name for name, value in names.items() if value]
    if on:
        msg = (
            f"{', '.join(on)} parse markup in Chat Completions answers; with "
            "`use_responses_api=True` the server's parsers (`--reasoning-parser`, "
            "`--tool-call-parser`) must do it."
        )
        raise ValueError(msg)


async def prefetch_specials(
    chat: ChatVLLM, input_: Any, kwargs: dict[str, Any], body: dict[str, Any]
) -> None:
    """Fetch the served special tokens off the event loop when the request may ask.

    As `inert_request` decides: outside text with a marker-like character, or
    `documents`.
    """
    outside = [
        m.text
        for m in (input_ if isinstance(input_, list) else [])
        if isinstance(m, BaseMessage) and m.type in ("human", "tool", "function")
    ]
    documents = kwargs.get("documents") or body.get("documents")
    plain = not may_hold_specials(outside)
    if isinstance(input_, list) and not documents and plain:
        return
    link = chat._link
    model = kwargs.get("model") or chat.model_name
    await link.aspecial_tokens(model or await link.aresolve_model(None))
