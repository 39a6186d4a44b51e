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
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import BaseModel, Field, field_validator, model_validator

from langchain_vllm._chat_answer import (
    add_chunk_reasoning,
    check_answer,
    chunk_problem,
    markup_parser,
    read_chat_result,
)
from langchain_vllm._chat_request import (
    CHAT_NAMES,
    build_payload,
    check_instance,
    tokenize_body,
)
from langchain_vllm._chat_stream import ChatStreamState
from langchain_vllm._client import VLLMClient
from langchain_vllm._json_client import CHAT_KEYWORDS
from langchain_vllm._markup import Markup
from langchain_vllm._plain_chunks import plain_chunk
from langchain_vllm._profile import ServedModelProfile
from langchain_vllm._responses import (
    astream_responses,
    read_responses,
    stream_responses,
)
from langchain_vllm._tokens import StreamState
from langchain_vllm._tools import (
    ModelValidator,
    check_result_tool_choice,
    check_tools,
    default_strict,
    forced_tool,
    is_model_class,
    redacted_mcp,
    tool_choice_error,
    unstrict_parameterless,
)
from langchain_vllm._versions import needs_version
from langchain_vllm.params import VLLMChatParams

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
        await agent.aget_profile()  # in async code: reading `profile` never blocks
        ChatVLLM(parse_think_tags=True, parse_tool_call_tags=True)  # no-parser server
        ChatVLLM(thinking=False)  # enable_thinking / thinking, whatever the family
        # Several system messages go out as one; an ignored forced tool_choice raises
        ```

    LoRA adapters (one server, a base model and its adapters):
        ```python
        chat.list_models()  # ServedModel(name, parent, max_model_len, root), ...
        chat.load_lora_adapter("pineapple", "/models/pineapple-lora")  # runtime
        chat.invoke(messages, model="pineapple")  # or ChatVLLM(model=...), .bind
        chat.unload_lora_adapter("pineapple")
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

    stream_usage: bool | None = True
    """Include token usage in streams (vLLM supports it; on by default)."""

    reasoning_round_trip: Literal["never", "tool_calls", "always"] = "never"
    """Send earlier assistant turns' reasoning back (vLLM's `reasoning` field):
    never, only on turns that called tools (agent loops), or always."""

    parse_think_tags: bool = False
    """Split `<think>…</think>` out of the content on the client (servers started
    without `--reasoning-parser`)."""

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
    """True sends calls to the server's `/v1/responses`; False (or None) to Chat
    Completions. Never chosen from the model name or parameters, as ChatOpenAI
    does for OpenAI's models."""

    session_from_thread: bool = False
    """Send the running thread's id (`configurable.thread_id`) as `session_id` and
    the `X-Session-ID` header when no `session_id` is set: vllm-router's
    `consistent_hash` then keeps one conversation on one replica."""

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

        Inside a running event loop, reading `profile` makes no request: it serves
        what was fetched before. Await this first, e.g. before building middleware
        that needs `profile["max_input_tokens"]`; async calls also fetch the
        context window.

        Args:
            modalities: Also probe the input modalities (one `/tokenize` request
                each); else only the context window (one `/v1/models` request).
        """
        if isinstance(self.profile, ServedModelProfile):
            await self.profile.aload(modalities=modalities)
        return self.profile

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """ChatOpenAI's invocation parameters, with `_default_params` built once.

        The parents' exact result (keys, order, MCP credentials redacted); a
        subclass that overrides `dict`, `asdict` or `_identifying_params` gets the
        parents' own method.
        """
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
        params = self._openai_ls_params(stop, kwargs)
        params["ls_provider"] = "vllm"
        if not params.get("ls_model_name"):
            params["ls_model_name"] = self.model_name or "vllm-served-model"
        return params

    def _openai_ls_params(
        self, stop: list[str] | None, kwargs: dict[str, Any]
    ) -> LangSmithParams:
        """ChatOpenAI's tracing parameters, read from the fields and the call."""
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

    # -- request building ----------------------------------------------------------
    @property
    def _default_params(self) -> dict[str, Any]:
        params = super()._default_params
        if "max_completion_tokens" in params:
            params["max_tokens"] = params.pop("max_completion_tokens")
        if self.extra_body or not CHAT_NAMES.isdisjoint(self.__pydantic_fields_set__):
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

    async def _aprepare(self, kwargs: dict[str, Any]) -> None:
        """Fetch what a request needs from the server without blocking the loop.

        Discovery and the version check are cached, so `_get_request_payload` then
        finds them ready; an async call never makes a blocking request.
        """
        await super()._aprepare(kwargs)
        instance_set = self.structured_outputs is not None
        body = self._instance_body()
        if needs_version(kwargs, body, instance_set, self.session_from_thread):
            await self._link.aversion()

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
            await self._aprepare(kwargs)
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
        """Fetch the profile's context window (for middleware) once, after a call.

        Free when the model was discovered (the cards are cached); else one
        `/v1/models` request, after the first answer (a refused call makes none).
        """
        if isinstance(self.profile, ServedModelProfile):
            await self.profile.awarm()

    def _chunks(self, input_: Any, stop: Any, kwargs: dict[str, Any]) -> Iterator[Any]:
        if self.use_responses_api is True:
            return stream_responses(self, input_, stop, None, **kwargs)
        return super()._chunks(input_, stop, kwargs)

    def _achunks(
        self, input_: Any, stop: Any, kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        if self.use_responses_api is True:
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

        With `strict` left unset and a tool choice that forces no call ("auto"),
        tools without parameters are sent with `"strict": false`: a strict
        parameterless tool then sends Qwen3.x models into a token loop (vllm
        #50989). A forced choice keeps them strict (their arguments are then `{}`).

        A forced `tool_choice` ("required", "any", a tool's name) is checked on the
        answer: one without the call raises `VLLMToolChoiceError`.

        Raises:
            ValueError: a tool schema is invalid, or `tool_choice` names no tool.
        """
        check_tools(tools, tool_choice)
        bound = super().bind_tools(
            tools,
            tool_choice=tool_choice,
            strict=default_strict(tools) if strict is None else strict,
            parallel_tool_calls=parallel_tool_calls,
            **kwargs,
        )
        wire: dict[str, Any] = bound.kwargs  # type: ignore[attr-defined]
        if strict is None and forced_tool(wire.get("tool_choice")) is None:
            bound.kwargs = {**wire, "tools": unstrict_parameterless(wire["tools"])}  # type: ignore[attr-defined]
        return bound

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
        if method == "json_mode" and schema is not None:
            method = "json_schema"  # vLLM can enforce the schema itself
        if strict is None and method != "json_mode":
            strict = True
        if method != "json_schema" or not is_model_class(schema):
            return super().with_structured_output(
                schema, method=method, include_raw=include_raw, strict=strict, **kwargs
            )
        as_dict = super().with_structured_output(
            convert_to_json_schema(schema),  # type: ignore[arg-type]
            method="json_schema",
            include_raw=include_raw,
            strict=strict,
            **kwargs,
        )
        to_model = RunnableLambda(ModelValidator(schema, include_raw))  # type: ignore[arg-type]
        return (as_dict | to_model).with_types(output_type=schema)  # type: ignore[arg-type]

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
        """Prompt tokens the server counts for these messages (and tools).

        The server applies its chat template (with the generation prompt), so the
        count equals `usage.prompt_tokens` of the same request.
        """
        return int(self._link.tokenize(self._tokenize_body(messages, tools))["count"])

    def get_prompt_text(
        self, messages: LanguageModelInput, tools: Sequence[Any] | None = None
    ) -> str:
        """The exact prompt text the server builds from `messages`.

        The chat template and tools are applied: what the model sees, for
        debugging prompts.
        """
        return self._link.prompt_text(self._tokenize_body(messages, tools))

    def _tokenize_body(
        self, messages: LanguageModelInput, tools: Sequence[Any] | None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if tools:
            kwargs["tools"] = self.bind_tools(tools).kwargs["tools"]  # type: ignore[attr-defined]
        return tokenize_body(self._get_request_payload(messages, **kwargs))
