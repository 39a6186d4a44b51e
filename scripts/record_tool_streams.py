"""Record vLLM's own tool parsers as stream and whole-answer fixtures.

Parsers: hermes, llama3_json, pythonic, qwen3_xml, granite, jamba, xlam, mistral,
and openai (gpt-oss: harmony token ids through vLLM's HarmonyParser).

Run with the rig's vLLM environment (it imports vLLM, not this package):

    ~/.cache/langchain-vllm/vllm-venv/bin/python scripts/record_tool_streams.py

For each parser below and each model output text, the output is tokenized with
the rig's SmolLM2 tokenizer (a copy with the parser's marker tokens added as
special tokens) and fed token by token through the serving layer's `Parser`
(`ParserManager.get_parser(...)`, `parse_delta`), which calls the tool parser's
`extract_tool_calls_streaming` and, at the end, appends arguments the parser
parsed but did not stream, as vLLM's chat server does. Each delta is wrapped the
way `chat_completion_stream_generator` wraps it (`ChatCompletionStreamResponse`,
`model_dump_json(exclude_unset=True)`), including the `finish_reason` rule
("tool_calls" when a call was streamed and the model stopped). The same text
goes through `Parser.parse` (which calls `extract_tool_calls`) for the
non-streamed answer, built as `chat_completion_full_generator` builds it.

A "cut" case stops the token sequence in the middle of the last call's
arguments with finish_reason "length" (as `max_tokens` does).

Writes tests/unit_tests/data/tool_streams/<parser>.json: {"vllm_version",
"parser", "cases": [{"name", "finish_reason", "output", "stream": [chunks],
"answer": chat completion}]}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "unit_tests" / "data" / "tool_streams"
MODEL = Path.home() / ".cache" / "langchain-vllm" / "models" / "smollm2-135m-instruct"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The time in a time zone.",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"type": "string"}},
                "required": ["zone"],
            },
        },
    },
]

W1 = {"city": "Paris", "unit": "celsius"}
W2 = {"zone": "Europe/Berlin"}


def _j(value: Any) -> str:
    return json.dumps(value)


# parser name -> (special tokens to add, {case name: model output text})
PARSERS: dict[str, tuple[list[str], dict[str, str]]] = {
    "hermes": (
        ["<tool_call>", "</tool_call>"],
        {
            "one": f'<tool_call>\n{{"name": "get_weather", "arguments": {_j(W1)}}}\n'
            "</tool_call>",
            "two": f'<tool_call>\n{{"name": "get_weather", "arguments": {_j(W1)}}}\n'
            "</tool_call>\n"
            f'<tool_call>\n{{"name": "get_time", "arguments": {_j(W2)}}}\n'
            "</tool_call>",
        },
    ),
    "llama3_json": (
        ["<|python_tag|>"],
        {
            "one": f'{{"name": "get_weather", "parameters": {_j(W1)}}}',
            "two": f'{{"name": "get_weather", "parameters": {_j(W1)}}}; '
            f'{{"name": "get_time", "parameters": {_j(W2)}}}',
        },
    ),
    "pythonic": (
        [],
        {
            "one": '[get_weather(city="Paris", unit="celsius")]',
            "two": '[get_weather(city="Paris", unit="celsius"), '
            'get_time(zone="Europe/Berlin")]',
        },
    ),
    "qwen3_xml": (
        ["<tool_call>", "</tool_call>"],
        {
            "one": "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n"
            "</parameter>\n<parameter=unit>\ncelsius\n</parameter>\n</function>\n"
            "</tool_call>",
            "two": "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n"
            "</parameter>\n<parameter=unit>\ncelsius\n</parameter>\n</function>\n"
            "</tool_call>\n<tool_call>\n<function=get_time>\n<parameter=zone>\n"
            "Europe/Berlin\n</parameter>\n</function>\n</tool_call>",
        },
    ),
    "granite": (
        ["<|tool_call|>"],
        {
            "one": f'<|tool_call|>[{{"name": "get_weather", "arguments": {_j(W1)}}}]',
            "two": f'<|tool_call|>[{{"name": "get_weather", "arguments": {_j(W1)}}}, '
            f'{{"name": "get_time", "arguments": {_j(W2)}}}]',
        },
    ),
    "jamba": (
        ["<tool_calls>", "</tool_calls>"],
        {
            "one": f'<tool_calls>[{{"name": "get_weather", "arguments": {_j(W1)}}}]'
            "</tool_calls>",
            "two": f'<tool_calls>[{{"name": "get_weather", "arguments": {_j(W1)}}}, '
            f'{{"name": "get_time", "arguments": {_j(W2)}}}]</tool_calls>',
        },
    ),
    "xlam": (
        [],
        {
            "one": f'[{{"name": "get_weather", "arguments": {_j(W1)}}}]',
            "two": f'[{{"name": "get_weather", "arguments": {_j(W1)}}}, '
            f'{{"name": "get_time", "arguments": {_j(W2)}}}]',
        },
    ),
    # Not recorded by default: in vLLM 0.32 its streaming method emits no tool
    # call at all (the stream carries neither text nor calls); pass the name to
    # record it anyway.
    "phi4_mini_json": (
        [],
        {
            "one": f'functools[{{"name": "get_weather", "arguments": {_j(W1)}}}]',
            "two": f'functools[{{"name": "get_weather", "arguments": {_j(W1)}}}, '
            f'{{"name": "get_time", "arguments": {_j(W2)}}}]',
        },
    ),
    "mistral": (
        ["[TOOL_CALLS]", "[ARGS]"],
        {
            "one": f"[TOOL_CALLS]get_weather[ARGS]{_j(W1)}",
            "two": f"[TOOL_CALLS]get_weather[ARGS]{_j(W1)}"
            f"[TOOL_CALLS]get_time[ARGS]{_j(W2)}",
        },
    ),
}

_HARMONY_CALL = (
    "<|start|>assistant<|channel|>commentary to=functions.{name} "
    "<|constrain|>json<|message|>{args}<|call|>"
)
HARMONY = {
    # gpt-oss (`--tool-call-parser openai`): vLLM's HarmonyParser works on the
    # token ids of the harmony encoding (o200k), not on a model tokenizer's
    "one": "<|channel|>analysis<|message|>Weather first.<|end|>"
    + _HARMONY_CALL.format(name="get_weather", args=_j(W1)),
    "two": "<|channel|>analysis<|message|>Weather and time.<|end|>"
    + _HARMONY_CALL.format(name="get_weather", args=_j(W1))
    + _HARMONY_CALL.format(name="get_time", args=_j(W2)),
}


class HarmonyTokenizer:
    """The harmony encoding behind the tokenizer interface the recorder uses."""

    def __init__(self) -> None:
        from openai_harmony import (  # type: ignore[import-not-found]
            HarmonyEncodingName,
            load_harmony_encoding,
        )

        self.encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self.encoding.encode(text, allowed_special="all"))

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return str(self.encoding.decode(ids))

    def get_vocab(self) -> dict[str, int]:
        return {}


CUT_MARK = "Europe/Ber"
"""A "cut" case ends the "two" output at the token that completes this text in the
last call's arguments (the tokens after it never come: finish_reason "length")."""


