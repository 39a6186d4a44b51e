"""A minimal vLLM-shaped HTTP stub that answers instantly, for client-overhead runs.

It speaks just enough HTTP/1.1 (keep-alive, `Content-Length` bodies) to serve the
routes a client of vLLM's OpenAI-compatible server touches:

* `POST /v1/chat/completions`: a complete answer, or with `"stream": true` an SSE
  stream of `max_tokens` content chunks (`STREAM_CHUNKS` when unset), a finish
  chunk, a usage chunk (when `stream_options.include_usage`) and `[DONE]`;
* `POST /v1/embeddings`: one 384-dimension vector per input (float or base64);
* `GET /v1/models`, `GET /version`, `POST /tokenize` (one token per word);
* `GET /_stats` (requests counted per `METHOD /path`) and `POST /_reset`
  (zero the counts), which are not counted themselves.

Responses are prebuilt bytes so that the stub costs microseconds per request: the
benchmark runs it in its own process (`python -m benchmarks.stub`), which prints
`PORT <n>` once it listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import struct
import sys
from collections import Counter
from typing import Any

MODEL = "stub-model"
VERSION = "0.32.0"
STREAM_CHUNKS = 64
EMBEDDING_DIM = 384
COMPLETION_TOKENS = 16
PROMPT_TOKENS = 12
_CREATED = 1795637633


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def chat_completion_body() -> bytes:
    """A whole `/v1/chat/completions` answer, shaped like vLLM 0.32's."""
    return _json(
        {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": _CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "word " * COMPLETION_TOKENS,
                        "refusal": None,
                        "annotations": None,
                        "audio": None,
                        "function_call": None,
                        "tool_calls": [],
                        "reasoning": None,
                    },
                    "logprobs": None,
                    "finish_reason": "length",
                    "stop_reason": None,
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        }
    )


def _chunk(
    delta: dict[str, Any],
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> bytes:
    choices = (
        []
        if usage is not None
        else [
            {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
            }
        ]
    )
    data: dict[str, Any] = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": MODEL,
        "choices": choices,
    }
    if usage is not None:
        data["usage"] = usage
    return b"data: " + _json(data) + b"\n\n"


def stream_body(include_usage: bool, chunks: int = STREAM_CHUNKS) -> bytes:
    """An SSE stream of `chunks` content chunks, as vLLM sends it.

    The first chunk carries the role and the first word, each further chunk one word;
    then a chunk with `finish_reason`, the usage chunk if asked, and `[DONE]`.
    """
    parts = [_chunk({"role": "assistant", "content": "w0 "})]
    parts += [_chunk({"content": f"w{i} "}) for i in range(1, chunks)]
    parts.append(_chunk({"content": ""}, finish_reason="length"))
    if include_usage:
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": chunks,
            "total_tokens": PROMPT_TOKENS + chunks,
        }
        parts.append(_chunk({}, usage=usage))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


_VECTOR = [round(0.001 * (i % 97) - 0.048, 6) for i in range(EMBEDDING_DIM)]
_VECTOR_B64 = base64.b64encode(struct.pack(f"<{EMBEDDING_DIM}f", *_VECTOR)).decode()


def embeddings_body(n_inputs: int, encoding_format: str | None) -> bytes:
    """A `/v1/embeddings` answer with `n_inputs` identical vectors."""
    vector: Any = _VECTOR_B64 if encoding_format == "base64" else _VECTOR
    return _json(
        {
            "id": "embd-stub",
            "object": "list",
            "created": _CREATED,
            "model": MODEL,
            "data": [
                {"index": i, "object": "embedding", "embedding": vector}
                for i in range(n_inputs)
            ],
            "usage": {"prompt_tokens": n_inputs, "total_tokens": n_inputs},
        }
    )


MODELS_BODY = _json(
    {
        "object": "list",
        "data": [
            {
                "id": MODEL,
                "object": "model",
                "created": _CREATED,
                "owned_by": "vllm",
                "root": MODEL,
                "parent": None,
                "max_model_len": 2048,
            }
        ],
    }
)
VERSION_BODY = _json({"version": VERSION})
CHAT_BODY = chat_completion_body()

Response = tuple[int, str, bytes]
_NOT_FOUND: Response = (404, "application/json", _json({"error": "not found"}))


class StubApp:
    """The stub's routes and request counts, independent of any socket."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._streams: dict[tuple[bool, int], bytes] = {}

    def _stream(self, include_usage: bool, chunks: int) -> bytes:
        key = (include_usage, chunks)
        body = self._streams.get(key)
        if body is None:
            body = self._streams[key] = stream_body(include_usage, chunks)
        return body

    def handle(self, method: str, path: str, body: bytes) -> Response:
        """Answer one request (and count it, unless it is a `/_` control route)."""
        path = path.split("?", 1)[0]
        if path == "/_stats":
            return 200, "application/json", _json(dict(self.counts))
        if path == "/_reset":
            self.counts.clear()
            return 200, "application/json", b"{}"
        self.counts[f"{method} {path}"] += 1
        if method == "POST" and path == "/v1/chat/completions":
            request = json.loads(body or b"{}")
            if request.get("stream"):
                options = request.get("stream_options") or {}
                chunks = int(
                    request.get("max_tokens")
                    or request.get("max_completion_tokens")
                    or STREAM_CHUNKS
                )
                return (
                    200,
                    "text/event-stream",
                    self._stream(bool(options.get("include_usage")), chunks),
                )
            return 200, "application/json", CHAT_BODY
        if method == "POST" and path == "/v1/embeddings":
            request = json.loads(body or b"{}")
            inputs = request.get("input")
            n = len(inputs) if isinstance(inputs, list) else 1
            return (
                200,
                "application/json",
                embeddings_body(n, request.get("encoding_format")),
            )
        if method == "POST" and path == "/tokenize":
            request = json.loads(body or b"{}")
            prompt = request.get("prompt")
            if prompt is None:
                prompt = " ".join(
                    str(m.get("content", "")) for m in request.get("messages") or []
                )
            tokens = list(range(len(str(prompt).split())))
            reply = {"count": len(tokens), "max_model_len": 2048, "tokens": tokens}
            return 200, "application/json", _json(reply)
        if method == "GET" and path == "/v1/models":
            return 200, "application/json", MODELS_BODY
        if method == "GET" and path == "/version":
            return 200, "application/json", VERSION_BODY
        if method == "GET" and path == "/health":
            return 200, "application/json", b"{}"
        return _NOT_FOUND


_REASONS = {200: b"OK", 404: b"Not Found", 400: b"Bad Request"}


def _head(status: int, content_type: str, length: int) -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
        b"connection: keep-alive\r\n\r\n"
        % (status, _REASONS.get(status, b"OK"), content_type.encode(), length)
    )


async def serve_connection(
    app: StubApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve keep-alive HTTP/1.1 requests on one connection until it closes."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            status, content_type, payload = app.handle(method, target, body)
            writer.write(_head(status, content_type, len(payload)) + payload)
            await writer.drain()
    except ConnectionError:
        return
    finally:
        writer.close()


async def main(port: int) -> None:
    """Listen on 127.0.0.1:`port` (0 picks one), print `PORT <n>`, serve forever."""
    app = StubApp()
    server = await asyncio.start_server(
        lambda r, w: serve_connection(app, r, w),
        "127.0.0.1",
        port,
        backlog=4096,
    )
    chosen = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {chosen}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
