"""LoRA adapters on every replica of a deployment.

Every vLLM client class lists the served models and loads or unloads adapters on
its own server (`ServedModelsMixin`, in `langchain_vllm._served`); the functions
here do it on each replica behind a router, which forwards such a request to one
replica only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence

from pydantic import SecretStr

from langchain_vllm._link import ServerLink
from langchain_vllm._served import (
    LOAD_PATH,
    UNLOAD_PATH,
    ServedModelsMixin,
    load_body,
    unload_body,
)
from langchain_vllm._settings import check_base_url, make_clients

__all__ = [
    "aload_lora_adapter_on_replicas",
    "aunload_lora_adapter_on_replicas",
    "load_lora_adapter_on_replicas",
    "unload_lora_adapter_on_replicas",
]


class _Replica(ServedModelsMixin):
    """One vLLM replica addressed directly (not through a router)."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        key = SecretStr(api_key) if api_key is not None else None
        self._link = ServerLink(*make_clients(check_base_url(base_url), key))


def load_lora_adapter_on_replicas(
    base_urls: Sequence[str],
    name: str,
    path: str | os.PathLike[str],
    *,
    api_key: str | None = None,
) -> None:
    """Load a LoRA adapter on every replica of a deployment, one after the other.

    A router does not do it: vllm-router (0.1.17) forwards `/v1/load_lora_adapter`
    to one replica, as it does any request, and its `/v1/models` shows one
    replica's list. Give the replicas' own URLs. If a replica refuses, the adapter
    is unloaded again from the replicas that took it, and the error is raised.

    Args:
        base_urls: Each replica's OpenAI base URL (e.g. `http://host:8000/v1`).
        name: The name requests will ask for.
        path: The adapter's folder on the replicas' machines.
        api_key: The replicas' key (`--api-key`), if any.

    Raises:
        The error of the first replica that refused (see `load_lora_adapter`),
        with the replica's URL in its message.

    Example:
        ```python
        from langchain_vllm.lora import load_lora_adapter_on_replicas

        replicas = ["http://gpu-1:8000/v1", "http://gpu-2:8000/v1"]
        load_lora_adapter_on_replicas(replicas, "pineapple", "/models/pineapple")
        ChatVLLM(base_url="http://router:8080/v1", model="pineapple").invoke("Hi")
        ```
    """
    body = load_body(name, path)
    replicas = _replicas(base_urls, api_key)  # every URL checked before any load
    for i, replica in enumerate(replicas):
        try:
            replica._update(LOAD_PATH, body)
        except Exception:
            for loaded in replicas[:i]:  # all or none
                with contextlib.suppress(Exception):
                    loaded._update(UNLOAD_PATH, unload_body(name))
            raise


async def aload_lora_adapter_on_replicas(
    base_urls: Sequence[str],
    name: str,
    path: str | os.PathLike[str],
    *,
    api_key: str | None = None,
) -> None:
    """Async `load_lora_adapter_on_replicas`: the replicas are asked concurrently.

    Also all or nothing: if any replica refuses, the adapter is unloaded again from
    every replica that took it, and the error of the first replica in `base_urls`
    order that refused is raised (the others are asked all the same).

    Example:
        ```python
        await aload_lora_adapter_on_replicas(replicas, "pineapple", "/models/pine")
        ```
    """
    body = load_body(name, path)
    replicas = _replicas(base_urls, api_key)
    outcomes = await _ask_all(replicas, LOAD_PATH, body)
    if any(outcome is not None for outcome in outcomes):
        took = [r for r, o in zip(replicas, outcomes, strict=True) if o is None]
        await _ask_all(took, UNLOAD_PATH, unload_body(name))  # all or none
        _raise_first(outcomes)


def unload_lora_adapter_on_replicas(
    base_urls: Sequence[str], name: str, *, api_key: str | None = None
) -> None:
    """Unload a LoRA adapter from every replica of a deployment.

    Every replica is asked, also after one refused; then the first error is raised
    (e.g. `VLLMModelNotFoundError` from a replica that did not have the adapter).

    Example:
        ```python
        unload_lora_adapter_on_replicas(replicas, "pineapple")
        ```
    """
    body = unload_body(name)
    errors: list[Exception] = []
    for replica in _replicas(base_urls, api_key):
        try:
            replica._update(UNLOAD_PATH, body)
        except Exception as e:
            errors.append(e)
    _raise_first(errors)


async def aunload_lora_adapter_on_replicas(
    base_urls: Sequence[str], name: str, *, api_key: str | None = None
) -> None:
    """Async `unload_lora_adapter_on_replicas`: the replicas are asked concurrently.

    Every replica is asked; then the error of the first replica in `base_urls`
    order that refused is raised.

    Example:
        ```python
        await aunload_lora_adapter_on_replicas(replicas, "pineapple")
        ```
    """
    body = unload_body(name)
    _raise_first(await _ask_all(_replicas(base_urls, api_key), UNLOAD_PATH, body))


def _replicas(base_urls: Sequence[str], api_key: str | None) -> list[_Replica]:
    return [_Replica(url, api_key) for url in base_urls]


async def _ask_all(
    replicas: Sequence[_Replica], path: str, body: dict[str, str]
) -> list[BaseException | None]:
    """Each replica's error (None: done), in the replicas' order."""
    return await asyncio.gather(
        *(replica._aupdate(path, body) for replica in replicas),
        return_exceptions=True,
    )


def _raise_first(outcomes: Sequence[BaseException | None]) -> None:
    """Raise the first error of the replicas' outcomes, in the replicas' order."""
    error = next((e for e in outcomes if e is not None), None)
    if error is not None:
        raise error
