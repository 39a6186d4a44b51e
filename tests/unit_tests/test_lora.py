"""LoRA adapters and multi-model servers (`_models.py`, `_lora.py`), no network.

Discovery with adapters, an adapter's context length, `list_models` and loading /
unloading adapters at runtime on ChatVLLM and VLLMOpenAI, against the fake server's
answers (copied from vLLM 0.32).
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from langchain_vllm import ChatVLLM, VLLMOpenAI
from langchain_vllm import lora as lora_module
from langchain_vllm._link import ServerLink
from langchain_vllm._served import adapter_error
from langchain_vllm.errors import (
    VLLMBadRequestError,
    VLLMLoRAAdapterError,
    VLLMModelDiscoveryError,
    VLLMModelNotFoundError,
    VLLMServerFeatureError,
)
from langchain_vllm.lora import (
    aload_lora_adapter_on_replicas,
    aunload_lora_adapter_on_replicas,
    load_lora_adapter_on_replicas,
    unload_lora_adapter_on_replicas,
)
from langchain_vllm.models import ServedModel, choose_model, context_length, describe
from tests.unit_tests.fake_vllm import FakeVLLM

URL = "http://vllm.test/v1"


def _card(name: str, parent: str | None = None, length: int | None = 2048) -> dict:
    return {"id": name, "parent": parent, "max_model_len": None if parent else length}


# -- /v1/models: discovery and context lengths ----------------------------------------
def test_discovery_picks_the_one_base_model() -> None:
    cards = [_card("pine", "base"), _card("base"), _card("kiwi", "base")]
    assert choose_model(cards, URL) == "base"
    assert choose_model([_card("only")], URL) == "only"


def test_discovery_several_bases_lists_them_grouped() -> None:
    cards = [_card("a"), _card("a1", "a"), _card("a2", "a"), _card("b")]
    with pytest.raises(VLLMModelDiscoveryError) as err:
        choose_model(cards, URL)
    assert "several base models (a (adapters: a1, a2), b)" in str(err.value)
    assert "model=" in str(err.value)
    with pytest.raises(VLLMModelDiscoveryError, match=r"several models \(a, b\)"):
        choose_model([_card("a"), _card("b")], URL)
    with pytest.raises(VLLMModelDiscoveryError, match="serves no model"):
        choose_model([], URL)


def test_adapter_without_listed_parent_counts_as_a_model() -> None:
    cards = [_card("base"), _card("orphan", "gone")]
    assert describe(cards) == "base, orphan"
    with pytest.raises(VLLMModelDiscoveryError, match="base, orphan"):
        choose_model(cards, URL)


def test_adapter_context_length_is_its_parents() -> None:
    cards = [_card("base", length=4096), _card("pine", "base")]
    assert context_length(cards, "pine") == 4096
    assert context_length(cards, "base") == 4096
    assert context_length(cards, "nope") is None
    assert context_length([_card("orphan", "gone")], "orphan") is None


def test_chat_discovery_and_profile_with_adapters(fake: FakeVLLM) -> None:
    fake.adapters = {"pineapple": "/lora/pine"}
    fake.max_model_len = 4096
    chat = ChatVLLM(**fake.kwargs())
    chat.invoke("hi")
    assert fake.last_body()["model"] == "smollm2"
    adapter = ChatVLLM(model="pineapple", **fake.kwargs())
    assert adapter.profile is not None
    assert adapter.profile["max_input_tokens"] == 4096


def test_llm_discovery_and_context_with_adapters(fake: FakeVLLM) -> None:
    fake.adapters = {"pineapple": "/lora/pine"}
    llm = VLLMOpenAI(**fake.kwargs())
    llm.invoke("The capital of France is")
    assert fake.last_body("/completions")["model"] == "smollm2"
    assert VLLMOpenAI(model="pineapple", **fake.kwargs()).max_context_size == 2048


def test_several_bases_with_adapters_keep_the_error(fake: FakeVLLM) -> None:
    fake.models = ["smollm2", "qwen"]
    fake.adapters = {"pineapple": "/lora/pine"}
    for model in (ChatVLLM(**fake.kwargs()), VLLMOpenAI(**fake.kwargs())):
        with pytest.raises(VLLMModelDiscoveryError) as err:
            model.invoke("hi")
        assert "smollm2 (adapters: pineapple), qwen" in str(err.value)


# -- list_models -----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [ChatVLLM, VLLMOpenAI])
def test_list_models_typed_entries(fake: FakeVLLM, cls: type) -> None:
    fake.adapters = {"pineapple": "/lora/pine"}
    model = cls(**fake.kwargs())
    entries = model.list_models()
    assert entries == [
        ServedModel("smollm2", None, 2048, "/models/smollm2"),
        ServedModel("pineapple", "smollm2", 2048, "/lora/pine"),
    ]
    assert [e.is_adapter for e in entries] == [False, True]
    assert asyncio.run(model.alist_models()) == entries
    # Always asked anew: the list is what the server serves now.
    assert fake.paths().count("GET /v1/models") == 2


# -- loading and unloading at runtime -------------------------------------------------
@pytest.mark.parametrize("cls", [ChatVLLM, VLLMOpenAI])
def test_load_use_unload(fake: FakeVLLM, cls: type) -> None:
    fake.runtime_lora = True
    model = cls(**fake.kwargs())
    assert [m.name for m in model.list_models()] == ["smollm2"]
    model.load_lora_adapter("pine2", Path("/lora/pine"))
    assert fake.last_body("/load_lora_adapter") == {
        "lora_name": "pine2",
        "lora_path": "/lora/pine",
    }
    # The cached model list was dropped: discovery sees the adapter.
    assert fake.adapters == {"pine2": "/lora/pine"}
    assert [m.name for m in model.list_models()] == ["smollm2", "pine2"]
    model.unload_lora_adapter("pine2")
    assert fake.last_body("/unload_lora_adapter") == {"lora_name": "pine2"}
    assert [m.name for m in model.list_models()] == ["smollm2"]


def test_async_load_and_unload(fake: FakeVLLM) -> None:
    fake.runtime_lora = True
    chat = ChatVLLM(**fake.kwargs())

    async def run() -> list[str]:
        await chat.aload_lora_adapter("pine2", "/lora/pine")
        names = [m.name for m in await chat.alist_models()]
        await chat.aunload_lora_adapter("pine2")
        with pytest.raises(VLLMModelNotFoundError, match="It serves: smollm2\\."):
            await chat.aunload_lora_adapter("pine2")
        return names

    assert asyncio.run(run()) == ["smollm2", "pine2"]


def test_profile_refreshed_after_load_and_unload(fake: FakeVLLM) -> None:
    fake.runtime_lora = True
    chat = ChatVLLM(model="pine2", **fake.kwargs())
    assert chat.profile is not None
    assert "max_input_tokens" not in chat.profile  # not served (yet)
    chat.load_lora_adapter("pine2", "/lora/pine")
    assert chat.profile["max_input_tokens"] == 2048
    chat.unload_lora_adapter("pine2")
    assert "max_input_tokens" not in chat.profile


def test_discovery_refreshed_after_unload(fake: FakeVLLM) -> None:
    fake.runtime_lora = True
    fake.models = ["smollm2", "qwen"]
    chat = ChatVLLM(**fake.kwargs())
    with pytest.raises(VLLMModelDiscoveryError):
        chat.invoke("hi")
    fake.models = ["smollm2"]  # a change the client cannot know of ...
    with pytest.raises(VLLMModelDiscoveryError):
        chat.invoke("hi")
    chat.list_models()  # ... until it asks again
    chat.invoke("hi")
    assert fake.last_body()["model"] == "smollm2"


def test_unload_unknown_name_lists_what_is_served(fake: FakeVLLM) -> None:
    fake.runtime_lora = True
    fake.adapters = {"pineapple": "/lora/pine"}
    chat = ChatVLLM(**fake.kwargs())
    with pytest.raises(VLLMModelNotFoundError) as err:
        chat.unload_lora_adapter("nope")
    message = str(err.value)
    assert "No LoRA adapter 'nope' is loaded" in message
    assert "It serves: smollm2 (adapters: pineapple)." in message
    assert "cannot be found" in message  # the server's own words are kept
    assert isinstance(err.value, openai.NotFoundError)


@pytest.mark.parametrize("cls", [ChatVLLM, VLLMOpenAI])
def test_server_without_runtime_updating(fake: FakeVLLM, cls: type) -> None:
    model = cls(**fake.kwargs())
    for call in (
        lambda: model.load_lora_adapter("pine2", "/lora/pine"),
        lambda: model.unload_lora_adapter("pine2"),
    ):
        with pytest.raises(VLLMServerFeatureError) as err:
            call()
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=1" in str(err.value)
        assert "--enable-lora" in str(err.value)


def test_unreadable_path(fake: FakeVLLM) -> None:
    fake.runtime_lora = True
    chat = ChatVLLM(**fake.kwargs())
    with pytest.raises(VLLMLoRAAdapterError) as err:
        chat.load_lora_adapter("pine2", "/missing/adapter")
    assert "cannot read a LoRA adapter at '/missing/adapter'" in str(err.value)
    assert "on the server's machine" in str(err.value)
    assert isinstance(err.value, VLLMBadRequestError)


def test_name_in_use(fake: FakeVLLM) -> None:
    fake.runtime_lora = True
    fake.adapters = {"pineapple": "/lora/pine"}
    with pytest.raises(VLLMLoRAAdapterError, match="already been loaded"):
        ChatVLLM(**fake.kwargs()).load_lora_adapter("pineapple", "/lora/other")


def test_bad_names_and_paths_are_refused_before_sending(fake: FakeVLLM) -> None:
    chat = ChatVLLM(**fake.kwargs())
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        chat.load_lora_adapter("", "/lora/pine")
    with pytest.raises(ValueError, match="path must be a non-empty"):
        chat.load_lora_adapter("pine", " ")
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        chat.unload_lora_adapter(None)  # type: ignore[arg-type]
    assert fake.requests == []


def _status(status: int, body: dict[str, Any]) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://vllm.test/v1/load_lora_adapter")
    response = httpx2.Response(status, json=body, request=request)
    client = openai.OpenAI(base_url=URL, api_key="x", max_retries=0)
    return client._make_status_error_from_response(response)


def _said(status: int, message: str) -> openai.APIStatusError:
    return _status(status, {"error": {"message": message, "code": status}})


def test_rank_above_max_lora_rank() -> None:
    said = "Loading lora pine16 failed: LoRA rank 16 is greater than max_lora_rank 8."
    error = adapter_error(
        _said(500, said), URL, {"lora_name": "pine16", "lora_path": "/l"}, None
    )
    assert isinstance(error, VLLMLoRAAdapterError)
    assert "has rank 16, above the `--max-lora-rank 8`" in str(error)
    assert "`--max-lora-rank 16` or more" in str(error)


def test_lora_not_enabled_on_the_server() -> None:
    said = "LoRA is not enabled. Use --enable-lora to enable LoRA."
    error = adapter_error(
        _said(500, said), URL, {"lora_name": "p", "lora_path": "/l"}, None
    )
    assert isinstance(error, VLLMServerFeatureError)
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=1" in str(error)


def test_other_refusals_keep_the_server_message() -> None:
    error = adapter_error(
        _said(400, "The lora adapter 'smollm2' conflicts with a served base model."),
        URL,
        {"lora_name": "smollm2", "lora_path": "/l"},
        None,
    )
    assert isinstance(error, VLLMLoRAAdapterError)
    assert "conflicts with a served base model" in str(error)
    unexpected = _said(503, "overloaded")
    assert adapter_error(unexpected, URL, {"lora_name": "p"}, None) is unexpected


# -- every replica of a deployment ----------------------------------------------------
@pytest.fixture
def replicas(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeVLLM]:
    """Two fake replicas, reached by URL through the helpers' own clients."""
    fakes = {f"http://replica-{i}.test/v1": FakeVLLM() for i in (1, 2)}
    for fake in fakes.values():
        fake.runtime_lora = True

    def make_clients(url: str, key: Any) -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
        fake = fakes[url]
        options: dict[str, Any] = {"base_url": url, "api_key": "x", "max_retries": 0}
        return (
            openai.OpenAI(http_client=fake.sync_client(), **options),
            openai.AsyncOpenAI(http_client=fake.async_client(), **options),
        )

    monkeypatch.setattr(lora_module, "make_clients", make_clients)
    # async calls use the fake's async client, not one of their own per event loop
    link = functools.partial(ServerLink, custom_async_http_client=True)
    monkeypatch.setattr(lora_module, "ServerLink", link)
    return fakes


