"""One vLLM server as seen by one client object (`ServerLink`).

Model discovery (`/v1/models`), `/version`, `/tokenize` and `/detokenize` with their
caches, plain JSON requests with errors translated, and async clients per event loop.
These bookkeeping requests make no spans of their own under an openai
instrumentation (`_traced.quiet`): `ChatOpenAI` makes none of them.
Nothing here knows LangChain's message types: callers pass plain JSON-ready data.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import OrderedDict
from typing import Any

import openai

from langchain_vllm._gateway import (
    UNKNOWN_VERSION,
    probe_tokens,
    prompt_text_probe,
    require_route_missing,
    tokenize_probe,
    warn_fallback,
)
from langchain_vllm._inert_probe import (
    Probe,
    adiscover_special_tokens,
    discover_special_tokens,
)
from langchain_vllm._loop import LoopClients, in_event_loop
from langchain_vllm._seams import base_url_of
from langchain_vllm._settings import DEFAULT_MAX_CONNECTIONS, check_base_url
from langchain_vllm._traced import quiet
from langchain_vllm._translate import (
    is_model_not_found,
    response_error,
    translate_error,
)
from langchain_vllm.errors import VLLMModelDiscoveryError
from langchain_vllm.models import choose_model, context_length, describe

_TOKEN_CACHE_SIZE = 4096


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
        self._loop_clients = LoopClients(
            async_client,
            max_connections=max_connections,
            custom_http_client=custom_async_http_client,
        )
        self._models: list[dict[str, Any]] | None = None
        self.models_generation = 0
        """Counts `forget_models` calls: caches built from the cards compare it."""
        self._version: str | None = None
        self._chosen: tuple[list[dict[str, Any]], str] | None = None
        self._url: tuple[Any, str] = (None, "")
        self._tokenize_missing = False
        self._tokens: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._specials: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    # -- addresses -----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (ends in `/v1`)."""
        # The SDK's `base_url` property costs microseconds: read the URL behind it
        # (`_seams`), and make the string again only when the URL was replaced.
        url = base_url_of(self.client)
        if url is not self._url[0]:
            self._url = (url, str(url).rstrip("/"))
        return self._url[1]

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
        """An async client bound to the running event loop (one per loop)."""
        return self._loop_clients.get()

    async def aclient(self) -> openai.AsyncOpenAI:
        """`async_client`, made without CPU-heavy work on the loop (SSL context)."""
        return await self._loop_clients.aget()

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

    def known_models(self) -> list[dict[str, Any]] | None:
        """The cached `/v1/models` cards, or None: never makes a request."""
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

    # -- special tokens --------------------------------------------------------------
    def special_tokens(self, model: str) -> frozenset[str]:
        """The served model's special-token strings (`_inert_probe`), asked once."""
        found = self._specials.get(model)
        if found is None:
            found = frozenset(discover_special_tokens(self._probe, model).strings)
            self._specials[model] = found
        return found

    async def aspecial_tokens(self, model: str) -> frozenset[str]:
        """Async `special_tokens`."""
        found = self._specials.get(model)
        if found is None:
            answer = await adiscover_special_tokens(self._aprobe, model)
            found = self._specials[model] = frozenset(answer.strings)
        return found

    def _probe(self, probe: Probe) -> Any:
        url = f"{self.root_url}{probe.path}"
        if probe.method == "GET":
            return self._get(url)
        return self._post(url, probe.body or {})

    async def _aprobe(self, probe: Probe) -> Any:
        url = f"{self.root_url}{probe.path}"
        if probe.method == "GET":
            return await self._aget(url)
        return await self._apost(url, probe.body or {})

    # -- errors ----------------------------------------------------------------------
    def translate(self, error: BaseException) -> BaseException:
        """An actionable error for an openai one (the original is kept as cause).

        May list the served models for the message, but not inside a running event
        loop (cached ones only there: async paths use `atranslate`).
        """
        served = self._models_for_error(error)
        return translate_error(error, self.base_url, served)

    async def atranslate(self, error: BaseException) -> BaseException:
        """Async `translate` (may list the served models without blocking)."""
        if is_model_not_found(error) and self._models is None:
            with contextlib.suppress(Exception):  # best effort, for the message only
                await self.amodels()
        return translate_error(error, self.base_url, self._served())

    # -- internals -------------------------------------------------------------------
    def _get(self, url: str) -> Any:
        try:
            with quiet():
                return self.client.get(url, cast_to=object)
        except openai.APIError as e:
            raise self.translate(e) from e
        except json.JSONDecodeError as e:
            raise response_error(url, f"not JSON: {e}") from e

    async def _aget(self, url: str) -> Any:
        try:
            client = await self.aclient()
            with quiet():
                return await client.get(url, cast_to=object)
        except openai.APIError as e:
            raise await self.atranslate(e) from e
        except json.JSONDecodeError as e:
            raise response_error(url, f"not JSON: {e}") from e

    def _post(self, url: str, body: dict[str, Any]) -> Any:
        try:
            with quiet():
                return self.client.post(url, body=body, cast_to=object)
        except openai.APIError as e:
            raise self.translate(e) from e
        except json.JSONDecodeError as e:
            raise response_error(url, f"not JSON: {e}") from e

    async def _apost(self, url: str, body: dict[str, Any]) -> Any:
        try:
            client = await self.aclient()
            with quiet():
                return await client.post(url, body=body, cast_to=object)
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
        chosen = self._chosen  # (cards, model): one choice per fetched list
        if chosen is not None and chosen[0] is cards:
            return chosen[1]
        model = choose_model(cards, self.base_url)
        self._chosen = (cards, model)
        return model

    def _served(self) -> str | None:
        return describe(self._models) if self._models else None

    def _models_for_error(self, error: BaseException) -> str | None:
        if is_model_not_found(error) and self._models is None and not in_event_loop():
            with contextlib.suppress(Exception):  # best effort, for the message only
                self.models()
        return self._served()


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
