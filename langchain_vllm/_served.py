"""Served models and LoRA adapters at runtime, through a client's link to the server.

`ServedModelsMixin` adds `list_models`, `load_lora_adapter` and
`unload_lora_adapter` (and their async twins) to every vLLM client class
(`VLLMClient`). Loading and unloading use vLLM's `POST /v1/load_lora_adapter` and
`POST /v1/unload_lora_adapter`, which a server only offers when started with
`--enable-lora` and the environment variable `VLLM_ALLOW_RUNTIME_LORA_UPDATING=1`;
the server's refusals become typed errors that say what to do.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import TYPE_CHECKING, Any

import openai

from langchain_vllm._translate import server_message
from langchain_vllm.errors import (
    VLLMLoRAAdapterError,
    VLLMModelNotFoundError,
    VLLMServerFeatureError,
)
from langchain_vllm.models import ServedModel, describe, served_models

if TYPE_CHECKING:
    from langchain_vllm._link import ServerLink

LOAD_PATH = "/v1/load_lora_adapter"
UNLOAD_PATH = "/v1/unload_lora_adapter"

RUNTIME_HINT = (
    "Start the server with `--enable-lora` (and `--max-lora-rank` at least the "
    "adapters' rank) and the environment variable VLLM_ALLOW_RUNTIME_LORA_UPDATING=1 "
    "(`VLLMServer(..., runtime_lora_updating=True)` does both)."
)

_RANK = re.compile(r"rank (?P<rank>\d+) is greater than max_lora_rank (?P<max>\d+)")
_NOT_LOADED = re.compile(r"lora adapter '.*' cannot be found", re.I)
_NO_ROUTE = ("Not Found", "Method Not Allowed")  # FastAPI's answers
_NO_LORA = re.compile(r"lora is not enabled|enable[-_ ]lora|lora_config is none", re.I)


def _route_missing(error: openai.APIStatusError) -> bool:
    """No such route: the server does not update adapters at runtime."""
    body = error.body
    detail = body.get("detail") if isinstance(body, dict) else None
    return error.status_code in (404, 405) and detail in _NO_ROUTE


def adapter_error(
    error: openai.APIStatusError,
    base_url: str,
    request: dict[str, str],
    served: str | None,
) -> BaseException:
    """The typed error for a refused load or unload of `request["lora_name"]`."""
    said = server_message(error)
    name, where = request["lora_name"], f"vLLM server at {base_url}"
    kw: dict[str, Any] = {"response": error.response, "body": error.body}
    if _route_missing(error) or _NO_LORA.search(said):
        msg = f"The {where} does not load or unload LoRA adapters at runtime ({said}). "
        return VLLMServerFeatureError(msg + RUNTIME_HINT, **kw)
    if _NOT_LOADED.search(said) and "lora_path" not in request:
        listing = f" It serves: {served}." if served else ""
        msg = f"No LoRA adapter {name!r} is loaded on the {where}.{listing} ({said})"
        return VLLMModelNotFoundError(msg, **kw)
    rank = _RANK.search(said)
    if rank:
        msg = (
            f"The LoRA adapter {name!r} has rank {rank['rank']}, above the "
            f"`--max-lora-rank {rank['max']}` of the {where}: restart the server with "
            f"`--max-lora-rank {rank['rank']}` or more. ({said})"
        )
        return VLLMLoRAAdapterError(msg, **kw)
    if "No adapter found" in said:
        msg = (
            f"The {where} cannot read a LoRA adapter at {request.get('lora_path')!r}: "
            "the path is read by the server, not by this client. Give a folder on "
            "the server's machine with adapter_config.json and the adapter's "
            f"weights (or a Hugging Face repo id the server can fetch). ({said})"
        )
        return VLLMLoRAAdapterError(msg, **kw)
    if error.status_code in (400, 409, 500):
        msg = f"The {where} refused the LoRA adapter {name!r}: {said}"
        return VLLMLoRAAdapterError(msg, **kw)
    return error


def load_body(name: str, path: str | os.PathLike[str]) -> dict[str, str]:
    """The body of `POST /v1/load_lora_adapter` (name and path checked)."""
    body = unload_body(name)
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(text, str) or not text.strip():
        msg = f"The adapter's path must be a non-empty string or path, got {path!r}"
        raise ValueError(msg)
    return {**body, "lora_path": text}


def unload_body(name: str) -> dict[str, str]:
    """The body of `POST /v1/unload_lora_adapter` (name checked)."""
    if not isinstance(name, str) or not name.strip():
        msg = f"The adapter's name must be a non-empty string, got {name!r}"
        raise ValueError(msg)
    return {"lora_name": name}


class ServedModelsMixin:
    """`list_models` and runtime LoRA adapters for a vLLM client class.

    Listed before the LangChain parent; the class sets `_link` (`VLLMClient`).
    """

    if TYPE_CHECKING:
        _link: ServerLink

    def list_models(self) -> list[ServedModel]:
        """The models the server serves now: base models and LoRA adapters.

        Always asks the server (`GET /v1/models`), and refreshes what model
        discovery and the profile know.

        Returns:
            One `ServedModel` per name (`name`, `parent`, `max_model_len`, `root`).

        Example:
            ```python
            [(m.name, m.parent) for m in chat.list_models()]
            # [('smollm2', None), ('pineapple', 'smollm2')]
            ```
        """
        self._link.forget_models()
        return served_models(self._link.models())

    async def alist_models(self) -> list[ServedModel]:
        """Async `list_models`."""
        self._link.forget_models()
        return served_models(await self._link.amodels())

    def load_lora_adapter(self, name: str, path: str | os.PathLike[str]) -> None:
        """Load a LoRA adapter into the running server, served as `name`.

        Needs a server started with `--enable-lora` and
        `VLLM_ALLOW_RUNTIME_LORA_UPDATING=1`. Then `model=name` (per instance, per
        call or with `.bind`) uses it.

        Args:
            name: The name requests will ask for.
            path: The adapter's folder *on the server's machine* (`adapter_config.json`
                and weights, e.g. from peft's `save_pretrained`).

        Raises:
            ValueError: An empty name or path.
            VLLMServerFeatureError: The server does not update adapters at runtime.
            VLLMLoRAAdapterError: The server cannot read the path, the adapter's
                rank is above `--max-lora-rank`, or the name is in use.

        Example:
            ```python
            chat.load_lora_adapter("pineapple", "/models/pineapple-lora")
            chat.invoke("Name a colour.", model="pineapple")
            ```
        """
        self._update(LOAD_PATH, load_body(name, path))

    async def aload_lora_adapter(self, name: str, path: str | os.PathLike[str]) -> None:
        """Async `load_lora_adapter`."""
        await self._aupdate(LOAD_PATH, load_body(name, path))

    def unload_lora_adapter(self, name: str) -> None:
        """Remove a LoRA adapter from the running server.

        Raises:
            ValueError: An empty name.
            VLLMModelNotFoundError: No adapter of that name is loaded (the message
                lists what the server serves).
            VLLMServerFeatureError: The server does not update adapters at runtime.

        Example:
            ```python
            chat.unload_lora_adapter("pineapple")
            ```
        """
        self._update(UNLOAD_PATH, unload_body(name))

    async def aunload_lora_adapter(self, name: str) -> None:
        """Async `unload_lora_adapter`."""
        await self._aupdate(UNLOAD_PATH, unload_body(name))

    def _update(self, path: str, body: dict[str, str]) -> None:
        try:
            self._link.post(path, body)
        except openai.APIStatusError as e:
            served = None
            if path == UNLOAD_PATH:
                with contextlib.suppress(Exception):  # for the message only
                    self._link.forget_models()
                    served = describe(self._link.models())
            raise adapter_error(e, self._link.base_url, body, served) from e
        finally:
            self._link.forget_models()

    async def _aupdate(self, path: str, body: dict[str, str]) -> None:
        was_cached = self._link.known_models() is not None
        try:
            await self._link.apost(path, body)
        except openai.APIStatusError as e:
            served = None
            if path == UNLOAD_PATH:
                with contextlib.suppress(Exception):  # for the message only
                    self._link.forget_models()
                    served = describe(await self._link.amodels())
            raise adapter_error(e, self._link.base_url, body, served) from e
        finally:
            self._link.forget_models()
            if was_cached:  # fetched again now: reads in an event loop never block
                with contextlib.suppress(Exception):
                    await self._link.amodels()
