# ruff: noqa: RUF001  (multiplication and minus signs in report text are meant)
"""ChatVLLM against the raw openai SDK and ChatOpenAI, side by side (`make bench`).

Parts (each reports ratios to the raw SDK, measured interleaved A,B,C,B,C,A,...):

1. Client overhead against a local stub that answers instantly (its own process):
   `invoke`, `stream` (64 chunks; per-chunk cost from 64- and 1-chunk streams) and
   `abatch` of 500 requests; embeddings when `langchain_vllm.embeddings` exists.
   A fourth client, the floor (`benchmarks/floor.py`: a LangChain chat model doing
   one httpx POST and `json.loads` per call, nothing else), is the least a LangChain
   chat model can cost; ChatVLLM's client CPU is also reported as a ratio to it.
2. HTTP requests per call, counted at the stub (asserted: one per call once model
   discovery and the version check are cached).
3. Token counting: `get_num_tokens` calls/s on repeated and on fresh texts.
4. A live vLLM server (the rig's chat model, compiled unless `--eager`): output
   tokens/s and p50/p99 latency at concurrency 1, 8, 64 and 256, and time to first
   token of streams; raw SDK against ChatVLLM with the same prompts, `max_tokens`
   and `ignore_eos` (so both generate exactly as many tokens). Each level runs
   rounds of both clients back to back (order alternating), and the per-round
   ratios give a 95 % interval and a PASS / FAIL / undecided verdict on the target
   (`benchmarks/stats.py`); undecided levels get more rounds, up to a cap.

Writes `benchmarks/results/latest.md`, `latest.json` and `throughput_latency.png`.
`--quick` is the CI-sized run; `--only PART` runs one part (e.g. `--only embeddings`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2
import openai
from langchain_openai import ChatOpenAI

from benchmarks.common import (
    Samples,
    StubProcess,
    md_table,
    paired_ratios,
    percentile,
    rotations,
)
from benchmarks.floor import FloorChat
from benchmarks.stats import (
    PASS,
    UNDECIDED,
    RatioEstimate,
    needs_more_rounds,
    paired_round_ratios,
    ratio_interval,
)
from langchain_vllm import ChatVLLM

RESULTS = Path(__file__).resolve().parent / "results"
RAW = "raw SDK"
OPENAI = "ChatOpenAI"
VLLM = "ChatVLLM"
FLOOR = "floor"
"""`FloorChat`: LangChain's machinery plus one httpx POST and `json.loads` per call."""
PROMPT = "Say hello."
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]
INVOKE_TOKENS = 16
STREAM_CHUNKS = 64
BLOCKS = 10
"""Blocks each client's invoke/stream calls of a repetition are split into."""

# Targets (checked in the report, never asserted in unit tests).
TARGET_CALL_RATIO = 1.10
TARGET_CHUNK_RATIO = 1.00
TARGET_FLOOR_CALL_RATIO = 1.20
TARGET_FLOOR_CHUNK_RATIO = 1.00
TARGET_THROUGHPUT_RATIO = 0.98


@dataclass(frozen=True)
class Sizes:
    reps: int
    invoke_calls: int
    stream_calls: int
    batch: int
    tokens_repeated: int
    tokens_fresh: int
    embed_calls: int
    live_min_rounds: int
    """Rounds every live level runs (even: each client order as often)."""
    live_max_rounds: int
    """Cap of the rounds a level runs while its verdict is undecided."""
    live_requests: dict[int, int]
    live_max_tokens: int
    ttft_streams: int


FULL = Sizes(
    reps=5,
    invoke_calls=200,
    stream_calls=40,
    batch=500,
    tokens_repeated=5000,
    tokens_fresh=300,
    embed_calls=100,
    live_min_rounds=6,
    live_max_rounds=20,
    live_requests={1: 4, 8: 16, 64: 64, 256: 256},
    live_max_tokens=32,
    ttft_streams=8,
)
QUICK = Sizes(
    reps=3,
    invoke_calls=60,
    stream_calls=12,
    batch=200,
    tokens_repeated=1000,
    tokens_fresh=60,
    embed_calls=30,
    live_min_rounds=4,
    live_max_rounds=6,
    live_requests={1: 4, 8: 16, 64: 64, 256: 256},
    live_max_tokens=16,
    ttft_streams=4,
)


def say(text: str) -> None:
    print(text, flush=True)


def settle() -> None:
    """A full garbage collection, untimed, before each timed phase.

    An `abatch` of 500 leaves enough promoted objects that the next full collection
    (~100 ms over the benchmark's ~165k objects) falls due in whatever runs next:
    without this, it landed on one LangChain client's stream phase and added ~40 µs
    to its per-chunk cost, on ChatVLLM or ChatOpenAI depending on the rotation.
    Garbage a phase makes itself is still collected (and timed) inside it.
    """
    gc.collect()


