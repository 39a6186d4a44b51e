"""A hand-written vLLM HTTP double for unit tests (no sockets: httpx MockTransport).

It records every request and answers the routes the package uses with payloads shaped
like vLLM 0.32's (recorded from the live test server). Tests set `chat_response`,
`stream_chunks`, `models`, `version` or `status` to steer it.
"""

from __future__ import annotations

import base64
import copy
import json
import struct
from collections.abc import Callable
from typing import Any

import httpx2

BASE_URL = "http://vllm.test:8000/v1"
MEDIA_PARTS = {
    "image_url": "image",
    "audio_url": "audio",
    "input_audio": "audio",
    "video_url": "video",
}
"""vLLM content part types and their modality."""


def chat_completion(
    content: str | None = "Hello!",
    *,
    model: str = "smollm2",
    reasoning: str | None = None,
    reasoning_field: str = "reasoning",
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    usage: tuple[int, int] = (10, 3),
) -> dict[str, Any]:
    """A `/v1/chat/completions` body as vLLM 0.32 sends it."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": tool_calls or [],
        reasoning_field: reasoning,
    }
    if reasoning_field == "reasoning_content":
        message["reasoning"] = None
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1795637633,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
        "system_fingerprint": "vllm-0.32.0",
    }


def with_tokens(body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """`answer` with what vLLM 0.32 adds when `body` asks for it (fields kept if set).

    `return_token_ids`: the answer's `prompt_token_ids` (1, 2, ... one per prompt
    token of `usage`) and each choice's `token_ids` (1001, 1002, ...); `logprobs`:
    each choice's `logprobs.content`, one entry per completion token.
    """
    answer = copy.deepcopy(answer)
    prompt_tokens, completion_tokens = (
        answer["usage"]["prompt_tokens"],
        answer["usage"]["completion_tokens"],
    )
    if body.get("return_token_ids"):
        answer.setdefault("prompt_token_ids", list(range(1, prompt_tokens + 1)))
    for choice in answer["choices"]:
        if body.get("return_token_ids"):
            choice.setdefault("token_ids", list(range(1001, 1001 + completion_tokens)))
        if body.get("logprobs") and choice.get("logprobs") is None:
            content = [
                {
                    "token": f"t{i}",
                    "logprob": -0.5 * (i + 1),
                    "bytes": list(f"t{i}".encode()),
                    "top_logprobs": [],
                }
                for i in range(completion_tokens)
            ]
            choice["logprobs"] = {"content": content}
    return answer


def tool_call(
    name: str, arguments: dict[str, Any] | None = None, call_id: str = "chatcmpl-tool-1"
) -> dict[str, Any]:
    """One entry of a chat answer's `tool_calls`, as vLLM 0.32 sends it."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments or {})},
    }