def _tokenizer(special: list[str]) -> Any:
    from transformers import AutoTokenizer  # type: ignore[import-not-found]

    tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
    if special:
        tokenizer.add_special_tokens({"additional_special_tokens": special})
    return tokenizer


def _request(parser: Any) -> Any:
    from vllm.entrypoints.openai.chat_completion.protocol import (  # type: ignore[import-not-found]
        ChatCompletionRequest,
    )

    request = ChatCompletionRequest(
        model="smollm2",
        messages=[{"role": "user", "content": "Weather in Paris, time in Berlin?"}],
        tools=TOOLS,
        tool_choice="auto",
        stream=True,
    )
    return parser.adjust_request(request)


def _pieces(tokenizer: Any, ids: list[int], skip_special: bool) -> list[str]:
    """Delta text per token, as an incremental detokenizer gives it."""
    pieces, previous = [], ""
    for n in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:n], skip_special_tokens=skip_special)
        if text.endswith("\ufffd"):  # an unfinished multi-byte character
            pieces.append("")
            continue
        pieces.append(text[len(previous) :])
        previous = text
    return pieces


def record_case(
    parser_name: str,
    parser_cls: Any,
    tokenizer: Any,
    output: str,
    *,
    cut: bool,
) -> dict[str, Any]:
    from vllm.entrypoints.generate.base.protocol import (  # type: ignore[import-not-found]
        DeltaMessage,
        ToolCall,
    )
    from vllm.entrypoints.openai.chat_completion.protocol import (  # type: ignore[import-not-found]
        ChatCompletionResponse,
        ChatCompletionResponseChoice,
        ChatCompletionResponseStreamChoice,
        ChatCompletionStreamResponse,
        ChatMessage,
    )
    from vllm.entrypoints.serve.engine.protocol import (  # type: ignore[import-not-found]
        UsageInfo,
    )

    ids = tokenizer.encode(output, add_special_tokens=False)
    finish_reason = "stop"
    if cut:
        ids = _cut(tokenizer, ids)
        finish_reason = "length"
    parser = parser_cls(tokenizer, _request(parser_cls(tokenizer, TOOLS)).tools)
    request = _request(parser)
    skip_special = bool(request.skip_special_tokens)
    pieces = _pieces(tokenizer, ids, skip_special)
    text = "".join(pieces)

    stream: list[dict[str, Any]] = []

    def emit(delta: Any, reason: str | None = None) -> None:
        choice = ChatCompletionResponseStreamChoice(
            index=0, delta=delta, logprobs=None, finish_reason=reason
        )
        if reason is not None:
            choice.stop_reason = None
        chunk = ChatCompletionStreamResponse(
            id="chatcmpl-rec", created=0, model="smollm2", choices=[choice]
        )
        stream.append(json.loads(chunk.model_dump_json(exclude_unset=True)))

    emit(DeltaMessage(role="assistant", content=""))
    tools_streamed = False
    for n, (piece, token) in enumerate(zip(pieces, ids, strict=True)):
        last = n == len(ids) - 1
        delta = parser.parse_delta(
            delta_text=piece,
            delta_token_ids=[token],
            request=request,
            prompt_token_ids=[1, 2, 3],
            finished=last,
        )
        if delta is not None and delta.tool_calls:
            tools_streamed = True
        if not last:
            if delta is not None:
                emit(delta)
            continue
        reason = "tool_calls" if tools_streamed and finish_reason == "stop" else None
        emit(delta or DeltaMessage(), reason or finish_reason)

    whole = parser_cls(tokenizer, TOOLS)
    whole_request = _request(whole)
    _, content, calls = whole.parse(
        text, whole_request, enable_auto_tools=True, model_output_token_ids=ids
    )
    message = ChatMessage(
        role="assistant",
        content=content,
        tool_calls=[
            ToolCall(id=tc.id or f"chatcmpl-tool-{k}", function=tc)
            for k, tc in enumerate(calls or [])
        ],
    )
    answer = ChatCompletionResponse(
        id="chatcmpl-rec",
        created=0,
        model="smollm2",
        choices=[
            ChatCompletionResponseChoice(
                index=0,
                message=message,
                finish_reason="tool_calls"
                if calls and finish_reason == "stop"
                else finish_reason,
            )
        ],
        usage=UsageInfo(prompt_tokens=3, completion_tokens=len(ids), total_tokens=0),
    )
    return {
        "finish_reason": finish_reason,
        "output": text,
        "tokens": len(ids),
        "stream": stream,
        "answer": json.loads(answer.model_dump_json(exclude_unset=False)),
    }


