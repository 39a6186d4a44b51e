"""A gateway in front of vLLM that forwards only `/v1/*`, as many API gateways,
generic OpenAI proxies and ingress rules do; its `/v1/models` drops
`max_model_len`. Everything else answers 404 `{"detail": "Not Found"}`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import httpx2

_HOP_HEADERS = {"host", "content-length", "connection", "accept-encoding"}


class V1OnlyGateway:
    """Start with `start()` (returns the gateway's `/v1` base URL), stop with
    `stop()`, or use it as a context manager; `refused` lists the paths it did not
    forward."""

    def __init__(self, upstream_base_url: str) -> None:
        self.upstream_root = upstream_base_url.rstrip("/").removesuffix("/v1")
        self.refused: list[str] = []
        self._client = httpx2.Client(timeout=300)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> str:
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection, body to EOF

            def do_GET(self) -> None:
                gateway.forward(self)

            def do_POST(self) -> None:
                gateway.forward(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        if not request.path.startswith("/v1/"):
            self.refused.append(request.path)
            self._send(request, 404, b'{"detail": "Not Found"}')
            return
        length = int(request.headers.get("content-length") or 0)
        body = request.rfile.read(length) if length else None
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS
        }
        url = f"{self.upstream_root}{request.path}"
        with self._client.stream(
            request.command, url, content=body, headers=headers
        ) as answer:
            if request.path == "/v1/models" and answer.status_code == 200:
                cards = json.loads(answer.read())
                for card in cards.get("data", []):
                    card.pop("max_model_len", None)
                self._send(request, 200, json.dumps(cards).encode())
                return
            request.send_response(answer.status_code)
            kind = answer.headers.get("content-type", "application/json")
            request.send_header("content-type", kind)
            request.end_headers()
            for chunk in answer.iter_raw():
                request.wfile.write(chunk)
                request.wfile.flush()

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        request.send_response(status)
        request.send_header("content-type", "application/json")
        request.send_header("content-length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