# ----------------------------------------------------------------------------- clients
@dataclass
class Client:
    """One contender: sync and async callables over the same workload."""

    name: str
    invoke: Callable[[int], Any]
    stream: Callable[[int], int]
    abatch: Callable[[int], Coroutine[Any, Any, Any]]


def raw_client(base_url: str, model: str) -> Client:
    sync = openai.OpenAI(base_url=base_url, api_key="EMPTY")
    aclient = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY")

    def invoke(max_tokens: int) -> Any:
        return sync.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=max_tokens
        )

    def stream(max_tokens: int) -> int:
        n = 0
        for chunk in sync.chat.completions.create(
            model=model,
            messages=MESSAGES,
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        ):
            n += bool(chunk.choices and chunk.choices[0].delta.content)
        return n

    async def abatch(n: int) -> Any:
        return await asyncio.gather(
            *(
                aclient.chat.completions.create(
                    model=model, messages=MESSAGES, max_tokens=INVOKE_TOKENS
                )
                for _ in range(n)
            )
        )

    return Client(RAW, invoke, stream, abatch)


def lc_client(name: str, chat: Any) -> Client:
    def invoke(max_tokens: int) -> Any:
        return chat.invoke(PROMPT, max_tokens=max_tokens)

    def stream(max_tokens: int) -> int:
        return sum(bool(c.content) for c in chat.stream(PROMPT, max_tokens=max_tokens))

    async def abatch(n: int) -> Any:
        return await chat.abatch([PROMPT] * n)

    return Client(name, invoke, stream, abatch)


def make_clients(base_url: str, model: str) -> list[Client]:
    return [
        raw_client(base_url, model),
        lc_client(
            OPENAI,
            ChatOpenAI(
                model=model,
                base_url=base_url,
                api_key="EMPTY",  # type: ignore[arg-type]
                max_tokens=INVOKE_TOKENS,  # type: ignore[call-arg]
                stream_usage=True,
            ),
        ),
        lc_client(VLLM, ChatVLLM(base_url=base_url, max_tokens=INVOKE_TOKENS)),
        lc_client(
            FLOOR, FloorChat(base_url=base_url, model=model, max_tokens=INVOKE_TOKENS)
        ),
    ]


# -------------------------------------------------------------------- 1. stub overhead
def bench_stub(stub: StubProcess, sizes: Sizes) -> dict[str, Any]:
    clients = make_clients(stub.base_url, "stub-model")
    names = [c.name for c in clients]
    loop = asyncio.new_event_loop()
    # Warm-up: imports, connection pools (incl. `batch` async connections), caches.
    for c in clients:
        c.invoke(INVOKE_TOKENS)
        c.stream(STREAM_CHUNKS)
        c.stream(1)
        loop.run_until_complete(c.abatch(sizes.batch))
    metrics: dict[str, dict[str, Samples]] = {
        m: {n: Samples() for n in names}
        for base in ("invoke", "stream64", "stream1", "abatch")
        for m in (base, f"{base}_cpu")
    }
    by_name = {c.name: c for c in clients}

    def interleaved(
        key: str, calls: int, rep: int, run: Callable[[Client], object]
    ) -> None:
        # `calls` calls per client in BLOCKS blocks, the client order rotating every
        # block: a burst of load from elsewhere on the machine hits every client
        # alike instead of the one whose turn it happened to be.
        wall = dict.fromkeys(names, 0.0)
        cpu = dict.fromkeys(names, 0.0)
        settle()
        for block in range(BLOCKS):
            n = calls // BLOCKS + (block < calls % BLOCKS)
            for name in rotations(names, rep + block):
                c = by_name[name]
                t, p = time.perf_counter(), time.process_time()
                for _ in range(n):
                    run(c)
                wall[name] += time.perf_counter() - t
                cpu[name] += time.process_time() - p
        for name in names:
            metrics[key][name].add(wall[name] / calls)
            metrics[f"{key}_cpu"][name].add(cpu[name] / calls)

    def stream_checked(chunks: int) -> Callable[[Client], object]:
        def run(c: Client) -> None:
            got = c.stream(chunks)
            assert got == chunks, (c.name, got, chunks)

        return run

    for rep in range(sizes.reps):
        interleaved(
            "invoke", sizes.invoke_calls, rep, lambda c: c.invoke(INVOKE_TOKENS)
        )
        interleaved("stream64", sizes.stream_calls, rep, stream_checked(STREAM_CHUNKS))
        interleaved("stream1", sizes.stream_calls, rep, stream_checked(1))
        for name in rotations(names, rep):
            c = by_name[name]
            settle()
            t, cpu = time.perf_counter(), time.process_time()
            loop.run_until_complete(c.abatch(sizes.batch))
            metrics["abatch"][name].add((time.perf_counter() - t) / sizes.batch)
            metrics["abatch_cpu"][name].add((time.process_time() - cpu) / sizes.batch)
        say(
            f"  stub rep {rep + 1}/{sizes.reps}: invoke "
            + ", ".join(
                f"{n} {metrics['invoke'][n].values[-1] * 1e3:.3f} ms" for n in names
            )
        )
    loop.close()
    # Per-chunk cost: (64-chunk stream - 1-chunk stream) / 63, per repetition.
    for suffix in ("", "_cpu"):
        chunk: dict[str, Samples] = {n: Samples() for n in names}
        for n in names:
            for a, b in zip(
                metrics[f"stream64{suffix}"][n].values,
                metrics[f"stream1{suffix}"][n].values,
                strict=True,
            ):
                chunk[n].add((a - b) / (STREAM_CHUNKS - 1))
        metrics[f"chunk{suffix}"] = chunk
    return {"names": names, "metrics": metrics}