def stream_chunks(
    pieces: list[str],
    *,
    model: str = "smollm2",
    reasoning: list[str] = (),  # type: ignore[assignment]
    reasoning_field: str = "reasoning",
    finish: bool = True,
    usage: tuple[int, int] | None = (10, 3),
    finish_reason: str = "stop",
) -> list[dict[str, Any]]:
    """Stream chunks (`data:` payloads) as vLLM 0.32 sends them."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1795637633,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({reasoning_field: r}) for r in reasoning]
    out += [chunk({"content": p}) for p in pieces]
    if finish:
        out.append(chunk({"content": ""}, finish_reason))
        if usage:
            out.append(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "created": 1795637633,
                    "model": model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": usage[0],
                        "completion_tokens": usage[1],
                        "total_tokens": sum(usage),
                    },
                }
            )
    return out


class FakeVLLM:
    """Answers vLLM routes from memory and records the requests it got."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.models: list[str] = ["smollm2"]
        self.adapters: dict[str, str] = {}
        """LoRA adapters (name to path), served with the first model as parent."""
        self.runtime_lora = False
        """Whether the adapter load/unload routes exist (`lora_routes`)."""
        self.max_model_len = 2048
        self.version = "0.32.0"
        self.chat_response: dict[str, Any] | Callable[[dict], dict] = chat_completion()
        self.stream: list[dict[str, Any]] | None = None
        self.stream_done = True
        self.status: int = 200
        self.error_body: dict[str, Any] | None = None
        self.modalities: set[str] = set()  # what the model reads beyond text
        self.return_tokens = False
        """Answer chat requests that ask for `return_token_ids` / `logprobs` with
        ids and logprobs, as vLLM does (`with_tokens`)."""
        self.tokens: Callable[[dict], list[int]] = lambda body: list(
            range(len(json.dumps(body).split()))
        )

    # -- inspection helpers -------------------------------------------------------
    def bodies(self, path_suffix: str = "/chat/completions") -> list[dict[str, Any]]:
        """JSON bodies of the requests whose path ends with `path_suffix`."""
        return [
            json.loads(r.content)
            for r in self.requests
            if r.url.path.endswith(path_suffix) and r.content
        ]

    def last_body(self, path_suffix: str = "/chat/completions") -> dict[str, Any]:
        """The JSON body of the last request to `path_suffix`."""
        return self.bodies(path_suffix)[-1]

    def last_session(
        self, path_suffix: str = "/chat/completions"
    ) -> tuple[str | None, str | None]:
        """The `session_id` field and `X-Session-ID` header of the last request."""
        request = [r for r in self.requests if r.url.path.endswith(path_suffix)][-1]
        session = json.loads(request.content).get("session_id")
        return session, request.headers.get("x-session-id")

    def paths(self) -> list[str]:
        """Method and path of every request, in order."""
        return [f"{r.method} {r.url.path}" for r in self.requests]

    # -- transport -----------------------------------------------------------------
    def handler(self, request: httpx2.Request) -> httpx2.Response:
        """The MockTransport handler."""
        self.requests.append(request)
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        if self.status != 200 and not path.endswith(("/models", "/version")):
            return httpx2.Response(
                self.status,
                json=self.error_body
                or {"error": {"message": "boom", "type": "Error", "code": self.status}},
            )
        if path.endswith("/v1/models"):
            return httpx2.Response(
                200,
                json={
                    "object": "list",
                    "data": [
                        {
                            "id": m,
                            "object": "model",
                            "owned_by": "vllm",
                            "root": f"/models/{m}",
                            "parent": None,
                            "max_model_len": self.max_model_len,
                        }
                        for m in self.models
                    ]
                    + adapter_cards(self),
                },
            )
        if path == "/version":
            return httpx2.Response(200, json={"version": self.version})
        if path == "/tokenize":
            refused = self._media_refusal(body)
            if refused is not None:
                return refused
            tokens = self.tokens(body)
            return httpx2.Response(
                200,
                json={
                    "count": len(tokens),
                    "max_model_len": self.max_model_len,
                    "tokens": tokens,
                    "token_strs": None,
                },
            )
        if path == "/detokenize":
            return httpx2.Response(
                200, json={"prompt": " ".join(str(t) for t in body["tokens"])}
            )
        if path.endswith("/chat/completions"):
            if body.get("stream"):
                return self._sse(self.stream or stream_chunks(["Hel", "lo!"]))
            response = self.chat_response
            answer = response(body) if callable(response) else response
            if self.return_tokens:
                answer = with_tokens(body, answer)
            return httpx2.Response(200, json=answer)
        routed = pooling_and_completion_routes(self, path, body)
        if routed is None:
            routed = lora_routes(self, path, body)
        if routed is not None:
            return routed
        return httpx2.Response(404, json={"error": {"message": f"no route {path}"}})

    def _media_refusal(self, body: dict[str, Any]) -> httpx2.Response | None:
        """vLLM 0.32's HTTP 400 for media the model does not read (`modalities`)."""
        for message in body.get("messages") or []:
            content = message.get("content")
            for part in content if isinstance(content, list) else []:
                kind = MEDIA_PARTS.get(part.get("type"))
                if kind is None or kind in self.modalities:
                    continue
                text = (
                    f"At most 0 {kind}(s) may be provided in one prompt."
                    if self.modalities
                    else f"{body.get('model')} is not a multimodal model"
                )
                error = {"message": text, "type": "BadRequestError", "code": 400}
                return httpx2.Response(400, json={"error": error})
        return None

    def _sse(self, chunks: list[dict[str, Any]]) -> httpx2.Response:
        lines = [f"data: {json.dumps(c)}\n\n" for c in chunks]
        if self.stream_done:
            lines.append("data: [DONE]\n\n")
        return httpx2.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content="".join(lines).encode(),
        )

    def sync_client(self) -> httpx2.Client:
        """An httpx client whose transport is this fake."""
        return httpx2.Client(transport=httpx2.MockTransport(self.handler))

    def async_client(self) -> httpx2.AsyncClient:
        """An async httpx client whose transport is this fake."""
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handler))

    def kwargs(self) -> dict[str, Any]:
        """Constructor kwargs that point a vLLM class at this fake."""
        return {
            "base_url": BASE_URL,
            "http_client": self.sync_client(),
            "http_async_client": self.async_client(),
            "max_retries": 0,
        }


