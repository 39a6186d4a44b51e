"""How a vLLM client object is built and rebuilt.

Defaults and environment variables, the base URL check, openai clients for classes
without an OpenAI parent, and copies (pickle, deepcopy) that build new clients from
the same settings.
"""

from __future__ import annotations

import copy
import urllib.parse
from typing import Any

import openai
from langchain_core.utils import from_env, secret_from_env
from pydantic import Field, SecretStr

DEFAULT_API_BASE = "http://localhost:8000/v1"
DEFAULT_API_KEY = "EMPTY"
DEFAULT_MAX_CONNECTIONS = 1024
"""Connection pool size of async clients: above what one vLLM server takes at once
(httpx's default of 100 would cap concurrency below it)."""


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
