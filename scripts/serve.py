"""`make serve [KIND=chat]`: start one of the rig's vLLM servers and leave it running.

Prints the server's URL and the `export VLLM_API_BASE=...` line that points
ChatVLLM (and the notebook, and the integration tests) at it, then waits until
Ctrl-C, which stops the server and its engine processes.

    python scripts/serve.py                  # chat (tool calling), eager start
    python scripts/serve.py embeddings       # also serves /score and /rerank
    python scripts/serve.py vision           # images in (synthetic SmolVLM)
    python scripts/serve.py lora             # + LoRA adapter 'pineapple', runtime loading
    python scripts/serve.py chat --compiled  # slower start, faster serving
    python scripts/serve.py chat --port 8000
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

# Run as a file, this script has scripts/ on sys.path; rig.py is one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_vllm.server import VLLMServerError
from rig import RIG_SERVERS, cpu_dtype, rig_server

ENV_VARS = {
    "embeddings": "VLLM_EMBEDDINGS_API_BASE",
    "vision": "VLLM_VISION_API_BASE",
    "lora": "VLLM_LORA_API_BASE",
}
"""The variable the notebook and tests read for a kind (others: VLLM_API_BASE)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "kind", nargs="?", default="chat", choices=sorted(RIG_SERVERS), metavar="KIND"
    )
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="skip --enforce-eager: compile warm-up (60-100 s), higher throughput",
    )
    parser.add_argument("--port", type=int, help="port to bind (default: a free one)")
    args = parser.parse_args(argv)

    dtype, why = cpu_dtype()
    print(f"dtype: {dtype} ({why})", flush=True)
    server = rig_server(args.kind, eager=not args.compiled, port=args.port)
    try:
        server.start()
    except VLLMServerError as e:
        print(f"The {args.kind} server did not start:\n{e}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        print(f"vLLM {args.kind} server: {server.base_url}")
        print(f"served model: {server.served_model_name}")
        print(f"log: {server.log_path}")
        print("Point ChatVLLM, the notebook and the integration tests at it with:")
        print(f"  export {ENV_VARS.get(args.kind, 'VLLM_API_BASE')}={server.base_url}")
        print("Ctrl-C stops it.", flush=True)
        while not stop.wait(1.0):
            if not server.is_running:
                print("The server exited:\n" + server.log_tail(), file=sys.stderr)
                return 1
    finally:
        server.stop()
        print("Server stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
