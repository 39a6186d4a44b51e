"""The load command at CI size: `benchmarks/load.py -n 60 -c 16` against the live
chat server. Every request must come back well-formed: 0 lost, 0 malformed, 0 failed.

Full size (`make load N=1000 C=128`) figures are in docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.unit_tests.fake_vllm import chat_completion, stream_chunks

ROOT = Path(__file__).resolve().parents[2]
REQUESTS, CONCURRENCY = 60, 16


@pytest.mark.timeout(900)
def test_load_ci_size(chat_url: str, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "load.py"),
            "--requests",
            str(REQUESTS),
            "--concurrency",
            str(CONCURRENCY),
            "--base-url",
            chat_url,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    print(run.stdout)
    report = json.loads(out.read_text())
    counts = report["counts"]
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert counts["lost"] == 0, report["errors"]
    assert counts["malformed"] == 0, report["errors"]
    assert counts["failed"] == 0, report["errors"]
    assert counts["ok"] == REQUESTS
    # Every kind of request was exercised, and tokens were counted.
    assert all(kinds.get("ok") == REQUESTS // 4 for kinds in report["by_kind"].values())
    assert report["output_tokens"] > 0
    assert report["p50"] is not None
    assert report["p99"] >= report["p50"]


class _NoFinishHandler(BaseHTTPRequestHandler):
    """Answers every chat request with a body whose finish_reason is missing."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # /version, asked before structured outputs
        self._send(json.dumps({"version": "0.32.0"}).encode(), "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if body.get("stream"):
            chunks = stream_chunks(["a", "b"], finish=False)
            raw = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode()
            raw += b"data: [DONE]\n\n"
            kind = "text/event-stream"
        else:
            raw = json.dumps(chat_completion("red", finish_reason=None)).encode()  # type: ignore[arg-type]
            kind = "application/json"
        self._send(raw, kind)

    def _send(self, raw: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def test_load_reports_malformed_answers() -> None:
    """The checker itself: answers without finish_reason are not counted as ok."""
    from benchmarks.load import run_load

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NoFinishHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        report = asyncio.run(run_load(url, 8, 4, model="stub", max_tokens=4))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not report.healthy
    assert report.counts["ok"] == 0
    # invoke, batch and structured answers come back malformed; streams end in a
    # typed VLLMIncompleteStreamError (failed).
    assert report.counts["malformed"] == 6
    assert report.counts["failed"] == 2
    assert report.by_kind["stream"] == {"failed": 2}