# -------------------------------------------------------------- 2. requests per call
def bench_requests(
    stub: StubProcess,
) -> list[tuple[str, dict[str, int], dict[str, int]]]:
    """Count requests per call pattern; assert one request per call once cached."""
    rows: list[tuple[str, dict[str, int], dict[str, int]]] = []
    chat_path = "POST /v1/chat/completions"

    def check(label: str, run: Callable[[], object], expected: dict[str, int]) -> None:
        stub.reset()
        run()
        got = stub.stats()
        rows.append((label, got, expected))
        assert got == expected, f"{label}: expected {expected}, the stub saw {got}"

    chat = ChatVLLM(base_url=stub.base_url, max_tokens=INVOKE_TOKENS)
    check(
        "first invoke (model discovered)",
        lambda: chat.invoke(PROMPT),
        {"GET /v1/models": 1, chat_path: 1},
    )
    check(
        "10 × invoke", lambda: [chat.invoke(PROMPT) for _ in range(10)], {chat_path: 10}
    )
    check(
        "5 × stream",
        lambda: [list(chat.stream(PROMPT)) for _ in range(5)],
        {chat_path: 5},
    )

    async def many() -> None:
        await chat.ainvoke(PROMPT)
        async for _ in chat.astream(PROMPT):
            pass
        await chat.abatch([PROMPT] * 8)

    check(
        "ainvoke + astream + abatch(8), new loop",
        lambda: asyncio.run(many()),
        {chat_path: 10},
    )
    constrained = ChatVLLM(
        base_url=stub.base_url,
        max_tokens=INVOKE_TOKENS,
        structured_outputs={"choice": ["yes", "no"]},
    )
    check(
        "first structured_outputs invoke",
        lambda: constrained.invoke(PROMPT),
        {"GET /v1/models": 1, "GET /version": 1, chat_path: 1},
    )
    check(
        "10 × structured_outputs invoke",
        lambda: [constrained.invoke(PROMPT) for _ in range(10)],
        {chat_path: 10},
    )
    check(
        "get_num_tokens × 10, same text",
        lambda: [chat.get_num_tokens("the same text") for _ in range(10)],
        {"POST /tokenize": 1},
    )
    return rows


