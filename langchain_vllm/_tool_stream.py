"""Streamed tool calls put in the shape LangChain's chunk merge expects.

`AIMessageChunk` addition merges `tool_call_chunks` by `index` and concatenates
their `name`, `args` and `id` strings. vLLM's tool parsers stream shapes that
break this: one call split over several ids or indices (gpt-oss), every call at
`index=0`, no id at all, the name sent again in later deltas (merged names then
read "get_weatherget_weather"), arguments sent twice at the end of the stream
(xlam in vLLM 0.32), a call cut off by `max_tokens`.

`ToolCallStream` (one per stream) rewrites each chunk's `tool_call_chunks` so
that each call has exactly one index, one id (generated once when the server
sent none) and one name, carried by the call's first chunk only. It tells calls
apart by what they carry: a delta with an id seen before belongs to that id's
call; a delta with a name starts a new call unless it repeats the open call's
name (arguments that then start a second object after a complete one do start
a new call); a new id without a name continues the open call unless that call
is complete; any other delta continues the call last seen at its server index
(or the open call). Arguments that repeat the whole object are dropped.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, InvalidToolCall
from langchain_core.messages.tool import ToolCallChunk, tool_call_chunk

CUT_KEY = "cut_tool_call"
"""`response_metadata` key of an answer whose last tool call was cut off."""


def cut_error(name: str | None) -> str:
    """The error of a tool call cut off at the token limit."""
    return (
        f"Tool call {name or '(unnamed)'!r} was cut off by max_tokens "
        "(finish_reason='length'): its arguments are incomplete. Raise "
        "`max_tokens`."
    )


def complete_json(text: str) -> bool:
    """Whether `text` is one whole JSON object (a call's finished arguments).

    Parsed only when it ends with "}", so that checking every delta of long
    arguments stays cheap.
    """
    if not text.rstrip().endswith("}"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def new_call_id() -> str:
    """An id for a call the server sent without one."""
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass
class _Call:
    id: str
    name: str = ""
    args: str = ""
    index: int | None = None  # given when its first chunk goes out


class ToolCallStream:
    """One stream's tool calls so far; normalizes each chunk's deltas."""

    def __init__(self) -> None:
        self.calls: list[_Call] = []
        self.sent = 0
        self.by_id: dict[str, _Call] = {}
        self.by_server_index: dict[int | None, _Call] = {}

    def _route(self, raw: ToolCallChunk) -> _Call:
        """The call a delta belongs to (started if it is a new one)."""
        name, call_id = raw.get("name") or "", raw.get("id") or ""
        current = self.calls[-1] if self.calls else None
        if call_id and call_id in self.by_id:
            call = self.by_id[call_id]
        elif name:
            repeat = (
                current is not None
                and (not current.name or name == current.name)
                and not (complete_json(current.args) and raw.get("args"))
            )
            call = current if repeat and current is not None else self._start(call_id)
        elif call_id:
            # a new id without a name continues the open call (one call split
            # over several ids), or starts one after a finished call
            if current is None or complete_json(current.args):
                call = self._start(call_id)
            else:
                call = current
        else:
            found = self.by_server_index.get(raw.get("index")) or current
            call = found or self._start("")
        if call_id:
            self.by_id[call_id] = call
        return call

    def _start(self, call_id: str, name: str = "") -> _Call:
        call = _Call(id=call_id or new_call_id(), name=name)
        self.calls.append(call)
        return call

    def _args(self, call: _Call, delta: str) -> tuple[_Call, str]:
        """The call `delta` extends, and the part of it that does.

        Arguments sent again in full at the end (the whole object twice) are
        dropped. Arguments after a complete object start a new call to the same
        tool (its name came alone and was taken for a repeat).
        """
        total = call.args + delta
        if delta.strip() and not complete_json(total):
            half = len(total) // 2
            if (
                len(total) % 2 == 0
                and complete_json(total[:half])
                and total[:half] == total[half:]
            ):
                delta = total[:half][len(call.args) :]
            elif complete_json(call.args):
                call = self._start("", call.name)
        call.args += delta
        return call, delta

    def normalize(self, chunks: list[ToolCallChunk]) -> list[ToolCallChunk]:
        """The deltas of one stream chunk, one index and one id per call."""
        out: list[ToolCallChunk] = []
        for raw in chunks:
            call = self._route(raw)
            call.name = call.name or raw.get("name") or ""
            call, args = self._args(call, raw.get("args") or "")
            self.by_server_index[raw.get("index")] = call
            first = call.index is None
            if first and call.name:
                call.index = self.sent
                self.sent += 1
            elif first or not args:
                # held until its name comes (its args are kept), or nothing new
                # (a repeated name or id, an empty delta)
                continue
            out.append(
                tool_call_chunk(
                    name=call.name if first else None,
                    args=call.args if first else args,
                    id=call.id if first else None,
                    index=call.index,
                )
            )
        return out

    def cut_call(self) -> _Call | None:
        """The call the stream was writing when it stopped, if any went out."""
        sent = [call for call in self.calls if call.index is not None]
        return sent[-1] if sent else None


def normalize_chunk_calls(stream: ToolCallStream, message: AIMessageChunk) -> None:
    """Rewrite a stream chunk's tool-call deltas in place."""
    if message.tool_call_chunks:
        chunks = stream.normalize(list(message.tool_call_chunks))
        rebuilt = AIMessageChunk(content="", tool_call_chunks=chunks)
        message.tool_call_chunks = rebuilt.tool_call_chunks
        message.tool_calls = rebuilt.tool_calls
        message.invalid_tool_calls = rebuilt.invalid_tool_calls


def report_stream_cut(stream: ToolCallStream, message: AIMessageChunk) -> None:
    """On the last chunk of a stream stopped by `max_tokens`: name the cut call."""
    call = stream.cut_call()
    if call is not None:
        message.response_metadata[CUT_KEY] = {
            "index": call.index,
            "id": call.id,
            "name": call.name,
            "args": call.args,
            "error": cut_error(call.name),
        }


def report_answer_cut(message: AIMessage) -> AIMessage:
    """A whole answer stopped by `max_tokens`: its last call becomes invalid.

    vLLM's parsers return such a call with its partial arguments (sometimes
    closed into valid JSON, or as `{}`); it is moved to `invalid_tool_calls`
    with an error saying it was cut, and named in `response_metadata`.
    """
    calls = list(message.tool_calls)
    invalid = list(message.invalid_tool_calls)
    if invalid:
        last = invalid.pop()
        name, args, call_id = last.get("name"), last.get("args"), last.get("id")
    elif calls:
        call = calls.pop()
        name, call_id = call["name"], call.get("id")
        args = json.dumps(call["args"])
        for raw in message.additional_kwargs.get("tool_calls") or []:
            if raw.get("id") == call_id:
                args = (raw.get("function") or {}).get("arguments") or args
    else:
        return message
    cut: InvalidToolCall = {
        "type": "invalid_tool_call",
        "name": name,
        "args": args,
        "id": call_id,
        "error": cut_error(name),
    }
    metadata: dict[str, Any] = dict(message.response_metadata)
    metadata[CUT_KEY] = {
        "index": len(calls),
        "id": call_id,
        "name": name,
        "args": args,
        "error": cut_error(name),
    }
    return message.model_copy(
        update={
            "tool_calls": calls,
            "invalid_tool_calls": [*invalid, cut],
            "response_metadata": metadata,
        }
    )
