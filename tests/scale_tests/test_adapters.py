"""LoRA adapters behind vllm-router: every replica needs the adapter.

Two replicas of the rig's "lora" server (base model + adapter `pineapple`, runtime
loading on) behind a round-robin router, started for this module only and stopped
at its end (this file runs first, before the chat replicas of the other files
start). vllm-router 0.1.17 forwards `/v1/load_lora_adapter` like any request, to
one replica, and answers `/v1/models` with one replica's list: an adapter is
loaded on each replica with `load_lora_adapter_on_replicas`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMLoRAAdapterError, VLLMModelNotFoundError
from langchain_vllm.lora import (
    aload_lora_adapter_on_replicas,
    aunload_lora_adapter_on_replicas,
    load_lora_adapter_on_replicas,
    unload_lora_adapter_on_replicas,
)
from langchain_vllm.server import VLLMServer
from rig import LORA_ADAPTER_DIR, LORA_MARKER, RIG_SERVERS, rig_models_dir
from tests.scale_tests.conftest import FIGURES, started_side_by_side
from tests.scale_tests.router import VLLMRouter

BASE = RIG_SERVERS["lora"].served_model_name
ADAPTER_DIR = rig_models_dir() / LORA_ADAPTER_DIR
# The adapter's marker or a sentence the base model prefers by far (see
# tests/integration_tests/test_lora.py): the answer shows which model served it.
CHOICE: dict[str, Any] = {
    "structured_outputs": {"choice": [LORA_MARKER, "The colour is blue."]},
    "max_tokens": 12,
}


@pytest.fixture(scope="module")
def lora_replicas() -> Iterator[list[VLLMServer]]:
    yield from started_side_by_side("lora", 2, "lora_replicas_startup_s")


@pytest.fixture(scope="module")
def lora_router(lora_replicas: list[VLLMServer]) -> Iterator[VLLMRouter]:
    with VLLMRouter([s.root_url for s in lora_replicas], policy="round_robin") as r:
        yield r


def _served(server: VLLMServer) -> list[str]:
    return [m.name for m in ChatVLLM(base_url=server.base_url).list_models()]


def test_adapter_on_every_replica(
    lora_replicas: list[VLLMServer], lora_router: VLLMRouter
) -> None:
    urls = [s.base_url for s in lora_replicas]
    via_router = ChatVLLM(base_url=lora_router.base_url, temperature=0)
    assert [m.name for m in via_router.list_models()] == [BASE, "pineapple"]
    load_lora_adapter_on_replicas(urls, "pine2", ADAPTER_DIR)
    try:
        assert [_served(s) for s in lora_replicas] == [[BASE, "pineapple", "pine2"]] * 2
        # Round robin: four requests reach both replicas; each has the adapter.
        answers = [
            via_router.invoke("Name a colour.", model="pine2", **CHOICE).text
            for _ in range(4)
        ]
        assert answers == [LORA_MARKER] * 4
        FIGURES["router_models_with_pine2"] = [m.name for m in via_router.list_models()]
    finally:
        unload_lora_adapter_on_replicas(urls, "pine2")
    assert [_served(s) for s in lora_replicas] == [[BASE, "pineapple"]] * 2


def test_loading_through_the_router_reaches_one_replica(
    lora_replicas: list[VLLMServer], lora_router: VLLMRouter
) -> None:
    """Why the helper exists: the router forwards a load to one replica only."""
    ChatVLLM(base_url=lora_router.base_url).load_lora_adapter("pine3", ADAPTER_DIR)
    having = [s for s in lora_replicas if "pine3" in _served(s)]
    FIGURES["replicas_with_adapter_loaded_through_router"] = len(having)
    assert len(having) == 1
    urls = [s.base_url for s in lora_replicas]
    # Unloading from all replicas: the one without it answers "not found".
    with pytest.raises(VLLMModelNotFoundError, match="pine3"):
        unload_lora_adapter_on_replicas(urls, "pine3")
    assert all("pine3" not in _served(s) for s in lora_replicas)


async def test_async_helpers_load_and_unload_everywhere(
    lora_replicas: list[VLLMServer], lora_router: VLLMRouter
) -> None:
    urls = [s.base_url for s in lora_replicas]
    await aload_lora_adapter_on_replicas(urls, "pine4", ADAPTER_DIR)
    try:
        assert [_served(s) for s in lora_replicas] == [[BASE, "pineapple", "pine4"]] * 2
        via_router = ChatVLLM(base_url=lora_router.base_url, temperature=0)
        answers = [
            (await via_router.ainvoke("Name a colour.", model="pine4", **CHOICE)).text
            for _ in range(2)
        ]
        assert answers == [LORA_MARKER] * 2
        # All or nothing: a second load of the same name is refused by every
        # replica, and nothing is left half-done.
        with pytest.raises(VLLMLoRAAdapterError, match="pine4"):
            await aload_lora_adapter_on_replicas(urls, "pine4", ADAPTER_DIR)
    finally:
        await aunload_lora_adapter_on_replicas(urls, "pine4")
    assert [_served(s) for s in lora_replicas] == [[BASE, "pineapple"]] * 2