# ------------------------------------------------------------------ 3. token counting
def bench_tokens(stub: StubProcess, sizes: Sizes) -> dict[str, Samples]:
    chat = ChatVLLM(base_url=stub.base_url, model="stub-model")
    chat.get_num_tokens("warm up")
    out = {"repeated": Samples(), "fresh": Samples()}
    counter = 0
    for _ in range(sizes.reps):
        t = time.perf_counter()
        for _ in range(sizes.tokens_repeated):
            chat.get_num_tokens("How many tokens does this sentence have?")
        out["repeated"].add(sizes.tokens_repeated / (time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(sizes.tokens_fresh):
            counter += 1
            chat.get_num_tokens(f"Fresh text number {counter} to count.")
        out["fresh"].add(sizes.tokens_fresh / (time.perf_counter() - t))
    return out


# --------------------------------------------------------------------- embeddings
def bench_embeddings(stub: StubProcess, sizes: Sizes) -> dict[str, Any] | None:
    try:
        from langchain_vllm.embeddings import VLLMEmbeddings  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    from langchain_openai import OpenAIEmbeddings

    raw = openai.OpenAI(base_url=stub.base_url, api_key="EMPTY")
    where: dict[str, Any] = {"base_url": stub.base_url, "model": "stub-model"}
    oe = OpenAIEmbeddings(**where, api_key="EMPTY", check_embedding_ctx_length=False)  # type: ignore[call-arg]
    ve = VLLMEmbeddings(**where)
    docs = [f"document number {i}" for i in range(32)]
    calls: dict[str, Callable[[], Any]] = {
        RAW: lambda: raw.embeddings.create(model="stub-model", input=docs),
        "OpenAIEmbeddings": lambda: oe.embed_documents(docs),
        "VLLMEmbeddings": lambda: ve.embed_documents(docs),
    }
    names = list(calls)
    for fn in calls.values():
        fn()
    samples = {n: Samples() for n in names}
    cpu = {n: Samples() for n in names}
    for rep in range(sizes.reps):
        for n in rotations(names, rep):
            settle()
            t, c = time.perf_counter(), time.process_time()
            for _ in range(sizes.embed_calls):
                calls[n]()
            samples[n].add((time.perf_counter() - t) / sizes.embed_calls)
            cpu[n].add((time.process_time() - c) / sizes.embed_calls)
    return {"names": names, "samples": samples, "cpu": cpu, "batch": len(docs)}


# -------------------------------------------------------------------------- 4. live
def bench_live(sizes: Sizes, eager: bool, base_url: str | None) -> dict[str, Any]:
    if base_url:  # an already running server: for experiments, not for the record
        model = openai.OpenAI(base_url=base_url, api_key="EMPTY").models.list()
        return _bench_live(base_url, model.data[0].id, sizes) | {
            "startup_s": 0.0,
            "eager": eager,
            "external": base_url,
        }
    from rig import rig_server

    server = rig_server("chat", eager=eager).start()
    try:
        return _bench_live(server.base_url, server.served_model_name, sizes) | {
            "startup_s": server.startup_seconds,
            "eager": eager,
        }
    finally:
        server.stop()


def _prompts(n: int) -> list[str]:
    return [
        f"Write a short story about a lighthouse keeper, part {i}." for i in range(n)
    ]


def _bench_live(base_url: str, model: str, sizes: Sizes) -> dict[str, Any]:
    max_tokens = sizes.live_max_tokens
    raw_sync = openai.OpenAI(base_url=base_url, api_key="EMPTY")
    # The same pool limits as ChatVLLM's per-loop client (ServerLink.async_client):
    # up to 1024 connections, at most 100 kept idle, so that the comparison is of
    # the client code and not of a pool setting.
    raw_async = openai.AsyncOpenAI(
        base_url=base_url,
        api_key="EMPTY",
        http_client=openai.DefaultAsyncHttpxClient(
            limits=httpx2.Limits(max_connections=1024, max_keepalive_connections=100)
        ),
    )
    settings: dict[str, Any] = {
        "base_url": base_url,
        "model": model,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "min_tokens": max_tokens,
    }
    chats: dict[str, ChatVLLM] = {VLLM: ChatVLLM(**settings)}

    async def raw_one(prompt: str) -> int:
        r = await raw_async.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],  # type: ignore[list-item]
            max_tokens=max_tokens,
            temperature=0,
            extra_body={"ignore_eos": True, "min_tokens": max_tokens},
        )
        assert r.usage is not None
        return r.usage.completion_tokens

    def lc_one(chat: ChatVLLM) -> Callable[[str], Coroutine[Any, Any, int]]:
        async def call(prompt: str) -> int:
            m = await chat.ainvoke(prompt)
            assert m.usage_metadata is not None  # type: ignore[attr-defined]
            return int(m.usage_metadata["output_tokens"])  # type: ignore[attr-defined]

        return call

    one = {RAW: raw_one} | {name: lc_one(chat) for name, chat in chats.items()}

    async def run_level(
        name: str, concurrency: int, n: int
    ) -> tuple[float, list[float]]:
        sem = asyncio.Semaphore(concurrency)
        latencies: list[float] = []
        tokens = 0

        async def task(prompt: str) -> None:
            nonlocal tokens
            async with sem:
                t = time.perf_counter()
                got = await one[name](prompt)
                tokens += got
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(task(p) for p in _prompts(n)))
        wall = time.perf_counter() - start
        assert tokens == n * max_tokens, (name, tokens, n * max_tokens)
        return tokens / wall, latencies

    def ttft(name: str) -> float:
        t = time.perf_counter()
        if name == RAW:
            for c in raw_sync.chat.completions.create(
                model=model,
                messages=MESSAGES,
                max_tokens=max_tokens,
                temperature=0,
                stream=True,
                extra_body={"ignore_eos": True, "min_tokens": max_tokens},
            ):
                if c.choices and c.choices[0].delta.content:
                    first = time.perf_counter() - t
                    break
        else:
            for m in chats[name].stream(PROMPT):
                if m.content:
                    first = time.perf_counter() - t
                    break
        return first

    names = [RAW, *chats]
    levels = sorted(sizes.live_requests)
    loop = asyncio.new_event_loop()
    for name in names:  # warm-up: connections, server caches, CUDA-graph-less compile
        loop.run_until_complete(run_level(name, 8, 16))
        ttft(name)
    throughput = {c: {n: Samples() for n in names} for c in levels}
    latency: dict[int, dict[str, list[float]]] = {
        c: {n: [] for n in names} for c in levels
    }
    first_token = {n: Samples() for n in names}

    def one_round(c: int, rnd: int) -> None:
        # Both clients back to back, the order alternating from round to round: the
        # round's ratio is the paired sample (load from elsewhere hits both alike).
        for name in rotations(names, rnd):
            settle()
            tps, lat = loop.run_until_complete(
                run_level(name, c, sizes.live_requests[c])
            )
            throughput[c][name].add(tps)
            latency[c][name] += lat
        say(
            f"  live round {rnd + 1} c={c}: "
            + ", ".join(f"{n} {throughput[c][n].values[-1]:.0f} tok/s" for n in names)
        )

    def more(c: int) -> bool:
        return any(
            needs_more_rounds(
                live_ratios(throughput[c], name),
                TARGET_THROUGHPUT_RATIO,
                min_rounds=sizes.live_min_rounds,
                max_rounds=sizes.live_max_rounds,
            )
            for name in names[1:]
        )

    # The minimum rounds across all levels (spread over the run's duration), then
    # one more round at a time for the levels still undecided, up to the cap.
    for rnd in range(sizes.live_min_rounds):
        for c in levels:
            one_round(c, rnd)
        for name in rotations(names, rnd):
            for _ in range(sizes.ttft_streams):
                first_token[name].add(ttft(name))
    while pending := [c for c in levels if more(c)]:
        for c in pending:
            one_round(c, len(throughput[c][RAW].values))
    loop.close()
    return {
        "model": model,
        "max_tokens": max_tokens,
        "levels": levels,
        "names": names,
        "throughput": throughput,
        "latency": latency,
        "ttft": first_token,
    }