# -- /v1/embeddings, /rerank, /v1/completions -----------------------------------------
# Set on a FakeVLLM instance to steer them (all optional):
#   embedding_dim: int (default 4); embeddings_response: dict | Callable[[dict], dict];
#   rerank_response: dict | Callable[[dict], dict] (default: word-overlap scores);
#   completion_text: str (default " Paris."); completion_stream: list[dict] | None.


def fake_embedding(text: str, dim: int = 4) -> list[float]:
    """A deterministic vector for `text` (same text, same vector)."""
    seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(text))
    return [float(len(text))] + [float((seed * (k + 3)) % 101) for k in range(dim - 1)]


def embeddings_body(body: dict[str, Any], dim: int = 4) -> dict[str, Any]:
    """A `/v1/embeddings` answer as vLLM 0.32 sends it (float or base64 encoding)."""
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    size = int(body.get("dimensions") or dim)

    def encode(vector: list[float]) -> list[float] | str:
        if body.get("encoding_format") != "base64":
            return vector
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()

    return {
        "id": "embd-test",
        "object": "list",
        "created": 1795637633,
        "model": body.get("model"),
        "data": [
            {
                "index": i,
                "object": "embedding",
                "embedding": encode(fake_embedding(t, size)),
            }
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
    }


def rerank_body(body: dict[str, Any]) -> dict[str, Any]:
    """A `/rerank` answer: score = share of the query's words found in the text."""
    words = set(body["query"].lower().split())
    results = []
    for i, text in enumerate(body["documents"]):
        found = words & set(text.lower().split())
        score = len(found) / len(words) if words else 0.0
        results.append(
            {
                "index": i,
                "document": {"text": text, "multi_modal": None},
                "relevance_score": score,
            }
        )
    results.sort(key=lambda r: float(r["relevance_score"]), reverse=True)  # type: ignore[arg-type]
    if body.get("top_n"):
        results = results[: body["top_n"]]
    return {
        "id": "score-test",
        "model": body.get("model"),
        "usage": {"prompt_tokens": 10, "total_tokens": 10},
        "results": results,
    }


def completion_body(body: dict[str, Any], text: str = " Paris.") -> dict[str, Any]:
    """A `/v1/completions` answer: `n` choices per prompt, as vLLM 0.32 sends it."""
    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
    n = int(body.get("n") or 1)
    choices = [
        {
            "index": i * n + j,
            "text": (prompt if body.get("echo") else "") + text,
            "logprobs": None,
            "finish_reason": "length",
            "stop_reason": None,
            "prompt_logprobs": None,
        }
        for i, prompt in enumerate(prompts)
        for j in range(n)
    ]
    return {
        "id": "cmpl-test",
        "object": "text_completion",
        "created": 1795637633,
        "model": body.get("model"),
        "choices": choices,
        "usage": {
            "prompt_tokens": 5 * len(prompts),
            "completion_tokens": 3 * len(choices),
            "total_tokens": 8 * len(choices),
        },
        "system_fingerprint": "vllm-0.32.0",
    }


def completion_chunks(
    pieces: list[str], *, model: str = "smollm2", finish: bool = True
) -> list[dict[str, Any]]:
    """`/v1/completions` stream chunks as vLLM 0.32 sends them."""

    def chunk(text: str, finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": "cmpl-test",
            "object": "text_completion",
            "created": 1795637633,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "text": text,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                    "stop_reason": None,
                }
            ],
        }

    out = [chunk(p) for p in pieces]
    if finish:
        out.append(chunk("", "length"))
    return out


