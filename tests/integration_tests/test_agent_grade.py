"""Agent-grade ChatVLLM against the live rig servers: exact token counts
for `trim_messages`, logprobs / prompt logprobs / `n > 1` round trips, 256 concurrent
streams on one instance, and a model that spends every token on reasoning.

Figures (256-stream wall time, peak connections, peak requests in the server) are
printed: run with `-s` or `-rP` to see them. Nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
import warnings
from pathlib import Path

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    trim_messages,
)
from langchain_core.messages.ai import add_ai_message_chunks

from langchain_vllm import ChatVLLM
from langchain_vllm.errors import VLLMEmptyAnswerError


@pytest.fixture(scope="module")
def chat(chat_url: str) -> ChatVLLM:
    return ChatVLLM(base_url=chat_url, temperature=0, max_tokens=6)


# -- trim_messages with the served tokenizer ------------------------------------------
TOPICS = ("the sea", "mountains", "bread", "trains", "music", "gardens", "rain", "bees")


def _history() -> list[BaseMessage]:
    """A system message, eight question/answer turns, and a last question."""
    history: list[BaseMessage] = [
        SystemMessage("You are a concise assistant who answers in one sentence.")
    ]
    for i, topic in enumerate(TOPICS):
        history.append(HumanMessage(f"Question {i}: tell me one fact about {topic}."))
        history.append(
            AIMessage(f"Answer {i}: here is a short fact about {topic}, in a sentence.")
        )
    history.append(HumanMessage("Last question: which topic did I ask about first?"))
    return history


@pytest.mark.parametrize("limit", [100, 150, 200])
def test_trim_messages_exact_counts(chat: ChatVLLM, limit: int) -> None:
    """`token_counter=chat`: trim_messages calls `get_num_tokens_from_messages` with
    lists of messages (langchain-core uses a model's `get_num_tokens_from_messages`
    as the list counter), so the counts are the served tokenizer's, chat template
    included, and equal the server's `usage.prompt_tokens`.
    """
    history = _history()
    count = chat.get_num_tokens_from_messages
    assert count(history) > limit  # something must be dropped
    kept = trim_messages(
        history,
        max_tokens=limit,
        token_counter=chat,
        strategy="last",
        include_system=True,
        start_on="human",
    )
    first = len(history) - len(kept) + 1  # index in history of kept[1]
    assert kept[0] == history[0]
    assert len(kept) >= 2
    assert isinstance(kept[1], HumanMessage)
    assert kept[1:] == history[first:]

    kept_tokens = count(kept)
    assert kept_tokens <= limit

    # The next turn back (its question and answer: trim starts on a human message)
    # would not have fitted. trim_messages counts the system message and the rest
    # in separate calls, so the chat template's fixed overhead (its default system
    # prompt for a list without one, and the generation prompt) is charged twice:
    # the kept prompt can be short of the limit by up to that overhead, never more.
    previous_turn = max(
        i for i in range(1, first) if isinstance(history[i], HumanMessage)
    )
    longer_tokens = count([history[0], *history[previous_turn:]])
    probe = HumanMessage("x")
    overhead = count([probe]) - (count([history[0], probe]) - count([history[0]]))
    assert overhead > 0
    print(
        f"\ntrim_messages max_tokens={limit}: kept {len(kept)} of {len(history)} "
        f"messages = {kept_tokens} tokens; with the previous turn {longer_tokens}; "
        f"template overhead {overhead}"
    )
    assert longer_tokens > limit - overhead

    # The count is exactly what the server bills for the kept conversation.
    usage = chat.invoke(kept, max_tokens=1).usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == kept_tokens


# -- logprobs, prompt logprobs, n > 1 --------------------------------------------------
PROMPT = "Name a colour."


def test_logprobs_and_top_logprobs_invoke(chat: ChatVLLM) -> None:
    msg = chat.invoke(PROMPT, logprobs=True, top_logprobs=2, min_tokens=6)
    assert msg.usage_metadata is not None
    entries = msg.response_metadata["logprobs"]["content"]
    print(
        f"\nlogprobs: {len(entries)} entries for "
        f"{msg.usage_metadata['output_tokens']} output tokens, "
        f"top_logprobs per entry {[len(e['top_logprobs']) for e in entries]}"
    )
    assert len(entries) == msg.usage_metadata["output_tokens"] == 6
    assert "".join(e["token"] for e in entries) == msg.content
    for entry in entries:
        assert entry["logprob"] <= 0.0
        assert len(entry["top_logprobs"]) == 2
        # vLLM lists the chosen token first, then the most likely others; at
        # temperature 0 the chosen one is the most likely (or tied with it).
        assert entry["top_logprobs"][0]["token"] == entry["token"]
        assert entry["logprob"] == max(t["logprob"] for t in entry["top_logprobs"])


def test_logprobs_in_stream_add_up(chat: ChatVLLM) -> None:
    """As with ChatOpenAI, each chunk carries its tokens' logprobs in
    `response_metadata["logprobs"]["content"]`; adding the chunks concatenates them.
    """
    chunks = list(chat.stream(PROMPT, logprobs=True, top_logprobs=2, min_tokens=6))
    streamed = add_ai_message_chunks(*chunks)
    entries = streamed.response_metadata["logprobs"]["content"]
    assert streamed.usage_metadata is not None
    assert len(entries) == streamed.usage_metadata["output_tokens"] == 6
    assert all(len(e["top_logprobs"]) == 2 for e in entries)
    # Every chunk's entries, in order: together they spell the streamed text.
    assert "".join(e["token"] for e in entries) == streamed.content


def test_prompt_logprobs_come_back(chat: ChatVLLM) -> None:
    """vLLM answers `prompt_logprobs=N` with a top-level `prompt_logprobs` list:
    one entry per prompt token, the first None, the others `{token_id: {logprob,
    rank, decoded_token}}` for the prompt's token and up to N more likely ones.
    """
    msg = chat.invoke(PROMPT, prompt_logprobs=1)
    assert msg.usage_metadata is not None
    prompt_logprobs = msg.response_metadata.get("prompt_logprobs")
    assert isinstance(prompt_logprobs, list), sorted(msg.response_metadata)
    assert len(prompt_logprobs) == msg.usage_metadata["input_tokens"]
    assert prompt_logprobs[0] is None
    for entry in prompt_logprobs[1:]:
        assert 1 <= len(entry) <= 2
        assert all(v["logprob"] <= 0.0 and v["rank"] >= 1 for v in entry.values())


def test_n_choices_and_their_usage(chat: ChatVLLM) -> None:
    messages: list[BaseMessage] = [HumanMessage(PROMPT)]
    result = chat.generate(
        [messages],
        n=2,
        temperature=1.0,
        seed=7,
        max_tokens=8,
        min_tokens=8,
        logprobs=True,
    )
    (generations,) = result.generations
    assert len(generations) == 2
    texts = [g.text for g in generations]
    per_choice = []
    for generation in generations:
        info = generation.generation_info or {}
        assert info["finish_reason"] == "length"
        per_choice.append(len(info["logprobs"]["content"]))
    assert per_choice == [8, 8]
    # One usage for the whole response: the prompt once, the choices' tokens summed.
    assert result.llm_output is not None
    usage = result.llm_output["token_usage"]
    print(f"\nn=2: {texts!r}, token_usage {usage}")
    assert usage["completion_tokens"] == sum(per_choice)
    assert usage["prompt_tokens"] == chat.get_num_tokens_from_messages(messages)


# -- 256 concurrent streams -----------------------------------------------------------
STREAMS = 256


def _open_connections(port: int) -> int:
    """ESTABLISHED TCP connections this process holds to `port` (Linux /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if (
                state == "01"
                and int(remote.rsplit(":", 1)[1], 16) == port
                and inode in inodes
            ):
                count += 1
    return count


def _requests_in_server(root_url: str) -> tuple[float, float]:
    """`vllm:num_requests_running` and `..._waiting` from the server's /metrics."""
    with urllib.request.urlopen(f"{root_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {"vllm:num_requests_running": 0.0, "vllm:num_requests_waiting": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0]
        if name in values:
            values[name] += float(line.rsplit(" ", 1)[1])
    return values["vllm:num_requests_running"], values["vllm:num_requests_waiting"]


@pytest.mark.timeout(900)
async def test_256_concurrent_streams_complete(chat_url: str) -> None:
    # No per-chunk wall clock (langchain-openai's 120 s on async streams): on a
    # CPU server shared with the suite's other servers and a CPU-bound process,
    # the last of 256 queued streams can wait longer than that for its first
    # token. What is tested is that every stream completes, with its usage.
    chat = ChatVLLM(
        base_url=chat_url,
        temperature=0,
        max_tokens=8,
        min_tokens=8,
        stream_chunk_timeout=None,
    )
    root_url = chat_url.rstrip("/").removesuffix("/v1")
    port = int(root_url.rsplit(":", 1)[1])
    await chat.ainvoke("Hi", max_tokens=1, min_tokens=1)  # discovery, outside the run
    peak = {"connections": 0, "running": 0.0, "in_server": 0.0}
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            peak["connections"] = max(peak["connections"], _open_connections(port))
            running, waiting = await asyncio.to_thread(_requests_in_server, root_url)
            peak["running"] = max(peak["running"], running)
            peak["in_server"] = max(peak["in_server"], running + waiting)
            await asyncio.sleep(0.2)

    async def one(i: int) -> AIMessageChunk:
        chunks = [c async for c in chat.astream(f"Say the number {i}.")]
        return add_ai_message_chunks(*chunks)

    watcher = asyncio.create_task(watch())
    start = time.perf_counter()
    try:
        results = await asyncio.gather(*(one(i) for i in range(STREAMS)))
    finally:
        wall = time.perf_counter() - start
        done.set()
        await watcher
    output_tokens = 0
    for result in results:
        assert result.response_metadata["finish_reason"] == "length"
        assert result.usage_metadata is not None
        assert result.usage_metadata["input_tokens"] > 0
        assert result.usage_metadata["output_tokens"] == 8
        assert result.content
        output_tokens += result.usage_metadata["output_tokens"]
    print(
        f"\n{STREAMS} concurrent streams on one ChatVLLM: all complete in {wall:.1f} s "
        f"({output_tokens} output tokens, {output_tokens / wall:.0f} tokens/s); "
        f"peak open connections {peak['connections']}, peak "
        f"vllm:num_requests_running {peak['running']:.0f}, peak running+waiting "
        f"{peak['in_server']:.0f}"
    )
    # More than httpx's default pool of 100 were open (and in the server) at once.
    assert peak["connections"] > 100
    assert peak["in_server"] > 100


# -- every token spent on reasoning ---------------------------------------------------
# On the reasoning server, with no `thinking_token_budget` the small test model never
# writes `</think>` by itself; `min_tokens == max_tokens` keeps it from stopping early,
# so the answer is `finish_reason="length"`, content empty, reasoning text only.
ALL_REASONING = {"temperature": 0, "max_tokens": 8, "min_tokens": 8}


def test_all_tokens_spent_on_reasoning_warns(reasoning_url: str) -> None:
    thinker = ChatVLLM(base_url=reasoning_url, **ALL_REASONING)
    with pytest.warns(UserWarning, match="max_tokens") as record:
        msg = thinker.invoke("What is 2+2?")
    assert any("thinking_token_budget" in str(w.message) for w in record)
    assert msg.content == ""
    assert msg.additional_kwargs["reasoning_content"]
    assert msg.response_metadata["finish_reason"] == "length"
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["output_tokens"] == 8

    with pytest.warns(UserWarning, match="thinking_token_budget"):
        streamed = add_ai_message_chunks(*list(thinker.stream("What is 2+2?")))
    assert streamed.content == ""
    assert streamed.additional_kwargs["reasoning_content"]
    assert streamed.response_metadata["finish_reason"] == "length"

    # A budget below max_tokens leaves room for an answer: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        answered = thinker.invoke(
            "What is 2+2?", max_tokens=24, min_tokens=16, thinking_token_budget=4
        )
    assert answered.content

    strict = ChatVLLM(
        base_url=reasoning_url, error_on_empty_reasoning_only=True, **ALL_REASONING
    )
    with pytest.raises(VLLMEmptyAnswerError, match="max_tokens") as raised:
        strict.invoke("What is 2+2?")
    assert isinstance(raised.value, ValueError)
    assert "thinking_token_budget" in str(raised.value)
    with pytest.raises(VLLMEmptyAnswerError, match="thinking_token_budget"):
        list(strict.stream("What is 2+2?"))


# -- context window and the wire ----------------------------------------------------
def test_profile_max_input_tokens_from_the_server(chat_url: str) -> None:
    fresh = ChatVLLM(base_url=chat_url)  # model discovered too
    assert fresh.profile is not None
    limit = fresh.profile.get("max_input_tokens")
    with urllib.request.urlopen(f"{chat_url}/models", timeout=30) as answer:
        card = json.load(answer)["data"][0]
    assert isinstance(limit, int)
    assert limit == card["max_model_len"]
    print(f"profile: {dict(fresh.profile)}")
    # A fraction of the window, as summarization middleware computes it, fits.
    assert fresh.get_num_tokens_from_messages([HumanMessage("hi " * 100)]) < limit


def test_openai_reasoning_effort_stays_on_chat_completions(chat: ChatVLLM) -> None:
    """`reasoning={"effort": ...}` would move ChatOpenAI to /v1/responses."""
    answer = chat.invoke("Hi", reasoning={"effort": "low"}, min_tokens=2)
    assert answer.content
    assert answer.response_metadata["model_provider"] == "vllm"
    assert answer.response_metadata.get("id", "").startswith("chatcmpl-")