# ------------------------------------------------------------------------- report
def _ms(x: float) -> str:
    return f"{x * 1e3:.3f}"


def _us(x: float) -> str:
    return f"{x * 1e6:.1f}"


def _ratio_value(
    samples: dict[str, Samples], name: str, key: str, reference: str = RAW
) -> float:
    # Per-chunk costs are differences (can be noisy): ratio of medians. Others:
    # median of per-repetition ratios (pairs measured back to back).
    if key == "chunk":
        return samples[name].median / samples[reference].median
    return paired_ratios(samples, name, reference).median


STUB_KEYS = ("invoke", "stream64", "chunk", "abatch")


def floor_ratios(stub: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Every other client's ratios to the floor, wall and client CPU (latest.json)."""
    m = stub["metrics"]
    return {
        n: {
            f"{key}{suffix}": _ratio_value(m[f"{key}{suffix}"], n, key, FLOOR)
            for key in STUB_KEYS
            for suffix in ("", "_cpu")
        }
        for n in stub["names"]
        if n != FLOOR
    }


def live_ratios(throughput: dict[str, Samples], name: str) -> list[float]:
    """Per-round throughput ratios name / raw SDK at one concurrency level."""
    return paired_round_ratios(throughput[RAW].values, throughput[name].values)


def live_estimate(live: dict[str, Any], c: int, name: str) -> RatioEstimate:
    return ratio_interval(live_ratios(live["throughput"][c], name))


def live_estimates(live: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every live level's paired-ratio estimate (for latest.json)."""
    out: dict[str, dict[str, Any]] = {}
    for c in live["levels"]:
        for n in live["names"][1:]:
            e = live_estimate(live, c, n)
            out.setdefault(f"c={c}", {})[n] = dataclasses.asdict(e) | {
                "verdict": e.verdict(TARGET_THROUGHPUT_RATIO)
            }
    return out


def _interval(e: RatioEstimate) -> str:
    return f"{e.median:.3f}× (mean {e.center:.3f}× [{e.low:.3f}, {e.high:.3f}])"


def _ratio(
    samples: dict[str, Samples], name: str, key: str, reference: str = RAW
) -> str:
    if name == reference:
        return "1.00"
    return f"{_ratio_value(samples, name, key, reference):.2f}×"


def report(
    args: argparse.Namespace,
    sizes: Sizes,
    stub: dict[str, Any] | None,
    requests: list[tuple[str, dict[str, int], dict[str, int]]] | None,
    tokens: dict[str, Samples] | None,
    embeds: dict[str, Any] | None,
    live: dict[str, Any] | None,
) -> tuple[str, list[tuple[str, str, str]]]:
    out: list[str] = []
    targets: list[tuple[str, str, str]] = []
    out.append("# Benchmark results (latest run)\n")
    out.append(
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()} with "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, openai "
        f"{openai.__version__}; mode: {'quick' if args.quick else 'full'}"
        f"{', eager server' if args.eager else ''}. Medians of {sizes.reps} "
        "interleaved repetitions; spread is ± half the min-max range; ratios are "
        "medians of per-repetition ratios to the raw SDK (client overhead: also to "
        "the floor), per-chunk ratios ratios of medians.\n"
    )
    if stub is not None:
        names, m = stub["names"], stub["metrics"]
        out.append("## Client overhead against an instant local stub\n")
        out.append(
            f"Per call: `invoke` (max_tokens={INVOKE_TOKENS}), `stream` of "
            f"{STREAM_CHUNKS} chunks, one request of an `abatch` of {sizes.batch} "
            f"(wall time / {sizes.batch}); per-chunk cost is (64-chunk stream − "
            "1-chunk stream) / 63. The floor (`benchmarks/floor.py`) is a LangChain "
            "chat model that does one httpx POST and `json.loads` per call and "
            "nothing else: the least any LangChain chat model can cost.\n"
        )
        rows = []
        for key, label, fmt, unit in (
            ("invoke", "invoke", _ms, "ms"),
            ("stream64", f"stream ({STREAM_CHUNKS} chunks)", _ms, "ms"),
            ("chunk", "stream, per chunk", _us, "µs"),
            ("abatch", f"abatch({sizes.batch}), per request", _ms, "ms"),
        ):
            for n in names:
                s, c = m[key][n], m[f"{key}_cpu"][n]
                rows.append(
                    [
                        label,
                        n,
                        f"{fmt(s.median)} {unit} ±{s.spread() * 100:.0f} %",
                        _ratio(m[key], n, key),
                        f"{fmt(c.median)} {unit} ±{c.spread() * 100:.0f} %",
                        _ratio(m[f"{key}_cpu"], n, key),
                        _ratio(m[f"{key}_cpu"], n, key, FLOOR),
                    ]
                )
        out.append(
            md_table(
                [
                    "workload",
                    "client",
                    "wall time",
                    "wall vs raw SDK",
                    "client CPU",
                    "CPU vs raw SDK",
                    "CPU vs floor",
                ],
                rows,
            )
        )
        out.append(
            "\nWall time includes the stub's answer and the kernel; client CPU "
            "(`time.process_time()` of the benchmark process, the stub runs in its "
            "own) is the time the client library itself spends, and is far less "
            "disturbed by other load on the machine. Targets are checked on client "
            "CPU; the wall ratio is shown beside it.\n"
        )
        for n in [x for x in names if x.startswith(VLLM)]:
            for key, what in (("invoke", "invoke"), ("abatch", "abatch per request")):
                r = _ratio_value(m[f"{key}_cpu"], n, key)
                w = _ratio_value(m[key], n, key)
                targets.append(
                    (
                        f"{n} {what} ≤ {TARGET_CALL_RATIO:.2f}× raw SDK",
                        _met(r <= TARGET_CALL_RATIO),
                        f"CPU {r:.2f}×, wall {w:.2f}×",
                    )
                )
            r = _ratio_value(m["chunk_cpu"], n, "chunk")
            w = _ratio_value(m["chunk"], n, "chunk")
            targets.append(
                (
                    f"{n} stream per-chunk cost ≤ raw SDK's",
                    _met(r <= TARGET_CHUNK_RATIO),
                    f"CPU {r:.2f}× ({_us(m['chunk_cpu'][n].median)} vs "
                    f"{_us(m['chunk_cpu'][RAW].median)} µs), wall {w:.2f}×",
                )
            )
            for key, what in (("invoke", "invoke"), ("abatch", "abatch per request")):
                r = _ratio_value(m[f"{key}_cpu"], n, key, FLOOR)
                w = _ratio_value(m[key], n, key, FLOOR)
                targets.append(
                    (
                        f"{n} {what} ≤ {TARGET_FLOOR_CALL_RATIO:.2f}× the floor",
                        _met(r <= TARGET_FLOOR_CALL_RATIO),
                        f"CPU {r:.2f}× ({_ms(m[f'{key}_cpu'][n].median)} vs "
                        f"{_ms(m[f'{key}_cpu'][FLOOR].median)} ms), wall {w:.2f}×",
                    )
                )
            r = _ratio_value(m["chunk_cpu"], n, "chunk", FLOOR)
            w = _ratio_value(m["chunk"], n, "chunk", FLOOR)
            targets.append(
                (
                    f"{n} stream per-chunk cost ≤ {TARGET_FLOOR_CHUNK_RATIO:.2f}× "
                    "the floor's",
                    _met(r <= TARGET_FLOOR_CHUNK_RATIO),
                    f"CPU {r:.2f}× ({_us(m['chunk_cpu'][n].median)} vs "
                    f"{_us(m['chunk_cpu'][FLOOR].median)} µs), wall {w:.2f}×",
                )
            )
    if requests is not None:
        out.append("## HTTP requests per call (counted at the stub, asserted)\n")
        out.append(
            md_table(
                ["calls on one ChatVLLM", "requests the stub saw"],
                [
                    [label, ", ".join(f"{k}: {v}" for k, v in sorted(got.items()))]
                    for label, got, _ in requests
                ],
            )
        )
        out.append("")
    if tokens is not None:
        out.append("## Token counting (`ChatVLLM.get_num_tokens`, stub server)\n")
        out.append(
            md_table(
                ["texts", "calls/s (median)", "spread"],
                [
                    [k, f"{s.median:,.0f}", f"±{s.spread() * 100:.0f} %"]
                    for k, s in tokens.items()
                ],
            )
        )
        out.append(
            "\nRepeated texts are answered from the client's cache; fresh ones cost "
            "one `POST /tokenize`. (`ChatOpenAI.get_num_tokens` needs tiktoken's "
            "download and counts OpenAI tokens, not the served model's.)\n"
        )
    if embeds is not None:
        out.append(
            f"## Embeddings (`embed_documents` of {embeds['batch']} texts, stub)\n"
        )
        es, ec = embeds["samples"], embeds["cpu"]
        out.append(
            md_table(
                [
                    "client",
                    "wall per call",
                    "vs raw SDK",
                    "client CPU",
                    "CPU vs raw SDK",
                ],
                [
                    [
                        n,
                        f"{_ms(es[n].median)} ms ±{es[n].spread() * 100:.0f} %",
                        _ratio(es, n, "embed"),
                        f"{_ms(ec[n].median)} ms",
                        _ratio(ec, n, "embed"),
                    ]
                    for n in embeds["names"]
                ],
            )
        )
        out.append("")
    if live is not None:
        lines, live_targets = _live_report(live, sizes)
        out += lines
        targets += live_targets
    out.append("## Targets\n")
    out.append(
        md_table(
            ["target", "met", "measured"],
            [[t, met if met == "yes" else f"**{met}**", v] for t, met, v in targets],
        )
    )
    out.append("")
    return "\n".join(out), targets


def _met(ok: bool) -> str:
    return "yes" if ok else "no"


def _live_report(
    live: dict[str, Any], sizes: Sizes
) -> tuple[list[str], list[tuple[str, str, str]]]:
    out = ["## Live vLLM server\n"]
    if live.get("external"):
        out.append(f"**Against an external server {live['external']}.**\n")
    out.append(
        f"The rig's chat model ({live['model']}, "
        f"{'--enforce-eager' if live['eager'] else 'compiled'}, started in "
        f"{live['startup_s']:.0f} s), max_tokens={live['max_tokens']}, ignore_eos, "
        f"temperature 0; requests per level "
        + ", ".join(f"c={c}: {n}" for c, n in sizes.live_requests.items())
        + f". Each level ran {sizes.live_min_rounds} rounds, and more (up to "
        f"{sizes.live_max_rounds}) while its verdict was undecided; a round runs "
        "both clients back to back, the order alternating from round to round. "
        '"vs raw SDK" is the median of the per-round ratios ChatVLLM / raw SDK, '
        "then their geometric mean with its 95 % t-interval (on the logs). Verdict "
        f"on ≥ {TARGET_THROUGHPUT_RATIO}: PASS if the interval's lower bound is "
        "above it, FAIL if its upper bound is below, else undecided. Latency is per "
        "request, over all rounds.\n"
    )
    rows = []
    for c in live["levels"]:
        for n in live["names"]:
            tp = live["throughput"][c][n]
            lat = live["latency"][c][n]
            e = None if n == RAW else live_estimate(live, c, n)
            rows.append(
                [
                    str(c),
                    n,
                    str(len(tp.values)),
                    f"{tp.median:.0f}",
                    f"±{tp.spread() * 100:.0f} %",
                    "1.00" if e is None else _interval(e),
                    "" if e is None else e.verdict(TARGET_THROUGHPUT_RATIO),
                    f"{percentile(lat, 50) * 1e3:.0f}",
                    f"{percentile(lat, 99) * 1e3:.0f}",
                ]
            )
    header = ["concurrency", "client", "rounds", "output tok/s", "spread"]
    header += ["vs raw SDK: median (geometric mean [95 % interval])", "verdict"]
    header += ["p50 ms", "p99 ms"]
    out += [md_table(header, rows), ""]
    tt = live["ttft"]
    out.append(
        md_table(
            ["client", "time to first token (median)", "spread"],
            [
                [n, f"{tt[n].median * 1e3:.1f} ms", f"±{tt[n].spread() * 100:.0f} %"]
                for n in live["names"]
            ],
        )
    )
    out.append("")
    targets = []
    for n in live["names"][1:]:
        for c in live["levels"]:
            e = live_estimate(live, c, n)
            verdict = e.verdict(TARGET_THROUGHPUT_RATIO)
            met = {PASS: "yes", UNDECIDED: "undecided"}.get(verdict, "no")
            targets.append(
                (
                    f"{n} live throughput at c={c} ≥ {TARGET_THROUGHPUT_RATIO}× raw",
                    met,
                    f"{_interval(e)}, {e.rounds} rounds: {verdict}",
                )
            )
    out.append("![throughput and latency](throughput_latency.png)\n")
    return out, targets


def plot(live: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = live["levels"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for n, style in zip(live["names"], ("o-", "s--", "^-."), strict=False):
        ax1.plot(
            levels, [live["throughput"][c][n].median for c in levels], style, label=n
        )
        ax2.plot(
            levels,
            [percentile(live["latency"][c][n], 50) * 1e3 for c in levels],
            style,
            label=f"{n} p50",
        )
        ax2.plot(
            levels,
            [percentile(live["latency"][c][n], 99) * 1e3 for c in levels],
            style[0] + ":",
            alpha=0.6,
            label=f"{n} p99",
        )
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.set_xlabel("concurrency")
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set_ylabel("output tokens/s")
    ax1.set_title("Throughput")
    ax2.set_ylabel("latency per request (ms)")
    ax2.set_yscale("log")
    ax2.set_title("Latency")
    fig.suptitle(
        f"{live['model']}, max_tokens={live['max_tokens']}: "
        + " vs ".join(live["names"])
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _jsonable(x: Any) -> Any:
    if isinstance(x, Samples):
        return {"median": x.median, "values": x.values}
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


STUB_PARTS = ("requests", "overhead", "tokens", "embeddings")
PARTS = (*STUB_PARTS, "live")


def selected_parts(args: argparse.Namespace) -> set[str]:
    """The parts to run: `--only` ones (default all), less `--no-live`/`--no-stub`."""
    parts = set(args.only or PARTS)
    if args.no_live:
        parts.discard("live")
    if args.no_stub:
        parts -= set(STUB_PARTS)
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(
        description="ChatVLLM vs raw openai SDK vs ChatOpenAI"
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument(
        "--eager", action="store_true", help="live server with --enforce-eager"
    )
    parser.add_argument("--no-live", action="store_true", help="stub parts only")
    parser.add_argument("--no-stub", action="store_true", help="live part only")
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable), e.g. `--only embeddings`",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--base-url",
        help="live part against this running server instead of starting one "
        "(quick experiments only; published figures come from the benchmark's own)",
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: the stub and the vLLM server are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    parts = selected_parts(args)
    stub_res = requests = tokens = embeds = live = None
    if parts & set(STUB_PARTS):
        with StubProcess() as stub:
            if "requests" in parts:
                say(f"stub on {stub.base_url}: request counts")
                requests = bench_requests(stub)
                for label, got, _ in requests:
                    say(f"  {label}: {got}  (as expected)")
            if "overhead" in parts:
                say("client overhead (interleaved)")
                stub_res = bench_stub(stub, sizes)
            if "tokens" in parts:
                say("token counting")
                tokens = bench_tokens(stub, sizes)
            if "embeddings" in parts:
                say("embeddings")
                embeds = bench_embeddings(stub, sizes)
    if "live" in parts:
        say(
            f"live vLLM ({'eager' if args.eager else 'compiled'}; "
            "start may take ~100 s)"
        )
        live = bench_live(sizes, args.eager, args.base_url)
        try:
            plot(live, args.out / "throughput_latency.png")
        except Exception as e:  # the figures matter more than the plot
            say(f"plot failed: {e!r}")
    text, targets = report(args, sizes, stub_res, requests, tokens, embeds, live)
    text += f"\nTotal run time: {time.perf_counter() - began:.0f} s.\n"
    (args.out / "latest.md").write_text(text)
    (args.out / "latest.json").write_text(
        json.dumps(
            _jsonable(
                {
                    "stub": stub_res,
                    "floor_ratios": None
                    if stub_res is None
                    else floor_ratios(stub_res),
                    "tokens": tokens,
                    "embeddings": embeds,
                    "live": live,
                    "live_ratios": None if live is None else live_estimates(live),
                    "targets": targets,
                }
            ),
            indent=1,
        )
    )
    say("\n" + text)
    say(f"wrote {args.out / 'latest.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
