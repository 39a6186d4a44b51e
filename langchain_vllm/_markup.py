r"""Client-side parsing of reasoning and tool-call markup in generated text.

For vLLM servers started without `--reasoning-parser` or `--tool-call-parser`:
the model's `<think>…</think>` reasoning and hermes-style
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks then arrive as
plain content text. These helpers split them out again, for whole messages and for
streams, with no network and no LangChain model class involved.

Rules (the same for the whole-message and the streaming forms, so a stream cut at
any point gives the same result as the whole message):

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
from typing import Any

from langchain_core.messages import InvalidToolCall, ToolCall, ToolCallChunk
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

__all__ = [
    "MarkupParser",
    "ThinkSplitter",
    "ToolCallMarkupParser",
    "parse_tool_calls",
    "split_markup",
    "split_think",
    "to_tool_call_chunks",
]


def _partial_tag(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def _check_tags(open_tag: str, close_tag: str) -> None:
    if not open_tag or not close_tag:
        msg = (
            f"Markup tags must be non-empty strings, got open_tag={open_tag!r}, "
            f"close_tag={close_tag!r}."
        )
        raise ValueError(msg)


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex}"


# --------------------------------------------------------------------- reasoning
class _TagStream:
    """State shared by the streaming parsers: the tags, inside-or-not, held text."""

    def __init__(self, open_tag: str, close_tag: str, *, inside: bool) -> None:
        _check_tags(open_tag, close_tag)
        self.open_tag = open_tag
        self.close_tag = close_tag
        self._inside = inside
        self._pending = ""
        self._after_close = False


def _append_content(text: str, content: list[str], after_close: bool) -> bool:
    """Append content text, dropping whitespace right after a closing tag.

    Returns:
        Whether the next text still follows a closing tag (only whitespace so far).
    """
    if after_close:
        text = text.lstrip()
        if not text:
            return True
    content.append(text)
    return False


class ThinkSplitter(_TagStream):
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

    def __init__(
        self,
        open_tag: str = THINK_OPEN,
        close_tag: str = THINK_CLOSE,
        *,
        starts_inside: bool = False,
    ) -> None:
        """Create a splitter.

        Args:
            open_tag: Tag that opens a reasoning block.
            close_tag: Tag that closes a reasoning block.
            starts_inside: The text starts inside a reasoning block (the chat
                template put the opening tag in the prompt).

        Raises:
            ValueError: An empty tag.
        """
        super().__init__(open_tag, close_tag, inside=starts_inside)

    @property
    def inside(self) -> bool:
        """Whether the text seen so far ends inside a reasoning block."""
        return self._inside

    def feed(self, text: str) -> tuple[str, str]:
        """Take the next piece of text.

        Args:
            text: The next content delta of the stream.

        Returns:
            `(content_delta, reasoning_delta)` that are safe to emit now.
        """
        buffer = self._pending + text
        content: list[str] = []
        reasoning: list[str] = []
        while buffer:
            tag = self.close_tag if self._inside else self.open_tag
            found = buffer.find(tag)
            if found == -1:
                keep = _partial_tag(buffer, tag)
                ready, buffer = (
                    buffer[: len(buffer) - keep],
                    buffer[len(buffer) - keep :],
                )
                self._emit(ready, content, reasoning)
                break
            self._emit(buffer[:found], content, reasoning)
            buffer = buffer[found + len(tag) :]
            self._inside = not self._inside
            if not self._inside:
                self._after_close = True
        self._pending = buffer
        return "".join(content), "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        """End of stream: release the held-back text.

        A partial tag that never completed is ordinary text of the current side
        (content outside a block, reasoning inside one).

        Returns:
            `(content_delta, reasoning_delta)`.
        """
        content: list[str] = []
        reasoning: list[str] = []
        self._emit(self._pending, content, reasoning)
        self._pending = ""
        return "".join(content), "".join(reasoning)

    def _emit(self, text: str, content: list[str], reasoning: list[str]) -> None:
        if self._inside:
            reasoning.append(text)
        else:
            self._after_close = _append_content(text, content, self._after_close)


def split_think(
    text: str,
    *,
    starts_inside: bool = False,
    open_tag: str = THINK_OPEN,
    close_tag: str = THINK_CLOSE,
) -> tuple[str, str]:
    """Split a whole message's text into content and reasoning.

    Args:
        text: The generated text.
        starts_inside: The text starts inside a reasoning block (the opening tag
            was in the prompt).
        open_tag: Tag that opens a reasoning block.
        close_tag: Tag that closes a reasoning block.

    Returns:
        `(content, reasoning)`; reasoning is `""` when there is none.

    Raises:
        ValueError: An empty tag.
    """
    _check_tags(open_tag, close_tag)
    content: list[str] = []
    reasoning: list[str] = []
    inside = starts_inside
    position = 0
    while position < len(text):
        tag = close_tag if inside else open_tag
        found = text.find(tag, position)
        end = len(text) if found == -1 else found
        (reasoning if inside else content).append(text[position:end])
        if found == -1:
            break
        position = found + len(tag)
        inside = not inside
        if not inside:
            # Content after a closing tag starts at its first non-space.
            while position < len(text) and text[position].isspace():
                position += 1
    return "".join(content), "".join(reasoning)


# -------------------------------------------------------------------- tool calls
def _parse_block(body: str, *, closed: bool) -> ToolCall | InvalidToolCall:
    """Turn the text inside one `<tool_call>` block into a (maybe invalid) call."""
    raw = body.strip()
    call_id = _new_call_id()
    unterminated = "" if closed else f" (unterminated: no {TOOL_CALL_CLOSE})"

    def invalid(name: str | None, error: str) -> InvalidToolCall:
        return invalid_tool_call(
            name=name, args=raw, id=call_id, error=f"{error}{unterminated}"
        )

    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as e:
        return invalid(None, f"{TOOL_CALL_OPEN} block is not valid JSON: {e}")
    if not isinstance(data, dict):
        kind = type(data).__name__
        return invalid(
            None, f"{TOOL_CALL_OPEN} block holds a JSON {kind}, not an object"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name:
        return invalid(None, f'{TOOL_CALL_OPEN} block has no "name" string')
    key = next((k for k in ("arguments", "parameters") if k in data), None)
    args: Any = data[key] if key else {}
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            return invalid(name, f'"{key}" of tool `{name}` is not valid JSON: {e}')
    if args is None:
        args = {}
    if not isinstance(args, dict):
        kind = type(args).__name__
        return invalid(
            name, f'"{key}" of tool `{name}` is a JSON {kind}, not an object'
        )
    return tool_call(name=name, args=args, id=call_id)


class ToolCallMarkupParser(_TagStream):
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

    def __init__(
        self, open_tag: str = TOOL_CALL_OPEN, close_tag: str = TOOL_CALL_CLOSE
    ) -> None:
        """Create a parser.

        Args:
            open_tag: Tag that opens a tool-call block.
            close_tag: Tag that closes a tool-call block.

        Raises:
            ValueError: An empty tag.
        """
        super().__init__(open_tag, close_tag, inside=False)

    def feed(self, text: str) -> tuple[str, list[ToolCall | InvalidToolCall]]:
        """Take the next piece of text.

        Args:
            text: The next content delta of the stream.

        Returns:
            `(content_delta, completed_calls)`: content safe to emit now, and the
            blocks that closed in this piece, in order.
        """
        buffer = self._pending + text
        content: list[str] = []
        calls: list[ToolCall | InvalidToolCall] = []
        while buffer:
            if self._inside:
                found = buffer.find(self.close_tag)
                if found == -1:
                    break  # the block's body waits for its closing tag
                calls.append(_parse_block(buffer[:found], closed=True))
                buffer = buffer[found + len(self.close_tag) :]
                self._inside = False
                self._after_close = True
                continue
            found = buffer.find(self.open_tag)
            if found == -1:
                keep = _partial_tag(buffer, self.open_tag)
                self._emit(buffer[: len(buffer) - keep], content)
                buffer = buffer[len(buffer) - keep :]
                break
            self._emit(buffer[:found], content)
            buffer = buffer[found + len(self.open_tag) :]
            self._inside = True
        self._pending = buffer
        return "".join(content), calls

    def flush(self) -> tuple[str, list[ToolCall | InvalidToolCall]]:
        """End of stream: release held-back text and parse an unclosed block.

        Returns:
            `(content_delta, calls)`.
        """
        content: list[str] = []
        calls: list[ToolCall | InvalidToolCall] = []
        if self._inside:
            calls.append(_parse_block(self._pending, closed=False))
            self._inside = False
        else:
            self._emit(self._pending, content)
        self._pending = ""
        return "".join(content), calls

    def _emit(self, text: str, content: list[str]) -> None:
        self._after_close = _append_content(text, content, self._after_close)


def parse_tool_calls(
    text: str,
    *,
    open_tag: str = TOOL_CALL_OPEN,
    close_tag: str = TOOL_CALL_CLOSE,
) -> tuple[str, list[ToolCall], list[InvalidToolCall]]:
    """Parse a whole message's hermes-style tool-call blocks.

    Args:
        text: The generated text.
        open_tag: Tag that opens a tool-call block.
        close_tag: Tag that closes a tool-call block.

    Returns:
        `(content, tool_calls, invalid_tool_calls)`: the text without the blocks,
        the valid calls, and the blocks that are not valid calls.

    Raises:
        ValueError: An empty tag.
    """
    _check_tags(open_tag, close_tag)
    content: list[str] = []
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    position = 0
    while True:
        start = text.find(open_tag, position)
        if start == -1:
            content.append(text[position:])
            break
        content.append(text[position:start])
        body_start = start + len(open_tag)
        end = text.find(close_tag, body_start)
        closed = end != -1
        call = _parse_block(
            text[body_start : end if closed else len(text)], closed=closed
        )
        if call["type"] == "tool_call":
            valid.append(call)  # type: ignore[arg-type]
        else:
            invalid.append(call)  # type: ignore[arg-type]
        if not closed:
            break
        position = end + len(close_tag)
        while position < len(text) and text[position].isspace():
            position += 1
    return "".join(content), valid, invalid


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
        parser = MarkupParser(think=True, tool_calls=True)
        for delta in deltas:
            content, reasoning, calls = parser.feed(delta)
        content, reasoning, calls = parser.flush()
        ```
    """

    def __init__(
        self, *, think: bool, tool_calls: bool, starts_inside: bool = False
    ) -> None:
        """Create a parser.

        Args:
            think: Split `<think>…</think>` reasoning out of the content.
            tool_calls: Parse `<tool_call>` blocks into tool calls.
            starts_inside: The text starts inside a reasoning block.
        """
        self._think = ThinkSplitter(starts_inside=starts_inside) if think else None
        self._tools = ToolCallMarkupParser() if tool_calls else None
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
    text: str, *, think: bool, tool_calls: bool, starts_inside: bool = False
) -> tuple[str, str, list[ToolCall], list[InvalidToolCall]]:
    """Whole-message form of `MarkupParser`.

    Args:
        text: The generated text.
        think: Split `<think>…</think>` reasoning out of the content.
        tool_calls: Parse `<tool_call>` blocks into tool calls.
        starts_inside: The text starts inside a reasoning block.

    Returns:
        `(content, reasoning, tool_calls, invalid_tool_calls)`.
    """
    content, reasoning = (
        split_think(text, starts_inside=starts_inside) if think else (text, "")
    )
    if not tool_calls:
        return content, reasoning, [], []
    content, valid, invalid = parse_tool_calls(content)
    return content, reasoning, valid, invalid
