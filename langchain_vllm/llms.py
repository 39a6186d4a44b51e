"""vLLM text completion models (`/v1/completions`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, Self

from langchain_core.outputs import LLMResult
from langchain_openai import OpenAI
from pydantic import BaseModel, Field, model_validator

from langchain_vllm._client import VLLMClient
from langchain_vllm._json_client import COMPLETIONS_KEYWORDS, check_keywords
from langchain_vllm._loop import in_event_loop
from langchain_vllm._seams import resource_client
from langchain_vllm._session import SessionMixin, add_session
from langchain_vllm._tokens import completion_chunk, token_problem
from langchain_vllm._trajectory import ask_for_completion_tokens
from langchain_vllm._versions import (
    completion_body_for_server,
    completion_needs_version,
)
from langchain_vllm.models import choose_model, context_length
from langchain_vllm.params import VLLMCompletionParams

CHOICE_KEYS = (
    "stop_reason",
    "prompt_logprobs",
    "prompt_token_ids",
    "token_ids",
    "weight_versions",
)
"""vLLM-only fields of a completion choice copied into `generation_info` (when
not null)."""

__all__ = [
    "VLLMOpenAI",
]


class VLLMOpenAI(  # type: ignore[misc]
    VLLMClient, SessionMixin, OpenAI, VLLMCompletionParams
):
    """vLLM text completion model, through vLLM's OpenAI-compatible server.

    A drop-in replacement for `langchain_community.llms.VLLMOpenAI` (same
    constructor arguments: `openai_api_base`, `openai_api_key`, `model_name`,
    `max_tokens`, `temperature`, `top_p`, `n`, `best_of`, `streaming`, ...), with
    vLLM's own sampling parameters as typed, validated fields, model discovery, the
    served model's tokenizer for token counts, and an async client that survives
    successive event loops.

    Setup:
        Install `langchain-vllm` and start a vLLM server (or use the one at
        `VLLM_API_BASE`):

        ```bash
        pip install -U langchain-vllm
        vllm serve HuggingFaceTB/SmolLM2-135M  # a base model suits completions
        ```

        `VLLM_API_BASE` and `VLLM_API_KEY` point it at the server, as for `ChatVLLM`.

    Key init args — completion params:
        model: str | None
            Served model name (alias `model_name`). Omitted: the one model the
            server serves, asked from `GET /v1/models` on first use.
        temperature: float
            Sampling temperature (default 0.7).
        max_tokens: int | None
            Max number of tokens to generate (default 256); -1 or None: as many as
            the model's context allows.
        top_k, min_p, repetition_penalty, min_tokens, stop_token_ids, bad_words,
        allowed_token_ids, prompt_logprobs, structured_outputs, ...:
            vLLM's own parameters: see `VLLMCompletionParams`.

    Key init args — client params:
        base_url, api_key, timeout, max_retries, max_connections:
            The same as `ChatVLLM`'s (`VLLM_API_BASE` and `VLLM_API_KEY` by default).

    Instantiate:
        ```python
        from langchain_vllm import VLLMOpenAI

        llm = VLLMOpenAI(temperature=0, max_tokens=32)  # model discovered
        ```

    Migrate from langchain-community:
        ```python
        # from langchain_community.llms import VLLMOpenAI
        from langchain_vllm import VLLMOpenAI

        llm = VLLMOpenAI(
            openai_api_key="EMPTY",
            openai_api_base="http://localhost:8000/v1",
            model_name="smollm2-135m-instruct",
            max_tokens=64,
        )
        ```

    Invoke:
        ```python
        llm.invoke("The capital of France is")
        # ' Paris. It is ...'
        ```

    Stream:
        ```python
        for chunk in llm.stream("Once upon a time"):
            print(chunk, end="")
        ```

    Batch and async:
        ```python
        llm.batch(["1, 2, 3,", "a, b, c,"])
        await llm.ainvoke("The capital of France is")
        async for chunk in llm.astream("Once upon a time"):
            ...
        ```

    vLLM parameters, per instance or per call:
        ```python
        llm = VLLMOpenAI(top_k=1, repetition_penalty=1.1)
        llm.invoke("List three colours:", min_tokens=8, bad_words=["red"])
        llm.invoke("Yes or no?", structured_outputs={"choice": ["yes", "no"]})
        ```

    Sessions (body field `session_id` and header `X-Session-ID`, which
    vllm-router's `consistent_hash` keeps on one replica):
        ```python
        llm.invoke("Once upon a time", session_id="story-7")  # or per instance
        threads = VLLMOpenAI(session_from_thread=True)  # LangGraph's thread_id
        ```

    LoRA adapters (served by name; loaded at runtime if the server allows it):
        ```python
        llm.load_lora_adapter("pineapple", "/models/pineapple-lora")
        llm.invoke("Name a colour:", model="pineapple")
        [(m.name, m.parent) for m in llm.list_models()]
        llm.unload_lora_adapter("pineapple")
        ```

    Token counts (the served model's tokenizer) and the context length:
        ```python
        llm.get_num_tokens("The capital of France is")
        llm.max_context_size  # in async code: await llm.aget_max_context_size()
        ```

    Response metadata:
        ```python
        result = llm.generate(["The capital of France is"])
        result.llm_output  # {'token_usage': {...}, 'model_name': 'smollm2-...'}
        result.generations[0][0].generation_info  # {'finish_reason': 'length', ...}
        ```
    """

    model_name: str | None = Field(default=None, alias="model")  # type: ignore[assignment]
    """Served model name; None discovers the only served model on first use."""

    max_tokens: int | None = 256  # type: ignore[assignment]
    """Max tokens to generate; -1 or None: as many as the model's context allows."""

    echo: bool | None = None
    """Return the prompt in front of the completion (OpenAI's completions field)."""

    _vllm_params: ClassVar[type[BaseModel]] = VLLMCompletionParams
    _path: ClassVar[str] = "/completions"
    _kind: ClassVar[str] = "vllm-openai"
    _generate_streams: ClassVar[bool] = True

    # Unique validator name: pydantic replaces (does not chain) a parent validator
    # with the same name.
    @model_validator(mode="after")
    def _link_vllm_completions_server(self) -> Self:
        self.client, self.async_client = self._connect(
            resource_client(self.client),
            resource_client(self.async_client),
            COMPLETIONS_KEYWORDS,
        )
        return self

    # -- LangChain integration details ------------------------------------------------
    # -- request building ----------------------------------------------------------
    @property
    def _default_params(self) -> dict[str, Any]:
        params = super()._default_params
        if self.echo is not None:
            params["echo"] = self.echo
        body = self._instance_body()
        if body:
            params["extra_body"] = body
        return params

    @property
    def _invocation_params(self) -> dict[str, Any]:
        params = super()._invocation_params
        if not params.get("model"):
            params["model"] = self._link.resolve_model(self.model_name)
        return params

    def _call_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Per-call kwargs with vLLM parameters checked and merged into extra_body.

        The parent lets a per-call `extra_body` replace the instance's; here the
        instance's body, the checked per-call vLLM parameters and the per-call
        `extra_body` are merged, later ones winning. A session adds the
        `X-Session-ID` header to the call's `extra_headers` (else the instance's,
        from `model_kwargs`, which a per-call value would replace).
        """
        kwargs = dict(kwargs)
        extra = self._call_body(kwargs)
        check_keywords(kwargs, COMPLETIONS_KEYWORDS)
        if "extra_headers" in self.model_kwargs:
            kwargs.setdefault("extra_headers", self.model_kwargs["extra_headers"])
        add_session(kwargs, extra, from_thread=self.session_from_thread)
        if self.logprobs is None:  # under record_trajectories(): ids and logprobs
            ask_for_completion_tokens(kwargs, extra)
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def get_sub_prompts(
        self,
        params: dict[str, Any],
        prompts: list[str],
        stop: list[str] | None = None,
    ) -> list[list[str]]:
        """Batches of prompts; `max_tokens=-1` becomes "as many as fit".

        The vLLM body is put in the server's dialect (`completion_body_for_server`).

        vLLM reads a null `max_tokens` as "up to the context length", for each
        prompt on its own, so no client-side token count is needed.
        """
        if params.get("max_tokens", -1) == -1:  # -1, or None (then left out)
            params["max_tokens"] = None
        extra = params.get("extra_body")
        if extra and completion_needs_version(extra):
            # Async calls fetched the version first (`_aprepare`): cached here.
            params["extra_body"] = completion_body_for_server(
                extra, self._link.version()
            )
        return super().get_sub_prompts(params, prompts, stop)

    def _chunks(self, input_: Any, stop: Any, kwargs: dict[str, Any]) -> Iterator[Any]:
        # The parent's loop, with vLLM's ids kept on the chunks.
        params = {**self._invocation_params, **kwargs, "stream": True}
        self.get_sub_prompts(params, [input_], stop)  # puts `stop` into params
        for response in self.client.create(prompt=input_, **params):
            yield completion_chunk(_as_dict(response))

    async def _achunks(
        self, input_: Any, stop: Any, kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        params = {**self._invocation_params, **kwargs, "stream": True}
        self.get_sub_prompts(params, [input_], stop)
        async for response in await self.async_client.create(prompt=input_, **params):
            yield completion_chunk(_as_dict(response))

    async def _aprepare(self, kwargs: dict[str, Any], input_: Any = None) -> None:
        """Discovery, and the server's version when the body depends on it."""
        await super()._aprepare(kwargs, input_)
        if completion_needs_version(kwargs.get("extra_body")):
            await self._link.aversion()

    # The parent's streamed `generate` keeps only text, finish reason and logprobs.
    def _generate(  # type: ignore[override]
        self, input_: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> LLMResult:
        if not (self.streaming and len(input_) == 1):
            return super()._generate(input_, stop, run_manager, **kwargs)  # type: ignore[no-any-return]
        chunks = self._stream(input_[0], stop, run_manager, **kwargs)
        return self._streamed_result(input_, list(chunks), kwargs)

    async def _agenerate(  # type: ignore[override]
        self, input_: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> LLMResult:
        if not (self.streaming and len(input_) == 1):
            return await super()._agenerate(input_, stop, run_manager, **kwargs)  # type: ignore[no-any-return]
        chunks = self._astream(input_[0], stop, run_manager, **kwargs)
        return self._streamed_result(input_, [c async for c in chunks], kwargs)

    def _streamed_result(
        self, prompts: list[str], chunks: list[Any], kwargs: dict[str, Any]
    ) -> LLMResult:
        """One streamed answer as `generate`'s result, vLLM's ids kept."""
        merged = chunks[0]
        for chunk in chunks[1:]:
            merged += chunk
        choice = {"text": merged.text, **(merged.generation_info or {})}
        params = {**self._invocation_params, **kwargs}
        return self.create_llm_result([choice], prompts, params, {})

    def create_llm_result(
        self,
        choices: Any,
        prompts: list[str],
        params: dict[str, Any],
        token_usage: dict[str, int],
        *,
        system_fingerprint: str | None = None,
    ) -> LLMResult:
        """The LLMResult, naming the model that answered (also when discovered)."""
        result = super().create_llm_result(
            choices,
            prompts,
            params,
            token_usage,
            system_fingerprint=system_fingerprint,
        )
        if result.llm_output is not None:
            result.llm_output["model_name"] = params.get("model") or self.model_name
            result.llm_output["model_provider"] = "vllm"
        for generations, choice_group in zip(
            result.generations, _group(choices, params.get("n", self.n)), strict=False
        ):
            for generation, choice in zip(generations, choice_group, strict=False):
                if isinstance(choice, dict):
                    problem = token_problem(
                        choice.get("token_ids"), choice.get("logprobs")
                    )
                    if problem:
                        raise self._malformed(problem)
                extra = {
                    key: choice[key]
                    for key in CHOICE_KEYS
                    if isinstance(choice, dict) and choice.get(key) is not None
                }
                if extra and generation.generation_info is not None:
                    generation.generation_info.update(extra)
        return result

    @property
    def max_context_size(self) -> int:
        """The served model's context length (`max_model_len` of `/v1/models`).

        A LoRA adapter has its base model's context length. Inside a running event
        loop only from cards fetched before (a blocking request would stall the
        loop): `await llm.aget_max_context_size()` there.

        Raises:
            RuntimeError: Read in a running event loop before the cards were fetched.
        """
        cards = self._link.known_models()
        if cards is None:
            if in_event_loop():
                msg = (
                    "max_context_size asks the vLLM server (/v1/models), which would "
                    "block the running event loop: use "
                    "`await llm.aget_max_context_size()`."
                )
                raise RuntimeError(msg)
            cards = self._link.models()
        return self._context_size(cards)

    async def aget_max_context_size(self) -> int:
        """Async `max_context_size` (fetches `/v1/models` once, without blocking)."""
        return self._context_size(await self._link.amodels())

    def _context_size(self, cards: list[dict[str, Any]]) -> int:
        model = self.model_name or choose_model(cards, self._link.base_url)
        limit = context_length(cards, model)
        if limit is None:
            msg = f"{self._link.base_url}/models gives no max_model_len for {model!r}"
            raise ValueError(msg)
        return limit


def _group(choices: Any, n: int) -> list[list[Any]]:
    items = list(choices or [])
    size = max(int(n or 1), 1)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _as_dict(response: Any) -> dict[str, Any]:
    """A stream event as the dict the SDK's model holds (extra fields kept)."""
    return response if isinstance(response, dict) else response.model_dump()
