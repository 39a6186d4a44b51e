"""What every vLLM client class shares with its server.

Defaults and environment variables, model discovery, `/version`, `/tokenize`,
error translation, and async clients per event loop. Nothing here knows LangChain's
message types: callers pass plain JSON-ready data.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import threading
import urllib.parse
import weakref
from collections import OrderedDict
from typing import Any

import httpx2
import openai
from langchain_core.utils import from_env, secret_from_env
from pydantic import Field, SecretStr

from langchain_vllm._gateway import (
    UNKNOWN_VERSION,
    probe_tokens,
    prompt_text_probe,
    require_route_missing,
    tokenize_probe,
    warn_fallback,
)
from langchain_vllm._media import media_hint
from langchain_vllm.errors import (
    START_HINT,
    VLLMAuthenticationError,
    VLLMBadRequestError,
    VLLMConnectionError,
    VLLMContextOverflowError,
    VLLMMediaError,
    VLLMModelDiscoveryError,
    VLLMModelNotFoundError,
    VLLMResponseError,
    VLLMServerFeatureError,
    VLLMTimeoutError,
)
from langchain_vllm.models import choose_model, context_length

DEFAULT_API_BASE = "http://localhost:8000/v1"
DEFAULT_API_KEY = "EMPTY"
DEFAULT_MAX_CONNECTIONS = 1024
"""Connection pool size of async clients: above what one vLLM server takes at once
(httpx's default of 100 would cap concurrency below it)."""

_TOKEN_CACHE_SIZE = 4096


def base_url_field() -> Any:
    """The `base_url` field: `VLLM_API_BASE`, else `http://localhost:8000/v1`."""
    return Field(
        default_factory=from_env("VLLM_API_BASE", default=DEFAULT_API_BASE),
        alias="base_url",
    )


def api_key_field() -> Any:
    """The `api_key` field: `VLLM_API_KEY`, else a placeholder key."""
    return Field(
        default_factory=secret_from_env("VLLM_API_KEY", default=DEFAULT_API_KEY),
        alias="api_key",
    )


def vllm_secret_ids(data: Any) -> Any:
    """Point the secrets of a `to_json()` result at `VLLM_API_KEY`.

    Serializable merges `lc_secrets` along the MRO with the parents last, so an
    OpenAI parent's `OPENAI_API_KEY` would win: a loaded object would then send the
    user's OpenAI key to the vLLM host.
    """
    kwargs = data.get("kwargs") if isinstance(data, dict) else None
    if isinstance(kwargs, dict):
        for value in kwargs.values():
            if isinstance(value, dict) and value.get("type") == "secret":
                value["id"] = ["VLLM_API_KEY"]
    return data


def check_base_url(url: str) -> str:
    """Return `url` if it is an http(s) URL with a host, else raise ValueError.

    Caught at construction: otherwise a typo only shows up as a connection error
    on the first call (`Could not connect to the vLLM server at not%20a%20url`).
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        shown = urllib.parse.unquote(url).rstrip("/")
        msg = (
            f"base_url {shown!r} is not an http(s) URL with a host; expected "
            f"something like {DEFAULT_API_BASE!r} (the `base_url` argument or the "
            "VLLM_API_BASE environment variable)."
        )
        raise ValueError(msg)
    return url


def make_clients(
    base_url: str,
    api_key: SecretStr | None,
    *,
    timeout: Any = None,
    max_retries: int | None = None,
    default_headers: dict[str, str] | None = None,
) -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    """Sync and async openai clients for classes without an OpenAI parent."""
    params: dict[str, Any] = {
        "base_url": base_url,
        "api_key": api_key.get_secret_value() if api_key else DEFAULT_API_KEY,
        "default_headers": default_headers,
    }
    if timeout is not None:
        params["timeout"] = timeout
    if max_retries is not None:
        params["max_retries"] = max_retries
    return openai.OpenAI(**params), openai.AsyncOpenAI(**params)


class ServerLink:
    """One vLLM server as seen by one client object: caches and shared requests.

    Built from the sync client and a template async client of the owning object; it
    makes no request until asked (construction against a dead server is free).
    """

    def __init__(
        self,
        client: openai.OpenAI,
        async_client: openai.AsyncOpenAI,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        custom_async_http_client: bool = False,
    ) -> None:
        check_base_url(str(client.base_url))
        self.client = client
        self._custom_async = custom_async_http_client
        self._async_template = async_client
        self._max_connections = max_connections
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, openai.AsyncOpenAI
        ] = weakref.WeakKeyDictionary()
        self._models: list[dict[str, Any]] | None = None
        self.models_generation = 0
        """Counts `forget_models` calls: caches built from the cards compare it."""
        self._version: str | None = None
        self._tokenize_missing = False
        self._tokens: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    # -- addresses -----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (ends in `/v1`)."""
        return str(self.client.base_url).rstrip("/")

    @property
    def root_url(self) -> str:
        """The server's root URL, where `/tokenize`, `/version` and `/health` live."""
        return re.sub(r"/v1$", "", self.base_url)

    @property
    def api_prefix(self) -> str:
        """The base URL's path below the root (`/v1`), for `post` to `/v1` routes."""
        return self.base_url[len(self.root_url) :]

    # -- clients -------------------------------------------------------------------
    def async_client(self) -> openai.AsyncOpenAI:
        """An async client bound to the running event loop.

        httpx connection pools belong to the loop that opened them; a client reused
        from a closed loop fails with `Event loop is closed`. One client per loop.
        """
        if self._custom_async:  # the user's own http client: theirs to manage
            return self._async_template
        loop = asyncio.get_running_loop()
        with self._lock:  # threads with their own loops share this link
            client = self._async_clients.get(loop)
            if client is None:
                limits = httpx2.Limits(
                    max_connections=self._max_connections,
                    # Idle connections are checked on every request start and end:
                    # keep at most 100 (a larger idle pool costs O(N^2) syscalls).
                    max_keepalive_connections=min(100, self._max_connections),
                )
                client = self._async_template.copy(
                    http_client=openai.DefaultAsyncHttpxClient(limits=limits)
                )
                self._async_clients[loop] = client
        return client

    # -- GET /v1/models, GET /version -------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """The served models (`/v1/models` cards), fetched once."""
        if self._models is None:
            self._models = self._model_cards(self._get(f"{self.base_url}/models"))
        return self._models

    async def amodels(self) -> list[dict[str, Any]]:
        """Async `models`."""
        if self._models is None:
            body = await self._aget(f"{self.base_url}/models")
            self._models = self._model_cards(body)
        return self._models

    def resolve_model(self, requested: str | None) -> str:
        """The model to request: the given one, else the only served one."""
        return requested or self._only_model(self.models())

    async def aresolve_model(self, requested: str | None) -> str:
        """Async `resolve_model`."""
        return requested or self._only_model(await self.amodels())

    def context_length(self, model: str) -> int | None:
        """`max_model_len` of a served model; a LoRA adapter's is its parent's."""
        return context_length(self.models(), model)

    def forget_models(self) -> None:
        """Drop the cached `/v1/models` cards (after adapters were (un)loaded)."""
        with self._lock:
            self._models = None
            self.models_generation += 1

    def version(self) -> str:
        """The server's vLLM version (`GET /version`), asked once.

        `UNKNOWN_VERSION` ("") when the route is not there (a gateway that forwards
        only `/v1/*`).
        """
        if self._version is None:
            url = f"{self.root_url}/version"
            try:
                self._version = _version_of(self._get(url), url)
            except openai.NotFoundError as e:
                require_route_missing(e)
                self._version = UNKNOWN_VERSION
        return self._version

    async def aversion(self) -> str:
        """Async `version`."""
        if self._version is None:
            url = f"{self.root_url}/version"
            try:
                self._version = _version_of(await self._aget(url), url)
            except openai.NotFoundError as e:
                require_route_missing(e)
                self._version = UNKNOWN_VERSION
        return self._version

    # -- POST /tokenize, /detokenize -----------------------------------------------
    def tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /tokenize`, cached by request body (repeated texts cost nothing).

        Without the route (a `/v1`-only gateway), a one-token generation through
        `/v1` gives the same ids (`_gateway`).
        """
        key = json.dumps(body, sort_keys=True, default=str)
        cached = self._cached_tokens(key) or self._route_tokens(key, body)
        if cached is None:
            url, probe = tokenize_probe(self.base_url, body)
            cached = self._store_tokens(key, _probed(self._post(url, probe), url))
        return cached

    async def atokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        """Async `tokenize`."""
        key = json.dumps(body, sort_keys=True, default=str)
        cached = self._cached_tokens(key) or await self._aroute_tokens(key, body)
        if cached is None:
            url, probe = tokenize_probe(self.base_url, body)
            answer = await self._apost(url, probe)
            cached = self._store_tokens(key, _probed(answer, url))
        return cached

    def _route_tokens(self, key: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """`/tokenize`'s answer (stored), or None when the route is missing."""
        if self._tokenize_missing:
            return None
        url = f"{self.root_url}/tokenize"
        try:
            answer = self._post(url, body)
        except openai.NotFoundError as e:
            self._note_missing_tokenize(e)
            return None
        return self._store_tokens(key, _expect(answer, url, ("tokens", "count")))

    async def _aroute_tokens(
        self, key: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Async `_route_tokens`."""
        if self._tokenize_missing:
            return None
        url = f"{self.root_url}/tokenize"
        try:
            answer = await self._apost(url, body)
        except openai.NotFoundError as e:
            self._note_missing_tokenize(e)
            return None
        return self._store_tokens(key, _expect(answer, url, ("tokens", "count")))

    def _note_missing_tokenize(self, error: openai.NotFoundError) -> None:
        require_route_missing(error)
        self._tokenize_missing = True
        warn_fallback(self.root_url)

    def prompt_text(self, body: dict[str, Any]) -> str:
        """The prompt text the server builds for a chat `/tokenize` body.

        `/tokenize`, then `/detokenize` of the ids. Without those routes (a
        `/v1`-only gateway), a one-token generation through `/v1` with
        `return_prompt_text` gives the same text (`_gateway`).
        """
        key = json.dumps(body, sort_keys=True, default=str)
        tokens = None
        if not self._tokenize_missing:
            tokens = self._cached_tokens(key) or self._route_tokens(key, body)
        if tokens is not None:
            url = f"{self.root_url}/detokenize"
            try:
                ids = {"model": body["model"], "tokens": tokens["tokens"]}
                answer = self._post(url, ids)
                return str(_expect(answer, url, ("prompt",))["prompt"])
            except openai.NotFoundError as e:
                require_route_missing(e)
        url, probe = prompt_text_probe(self.base_url, body)
        answer = self._post(url, probe)
        if not isinstance(answer, dict) or not isinstance(
            answer.get("prompt_text"), str
        ):
            detail = f"no prompt_text (vLLM 0.32+ sends it) in {answer!r:.100}"
            raise response_error(url, detail, "POST")
        return answer["prompt_text"]

    def post(
        self, path: str, body: dict[str, Any], expect: tuple[str, ...] = ()
    ) -> Any:
        """POST a JSON body to a path under the server root, errors translated.

        `expect` names keys the answer must have (else VLLMResponseError).
        """
        url = f"{self.root_url}{path}"
        return (
            _expect(self._post(url, body), url, expect)
            if expect
            else self._post(url, body)
        )

    async def apost(
        self, path: str, body: dict[str, Any], expect: tuple[str, ...] = ()
    ) -> Any:
        """Async `post`."""
        url = f"{self.root_url}{path}"
        result = await self._apost(url, body)
        return _expect(result, url, expect) if expect else result

    # -- errors ----------------------------------------------------------------------
    def translate(self, error: BaseException) -> BaseException:
        """An actionable error for an openai one (the original is kept as cause)."""
        served = self._models_for_error(error)
        return translate_error(error, self.base_url, served)

    async def atranslate(self, error: BaseException) -> BaseException:
        """Async `translate` (may list the served models without blocking)."""
        if _is_model_not_found(error) and self._models is None:
            with contextlib.suppress(Exception):  # best effort, for the message only
                await self.amodels()
        return translate_error(error, self.base_url, self._models_ids())

    # -- internals -------------------------------------------------------------------
    def _get(self, url: str) -> Any:
        try:
            return self.client.get(url, cast_to=object)
        except openai.APIError as e:
            raise self.translate(e) from e
        except json.JSONDecodeError as e:
            raise response_error(url, f"not JSON: {e}") from e

    async def _aget(self, url: str) -> Any:
        try:
            return await self.async_client().get(url, cast_to=object)
        except openai.APIError as e:
            raise await self.atranslate(e) from e
        except json.JSONDecodeError as e:
            raise response_error(url, f"not JSON: {e}") from e

    def _post(self, url: str, body: dict[str, Any]) -> Any:
        try:
            return self.client.post(url, body=body, cast_to=object)
        except openai.APIError as e:
            raise self.translate(e) from e
        except json.JSONDecodeError as e:
            raise response_error(url, f"not JSON: {e}") from e

    async def _apost(self, url: str, body: dict[str, Any]) -> Any:
        try:
            return await self.async_client().post(url, body=body, cast_to=object)
        except openai.APIError as e:
            raise await self.atranslate(e) from e
        except json.JSONDecodeError as e:
            raise response_error(url, f"not JSON: {e}") from e

    def _cached_tokens(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._tokens.get(key)
            if hit is not None:
                self._tokens.move_to_end(key)
            return hit

    def _store_tokens(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._tokens[key] = value
            while len(self._tokens) > _TOKEN_CACHE_SIZE:
                self._tokens.popitem(last=False)
        return value

    def _model_cards(self, body: Any) -> list[dict[str, Any]]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            msg = f"{self.base_url}/models did not return a model list: {body!r:.200}"
            raise VLLMModelDiscoveryError(msg)
        return [m for m in data if isinstance(m, dict)]

    def _only_model(self, cards: list[dict[str, Any]]) -> str:
        return choose_model(cards, self.base_url)

    def _models_ids(self) -> list[str] | None:
        return [str(m.get("id")) for m in self._models] if self._models else None

    def _models_for_error(self, error: BaseException) -> list[str] | None:
        if _is_model_not_found(error) and self._models is None:
            with contextlib.suppress(Exception):  # best effort, for the message only
                self.models()
        return self._models_ids()


class LoopClient:
    """Stands for the running event loop's async client (or one of its resources).

    Set once on a client object in place of an `AsyncOpenAI`: each attribute read
    picks the client of the loop that runs the call (`ServerLink.async_client`), so
    no call writes to the shared object and threads with their own event loops can
    use one instance at once.
    """

    def __init__(self, link: ServerLink, *path: str) -> None:
        self._link = link
        self._path = path

    def __getattr__(self, name: str) -> Any:
        target: Any = self._link.async_client()
        for step in self._path:
            target = getattr(target, step)
        return getattr(target, name)


CLIENT_FIELDS = frozenset(
    {"client", "async_client", "root_client", "root_async_client"}
)
"""Fields that hold openai clients: rebuilt from the others, never copied."""


def rebuild(cls: type, values: dict[str, Any]) -> Any:
    """Build `cls` again from its constructor arguments (pickle and deepcopy)."""
    return cls(**values)


class RebuiltOnCopy:
    """Pickle and deep copy by constructor arguments; clients are built anew.

    openai clients hold locks and connection pools that cannot be pickled (nor
    should be shared across processes): a copy gets its own, from the same
    settings. The API key stays a `SecretStr`. A user-supplied `http_client` or
    `http_async_client` cannot be carried over, and says so.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (rebuild, (type(self), self._constructor_values()))

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        return rebuild(type(self), copy.deepcopy(self._constructor_values(), memo))

    def _constructor_values(self) -> dict[str, Any]:
        for name in ("http_client", "http_async_client"):
            if getattr(self, name, None) is not None:
                msg = (
                    f"{type(self).__name__} with a custom `{name}` cannot be "
                    "pickled or deep-copied (an HTTP client cannot cross processes): "
                    f"build the object in the other process, or leave `{name}` "
                    "unset (one pool per event loop is then made for you)."
                )
                raise TypeError(msg)
        fields_set: set[str] = self.model_fields_set  # type: ignore[attr-defined]
        values = {name: getattr(self, name) for name in fields_set}
        return {
            name: value
            for name, value in values.items()
            if name not in CLIENT_FIELDS
            # Read from the server: the copy asks its own link again.
            and not getattr(value, "refetched_by_copies", False)
        }


_CONTEXT_PATTERNS = (
    # vLLM 0.32: "This model's maximum context length is 2048 tokens. However, your
    # prompt contains at least 2049 input tokens, which exceeds this limit ..."
    re.compile(
        r"maximum context length is (?P<limit>\d+) tokens.*?prompt contains"
        r"(?: at least)? (?P<prompt>\d+) (?:input )?tokens",
        re.S,
    ),
    # vLLM: "This model's maximum context length is 2048 tokens. However, you
    # requested 3000 tokens (2990 in the messages, 10 in the completion)."
    re.compile(
        r"maximum context length is (?P<limit>\d+) tokens.*?requested (?P<asked>\d+)"
        r" tokens(?: \((?P<prompt>\d+) in the messages)?",
        re.S,
    ),
    # vLLM: "... input (3000 tokens) is longer than the model's context length
    # (2048 tokens)" and similar wordings.
    re.compile(
        r"\((?P<prompt>\d+) tokens\).*?(?:context length|max_model_len)"
        r"[^\d]*\((?P<limit>\d+) tokens\)",
        re.S,
    ),
    re.compile(
        r"(?P<prompt>\d+) (?:input |prompt )?tokens.*?(?:maximum context length|"
        r"max_model_len|context length)[^\d]*(?P<limit>\d+)",
        re.S,
    ),
)
_TOOL_PARSER_HINT = re.compile(r"enable-auto-tool-choice|tool-call-parser|tool_choice")


_AT_LEAST = re.compile(r"prompt contains at least \d+")


def _is_model_not_found(error: BaseException) -> bool:
    return isinstance(error, openai.NotFoundError) and "model" in str(error).lower()


def context_numbers(message: str) -> tuple[int | None, int | None]:
    """(prompt tokens, context limit) read from a vLLM context-overflow message."""
    for pattern in _CONTEXT_PATTERNS:
        match = pattern.search(message)
        if match:
            groups = match.groupdict()
            prompt = groups.get("prompt") or groups.get("asked")
            return (int(prompt) if prompt else None, int(groups["limit"]))
    return None, None


def _is_context_overflow(message: str) -> bool:
    lowered = message.lower()
    return (
        "maximum context length" in lowered
        or (
            "context length" in lowered
            and ("longer than" in lowered or "exceed" in lowered)
        )
        or ("max_model_len" in lowered and ("exceed" in lowered or "longer" in lowered))
    )


def translate_error(
    error: BaseException, base_url: str, served: list[str] | None = None
) -> BaseException:
    """Map an openai error to the vLLM error a user can act on."""
    if isinstance(error, openai.APITimeoutError):
        err = VLLMTimeoutError(error.request)
        msg = (
            f"The vLLM server at {base_url} did not answer within the timeout. "
            "Raise `timeout=` or check the server's load."
        )
        err.message, err.args = msg, (msg,)
        return err
    if isinstance(error, openai.APIConnectionError):
        return VLLMConnectionError(
            message=f"Could not connect to the vLLM server at {base_url} "
            f"({error.__cause__ or error.message}). {START_HINT}",
            request=error.request,
        )
    if not isinstance(error, openai.APIStatusError):
        return error
    return _status_error(error, base_url, served)


def _status_error(
    error: openai.APIStatusError, base_url: str, served: list[str] | None
) -> BaseException:
    server_msg = server_message(error)
    if isinstance(error, openai.AuthenticationError):
        return VLLMAuthenticationError(
            f"The vLLM server at {base_url} rejected the API key ({server_msg}). "
            "Set the key the server was started with (`--api-key`) in the "
            "VLLM_API_KEY environment variable or pass `api_key=`.",
            response=error.response,
            body=error.body,
        )
    if _is_model_not_found(error):
        listing = f" Served models: {', '.join(served)}." if served else ""
        return VLLMModelNotFoundError(
            f"{server_msg} (server {base_url}).{listing}",
            response=error.response,
            body=error.body,
        )
    hint = media_hint(server_msg)
    if hint is not None:  # 400, or 422/500 for a media URL the server cannot fetch
        return VLLMMediaError(
            f"{server_msg} {hint}", response=error.response, body=error.body
        )
    if isinstance(error, openai.BadRequestError):
        return _bad_request(error, server_msg)
    if isinstance(error, openai.NotFoundError) and "response with id" in (
        server_msg.lower()
    ):
        return openai.NotFoundError(
            f"{server_msg} (server {base_url}). vLLM keeps responses for "
            "`previous_response_id` only when started with "
            "VLLM_ENABLE_RESPONSES_API_STORE=1, in memory, until it restarts.",
            response=error.response,
            body=error.body,
        )
    return error


def _bad_request(error: openai.BadRequestError, server_msg: str) -> BaseException:
    if _is_context_overflow(server_msg):
        prompt, limit = context_numbers(server_msg)
        # vLLM 0.32 stops counting one past the limit: "at least N".
        at_least = "at least " if _AT_LEAST.search(server_msg) else ""
        numbers = (
            f"The prompt has {at_least}{prompt} tokens; the model's context is "
            f"{limit} tokens. "
            if prompt is not None and limit is not None
            else ""
        )
        return VLLMContextOverflowError(
            f"{numbers}Shorten the input (e.g. `trim_messages`) or lower "
            f"`max_tokens`. Server said: {server_msg}",
            response=error.response,
            body=error.body,
        )
    if _TOOL_PARSER_HINT.search(server_msg):
        return VLLMServerFeatureError(
            f"{server_msg}. Tool calling needs a server started with "
            "`--enable-auto-tool-choice --tool-call-parser NAME` "
            "(e.g. `hermes`).",
            response=error.response,
            body=error.body,
        )
    return VLLMBadRequestError(server_msg, response=error.response, body=error.body)


def server_message(error: openai.APIStatusError) -> str:
    """The server's own message in an error answer (vLLM's or FastAPI's form)."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
        if isinstance(body.get("detail"), str) and body["detail"]:  # FastAPI's
            return str(body["detail"])
    return error.message


def response_error(url: str, problem: str, method: str = "GET") -> VLLMResponseError:
    """A VLLMResponseError for an answer of `url` that is not what vLLM sends."""
    return VLLMResponseError(
        f"The answer from {url} is not what a vLLM server sends ({problem}). Is "
        "`base_url` a vLLM server, or did a proxy in between rewrite the answer?",
        httpx2.Request(method, url),
        body=None,
    )


def _probed(answer: Any, url: str) -> dict[str, Any]:
    tokens = probe_tokens(answer)
    if tokens is None:
        raise response_error(url, f"no prompt_token_ids in {answer!r:.100}", "POST")
    return tokens


def _expect(body: Any, url: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise response_error(url, f"expected a JSON object, got {body!r:.100}", "POST")
    missing = [k for k in keys if k not in body]
    if missing:
        raise response_error(url, f"no {', '.join(missing)} in {body!r:.100}", "POST")
    return body


def _version_of(body: Any, url: str) -> str:
    if not isinstance(body, dict) or not body.get("version"):
        raise response_error(url, f"no version in {body!r:.100}")
    return str(body["version"])
