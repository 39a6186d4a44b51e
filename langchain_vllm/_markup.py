r"""Client-side parsing of reasoning and tool-call markup in generated text.

For vLLM servers started without `--reasoning-parser` or `--tool-call-parser`:
the model's `<think>…</think>` reasoning and hermes-style
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks then arrive as
plain content text. These helpers split them out again, for streams and for whole
messages, with no network and no LangChain model class involved.

Each parser is a streaming one; a whole message is the stream of one piece
(`split_markup`), so a stream cut at any point gives the same result as the whole
message. Rules:

- Reasoning: text between `<think>` and `</think>` is reasoning; the rest is
  content. Several blocks are concatenated. A block that never closes runs to the
  end of the text (a generation cut off while thinking is all reasoning). With
  `starts_inside=True` the text starts inside a block (chat templates that put
  `<think>` in the prompt, so only `</think>` is generated). A stray closing tag
  outside a block, or an opening tag inside one, is ordinary text.
- Tool calls: each `<tool_call>…</tool_call>` block holds one JSON object with a
  `"name"` and `"arguments"` (or `"parameters"`; a JSON string is decoded; missing
  means no arguments). A block that does not hold that becomes an invalid tool
  call carrying the raw text and the reason: model output never raises. A block
  that never closes is parsed up to the end of the text (as vLLM's hermes parser
  does). Content is the text outside the blocks (text between and after blocks is
  kept, where vLLM's hermes parser keeps only the text before the first block).
- Whitespace: whitespace right after a closing tag (`</think>`, `</tool_call>`)
  is dropped from the content, like the `"\n\n"` that models put between their
  reasoning and their answer. Reasoning text and the body of tool calls are kept
  as generated (vLLM's parsers keep reasoning as is too).
- Streaming holds back only a suffix that could still become a tag (`"<thi"`),
  plus, for tool calls, the body of a block until it closes.

Tool calls are LangChain `ToolCall` / `InvalidToolCall` dicts with ids
`call_<uuid hex>`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.messages import InvalidToolCall, ToolCall, ToolCallChunk
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

__all__ = [
    "Markup",
    "MarkupParser",
    "ThinkSplitter",
    "ToolCallMarkupParser",
    "split_markup",
    "to_tool_call_chunks",
]


def _partial_tag(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


@dataclass(frozen=True)
class Markup:
    """Which markup to parse on the client (a chat model's `parse_*_tags`)."""

    think: bool = False
    """Split `<think>…</think>` reasoning out of the content."""
    tool_calls: bool = False
    """Parse `<tool_call>` blocks into tool calls."""
    starts_inside: bool = False
    """The text starts inside a reasoning block."""


# ------------------------------------------------------------------- the splitter
class _TagStream:
    """Streaming split of text at open/close tag pairs, the core of both parsers.

    Text outside the blocks comes back joined, with the whitespace right after a
    closing tag dropped. Text inside comes back as a list: pieces as they arrive,
    or, with `hold_body`, each block's whole body once it closes (and at `flush`,
    the body of a block that never closed).
    """

    def __init__(
        self, open_tag: str, close_tag: str, *, inside: bool, hold_body: bool
    ) -> None:
        self.open_tag = open_tag
        self.close_tag = close_tag
        self.inside = inside
        self._hold_body = hold_body
        self._pending = ""
        self._after_close = False

    def feed(self, text: str) -> tuple[str, list[str]]:
        """Split the next piece; returns `(outside_text, inside_pieces)`."""
        buffer = self._pending + text
        outside: list[str] = []
        inside: list[str] = []
        while True:
            tag = self.close_tag if self.inside else self.open_tag
            found = buffer.find(tag)
            if found == -1:
                break
            self._take(buffer[:found], outside, inside)
            buffer = buffer[found + len(tag) :]
            self.inside = not self.inside
            self._after_close = not self.inside  # a block just closed
        if not (self.inside and self._hold_body):
            ready = len(buffer) - _partial_tag(buffer, tag)
            self._take(buffer[:ready], outside, inside)
            buffer = buffer[ready:]
        self._pending = buffer
        return "".join(outside), inside

    def flush(self) -> tuple[str, list[str]]:
        """End of stream: the held-back text goes to the current side."""
        outside: list[str] = []
        inside: list[str] = []
        self._take(self._pending, outside, inside)
        self._pending = ""
        if self._hold_body:
            self.inside = False  # the unclosed block's body is out: it is over
        return "".join(outside), inside

    def _take(self, text: str, outside: list[str], inside: list[str]) -> None:
        if self.inside:
            inside.append(text)
            return
        if self._after_close:
            text = text.lstrip()
            self._after_close = not text
        if text:
            outside.append(text)


# --------------------------------------------------------------------- reasoning
class ThinkSplitter:
    r"""Streaming splitter of `<think>…</think>` out of content text.

    Feed the content deltas of a stream in order; each call returns what can be
    emitted now. Only a suffix that could still be the start of a tag is held back
    between calls; `flush` releases it at the end of the stream.

    Example:
        ```python
        splitter = ThinkSplitter()
        splitter.feed("<think>2 + 2 is 4</thi")  # ("", "2 + 2 is 4")
        splitter.feed("nk>\n\nFour.")  # ("Four.", "")
        splitter.flush()  # ("", "")
        ```
    """

    def __init__(self, *, starts_inside: bool = False) -> None:
        """Create a splitter (`starts_inside`: the prompt opened `<think>`)."""
        self._tags = _TagStream(
            THINK_OPEN, THINK_CLOSE, inside=starts_inside, hold_body=False
        )

    @property
    def inside(self) -> bool:
        """Whether the text seen so far ends inside a reasoning block."""
        return self._tags.inside

    def feed(self, text: str) -> tuple[str, str]:
        """Take the next piece of text.

        Args:
            text: The next content delta of the stream.

        Returns:
            `(content_delta, reasoning_delta)` that are safe to emit now.
        """
        content, reasoning = self._tags.feed(text)
        return content, "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        """End of stream: release the held-back text.

        A partial tag that never completed is ordinary text of the current side
        (content outside a block, reasoning inside one).

        Returns:
            `(content_delta, reasoning_delta)`.
        """
        content, reasoning = self._tags.flush()
        return content, "".join(reasoning)


# -------------------------------------------------------------------- tool calls
def _decode_args(data: dict[str, Any], name: str) -> dict[str, Any] | str:
    """The arguments in a call's JSON object, or why they are not an object."""
    key = next((k for k in ("arguments", "parameters") if k in data), None)
    args: Any = data[key] if key else {}
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            return f'"{key}" of tool `{name}` is not valid JSON: {e}'
    if args is None:
        return {}
    if not isinstance(args, dict):
        kind = type(args).__name__
        return f'"{key}" of tool `{name}` is a JSON {kind}, not an object'
    return args


def _read_block(raw: str) -> tuple[str | None, dict[str, Any] | str]:
    """The name and arguments in a block, or the name if any and what is wrong."""
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as e:
        return None, f"{TOOL_CALL_OPEN} block is not valid JSON: {e}"
    if not isinstance(data, dict):
        kind = type(data).__name__
        return None, f"{TOOL_CALL_OPEN} block holds a JSON {kind}, not an object"
    name = data.get("name")
    if not isinstance(name, str) or not name:
        return None, f'{TOOL_CALL_OPEN} block has no "name" string'
    return name, _decode_args(data, name)


def _parse_block(body: str, *, closed: bool) -> ToolCall | InvalidToolCall:
    """Turn the text inside one `<tool_call>` block into a (maybe invalid) call."""
    raw = body.strip()
    call_id = f"call_{uuid.uuid4().hex}"
    name, args = _read_block(raw)
    if isinstance(args, str):
        unterminated = "" if closed else f" (unterminated: no {TOOL_CALL_CLOSE})"
        return invalid_tool_call(
            name=name, args=raw, id=call_id, error=args + unterminated
        )
    return tool_call(name=name or "", args=args, id=call_id)


class ToolCallMarkupParser:
    r"""Streaming parser of hermes-style `<tool_call>` blocks.

    A block is `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.
    Feed the content deltas of a stream in order. Content outside the blocks comes
    back as soon as it cannot be the start of `<tool_call>`; a block comes back as
    one tool call once its closing tag arrives (or at `flush`, if it never does).
    Returned calls are `ToolCall` dicts, or `InvalidToolCall` dicts (their `"type"`
    is `"invalid_tool_call"`) for blocks that are not a tool call.

    Example:
        ```python
        parser = ToolCallMarkupParser()
        parser.feed('<tool_call>\n{"name": "add", "argu')  # ("", [])
        parser.feed('ments": {"a": 1}}\n</tool_call>')  # ("", [ToolCall])
        parser.flush()  # ("", [])
        ```
    """

    def __init__(self) -> None:
        """Create a parser."""
        self._tags = _TagStream(
            TOOL_CALL_OPEN, TOOL_CALL_CLOSE, inside=False, hold_body=True
        )

    def feed(self, text: str) -> tuple[str, list[ToolCall | InvalidToolCall]]:
        """Take the next piece of text.

        Args:
            text: The next content delta of the stream.

        Returns:
            `(content_delta, completed_calls)`: content safe to emit now, and the
            blocks that closed in this piece, in order.
        """
        content, bodies = self._tags.feed(text)
        return content, [_parse_block(body, closed=True) for body in bodies]

    def flush(self) -> tuple[str, list[ToolCall | InvalidToolCall]]:
        """End of stream: release held-back text and parse an unclosed block.

        Returns:
            `(content_delta, calls)`.
        """
        content, bodies = self._tags.flush()
        return content, [_parse_block(body, closed=False) for body in bodies]


def to_tool_call_chunks(
    calls: list[ToolCall | InvalidToolCall], start_index: int = 0
) -> list[ToolCallChunk]:
    """Stream form of parsed calls: one complete `ToolCallChunk` per call.

    For an `AIMessageChunk(tool_call_chunks=...)`; summed chunks then carry the
    calls in `tool_calls`. An invalid call keeps its raw text as `args`. LangChain
    rebuilds a chunk's tool calls from its `tool_call_chunks` with a lenient
    partial-JSON parser, so in a stream the error text is lost, and raw text that
    parser accepts (`{"arguments": {}}` without a name, a truncated `{"a": 1`, an
    empty block) comes out as a call named `""` instead of an invalid call; text
    that is not JSON (`{not json}`) stays in `invalid_tool_calls`.

    Args:
        calls: Calls from `ToolCallMarkupParser.feed` / `flush`.
        start_index: Index of the first call in the message (calls already
            streamed before these).

    Returns:
        One chunk per call, indexed from `start_index`.
    """
    chunks = []
    for offset, call in enumerate(calls):
        args = call["args"]
        chunks.append(
            tool_call_chunk(
                name=call["name"],
                args=args if isinstance(args, str) else json.dumps(args),
                id=call["id"],
                index=start_index + offset,
            )
        )
    return chunks


# -------------------------------------------------------------------- both at once
class MarkupParser:
    """Reasoning and tool-call parsing chained, for one stream.

    Reasoning is split out first; tool-call blocks are parsed in the content only
    (a `<tool_call>` inside `<think>` is reasoning, not a call).

    Example:
        ```python
        parser = MarkupParser(Markup(think=True, tool_calls=True))
        for delta in deltas:
            content, reasoning, calls = parser.feed(delta)
        content, reasoning, calls = parser.flush()
        ```
    """

    def __init__(self, markup: Markup) -> None:
        """Create a parser of the `markup` asked for."""
        self._think = (
            ThinkSplitter(starts_inside=markup.starts_inside) if markup.think else None
        )
        self._tools = ToolCallMarkupParser() if markup.tool_calls else None
        self.calls_emitted = 0
        """Number of tool calls returned so far (the next call's chunk index)."""

    def feed(self, text: str) -> tuple[str, str, list[ToolCall | InvalidToolCall]]:
        """Take the next piece of text.

        Args:
            text: The next content delta of the stream.

        Returns:
            `(content_delta, reasoning_delta, completed_calls)`.
        """
        content, reasoning = self._think.feed(text) if self._think else (text, "")
        return self._calls(content, reasoning, final=False)

    def flush(self) -> tuple[str, str, list[ToolCall | InvalidToolCall]]:
        """End of stream: release everything held back.

        Returns:
            `(content_delta, reasoning_delta, calls)`.
        """
        content, reasoning = self._think.flush() if self._think else ("", "")
        return self._calls(content, reasoning, final=True)

    def _calls(
        self, content: str, reasoning: str, *, final: bool
    ) -> tuple[str, str, list[ToolCall | InvalidToolCall]]:
        if self._tools is None:
            return content, reasoning, []
        content, calls = self._tools.feed(content)
        if final:
            rest, more = self._tools.flush()
            content, calls = content + rest, calls + more
        self.calls_emitted += len(calls)
        return content, reasoning, calls


def split_markup(
    text: str, markup: Markup
) -> tuple[str, str, list[ToolCall], list[InvalidToolCall]]:
    """Parse a whole message: a `MarkupParser` fed the text at once, then flushed.

    Returns:
        `(content, reasoning, tool_calls, invalid_tool_calls)`.
    """
    parser = MarkupParser(markup)
    content, reasoning, calls = parser.feed(text)
    rest, more_reasoning, more_calls = parser.flush()
    calls += more_calls
    valid = [cast("ToolCall", c) for c in calls if c["type"] == "tool_call"]
    invalid = [cast("InvalidToolCall", c) for c in calls if c["type"] != "tool_call"]
    return content + rest, reasoning + more_reasoning, valid, invalid
