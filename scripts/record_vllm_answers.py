"""Record answers of newer vLLM releases (0.33, 0.34) from their own Python code.

Those releases have GPU builds only, so no server of theirs runs on the rig. Their
pure-Python pieces do: the protocol classes, the chat stream's per-choice step
(`ChatStreamProcessor`, which resolves the finish reason), the Responses API's
event builder (`SimpleStreamingEventProcessor`), the error-response builders.
This script drives them the way the serving layer does (the lines it mirrors are
named below) with the rig's vLLM 0.32 environment (which has their dependencies)
and the unpacked release first on `sys.path`:

    pip download --no-deps vllm==0.33.0 -d /tmp/w && unzip -q /tmp/w/vllm-0.33.0-*.whl 'vllm/*.py' -d /tmp/v33
    ~/.cache/langchain-vllm/vllm-venv/bin/python scripts/record_vllm_answers.py /tmp/v33

(the same with 0.34.0). Writes tests/unit_tests/data/vllm_<major>_<minor>.json:
{"vllm_version", "cases": {name: {"stream": [chunks or events], "answer": body,
"status": HTTP status, ...}}}. Nothing in it is typed by hand: engine outputs
(the tokens, a weight-version span, a per-token embedding matrix) go in, vLLM's
code builds what the server would send.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "unit_tests" / "data"
MODEL = "smollm2"
TEXT = ["I", "'m", " glad", " to"]
"""The text answer of the rig's recorded 0.32 streams (one piece a token)."""


def _j(model: Any, **dump: Any) -> Any:
    return json.loads(model.model_dump_json(**dump))


# -- Chat Completions streams -------------------------------------------------------
def chat_stream(
    pieces: list[tuple[str, list[int]]],
    engine_finish: str,
    *,
    parser: Any = None,
    request: Any = None,
    weight_versions: Any = None,
    prompt_tokens: int = 3,
) -> list[dict[str, Any]]:
    """The chunks `chat_completion_stream_generator` sends for one choice.

    Mirrors `chat_completion_stream_generator_raw` (first chunk with the role, one
    `ChatStreamProcessor.step` per engine output, the finish chunk with
    `stop_reason`, `weight_versions` and `kv_transfer_params`, then the usage
    chunk of `stream_options.include_usage`) and its serialization
    (`model_dump_json(exclude_unset=True, exclude_none=not chunk.choices)`).
    """
    from vllm.entrypoints.generate.base.protocol import (  # type: ignore[import-not-found]
        DeltaMessage,
    )
    from vllm.entrypoints.openai.chat_completion.protocol import (  # type: ignore[import-not-found]
        ChatCompletionRequest,
        ChatCompletionResponseStreamChoice,
        ChatCompletionStreamResponse,
    )
    from vllm.entrypoints.openai.chat_completion.stream_processor import (  # type: ignore[import-not-found]
        ChatStreamProcessor,
    )
    from vllm.entrypoints.serve.engine.protocol import (  # type: ignore[import-not-found]
        UsageInfo,
    )

    if request is None:
        request = ChatCompletionRequest(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
            return_weight_versions=weight_versions is not None,
        )
    processor = ChatStreamProcessor(
        request,
        parser,
        enable_auto_tools=parser is not None,  # the server's --enable-auto-tool-choice
        parser_cls=type(parser) if parser is not None else None,
    )
    out: list[dict[str, Any]] = []

    def send(choice: Any) -> None:
        chunk = ChatCompletionStreamResponse(
            id="chatcmpl-rec",
            object="chat.completion.chunk",
            created=0,
            choices=[choice],
            model=MODEL,
            # `res.kv_transfer_params if finish_reason_sent[i] else None`: set
            # explicitly, so `exclude_unset` keeps it (null without a KV connector)
            kv_transfer_params=None,
        )
        out.append(_j(chunk, exclude_unset=True, exclude_none=False))

    first = ChatCompletionResponseStreamChoice(
        index=0,
        delta=DeltaMessage(role="assistant", content=""),
        logprobs=None,
        finish_reason=None,
    )
    chunk = ChatCompletionStreamResponse(
        id="chatcmpl-rec",
        object="chat.completion.chunk",
        created=0,
        choices=[first],
        model=MODEL,
        prompt_token_ids=None,
        prompt_text=None,
    )
    out.append(_j(chunk, exclude_unset=True, exclude_none=False))
    if not pieces:  # finished without output: one final engine output, empty
        pieces = [("", [])]
    for n, (text, ids) in enumerate(pieces):
        last = n == len(pieces) - 1
        engine = engine_finish if last else None
        if not text and not ids and not processor.num_output_tokens and engine is None:
            continue  # "Chunked prefill case, don't return empty chunks"
        delta, finish = processor.step(text, ids, engine, [1, 2, 3])
        if delta is None:
            if engine is None:
                continue
            delta = DeltaMessage()
        if engine is None:
            choice = ChatCompletionResponseStreamChoice(
                index=0, delta=delta, logprobs=None, finish_reason=None, token_ids=None
            )
        else:
            choice = ChatCompletionResponseStreamChoice(
                index=0,
                delta=delta,
                logprobs=None,
                finish_reason=finish,
                stop_reason=None,
                token_ids=None,
                weight_versions=weight_versions
                if request.return_weight_versions
                else None,
            )
        send(choice)
    completion = processor.num_output_tokens
    usage = ChatCompletionStreamResponse(
        id="chatcmpl-rec",
        object="chat.completion.chunk",
        created=0,
        choices=[],
        model=MODEL,
        usage=UsageInfo(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            total_tokens=prompt_tokens + completion,
        ),
        system_fingerprint=None,
        metrics=None,
    )
    out.append(_j(usage, exclude_unset=True, exclude_none=True))
    return out


