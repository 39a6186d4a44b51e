"""Pickle, deepcopy and threads: clients rebuilt, never shared or written per call."""

from __future__ import annotations

import asyncio
import copy
import pickle
import threading
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI, VLLMRerank
from tests.unit_tests.fake_vllm import FakeVLLM

URL = "http://vllm.test:8000/v1"
CASES: list[tuple[type, dict[str, Any]]] = [
    (ChatVLLM, {"base_url": URL, "api_key": "sekret", "top_k": 3, "max_tokens": 7}),
    (VLLMOpenAI, {"openai_api_base": URL, "openai_api_key": "sekret", "top_k": 3}),
    (VLLMEmbeddings, {"base_url": URL, "api_key": "sekret", "priority": 1}),
    (VLLMRerank, {"base_url": URL, "api_key": "sekret", "top_n": 2}),
]


def _key(obj: Any) -> SecretStr:
    key = obj.openai_api_key
    assert isinstance(key, SecretStr)
    return key


@pytest.mark.parametrize(
    ("cls", "kwargs"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_copies_keep_settings_and_get_their_own_clients(
    cls: type, kwargs: dict[str, Any], how: str
) -> None:
    original: Any = cls(**kwargs)
    twin: Any = (
        pickle.loads(pickle.dumps(original))
        if how == "pickle"
        else copy.deepcopy(original)
    )
    assert _key(twin).get_secret_value() == "sekret"
    assert "sekret" not in repr(twin)
    for name in ("top_k", "max_tokens", "priority", "top_n"):
        if name in kwargs:
            assert getattr(twin, name) == kwargs[name]
    assert twin._link is not original._link
    assert twin._link.base_url == original._link.base_url
    assert type(twin) is cls


def test_custom_http_client_cannot_cross_processes() -> None:
    chat = ChatVLLM(base_url=URL, http_client=httpx2.Client())
    with pytest.raises(TypeError, match="http_client"):
        pickle.dumps(chat)


def test_user_profile_is_kept_lazy_profile_refetched() -> None:
    mine = ChatVLLM(base_url=URL, model="m", profile={"max_input_tokens": 9})
    assert pickle.loads(pickle.dumps(mine)).profile == {"max_input_tokens": 9}
    lazy = pickle.loads(pickle.dumps(ChatVLLM(base_url=URL, model="m")))
    assert repr(lazy.profile) == "ServedModelProfile(<not fetched>)"


def test_async_calls_do_not_write_to_the_instance(fake: FakeVLLM) -> None:
    chat = ChatVLLM(model="smollm2", **fake.kwargs())
    llm = VLLMOpenAI(model="smollm2", **fake.kwargs())
    before = (chat.async_client, chat.root_async_client, llm.async_client)
    errors: list[BaseException] = []

    def worker() -> None:
        async def calls() -> None:
            for _ in range(3):
                assert (await chat.ainvoke("hi")).content
                assert await llm.ainvoke("hi")

        try:
            asyncio.run(calls())
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (chat.async_client, chat.root_async_client, llm.async_client) == before