def _cut(tokenizer: Any, ids: list[int]) -> list[int]:
    """The tokens up to and including the last one that completes CUT_MARK in
    the last call (a call cut in the middle of its arguments)."""
    full = tokenizer.decode(ids, skip_special_tokens=False)
    end = full.rindex(CUT_MARK) + len(CUT_MARK)
    for n in range(1, len(ids) + 1):
        if len(tokenizer.decode(ids[:n], skip_special_tokens=False)) >= end:
            return ids[:n]
    return ids


def record(parser_name: str) -> dict[str, Any]:
    from vllm.parser import ParserManager  # type: ignore[import-not-found]

    special: list[str]
    if parser_name == "openai":
        special, outputs = [], HARMONY
        tokenizer: Any = HarmonyTokenizer()
        parser_cls = ParserManager.get_parser(
            tool_parser_name=parser_name, enable_auto_tools=True, is_harmony=True
        )
    else:
        special, outputs = PARSERS[parser_name]
        tokenizer = _tokenizer(special)
        parser_cls = ParserManager.get_parser(
            tool_parser_name=parser_name, enable_auto_tools=True, tokenizer=tokenizer
        )
    cases = []
    for name, output in outputs.items():
        cases.append(
            {
                "name": name,
                **record_case(parser_name, parser_cls, tokenizer, output, cut=False),
            }
        )
    cases.append(
        {
            "name": "cut",
            **record_case(parser_name, parser_cls, tokenizer, outputs["two"], cut=True),
        }
    )
    import vllm  # type: ignore[import-not-found]

    return {
        "vllm_version": vllm.__version__,
        "parser": parser_name,
        "special_tokens": special,
        "tools": TOOLS,
        "cases": cases,
    }


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument(
        "parsers",
        nargs="*",
        default=[*(p for p in PARSERS if p != "phi4_mini_json"), "openai"],
    )
    args.add_argument("--out", type=Path, default=OUT)
    ns = args.parse_args()
    ns.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in ns.parsers:
        try:
            data = record(name)
        except Exception as e:  # report and go on
            print(f"{name}: FAILED {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
            continue
        path = ns.out / f"{name}.json"
        path.write_text(json.dumps(data, indent=1) + "\n")
        summary = [
            (
                c["name"],
                len(c["stream"]),
                len(c["answer"]["choices"][0]["message"].get("tool_calls") or []),
            )
            for c in data["cases"]
        ]
        print(f"{name}: {summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
