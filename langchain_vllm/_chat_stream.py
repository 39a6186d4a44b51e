"""A chat stream's state: markup parsed, tool-call deltas normalized, what came."""

from __future__ import annotations

import warnings
from typing import Any

from langchain_core.messages import AIMessageChunk

from langchain_vllm._chat_answer import AnswerSeen, split_chunk
from langchain_vllm._markup import MarkupParser
from langchain_vllm._tokens import StreamState
from langchain_vllm._tool_stream import (
    CUT_KEY,
    ToolCallStream,
    normalize_chunk_calls,
    report_stream_cut,
)
from langchain_vllm._tools import tool_choice_problem


class ChatStreamState(StreamState):
    """A chat stream so far: markup parsed, tool-call deltas normalized, what came.

    Tool-call deltas are rewritten by `_tool_stream.ToolCallStream`.
    """

    def __init__(self, parser: MarkupParser | None, forced: str | None = None) -> None:
        super().__init__()
        self.parser = parser
        self.seen = AnswerSeen()
        self.tool_calls = ToolCallStream()
        self.forced = forced
        """What the call's tool choice forces (`forced_tool`), checked at the end."""

    def tool_choice_problem(self) -> str | None:
        """Why the whole stream does not honour a forced tool choice, or None."""
        if self.forced is None:
            return None
        names = self.seen.tool_names
        if self.seen.tool_calls and not names:
            names = [self.forced]  # calls whose deltas carried no name
        # cut by the token limit: only calls before the last one are complete
        complete = any(not self.forced or n == self.forced for n in names[:-1])
        return tool_choice_problem(
            self.forced,
            names,
            self.seen.head,
            self.seen.finish_reason,
            complete=complete,
        )

    def take(self, chunk: Any) -> Any:
        """Parse markup (if asked), normalize tool-call deltas, account for it."""
        message = chunk.message
        if (  # text (or reasoning) only, most of a stream: accounted for directly
            self.parser is None
            and chunk.generation_info is None
            and type(message) is AIMessageChunk
            and type(message.content) is str
            and not (message.tool_call_chunks or message.invalid_tool_calls)
            and "status" not in message.response_metadata  # a Responses event's end
        ):
            self.seen.add_text(message.content, message.additional_kwargs)
            self.count(message.response_metadata.get("token_ids"), chunk)
            self.received = True
            return chunk
        if self.parser is not None:
            chunk = split_chunk(self.parser, chunk)
        message = chunk.message
        if isinstance(message, AIMessageChunk):
            normalize_chunk_calls(self.tool_calls, message)
            finish_reason = (chunk.generation_info or {}).get("finish_reason")
            if finish_reason == "length" and self.tool_calls.cut_call():
                report_stream_cut(self.tool_calls, message)
                warnings.warn(
                    message.response_metadata[CUT_KEY]["error"]
                    + " The merged message still lists it among `tool_calls`; "
                    f"`response_metadata[{CUT_KEY!r}]` names it.",
                    UserWarning,
                    stacklevel=4,
                )
        self.seen.add(chunk)
        self.count(message.response_metadata.get("token_ids"), chunk)
        self.received = True
        self.finished = self.seen.finish_reason is not None
        return chunk
