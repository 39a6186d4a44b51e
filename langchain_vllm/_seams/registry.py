"""The seams: each private upstream name, how it is checked, and what replaces it."""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx2
import openai

logger = logging.getLogger("langchain_vllm")
_CHECKING = threading.RLock()  # a derived seam checks its parts inside


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


MISSING: Any = _Sentinel("MISSING")
"""A seam's value when the private name is gone or no longer what we rely on."""
UNCHECKED: Any = _Sentinel("UNCHECKED")
"""A seam's value before its first use."""


class Seam:
    """One private upstream name (or a few that work together), checked once.

    Args:
        name: What the seam is upstream (e.g. `openai._streaming.SSEDecoder`).
        public: What the package does without it (said in the debug line).
        load: Returns the value to use; raises when the name is missing or changed.
        derived: A seam made of others (logs nothing: its parts do).
    """

    def __init__(
        self,
        name: str,
        public: str,
        load: Callable[[], Any],
        *,
        derived: bool = False,
    ) -> None:
        self.name = name
        self.public = public
        self._load = load
        self._derived = derived
        self._value: Any = UNCHECKED

    # `value` and `ok` are computed on first read, then kept as plain attributes:
    # a request reads them without a call. Setting `_value` (back to UNCHECKED in
    # tests) forgets them.
    value: Any
    """The private object (or True for a checked attribute), or `MISSING`."""
    ok: bool
    """Whether the private name is there and as the package expects it."""

    def __getattr__(self, name: str) -> Any:
        if name not in ("value", "ok"):
            raise AttributeError(name)
        value = self._value
        if value is UNCHECKED:
            with _CHECKING:  # one check (and one log line) even with threads
                value = self._value
                if value is UNCHECKED:
                    value = self._value = self._check()
        self.__dict__["value"] = value
        self.__dict__["ok"] = value is not MISSING
        return self.__dict__[name]

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "_value":
            self.__dict__.pop("value", None)
            self.__dict__.pop("ok", None)

    def _check(self) -> Any:
        try:
            return self._load()
        except Exception as e:  # any failure: take the public path
            if not self._derived:
                logger.debug(
                    "langchain_vllm: upstream seam %s is missing or changed "
                    "(%s: %s); using the public path instead: %s.",
                    self.name,
                    type(e).__name__,
                    e,
                    self.public,
                )
            return MISSING

    def __repr__(self) -> str:
        return f"Seam({self.name!r}, value={self._value!r})"