def test_load_and_unload_on_replicas(replicas: dict[str, FakeVLLM]) -> None:
    urls = list(replicas)
    load_lora_adapter_on_replicas(urls, "pine", "/lora/pine")
    assert [f.adapters for f in replicas.values()] == [{"pine": "/lora/pine"}] * 2
    unload_lora_adapter_on_replicas(urls, "pine")
    assert [f.adapters for f in replicas.values()] == [{}, {}]


def test_load_on_replicas_is_all_or_nothing(replicas: dict[str, FakeVLLM]) -> None:
    first, second = replicas.values()
    second.runtime_lora = False  # the second replica cannot load adapters
    with pytest.raises(VLLMServerFeatureError, match="replica-2"):
        load_lora_adapter_on_replicas(list(replicas), "pine", "/lora/pine")
    assert first.adapters == {}  # loaded, then unloaded again
    assert first.paths()[-1] == "POST /v1/unload_lora_adapter"


def test_unload_on_replicas_asks_every_replica(replicas: dict[str, FakeVLLM]) -> None:
    second = list(replicas.values())[1]
    second.adapters = {"pine": "/lora/pine"}
    with pytest.raises(VLLMModelNotFoundError, match="replica-1"):
        unload_lora_adapter_on_replicas(list(replicas), "pine")
    assert second.adapters == {}