def text_pieces() -> list[tuple[str, list[int]]]:
    return [(piece, [100 + n]) for n, piece in enumerate(TEXT)]


def tool_cut_cases() -> dict[str, Any]:
    """A hermes tool call cut by `max_tokens`: stream and whole answer.

    The whole answer's finish reason goes through `resolve_finish_reason`, as in
    `chat_completion_full_generator` (0.32 said "tool_calls" here).
    """
    sys.path.insert(0, str(ROOT / "scripts"))
    import record_tool_streams as rts  # type: ignore[import-not-found]
    from vllm.entrypoints.generate.base.protocol import (  # type: ignore[import-not-found]
        ToolCall,
    )
    from vllm.entrypoints.openai.chat_completion.protocol import (  # type: ignore[import-not-found]
        ChatCompletionResponse,
        ChatCompletionResponseChoice,
        ChatMessage,
    )
    from vllm.entrypoints.serve.engine.protocol import (  # type: ignore[import-not-found]
        UsageInfo,
    )
    from vllm.entrypoints.serve.utils.tool_calls_utils import (  # type: ignore[import-not-found]
        resolve_finish_reason,
    )
    from vllm.parser import ParserManager  # type: ignore[import-not-found]

    special, outputs = rts.PARSERS["hermes"]
    tokenizer = rts._tokenizer(special)
    parser_cls = ParserManager.get_parser(
        tool_parser_name="hermes", enable_auto_tools=True, tokenizer=tokenizer
    )
    ids = rts._cut(
        tokenizer, tokenizer.encode(outputs["two"], add_special_tokens=False)
    )
    parser = parser_cls(tokenizer, rts.TOOLS)
    request = rts._request(parser)
    pieces = rts._pieces(tokenizer, ids, bool(request.skip_special_tokens))
    stream = chat_stream(
        [(p, [t]) for p, t in zip(pieces, ids, strict=True)],
        "length",
        parser=parser,
        request=request,
    )
    whole = parser_cls(tokenizer, rts.TOOLS)
    _, content, calls = whole.parse(
        "".join(pieces),
        rts._request(whole),
        enable_auto_tools=True,
        model_output_token_ids=ids,
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
        model=MODEL,
        choices=[
            ChatCompletionResponseChoice(
                index=0,
                message=message,
                logprobs=None,
                finish_reason=resolve_finish_reason("length", request, bool(calls)),
                stop_reason=None,
                token_ids=None,
                weight_versions=None,
            )
        ],
        usage=UsageInfo(
            prompt_tokens=3, completion_tokens=len(ids), total_tokens=3 + len(ids)
        ),
        kv_transfer_params=None,
    )
    return {
        "tool_cut": {"stream": stream, "answer": json.loads(_dump_answer(answer))},
        "tool_cut_tools": rts.TOOLS,
    }


def _dump_answer(answer: Any) -> str:
    """A whole answer as the server sends it (`create_json_response`, or the
    chat router's `JSONResponse(content=result.model_dump())`)."""
    return json.dumps(answer.model_dump())


