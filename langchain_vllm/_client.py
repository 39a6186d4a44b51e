"""What every vLLM client class shares (ChatVLLM, VLLMOpenAI, VLLMEmbeddings, ...).

Connection fields and their environment defaults, the link to the server, secrets
and serialization, tracing parameters, token ids from the served tokenizer, per-call
vLLM parameters (split, checked, merged into the request body) and the errors of
an answer that is cut off or not what vLLM sends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import httpx2
import openai
from langchain_core.language_models import LangSmithParams
from pydantic import BaseModel, Field, PrivateAttr, SecretStr, model_validator

from langchain_vllm._json_client import AsyncJSONEndpoint, JSONEndpoint
from langchain_vllm._link import ServerLink
from langchain_vllm._loop import LoopClient
from langchain_vllm._served import ServedModelsMixin
from langchain_vllm._settings import (
    DEFAULT_MAX_CONNECTIONS,
    RebuiltOnCopy,
    api_key_field,
    base_url_field,
    vllm_secret_ids,
)
from langchain_vllm._tokens import StreamState
from langchain_vllm._translate import response_error
from langchain_vllm.errors import (
    VLLMConnectionError,
    VLLMIncompleteStreamError,
    VLLMResponseError,
)
from langchain_vllm.params import (
    param_names,
    request_body,
    to_wire,
    validate_call_params,
)

MALFORMED = (json.JSONDecodeError, AttributeError, KeyError, IndexError, TypeError)
"""What reading a malformed answer (not JSON, fields missing) raises inside the
parent classes."""


class VLLMClient(ServedModelsMixin, RebuiltOnCopy, BaseModel):
    """Fields and behaviour every vLLM client class shares (a mixin, listed first).

    Its link to the server (`_link`) lists the served models and loads or unloads
    LoRA adapters (`ServedModelsMixin`) for every class.
    """

    openai_api_key: SecretStr | None = api_key_field()
    """API key: `VLLM_API_KEY`, else a placeholder (vLLM needs none by default)."""

    openai_api_base: str | None = base_url_field()
    """Base URL of the server's OpenAI API: `VLLM_API_BASE`, else
    `http://localhost:8000/v1`."""

    max_connections: int = Field(default=DEFAULT_MAX_CONNECTIONS, gt=0)
    """Connection pool size of the async HTTP client (per event loop)."""

    _link: ServerLink = PrivateAttr()

    _vllm_params: ClassVar[type[BaseModel]]
    """The `_params` mixin whose parameters this class's endpoint takes."""
    _path: ClassVar[str]
    """The endpoint under the base URL (e.g. `/chat/completions`)."""
    _kind: ClassVar[str] = "vllm"
    """What LangChain's `_llm_type` reports (e.g. `vllm-chat`)."""
    _model_field: ClassVar[str] = "model_name"
    """The field that names the served model (None: discovered)."""
    _answer_errors: ClassVar[tuple[type[Exception], ...]] = MALFORMED
    """What reading a malformed answer raises in the parent even before any of it
    came (other MALFORMED errors count only once a stream has started)."""
    _generate_streams: ClassVar[bool] = False
    """The parent's `_generate` reads a stream through `_stream` when `streaming`."""

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

    def _connect(
        self,
        client: openai.OpenAI,
        async_client: openai.AsyncOpenAI,
        accepted: frozenset[str] | None,
    ) -> tuple[JSONEndpoint, AsyncJSONEndpoint]:
        """Link to the server; sync and async JSON endpoints for `_path`.

        No request is made until one is needed. The endpoints take and give decoded
        JSON (no SDK models built and dumped again); the async one posts through the
        running event loop's client, picked per call (`LoopClient`): set once, never
        written by a call.
        """
        custom = getattr(self, "http_async_client", None) is not None
        self._link = ServerLink(
            client,
            async_client,
            max_connections=self.max_connections,
            custom_async_http_client=custom,
        )
        loop_client: Any = LoopClient(self._link)
        return (
            JSONEndpoint(self._link.client, self._path, accepted),
            AsyncJSONEndpoint(loop_client, self._path, accepted),
        )

    # -- LangChain integration details ------------------------------------------
    @property
    def _llm_type(self) -> str:
        return self._kind

    @property
    def lc_secrets(self) -> dict[str, str]:
        """The key is a secret, read back from `VLLM_API_KEY`."""
        return {"openai_api_key": "VLLM_API_KEY"}

    def to_json(self) -> Any:
        """Serialize; the key is a secret read back from `VLLM_API_KEY`."""
        return vllm_secret_ids(super().to_json())  # type: ignore[misc]

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        """The LangChain namespace: `["langchain_vllm", <module>]`."""
        return ["langchain_vllm", cls.__module__.rsplit(".", 1)[-1]]

    @property
    def _model(self) -> str | None:
        """The model asked for, or None to discover the served one."""
        return getattr(self, self._model_field)  # type: ignore[no-any-return]

    def _get_ls_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> LangSmithParams:
        """The parent's LangSmith parameters, with vLLM as the provider."""
        params: LangSmithParams = super()._get_ls_params(  # type: ignore[misc]
            stop=stop, **kwargs
        )
        params["ls_provider"] = "vllm"
        if not params.get("ls_model_name"):
            params["ls_model_name"] = self._model or "vllm-served-model"
        return params

    # -- per-call parameters ------------------------------------------------------
    def _split_call_params(
        self, kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Take this endpoint's vLLM parameters and `extra_body` out of `kwargs`.

        Returns:
            The checked parameters in wire form, then the per-call `extra_body`.

        Raises:
            ValueError: a parameter's value is invalid (named).
        """
        names = param_names(self._vllm_params)
        given = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        call_extra = kwargs.pop("extra_body", None) or {}
        checked = validate_call_params(self._vllm_params, given)
        return {k: to_wire(v) for k, v in checked.items()}, call_extra

    def _call_body(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The vLLM part of one request body, taken out of the call's `kwargs`.

        The instance's parameters and `extra_body`, then the call's checked
        parameters and `extra_body`, later ones winning (the parents let a per-call
        `extra_body` replace the instance's instead).
        """
        checked, call_extra = self._split_call_params(kwargs)
        return {**self._instance_body(), **checked, **call_extra}

    def _instance_body(self) -> dict[str, Any]:
        """The instance's vLLM parameters, then its `extra_body` (which wins)."""
        extra = getattr(self, "extra_body", None) or {}
        return {**request_body(self, self._vllm_params), **extra}

    # -- the served tokenizer ------------------------------------------------------
    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of `text` from the served model's tokenizer (`/tokenize`)."""
        custom = getattr(self, "custom_get_token_ids", None)
        if custom is not None:
            return list(custom(text))
        body = {
            "model": self._link.resolve_model(self._model),
            "prompt": text,
            "add_special_tokens": False,
        }
        return list(self._link.tokenize(body)["tokens"])

    def get_num_tokens(self, text: str) -> int:
        """Number of tokens in `text`, from the served model's tokenizer."""
        return len(self.get_token_ids(text))

    # -- calls: the parent's, with vLLM's errors ---------------------------------
    def _call_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return kwargs

    async def _aprepare(self, kwargs: dict[str, Any], input_: Any = None) -> None:
        """Discover the model (cached) without blocking the event loop."""
        await self._link.aclient()  # this loop's client, made off the loop
        if not self._model and not kwargs.get("model"):
            await self._link.aresolve_model(None)

    async def _afinish(self) -> None:
        """After a successful async call: fill caches without blocking the loop."""

    def _check_result(self, result: Any, kwargs: dict[str, Any]) -> None:
        """Check a whole answer against the call's `kwargs` (a subclass's rules)."""

    def _stream_state(self, kwargs: dict[str, Any]) -> StreamState:
        """A new stream's state; `kwargs` are the call's (e.g. its `tool_choice`)."""
        return StreamState()

    def _chunks(self, input_: Any, stop: Any, kwargs: dict[str, Any]) -> Iterator[Any]:
        """The parent's stream of chunks, before they are checked and counted."""
        return super()._stream(input_, stop, None, **kwargs)  # type: ignore[misc,no-any-return]

    def _achunks(
        self, input_: Any, stop: Any, kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        """The parent's async stream of chunks (`_chunks`)."""
        return super()._astream(input_, stop, None, **kwargs)  # type: ignore[misc,no-any-return]

    def _end_stream(self, state: StreamState) -> None:
        if not state.finished:
            raise self._incomplete_stream()
        problem = state.tokens.problem()
        if problem:
            raise self._malformed(problem)

    def _generate(
        self, input_: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        kwargs = self._call_kwargs(kwargs)
        try:
            result = super()._generate(input_, stop, run_manager, **kwargs)  # type: ignore[misc]
        except openai.APIError as e:
            raise self._link.translate(e) from e
        except self._answer_errors as e:
            if self._generate_streams and getattr(self, "streaming", False):
                raise  # read by `_stream`, which relabelled the server's part
            raise self._malformed(e) from e
        self._check_result(result, kwargs)
        return result

    async def _agenerate(
        self, input_: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        kwargs = self._call_kwargs(kwargs)
        try:
            await self._aprepare(kwargs)
            result = await super()._agenerate(input_, stop, run_manager, **kwargs)  # type: ignore[misc]
        except openai.APIError as e:
            raise await self._link.atranslate(e) from e
        except self._answer_errors as e:
            if self._generate_streams and getattr(self, "streaming", False):
                raise  # read by `_stream`, which relabelled the server's part
            raise self._malformed(e) from e
        self._check_result(result, kwargs)
        await self._afinish()
        return result

    def _stream(
        self, input_: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[Any]:
        kwargs = self._call_kwargs(kwargs)
        state = self._stream_state(kwargs)
        # Token callbacks are called here, not by the parent: only reading the
        # server's answer (the parent's `next`) is relabelled, so an error of a
        # callback or of the chunk parser surfaces as itself.
        chunks = self._chunks(input_, stop, kwargs)
        while True:
            try:
                raw = next(chunks)
            except StopIteration:
                break
            except openai.APIError as e:
                raise self._mid_stream(self._link.translate(e), state.received) from e
            except MALFORMED as e:
                if not (state.received or isinstance(e, self._answer_errors)):
                    raise  # before any answer: not a response problem
                raise self._malformed(e) from e
            chunk = state.take(raw)
            if run_manager:
                run_manager.on_llm_new_token(
                    chunk.text, chunk=chunk, logprobs=_logprobs(chunk)
                )
            yield chunk
        self._end_stream(state)

    async def _astream(
        self, input_: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        kwargs = self._call_kwargs(kwargs)
        state = self._stream_state(kwargs)
        try:
            await self._aprepare(kwargs, input_)
        except openai.APIError as e:
            raise await self._link.atranslate(e) from e
        chunks = self._achunks(input_, stop, kwargs)
        while True:
            try:
                raw = await anext(chunks)
            except StopAsyncIteration:
                break
            except openai.APIError as e:
                error = await self._link.atranslate(e)
                raise self._mid_stream(error, state.received) from e
            except MALFORMED as e:
                if not (state.received or isinstance(e, self._answer_errors)):
                    raise
                raise self._malformed(e) from e
            chunk = state.take(raw)
            if run_manager:
                await run_manager.on_llm_new_token(
                    chunk.text, chunk=chunk, logprobs=_logprobs(chunk)
                )
            yield chunk
        self._end_stream(state)
        await self._afinish()

    # -- errors of an answer --------------------------------------------------------
    @property
    def _endpoint_url(self) -> str:
        return f"{self._link.base_url}{self._path}"

    def _malformed(self, problem: object) -> VLLMResponseError:
        """The answer is not what vLLM sends (not JSON, fields missing, ...)."""
        if isinstance(problem, json.JSONDecodeError):
            problem = f"not JSON: {problem}"
        elif isinstance(problem, BaseException):
            problem = f"{type(problem).__name__}: {problem}"
        return response_error(self._endpoint_url, str(problem), "POST")

    def _incomplete_stream(self) -> VLLMIncompleteStreamError:
        url = self._endpoint_url
        return VLLMIncompleteStreamError(
            f"The stream from {url} ended before the server finished the answer "
            "(no finish_reason): the connection dropped or the server stopped. "
            "The partial text is not a complete answer.",
            httpx2.Request("POST", url),
            body=None,
        )

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


def _logprobs(chunk: Any) -> Any:
    """What the parents pass to `on_llm_new_token` besides the chunk and its text."""
    info = chunk.generation_info
    return info.get("logprobs") if info else None


def check_texts(texts: Any, one_string: str) -> list[str]:
    """`texts` as a list of strings, checked before any request.

    Raises:
        TypeError: `texts` is one string (`one_string` says what to do instead), or
            an item is not a string (named by its position).
    """
    if isinstance(texts, str):
        raise TypeError(one_string)
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            msg = f"Text {i} is a {type(text).__name__}, not a str: {text!r:.80}"
            raise TypeError(msg)
    return out
