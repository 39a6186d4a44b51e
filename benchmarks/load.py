"""Mixed load against a live vLLM server: `make load N=1000 C=128`.

N requests, async, at most C in flight, rotating through four kinds:

* `invoke`      -- `ainvoke`, one whole answer;
* `stream`      -- `astream`, the chunks added up;
* `batch`       -- `abatch` of three prompts (one slot of the concurrency limit);
* `structured`  -- `ainvoke` with `structured_outputs={"choice": [...]}`.

Every answer is checked. A request ends as exactly one of:

* `ok`        -- an answer that passed its checks;
* `failed`    -- a typed error the caller can act on (an `openai.APIError` or a
                 langchain-core `ModelError`, e.g. VLLMTimeoutError);
* `malformed` -- an answer came back but is not a complete, well-formed one (no
                 finish_reason, no usage, a structured answer outside its choices,
                 a stream whose chunks disagree with its final usage, ...);
* `lost`      -- neither an answer nor a typed error: the request hung past
                 `--deadline` or died with an untyped exception (AttributeError,
                 KeyError, ...), so the caller cannot know what happened.

Prints ok / failed / lost / malformed, p50 / p99 latency (of ok requests, seconds)
and output tokens per second (ok requests' tokens over the wall time). The exit code
is 1 when any request was lost or malformed.

Without `--base-url` it starts the rig's chat server itself (`rig_server("chat")`,
`--enforce-eager` unless `--compiled`) and stops it at the end.

Usage:
    python benchmarks/load.py --requests 1000 --concurrency 128
    python benchmarks/load.py -n 60 -c 16 --base-url URL --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai
from langchain_core.exceptions import ModelError
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

from langchain_vllm import ChatVLLM

KINDS = ("invoke", "stream", "batch", "structured")
BATCH_SIZE = 3
CHOICES = ["red", "green", "blue", "yellow"]
FINISH_REASONS = {"stop", "length"}
TOPICS = ("the sea", "a cat", "autumn", "a city", "coffee", "the moon", "rain", "bread")


@dataclass
class Outcome:
    """How one request ended."""

    kind: str
    status: str  # ok | failed | malformed | lost
    latency: float
    output_tokens: int = 0
    detail: str = ""


@dataclass
class LoadReport:
    """The figures of one load run."""

    requests: int
    concurrency: int
    wall_seconds: float
    counts: dict[str, int]
    by_kind: dict[str, dict[str, int]]
    p50: float | None
    p99: float | None
    output_tokens: int
    tokens_per_second: float
    errors: dict[str, int] = field(default_factory=dict)
    """Failure, malformation and loss details, counted."""

    @property
    def healthy(self) -> bool:
        """No request was lost or malformed."""
        return self.counts["lost"] == 0 and self.counts["malformed"] == 0

    def lines(self) -> list[str]:
        """The human-readable summary."""

        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f} s"

        c = self.counts
        out = [
            f"requests {self.requests}  concurrency {self.concurrency}  "
            f"wall {self.wall_seconds:.1f} s",
            f"ok {c['ok']}  failed {c['failed']}  lost {c['lost']}  "
            f"malformed {c['malformed']}",
            f"latency p50 {fmt(self.p50)}  p99 {fmt(self.p99)}",
            f"output tokens {self.output_tokens}  "
            f"tokens/s {self.tokens_per_second:.1f}",
        ]
        for kind, counts in self.by_kind.items():
            parts = "  ".join(f"{k} {v}" for k, v in counts.items() if v)
            out.append(f"  {kind:<10} {parts}")
        for detail, n in sorted(self.errors.items(), key=lambda kv: -kv[1])[:10]:
            out.append(f"  x{n}: {detail}")
        return out


class Malformed(Exception):
    """The answer came back but failed its checks."""


def _prompt(i: int) -> str:
    return f"Request {i}: write one short sentence about {TOPICS[i % len(TOPICS)]}."


def _check_message(message: BaseMessage, max_tokens: int) -> int:
    """Output tokens of a whole answer, or Malformed."""
    if not isinstance(message, AIMessage) or not isinstance(message.content, str):
        msg = f"not an AIMessage with text: {type(message).__name__}"
        raise Malformed(msg)
    finish = message.response_metadata.get("finish_reason")
    if finish not in FINISH_REASONS:
        msg = f"finish_reason {finish!r}"
        raise Malformed(msg)
    usage = message.usage_metadata
    if not usage or not 1 <= usage["output_tokens"] <= max_tokens:
        msg = f"usage {usage!r}"
        raise Malformed(msg)
    if finish == "length" and usage["output_tokens"] != max_tokens:
        msg = f"finish_reason length after {usage['output_tokens']} tokens"
        raise Malformed(msg)
    return usage["output_tokens"]


async def _invoke(chat: ChatVLLM, i: int, max_tokens: int) -> int:
    return _check_message(await chat.ainvoke(_prompt(i)), max_tokens)


async def _stream(chat: ChatVLLM, i: int, max_tokens: int) -> int:
    total: AIMessageChunk | None = None
    finishes = 0
    async for chunk in chat.astream(_prompt(i)):
        finishes += bool(chunk.response_metadata.get("finish_reason"))
        total = chunk if total is None else total + chunk
    if total is None:
        msg = "empty stream"
        raise Malformed(msg)
    if finishes != 1:
        msg = f"{finishes} chunks carried a finish_reason"
        raise Malformed(msg)
    return _check_message(total, max_tokens)


async def _batch(chat: ChatVLLM, i: int, max_tokens: int) -> int:
    prompts = [_prompt(i * BATCH_SIZE + k) for k in range(BATCH_SIZE)]
    answers = await chat.abatch(prompts)  # type: ignore[arg-type]
    if len(answers) != BATCH_SIZE:
        msg = f"{len(answers)} answers for {BATCH_SIZE} prompts"
        raise Malformed(msg)
    return sum(_check_message(a, max_tokens) for a in answers)


async def _structured(chat: ChatVLLM, i: int, max_tokens: int) -> int:
    bound = chat.bind(structured_outputs={"choice": CHOICES})
    message = await bound.ainvoke(f"Request {i}: pick a colour.")
    tokens = _check_message(message, max_tokens)
    if message.content not in CHOICES:
        msg = f"structured answer {message.content!r:.40} outside the choices"
        raise Malformed(msg)
    return tokens


_CALLS = {
    "invoke": _invoke,
    "stream": _stream,
    "batch": _batch,
    "structured": _structured,
}


async def _one(
    chat: ChatVLLM,
    i: int,
    limit: asyncio.Semaphore,
    max_tokens: int,
    deadline: float,
) -> Outcome:
    kind = KINDS[i % len(KINDS)]
    async with limit:
        began = time.perf_counter()
        try:
            tokens = await asyncio.wait_for(
                _CALLS[kind](chat, i, max_tokens), timeout=deadline
            )
        except Malformed as e:
            status, tokens, detail = "malformed", 0, f"{kind}: {e}"
        except TimeoutError:
            status, tokens, detail = "lost", 0, f"{kind}: no answer in {deadline:g} s"
        except (openai.APIError, ModelError) as e:
            status, tokens, detail = "failed", 0, f"{kind}: {type(e).__name__}: {e}"
        except Exception as e:
            status, tokens, detail = "lost", 0, f"{kind}: {type(e).__name__}: {e}"
        else:
            status, detail = "ok", ""
        return Outcome(kind, status, time.perf_counter() - began, tokens, detail[:200])


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def run_load(
    base_url: str,
    requests: int,
    concurrency: int,
    *,
    model: str | None = None,
    api_key: str | None = None,
    max_tokens: int = 24,
    deadline: float = 600.0,
    timeout: float = 300.0,
) -> LoadReport:
    """Send `requests` mixed requests at `concurrency` and report the figures.

    Args:
        base_url: The server's OpenAI base URL (ends in `/v1`).
        requests: How many requests (a batch request counts once).
        concurrency: At most this many requests in flight.
        model: Served model name (None: discovered).
        api_key: The server's API key, if it has one.
        max_tokens: Output tokens per answer.
        deadline: Seconds after which a request without any answer counts as lost.
        timeout: The client's `timeout` (a slower answer is a typed failure).

    Returns:
        The report.
    """
    kwargs: dict[str, Any] = {"api_key": api_key} if api_key else {}
    chat = ChatVLLM(
        base_url=base_url,
        model=model,
        max_tokens=max_tokens,
        temperature=0.8,
        timeout=timeout,
        max_retries=2,
        **kwargs,
    )
    limit = asyncio.Semaphore(concurrency)
    began = time.perf_counter()
    outcomes = await asyncio.gather(
        *(_one(chat, i, limit, max_tokens, deadline) for i in range(requests))
    )
    wall = time.perf_counter() - began
    counts = Counter({"ok": 0, "failed": 0, "lost": 0, "malformed": 0})
    counts.update(o.status for o in outcomes)
    by_kind = {
        kind: dict(Counter(o.status for o in outcomes if o.kind == kind))
        for kind in KINDS
    }
    latencies = [o.latency for o in outcomes if o.status == "ok"]
    tokens = sum(o.output_tokens for o in outcomes)
    return LoadReport(
        requests=requests,
        concurrency=concurrency,
        wall_seconds=wall,
        counts=dict(counts),
        by_kind=by_kind,
        p50=_percentile(latencies, 50),
        p99=_percentile(latencies, 99),
        output_tokens=tokens,
        tokens_per_second=tokens / wall if wall else 0.0,
        errors=dict(Counter(o.detail for o in outcomes if o.detail)),
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print, exit 1 on lost or malformed requests."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", "-n", type=int, default=1000)
    parser.add_argument("--concurrency", "-c", type=int, default=128)
    parser.add_argument("--base-url", help="a running server (default: start one)")
    parser.add_argument("--model", help="served model name (default: discovered)")
    parser.add_argument("--api-key", help="the server's API key, if any")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--deadline", type=float, default=600.0)
    parser.add_argument(
        "--compiled", action="store_true", help="own server without --enforce-eager"
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")

    server = None
    base_url = args.base_url
    if base_url is None:
        from rig import rig_server

        server = rig_server("chat", eager=not args.compiled).start()
        base_url = server.base_url
    try:
        report = asyncio.run(
            run_load(
                base_url,
                args.requests,
                args.concurrency,
                model=args.model,
                api_key=args.api_key,
                max_tokens=args.max_tokens,
                deadline=args.deadline,
            )
        )
    finally:
        if server is not None:
            server.stop()
    print(f"server {base_url}")
    print("\n".join(report.lines()))
    if args.json:
        data = {**asdict(report), "healthy": report.healthy, "base_url": base_url}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0 if report.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