# -- loaders -------------------------------------------------------------------------
def _attr(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _has_params(func: Callable[..., Any], *names: str) -> Callable[..., Any]:
    """`func`, checked to take these keyword parameters (else TypeError)."""
    missing = set(names) - set(inspect.signature(func).parameters)
    if missing:
        msg = f"no parameter(s) {sorted(missing)}"
        raise TypeError(msg)
    return func


def _methods(*names: str) -> bool:
    """The client classes' methods exist (else AttributeError)."""
    for cls in (openai.OpenAI, openai.AsyncOpenAI):
        for name in names:
            if not callable(getattr(cls, name)):
                msg = f"{cls.__name__}.{name} is not callable"
                raise TypeError(msg)
    return True


@functools.cache
def _probe_clients() -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    """Clients to check instance fields on (no network, no SSL context)."""
    args: dict[str, Any] = {"api_key": "x", "base_url": "http://seam.invalid/v1"}
    transport = httpx2.MockTransport(lambda request: httpx2.Response(204))
    return (
        openai.OpenAI(
            **args, http_client=httpx2.Client(transport=transport, trust_env=False)
        ),
        openai.AsyncOpenAI(
            **args,
            http_client=httpx2.AsyncClient(transport=transport, trust_env=False),
        ),
    )


def _fields(*names: str) -> bool:
    """The clients have these instance fields (else AttributeError)."""
    for client in _probe_clients():
        for name in names:
            getattr(client, name)
    return True


def _http_client_field() -> bool:
    sync, async_ = _probe_clients()
    if not isinstance(sync._client, httpx2.Client) or not isinstance(
        async_._client, httpx2.AsyncClient
    ):
        msg = "the client's `_client` is not its httpx2 client"
        raise TypeError(msg)
    return True


def _base_url_field() -> str:
    """The instance field behind `base_url` (the property costs microseconds)."""
    client = _probe_clients()[0]
    for name in ("_configured_base_url", "_base_url"):  # openai >= 3.63, before
        if vars(client).get(name) == client.base_url:
            return name
    msg = "no instance field holds the base URL"
    raise AttributeError(msg)


def _header_list() -> bool:
    headers = httpx2.Headers({"a": "b"})
    if headers._list != [(b"a", b"a", b"b")]:
        msg = f"Headers._list is {headers._list!r}"
        raise TypeError(msg)
    return True


def _resource_client_field() -> bool:
    client = _probe_clients()[0]
    if client.completions._client is not client:
        msg = "a resource's `_client` is not its client"
        raise TypeError(msg)
    return True


SDK_ONLY = ("_workload_identity_auth", "_provider_runtime", "_api_key_provider")
"""Client fields that, when set, make requests the SDK must build itself."""
SDK_PATH = "the SDK's own `post` (per request)"

# -- openai: the direct path (`_direct`) ---------------------------------------------
HTTPX_ERRORS = Seam(
    "openai._httpx2.request_exceptions/timeout_exceptions",
    SDK_PATH,
    lambda: (
        _attr("openai._httpx2", "request_exceptions"),
        _attr("openai._httpx2", "timeout_exceptions"),
    ),
)
REQUEST_OPTIONS = Seam(
    "openai._models.FinalRequestOptions", SDK_PATH,
    lambda: _attr("openai._models", "FinalRequestOptions").construct,
)  # fmt: skip
SSE_DECODER = Seam(
    "openai._streaming.SSEDecoder", SDK_PATH,
    lambda: _attr("openai._streaming", "SSEDecoder"),
)  # fmt: skip
DRAIN = Seam(
    "openai._streaming_cleanup.drain_response_async", SDK_PATH,
    lambda: _attr("openai._streaming_cleanup", "drain_response_async"),
)  # fmt: skip
DUMPS = Seam(
    "openai._utils._json.openapi_dumps", SDK_PATH,
    lambda: _attr("openai._utils._json", "openapi_dumps"),
)  # fmt: skip
HTTP_CLIENT = Seam("OpenAI._client", SDK_PATH, _http_client_field)
BUILD_REQUEST = Seam(
    "OpenAI._build_request", SDK_PATH, lambda: _methods("_build_request")
)
RETRY_HELPERS = Seam(
    "OpenAI._should_retry/_sleep_for_retry", SDK_PATH,
    lambda: _methods("_should_retry", "_sleep_for_retry") and _has_params(
        openai.OpenAI._sleep_for_retry, "retries_taken", "max_retries", "options",
        "response",
    ),
)  # fmt: skip
STATUS_ERROR = Seam(
    "OpenAI._make_status_error_from_response", SDK_PATH,
    lambda: _methods("_make_status_error_from_response"),
)  # fmt: skip
CLIENT_FIELDS = Seam(
    f"OpenAI._custom_headers/_strict_response_validation/{'/'.join(SDK_ONLY)}",
    SDK_PATH,
    lambda: _fields("_custom_headers", "_strict_response_validation", *SDK_ONLY),
)
DIRECT_PARTS = (
    HTTPX_ERRORS, REQUEST_OPTIONS, SSE_DECODER, DRAIN, DUMPS, HTTP_CLIENT,
    BUILD_REQUEST, RETRY_HELPERS, STATUS_ERROR, CLIENT_FIELDS,
)  # fmt: skip
DIRECT = Seam(
    "the direct path", SDK_PATH,
    lambda: all(part.ok for part in DIRECT_PARTS) or MISSING, derived=True,
)  # fmt: skip
"""All of the direct path's seams (`_direct`): one check per request."""

# -- openai and httpx2: fields read for speed ------------------------------------------
BASE_URL_FIELD = Seam(
    "OpenAI._configured_base_url (_base_url before openai 3.63)",
    "the client's `base_url` property (microseconds per read)", _base_url_field,
)  # fmt: skip
HEADER_LIST = Seam(
    "httpx2.Headers._list", "`Headers.raw` (microseconds per request)", _header_list
)
RAW_HEADER = Seam(
    "openai._constants.RAW_RESPONSE_HEADER",
    "the SDK resource's own `with_raw_response.create`",
    lambda: _attr("openai._constants", "RAW_RESPONSE_HEADER"),
)
RESOURCE_CLIENT = Seam(
    "openai resource `_client`",
    "the client found among the resource's attributes by type", _resource_client_field,
)  # fmt: skip

# -- langchain-openai, langchain-core, pydantic --------------------------------------
RESPONSES_CONVERTER_PARAMS = (
    "chunk", "current_index", "current_output_index", "current_sub_index", "schema",
    "metadata", "has_reasoning", "output_version", "item_output_indices",
    "function_call_arguments",
)  # fmt: skip
"""The converter's parameters as of langchain-openai 1.8.1 (what the fork passes)."""


def _responses_converter() -> Callable[..., Any]:
    module = "langchain_openai.chat_models.base"
    converter = _attr(module, "_convert_responses_chunk_to_generation_chunk")
    params = tuple(inspect.signature(converter).parameters)
    if params != RESPONSES_CONVERTER_PARAMS:
        msg = f"its parameters are now {params}"
        raise TypeError(msg)
    for name in ("_stream_responses", "_astream_responses"):
        _attr(module, "BaseChatOpenAI").__dict__[name]  # KeyError if gone
    return converter  # type: ignore[no-any-return]


RESPONSES_CONVERTER = Seam(
    "langchain_openai _convert_responses_chunk_to_generation_chunk "
    "(ChatVLLM's fork of _stream_responses)",
    "langchain-openai's own Responses stream readers (no reasoning-text deltas)",
    _responses_converter,
)


def _convert_input_method() -> Callable[..., Any]:
    from langchain_core.language_models import BaseChatModel

    return _has_params(BaseChatModel._convert_input, "model_input")


CONVERT_INPUT = Seam(
    "langchain_core BaseChatModel._convert_input", "langchain-core's public prompt "
    "values and convert_to_messages", _convert_input_method,
)  # fmt: skip


def _prompt_validation() -> bool:
    from langchain_core.prompts import BasePromptTemplate

    _has_params(BasePromptTemplate._validate_input, "inner_input")
    return True


PROMPT_VALIDATION = Seam(
    "langchain_core ChatPromptTemplate._validate_input",
    "variables checked in the public `invoke`/`ainvoke`", _prompt_validation,
)  # fmt: skip


def model_parts(instance: Any) -> tuple[dict[str, Any], Any, Any]:
    """A pydantic model's field values, extras and private attributes."""
    return (
        dict(getattr(instance, "__dict__", {})),
        getattr(instance, "__pydantic_extra__", None),
        getattr(instance, "__pydantic_private__", None),
    )


_set = object.__setattr__  # past pydantic's validating __setattr__


def model_builder(
    prototype: Any, passed: frozenset[str], fields_set: frozenset[str]
) -> Callable[..., Any]:
    """A maker of instances like `prototype` from keyword field values, not validated.

    `passed`: the fields every call passes (keyword-only); `fields_set`: what
    validation marks set. Other list and dict fields get a new empty container, other
    fields the prototype's value; extras and private attributes are deep copies:
    instances share nothing mutable. Generated code: one dict display per call.
    """
    values, extra, private = model_parts(prototype)

    def _copy(parts: dict[str, Any] | None, name: str) -> str:  # a new copy's code
        return "None" if parts is None else f"_deep({name})" if parts else "{}"

    scope: dict[str, Any] = {
        "_cls": type(prototype), "_set": _set, "_fields_set": fields_set,
        "_extra": extra, "_private": private, "_deep": copy.deepcopy,
    }  # fmt: skip
    items = []
    for i, (name, value) in enumerate(values.items()):
        if name in passed:
            items.append(f"{name!r}: {name}")
        elif isinstance(value, list | dict):  # a new one, of its own type
            scope[f"_t{i}"] = type(value)
            items.append(f"{name!r}: _t{i}()")
        else:
            scope[f"_v{i}"] = value
            items.append(f"{name!r}: _v{i}")
    source = (
        f"def build(*, {', '.join(sorted(passed))}):\n"
        "    _obj = _cls.__new__(_cls)\n"
        f"    _set(_obj, '__dict__', {{{', '.join(items)}}})\n"
        "    _set(_obj, '__pydantic_fields_set__', set(_fields_set))\n"
        f"    _set(_obj, '__pydantic_extra__', {_copy(extra, '_extra')})\n"
        f"    _set(_obj, '__pydantic_private__', {_copy(private, '_private')})\n"
        "    return _obj\n"
    )
    exec(source, scope)  # noqa: S102 - generated from field names, as dataclasses do
    build: Callable[..., Any] = scope["build"]
    return build


def _pydantic_build() -> bool:
    from langchain_core.messages import AIMessageChunk

    validated = AIMessageChunk(content="x", additional_kwargs={"a": 1})
    given = frozenset({"content", "additional_kwargs"})
    build = model_builder(AIMessageChunk(content=""), given, given)
    built = build(content="x", additional_kwargs={"a": 1})
    if built != validated or built.model_dump() != validated.model_dump():
        msg = "a model built from its parts differs from the validated one"
        raise TypeError(msg)
    return True


PYDANTIC_BUILD = Seam(
    "pydantic __dict__/__pydantic_fields_set__/__pydantic_extra__/__pydantic_private__",
    "langchain-openai's validated chunks and pydantic validation",
    _pydantic_build,
)

SEAMS: tuple[Seam, ...] = (
    *DIRECT_PARTS, BASE_URL_FIELD, HEADER_LIST, RAW_HEADER, RESOURCE_CLIENT,
    RESPONSES_CONVERTER, CONVERT_INPUT, PROMPT_VALIDATION, PYDANTIC_BUILD,
)  # fmt: skip
"""Every seam (not the derived `DIRECT`)."""
DERIVED: tuple[Seam, ...] = (DIRECT,)
"""Seams computed from others: reset them (value `UNCHECKED`) when a part changes."""