def whole_answer(*, annotations: bool, weight_versions: Any = None) -> Any:
    """A whole chat answer as `chat_completion_full_generator` builds it."""
    from vllm.entrypoints.openai.chat_completion.protocol import (  # type: ignore[import-not-found]
        ChatCompletionResponse,
        ChatCompletionResponseChoice,
        ChatMessage,
    )
    from vllm.entrypoints.serve.engine.protocol import (  # type: ignore[import-not-found]
        UsageInfo,
    )

    extra: dict[str, Any] = {}
    if annotations:  # what a citation-aware `_finalize_response_message` adds
        extra["annotations"] = [
            {
                "type": "url_citation",
                "url_citation": {
                    "start_index": 0,
                    "end_index": 3,
                    "title": "vLLM",
                    "url": "https://docs.vllm.ai/",
                },
            }
        ]
    try:
        message = ChatMessage(role="assistant", content="".join(TEXT), **extra)
    except ValueError:  # before 0.34: one annotation, not a list
        extra["annotations"] = extra["annotations"][0]
        message = ChatMessage(role="assistant", content="".join(TEXT), **extra)
    answer = ChatCompletionResponse(
        id="chatcmpl-rec",
        created=0,
        model=MODEL,
        choices=[
            ChatCompletionResponseChoice(
                index=0,
                message=message,
                logprobs=None,
                finish_reason="length",
                stop_reason=None,
                token_ids=None,
                weight_versions=weight_versions,
            )
        ],
        usage=UsageInfo(prompt_tokens=3, completion_tokens=4, total_tokens=7),
        prompt_logprobs=None,
        prompt_token_ids=None,
        kv_transfer_params=None,
    )
    return json.loads(_dump_answer(answer))


def completion_answer(weight_versions: Any) -> Any:
    """A whole `/v1/completions` answer with `return_weight_versions`, as
    `request_output_to_completion_response` builds it."""
    from vllm.entrypoints.openai.completion.protocol import (  # type: ignore[import-not-found]
        CompletionResponse,
        CompletionResponseChoice,
    )
    from vllm.entrypoints.serve.engine.protocol import (  # type: ignore[import-not-found]
        UsageInfo,
    )

    choice = CompletionResponseChoice(
        index=0,
        text="".join(TEXT),
        logprobs=None,
        finish_reason="length",
        stop_reason=None,
        prompt_logprobs=None,
        weight_versions=weight_versions,
    )
    answer = CompletionResponse(
        id="cmpl-rec",
        created=0,
        model=MODEL,
        choices=[choice],
        usage=UsageInfo(prompt_tokens=3, completion_tokens=4, total_tokens=7),
        kv_transfer_params=None,
    )
    return json.loads(_dump_answer(answer))


