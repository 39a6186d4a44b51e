"""Which of the package's modules one `invoke` passes through, in order.

Starts the benchmark stub (`benchmarks/stub.py`), makes one warm-up call, then
follows one `ChatVLLM(model=...).invoke(...)` with `sys.setprofile`: every call and
return event in a frame of `langchain_vllm` names its module; consecutive events in
the same module are one visit. Prints the visits, the number of modules, moves
(changes of module) and returns (visits to a module already left before).

    python scripts/walk_invoke.py [--stream] [--async]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = str(ROOT / "langchain_vllm") + "/"


def start_stub() -> tuple[subprocess.Popen[str], str]:
    """The stub server in its own process, and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.stub", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if line[:1] != ["PORT"]:
        proc.kill()
        raise SystemExit(f"the stub did not start: {line}")
    return proc, f"http://127.0.0.1:{line[1]}/v1"


def walk(call: Any) -> list[str]:
    """The package modules `call()` passes through (a visit per change)."""
    visits: list[str] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        path = frame.f_code.co_filename
        if not path.startswith(PACKAGE):
            return
        module = path[len(PACKAGE) :].removesuffix(".py").replace("/", ".")
        if not visits or visits[-1] != module:
            visits.append(module)

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return visits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", action="store_true", help="walk a stream")
    parser.add_argument("--async", dest="use_async", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from langchain_vllm import ChatVLLM

    proc, base_url = start_stub()
    try:
        chat = ChatVLLM(model="stub-model", base_url=base_url, max_tokens=16)
        if args.use_async:
            loop = asyncio.new_event_loop()
            if args.stream:

                def once() -> Any:
                    async def drain() -> None:
                        async for _ in chat.astream("Hi"):
                            pass

                    return loop.run_until_complete(drain())
            else:

                def once() -> Any:
                    return loop.run_until_complete(chat.ainvoke("Hi"))
        elif args.stream:

            def once() -> Any:
                return list(chat.stream("Hi"))
        else:

            def once() -> Any:
                return chat.invoke("Hi")

        once()  # warm-up: connections, caches
        visits = walk(once)
    finally:
        proc.kill()
    moves = len(visits) - 1
    modules = len(set(visits))
    print(" -> ".join(visits))
    print(f"modules {modules}, moves {moves}, returns {len(visits) - modules}")


if __name__ == "__main__":
    main()
