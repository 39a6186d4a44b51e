"""Record a live vLLM's answers with token ids and logprobs, whole and streamed.

Starts the rig's chat server (vLLM 0.32, hermes tool parser) and sends, each as
one whole answer and as a stream: a chat answer constrained to one choice, a
forced tool call (whose markup the parser holds back while ids still flow), and
a text completion. Every request asks for `return_token_ids` and logprobs.

    .venv/bin/python scripts/record_token_answers.py

Then, on the rig's agent server (the `weather` adapter) started with
`--enable-scale-out`, two turns of `ChatVLLMTokenTurns` (a forced tool call, then
the answer after the tool's result): every request it sends (render, generate,
derender) and the server's answer. And the chat server's 403 for the render route
without the flag.

Writes tests/unit_tests/data/token_answers.json: {"vllm_version", "cases":
{name: {"request", "answer", "stream": [chunks]}}, "token_turns": {"messages",
"exchanges": [{"path", "body", "answer"}], "refused": {"status", "answer"}}}.
Nothing in it is typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from langchain_core.messages import HumanMessage, ToolMessage, messages_to_dict

# Run as a file, this script has scripts/ on sys.path; rig.py is one folder up.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from langchain_vllm import ChatVLLMTokenTurns  # noqa: E402
from rig import rig_server  # noqa: E402

OUT = ROOT / "tests/unit_tests/data/token_answers.json"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    },
}
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat_choice": (
        "/chat/completions",
        {
            "messages": [{"role": "user", "content": "Is the sky blue?"}],
            "structured_outputs": {"choice": ["Yes, the sky is blue.", "No."]},
            "temperature": 0,
            "max_tokens": 20,
            "logprobs": True,
            "return_token_ids": True,
        },
    ),
    "chat_tool_call": (
        "/chat/completions",
        {
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "temperature": 0,
            "max_tokens": 40,
            "logprobs": True,
            "return_token_ids": True,
        },
    ),
    "completion": (
        "/completions",
        {
            "prompt": "The capital of France is",
            "temperature": 0,
            "max_tokens": 8,
            "logprobs": 0,
            "return_token_ids": True,
        },
    ),
}


def stream(client: httpx.Client, path: str, body: dict[str, Any]) -> list[Any]:
    """The `data:` events of one streamed request, decoded."""
    events: list[Any] = []
    request = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", path, json=request) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[len("data: ") :]))
    return events


def token_turns() -> dict[str, Any]:
    """Two token turns on the agent server, every exchange recorded."""
    exchanges: list[dict[str, Any]] = []
    messages: list[Any] = [HumanMessage("What is the weather in Paris?")]
    with rig_server("agent", args=("--enable-scale-out",)) as server:
        model = ChatVLLMTokenTurns(
            base_url=server.base_url, model="weather", temperature=0, max_tokens=60
        )
        link = model._link
        post = link._post

        def recorded(url: str, body: dict[str, Any]) -> Any:
            answer = post(url, body)
            path = urlsplit(url).path
            exchanges.append({"path": path, "body": body, "answer": answer})
            return answer

        link._post = recorded  # type: ignore[method-assign]
        bound = model.bind_tools([WEATHER_TOOL], tool_choice="any")
        first = bound.invoke(messages)
        call = first.tool_calls[0]
        messages += [first, ToolMessage("Sunny, 21 C", tool_call_id=call["id"])]
        bound.invoke(messages)
    return {"messages": messages_to_dict(messages), "exchanges": exchanges}


def main() -> None:
    turns = token_turns()
    server = rig_server("chat")
    with server, httpx.Client(base_url=server.base_url, timeout=120) as client:
        version = client.get(server.base_url.removesuffix("/v1") + "/version")
        cases: dict[str, Any] = {}
        for name, (path, body) in CASES.items():
            body = {**body, "model": server.served_model_name}
            answer = client.post(path, json=body)
            answer.raise_for_status()
            cases[name] = {
                "request": body,
                "answer": answer.json(),
                "stream": stream(client, path, body),
            }
        render = CASES["chat_choice"][1]
        refused = client.post("/chat/completions/render", json=render)
        turns["refused"] = {"status": refused.status_code, "answer": refused.json()}
    record = {
        "vllm_version": version.json()["version"],
        "cases": cases,
        "token_turns": turns,
    }
    OUT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