# -- Responses API streams ---------------------------------------------------------
def responses_stream(kind: str) -> list[dict[str, Any]]:
    """A Responses stream cut by `max_output_tokens`.

    Mirrors `responses_stream_generator` (created, in_progress, the events of
    `_process_simple_streaming_events`, which closes the last item with
    `response_item_status(finish_reason)`, then `response.incomplete` with the
    final response of `responses_full_generator`) and the router's
    `event.model_dump_json(indent=None, by_alias=True)`.
    """
    from vllm.entrypoints.generate.base.protocol import (  # type: ignore[import-not-found]
        DeltaFunctionCall,
        DeltaMessage,
        DeltaToolCall,
    )
    from vllm.entrypoints.openai.responses.protocol import (  # type: ignore[import-not-found]
        InputTokensDetails,
        OutputTokensDetails,
        ResponseCompletedEvent,
        ResponseCreatedEvent,
        ResponseIncompleteEvent,
        ResponseInProgressEvent,
        ResponsesRequest,
        ResponsesResponse,
        ResponseUsage,
    )
    from vllm.entrypoints.openai.responses.streaming_events import (  # type: ignore[import-not-found]
        SimpleStreamingEventProcessor,
        _StateType,
        split_delta,
    )
    from vllm.entrypoints.openai.responses.utils import (  # type: ignore[import-not-found]
        response_item_status,
    )

    tools: list[dict[str, Any]] = []
    if kind == "tool_call":
        tools = [
            {
                "type": "function",
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            }
        ]
        deltas = [
            DeltaMessage(
                tool_calls=[
                    DeltaToolCall(
                        index=0,
                        id="call_rec",
                        type="function",
                        function=DeltaFunctionCall(name="get_weather", arguments=""),
                    )
                ]
            ),
            *(
                DeltaMessage(
                    tool_calls=[
                        DeltaToolCall(index=0, function=DeltaFunctionCall(arguments=a))
                    ]
                )
                for a in ['{"', "city", '":', ' "Par']
            ),
        ]
    else:
        deltas = [DeltaMessage(content=piece) for piece in TEXT]
    request = ResponsesRequest(
        model=MODEL,
        input="Hi",
        max_output_tokens=len(deltas),
        temperature=0.0,
        tools=tools,
        request_id="resp_rec",
    )
    sampling = request.to_sampling_params(2048, {})
    sequence = 0
    events: list[dict[str, Any]] = []

    def emit(event: Any) -> None:
        nonlocal sequence
        event.sequence_number = sequence
        sequence += 1
        events.append(_j(event, indent=None, by_alias=True))

    initial = ResponsesResponse.from_request(
        request,
        sampling,
        model_name=MODEL,
        created_time=0,
        output=[],
        status="in_progress",
        usage=None,
    ).model_dump(mode="json", by_alias=True)
    emit(
        ResponseCreatedEvent(
            type="response.created", sequence_number=-1, response=initial
        )
    )
    emit(
        ResponseInProgressEvent(
            type="response.in_progress", sequence_number=-1, response=initial
        )
    )
    processor = SimpleStreamingEventProcessor(tools=request.tools)
    output = SimpleNamespace(token_ids=[], logprobs=None)
    finish_reason = None
    for n, delta in enumerate(deltas):
        finish_reason = "length" if n == len(deltas) - 1 else None
        for dm in split_delta(delta):
            target, tool_call = processor.resolve_target_state(dm)
            if target == _StateType.NONE:
                continue
            if processor.needs_transition(target, tool_call):
                for event in processor.close_current():
                    emit(event)
                for event in processor.open(target, tool_call):
                    emit(event)
            for event in processor.emit_delta(dm, output, None):
                emit(event)
    for event in processor.close_current(response_item_status(finish_reason)):
        emit(event)
    status = "incomplete" if finish_reason == "length" else "completed"
    usage = ResponseUsage(
        input_tokens=32,
        output_tokens=len(deltas),
        total_tokens=32 + len(deltas),
        input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    )
    final = ResponsesResponse.from_request(
        request,
        sampling,
        model_name=MODEL,
        created_time=0,
        output=processor.output_items,
        status=status,
        usage=usage,
    )
    if final.status == "incomplete":
        emit(
            ResponseIncompleteEvent(
                type="response.incomplete", sequence_number=-1, response=final
            )
        )
    else:
        emit(
            ResponseCompletedEvent(
                type="response.completed", sequence_number=-1, response=final
            )
        )
    return events


# -- Embeddings ------------------------------------------------------------------------
def token_embeddings() -> dict[str, Any]:
    """`/v1/embeddings` of a per-token (multi-vector) pooling model.

    The answer as `ServingTokenEmbedding._build_response` builds it (the matrix is
    what the pooler gives: one 4-dimensional vector per token, 3 tokens), and the
    400 of a request with `encoding_format="base64"` (TokenEmbeddingRequest takes
    "float" only) through the server's `validation_exception_handler`.
    """
    from fastapi.exceptions import RequestValidationError  # type: ignore[import-not-found]
    from pydantic import ValidationError
    from vllm.entrypoints.pooling.token_embed.protocol import (  # type: ignore[import-not-found]
        TokenEmbeddingRequest,
        TokenEmbeddingResponse,
        TokenEmbeddingResponseData,
    )
    from vllm.entrypoints.serve.engine.protocol import (  # type: ignore[import-not-found]
        UsageInfo,
    )
    from vllm.entrypoints.serve.exception_handling.handlers.validation import (  # type: ignore[import-not-found]
        validation_exception_handler,
    )

    matrices = [
        [[0.5, -0.25, 0.125, 1.0], [0.0, 0.75, -0.5, 0.25], [1.0, 0.0, 0.0, -1.0]],
        [[0.25, 0.25, -0.75, 0.5]],
    ]
    items = []
    for index, matrix in enumerate(matrices):
        item = TokenEmbeddingResponseData(index=index, embedding=[]).model_dump(
            exclude={"late_chunking"}
        )
        item["embedding"] = matrix
        items.append(item)
    answer = TokenEmbeddingResponse(
        id="embd-rec",
        created=0,
        model="colbert",
        data=[],
        usage=UsageInfo(prompt_tokens=4, total_tokens=4),
    ).model_dump()
    answer["data"] = items

    body = {"model": "colbert", "input": ["a b c", "d"], "encoding_format": "base64"}
    try:
        TokenEmbeddingRequest.model_validate(body)
    except ValidationError as e:
        errors = e.errors(include_url=False)
    else:
        raise SystemExit("TokenEmbeddingRequest took base64")
    fake_request = SimpleNamespace(
        app=SimpleNamespace(
            state=SimpleNamespace(args=SimpleNamespace(log_error_stack=False))
        ),
        state=SimpleNamespace(),
    )
    for error in errors:  # FastAPI puts request models' errors under "body"
        error["loc"] = ("body", *error["loc"])
    response = asyncio.run(
        validation_exception_handler(fake_request, RequestValidationError(errors))
    )
    return {
        "token_embeddings": {"answer": answer, "status": 200},
        "token_embeddings_base64": {
            "status": response.status_code,
            "answer": json.loads(response.body),
        },
    }


