"""One instance from many threads and event loops; copies across a process pool."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages.ai import add_ai_message_chunks

from langchain_vllm import ChatVLLM, VLLMEmbeddings, VLLMOpenAI, VLLMRerank
from tests.integration_tests.conftest import (
    FIXED,
    FIXED_COMPLETION,
    FIXED_COMPLETION_ARGS,
    FIXED_TEXT,
)


def test_threads_with_their_own_event_loops_share_one_instance(chat_url: str) -> None:
    chat = ChatVLLM(base_url=chat_url, temperature=0)
    errors: list[BaseException] = []
    answers: list[str] = []
    start = threading.Barrier(4)

    async def calls() -> list[str]:
        one, two = await asyncio.gather(
            chat.ainvoke("Hi", **FIXED), chat.ainvoke("Bye", **FIXED)
        )
        chunks = [c async for c in chat.astream("Hi", **FIXED)]
        return [
            str(one.content),
            str(two.content),
            str(add_ai_message_chunks(*chunks).content),
        ]

    def worker() -> None:
        try:
            start.wait()
            answers.extend(asyncio.run(calls()))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert answers == [FIXED_TEXT] * 12


def test_thread_pool_of_sync_calls(chat_url: str) -> None:
    chat = ChatVLLM(base_url=chat_url, temperature=0)
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda i: chat.invoke(f"Say {i}", **FIXED).content, range(16))
        )
    assert answers == [FIXED_TEXT] * 16


def _use(blob: bytes) -> Any:
    """In another process: unpickle a client object and make one real call."""
    obj = pickle.loads(blob)
    if isinstance(obj, ChatVLLM):
        return obj.invoke("Hi", **FIXED).content
    if isinstance(obj, VLLMOpenAI):
        return obj.invoke("The capital of France is", **FIXED_COMPLETION_ARGS)
    if isinstance(obj, VLLMEmbeddings):
        return len(obj.embed_query("hello"))
    docs = [Document("Paris is in France."), Document("Bread is baked.")]
    return [d.page_content for d in obj.compress_documents(docs, "French capital")]


def test_copies_work_across_a_process_pool(chat_url: str, embeddings_url: str) -> None:
    objects = [
        ChatVLLM(base_url=chat_url, temperature=0, api_key="EMPTY"),
        VLLMOpenAI(openai_api_base=chat_url, temperature=0),
        VLLMEmbeddings(base_url=embeddings_url),  # type: ignore[call-arg]
        VLLMRerank(base_url=embeddings_url, top_n=1),
    ]
    blobs = [pickle.dumps(obj) for obj in objects]
    assert all(b"EMPTY" not in blob or b"SecretStr" in blob for blob in blobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        results = list(pool.map(_use, blobs))
    assert results[0] == FIXED_TEXT
    assert results[1] == FIXED_COMPLETION
    assert results[2] == 384
    assert results[3] == ["Paris is in France."]