async def test_bad_replica_urls_are_refused_before_any_request(
    replicas: dict[str, FakeVLLM],
) -> None:
    urls = [*replicas, "not a url"]
    with pytest.raises(ValueError, match="not an http"):
        load_lora_adapter_on_replicas(urls, "pine", "/lora/pine")
    with pytest.raises(ValueError, match="not an http"):
        await aload_lora_adapter_on_replicas(urls, "pine", "/lora/pine")
    assert all(not fake.requests for fake in replicas.values())


async def test_async_load_and_unload_on_replicas(replicas: dict[str, FakeVLLM]) -> None:
    urls = list(replicas)
    await aload_lora_adapter_on_replicas(urls, "pine", "/lora/pine")
    assert [f.adapters for f in replicas.values()] == [{"pine": "/lora/pine"}] * 2
    await aunload_lora_adapter_on_replicas(urls, "pine")
    assert [f.adapters for f in replicas.values()] == [{}, {}]


@pytest.mark.parametrize("refusing", [0, 1])
async def test_async_load_on_replicas_is_all_or_nothing(
    replicas: dict[str, FakeVLLM], refusing: int
) -> None:
    fakes = list(replicas.values())
    fakes[refusing].runtime_lora = False
    with pytest.raises(VLLMServerFeatureError, match=f"replica-{refusing + 1}"):
        await aload_lora_adapter_on_replicas(list(replicas), "pine", "/lora/pine")
    took = fakes[1 - refusing]
    assert took.adapters == {}  # loaded, then unloaded again
    assert took.paths()[-1] == "POST /v1/unload_lora_adapter"


async def test_async_replicas_raise_the_first_error_in_list_order(
    replicas: dict[str, FakeVLLM], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = replicas.values()
    first.runtime_lora = False  # refuses: no runtime updating
    second.adapters = {"pine": "/lora/other"}  # refuses: the name is in use

    async def answer_last(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(0.05)  # the first replica's refusal arrives last
        return FakeVLLM.handler(first, request)

    monkeypatch.setattr(first, "handler", answer_last)
    with pytest.raises(VLLMServerFeatureError, match="replica-1"):
        await aload_lora_adapter_on_replicas(list(replicas), "pine", "/lora/pine")
    assert second.adapters == {"pine": "/lora/other"}  # refused: not unloaded
    with pytest.raises(VLLMServerFeatureError, match="replica-1"):
        await aunload_lora_adapter_on_replicas(list(replicas), "pine")
    assert second.adapters == {}  # asked although the first replica refused