# -- Structured outputs -------------------------------------------------------------
def structured_backend_refused() -> dict[str, Any]:
    """The 400 of a schema whose backend differs from the engine's latched one.

    `StructuredOutputManager.grammar_init` raises; the engine core sends it back
    as `RequestError(code="validation_error")`, the frontend raises
    `to_exception()` and answers `create_error_response(exc)`.
    """
    from vllm.entrypoints.serve.exception_handling.error_response import (  # type: ignore[import-not-found]
        create_error_response,
    )
    from vllm.outputs import RequestError  # type: ignore[import-not-found]
    from vllm.v1.structured_output import (  # type: ignore[import-not-found]
        StructuredOutputManager,
    )

    manager = SimpleNamespace(backend_name="xgrammar")
    request = SimpleNamespace(
        structured_output_request=object(),
        sampling_params=SimpleNamespace(
            structured_outputs=SimpleNamespace(_backend="guidance")
        ),
    )
    try:
        StructuredOutputManager.grammar_init(manager, request)  # type: ignore[arg-type]
    except Exception as e:  # VLLMValidationError
        error = RequestError(code="validation_error", message=str(e)).to_exception()
    else:
        raise SystemExit("grammar_init took a second backend")
    response = create_error_response(error)
    # A stream fails before its first chunk: `chat_completion_stream_generator`
    # sends the same ErrorResponse (`model_dump_json()`) as its one data event.
    return {
        "status": response.error.code,
        "answer": response.model_dump(),
        "stream": [json.loads(response.model_dump_json())],
    }


def record() -> dict[str, Any]:
    from vllm.outputs import WeightVersionSpan  # type: ignore[import-not-found]

    spans = [
        WeightVersionSpan(version="step-41", start=0, end=2),
        WeightVersionSpan(version="step-42", start=2, end=4),
    ]
    cases: dict[str, Any] = {
        "chat_stream": {"stream": chat_stream(text_pieces(), "length")},
        "chat_stream_weight_versions": {
            "stream": chat_stream(text_pieces(), "stop", weight_versions=spans)
        },
        "chat_stream_zero_tokens": {"stream": chat_stream([], "stop")},
        "chat_answer": {"answer": whole_answer(annotations=False)},
        "chat_answer_weight_versions": {
            "answer": whole_answer(annotations=False, weight_versions=spans)
        },
        "chat_answer_annotations": {"answer": whole_answer(annotations=True)},
        "completion_weight_versions": {"answer": completion_answer(spans)},
        "responses_text_incomplete": {"stream": responses_stream("text")},
        "responses_tool_call_incomplete": {"stream": responses_stream("tool_call")},
        "structured_backend_refused": structured_backend_refused(),
    }
    cases.update(tool_cut_cases())
    cases.update(token_embeddings())
    return cases


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("source", type=Path, help="an unpacked vLLM wheel (has vllm/)")
    args.add_argument("--out", type=Path, default=OUT)
    ns = args.parse_args()
    sys.path.insert(0, str(ns.source.resolve()))
    version_file = ns.source / "vllm" / "_version.py"
    scope: dict[str, Any] = {}
    exec(version_file.read_text(), scope)
    version = str(scope["__version__"])
    import vllm  # type: ignore[import-not-found]

    if not str(vllm.__file__).startswith(str(ns.source.resolve())):
        raise SystemExit(f"imported {vllm.__file__}, not the tree in {ns.source}")
    major, minor = version.split(".")[:2]
    path = ns.out / f"vllm_{major}_{minor}.json"
    data = {
        "vllm_version": version,
        "recorded_by": Path(__file__).name,
        "cases": record(),
    }
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{path}: {sorted(data['cases'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