def pooling_and_completion_routes(
    fake: FakeVLLM, path: str, body: dict[str, Any]
) -> httpx2.Response | None:
    """Answer `/v1/embeddings`, `/rerank`, `/v1/rerank` and `/v1/completions`."""

    def answer(attr: str, default: Callable[[dict], dict]) -> httpx2.Response:
        custom = getattr(fake, attr, None)
        if custom is None:
            return httpx2.Response(200, json=default(body))
        return httpx2.Response(200, json=custom(body) if callable(custom) else custom)

    if path.endswith("/v1/embeddings"):
        dim = getattr(fake, "embedding_dim", 4)
        return answer("embeddings_response", lambda b: embeddings_body(b, dim))
    if path in ("/rerank", "/v1/rerank"):
        return answer("rerank_response", rerank_body)
    if path.endswith("/v1/completions"):
        text = getattr(fake, "completion_text", " Paris.")
        if body.get("stream"):
            chunks = getattr(fake, "completion_stream", None)
            return fake._sse(chunks or completion_chunks([text[:3], text[3:]]))
        return answer("completion_response", lambda b: completion_body(b, text))
    return None


# -- LoRA adapters ---------------------------------------------------------------------
# FakeVLLM.adapters (name to path) are served with the first model as parent; with
# FakeVLLM.runtime_lora the load and unload routes exist (as with
# VLLM_ALLOW_RUNTIME_LORA_UPDATING=1). A path starting with "/missing" cannot be read.


def adapter_cards(fake: FakeVLLM) -> list[dict[str, Any]]:
    """`/v1/models` cards of the fake's LoRA adapters (as vLLM 0.32 lists them)."""
    return [
        {
            "id": name,
            "object": "model",
            "owned_by": "vllm",
            "root": path,
            "parent": fake.models[0],
            "max_model_len": None,
        }
        for name, path in fake.adapters.items()
    ]


def _error(status: int, message: str, kind: str) -> httpx2.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return httpx2.Response(status, json=body)


def lora_routes(
    fake: FakeVLLM, path: str, body: dict[str, Any]
) -> httpx2.Response | None:
    """Answer `/v1/load_lora_adapter` and `/v1/unload_lora_adapter` like vLLM 0.32."""
    if path not in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
        return None
    if not fake.runtime_lora:
        return httpx2.Response(404, json={"detail": "Not Found"})
    adapters = fake.adapters
    name = body["lora_name"]
    if path == "/v1/unload_lora_adapter":
        if name not in adapters:
            msg = f"The lora adapter '{name}' cannot be found."
            return _error(404, msg, "NotFoundError")
        del adapters[name]
        return httpx2.Response(200, text=f"Success: LoRA adapter '{name}' removed.")
    if name in adapters:
        msg = f"The lora adapter '{name}' has already been loaded."
        return _error(400, msg, "InvalidUserInput")
    if body["lora_path"].startswith("/missing"):
        msg = f"Loading lora {name} failed: No adapter found for {body['lora_path']}"
        return _error(404, msg, "NotFoundError")
    adapters[name] = body["lora_path"]
    return httpx2.Response(200, text=f"Success: LoRA adapter '{name}' added.")


# -- raw answers: malformed or truncated bodies (test_malformed_responses) --
class RawFakeVLLM(FakeVLLM):
    """A FakeVLLM whose answers can be replaced by raw bytes, per route.

    `raw[route] = (status, content_type, body_bytes)` answers requests whose path
    ends with `route` verbatim (a body that is not JSON, truncated JSON, SSE lines
    that are not JSON, ...); other routes behave as in FakeVLLM.
    """

    def __init__(self) -> None:
        super().__init__()
        self.raw: dict[str, tuple[int, str, bytes]] = {}

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        """Answer from `raw` when a route matches, else as FakeVLLM."""
        for route, (status, content_type, content) in self.raw.items():
            if request.url.path.endswith(route):
                self.requests.append(request)
                return httpx2.Response(
                    status, headers={"content-type": content_type}, content=content
                )
        return super().handler(request)


def sse(*events: str | dict[str, Any], done: bool = True) -> bytes:
    """SSE bytes from events: dicts are JSON-encoded, strings are sent verbatim."""
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()
