"""Client-side `<think>` / `<tool_call>` markup parsing (langchain_vllm._markup)."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_vllm._markup import (
    MarkupParser,
    ThinkSplitter,
    ToolCallMarkupParser,
    parse_tool_calls,
    split_markup,
    split_think,
    to_tool_call_chunks,
)

CALL_ID = re.compile(r"call_[0-9a-f]{32}")

THINK_SAMPLES = [
    "",
    "Plain answer, no tags.",
    "<think>\nAdd two and two.\n</think>\n\nFour.",
    "<think></think>Four.",
    "Before <think>r1</think> middle <think>r2</think>\n after",
    "<think>cut off while thinking",
    "<think>a</think>",
    "<think>a</think>\n\n",
    "a < b and c <th d </think> e",
    "<think>x <think> nested is text </th </think>done",
    "<<think>>x</think></think>",
    "<thinking>not a tag</thinking>",
    "ends with a partial <thi",
    "<think>ends inside with a partial </thin",
    "reasoning when starts_inside</think>\n\nAnswer.",
    "</think></think>\n<think>\n</think>  tail  ",
    "ünïcödé <think>思考</think> 答え",
]

TOOL_SAMPLES = [
    "",
    "No tool call here.",
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
    "</tool_call>",
    'Let me check.\n<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>\n'
    '<tool_call>{"name": "b", "parameters": {"y": [1, 2]}}</tool_call>\nDone.',
    '<tool_call>{"name": "s", "arguments": "{\\"q\\": \\"hi\\"}"}</tool_call>',
    '<tool_call>{"name": "noargs"}</tool_call>',
    "<tool_call>{not json}</tool_call>after",
    '<tool_call>{"arguments": {"x": 1}}</tool_call>',
    '<tool_call>{"name": "bad", "arguments": [1, 2]}</tool_call>',
    '<tool_call>{"name": "bad", "arguments": "{oops"}</tool_call>',
    '<tool_call>["a list"]</tool_call>',
    '<tool_call>{"name": "open", "arguments": {"x": 1}}',
    "<tool_call>{garbage without end",
    "a <tool b <tool_ca c </tool_call> d",
    "ends with a partial <tool_ca",
    '<tool_call>{"name": "t", "arguments": {"s": "</tool"}}</tool_call>',
    '<tool_call></tool_call><tool_call>{"name": "x"}</tool_call>  \n tail',
]


def _partitions(text: str, rng: random.Random, count: int) -> Iterator[list[str]]:
    """Every single cut, char by char, and `count` random multi-cut partitions."""
    for cut in range(len(text) + 1):
        yield [text[:cut], text[cut:]]
    yield list(text)
    for _ in range(count):
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text), 5)))
        bounds = [0, *cuts, len(text)]
        yield [text[a:b] for a, b in itertools.pairwise(bounds)]


def _stream_think(pieces: Sequence[str], *, starts_inside: bool) -> tuple[str, str]:
    splitter = ThinkSplitter(starts_inside=starts_inside)
    content, reasoning = [], []
    for piece in pieces:
        c, r = splitter.feed(piece)
        content.append(c)
        reasoning.append(r)
    c, r = splitter.flush()
    return "".join([*content, c]), "".join([*reasoning, r])


def _no_ids(calls: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        assert CALL_ID.fullmatch(call["id"]), call
        out.append({k: v for k, v in call.items() if k != "id"})
    return out


def _stream_tools(pieces: Sequence[str]) -> tuple[str, list[Any], list[Any]]:
    parser = ToolCallMarkupParser()
    content: list[str] = []
    calls: list[Any] = []
    for piece in pieces:
        c, got = parser.feed(piece)
        content.append(c)
        calls += got
    c, got = parser.flush()
    calls += got
    valid = [call for call in calls if call["type"] == "tool_call"]
    invalid = [call for call in calls if call["type"] == "invalid_tool_call"]
    return "".join([*content, c]), valid, invalid


# ----------------------------------------------------------------- split_think
@pytest.mark.parametrize(
    ("text", "starts_inside", "expected"),
    [
        ("Just text.", False, ("Just text.", "")),
        ("<think>\nWhy.\n</think>\n\nFour.", False, ("Four.", "\nWhy.\n")),
        ("Why.</think>\n\nFour.", True, ("Four.", "Why.")),
        ("Why.</think>Four.", False, ("Why.</think>Four.", "")),
        ("<think>never closed", False, ("", "never closed")),
        ("only reasoning", True, ("", "only reasoning")),
        ("A <think>r1</think> B <think>r2</think> C", False, ("A B C", "r1r2")),
        ("<think>a <think> b</think>c", False, ("c", "a <think> b")),
        ("x\n<think>r</think>", False, ("x\n", "r")),
        ("<think>r</think>  \n  ", False, ("", "r")),
    ],
)
def test_split_think(text: str, starts_inside: bool, expected: tuple[str, str]) -> None:
    assert split_think(text, starts_inside=starts_inside) == expected


def test_split_think_custom_tags() -> None:
    assert split_think("[[r]] a", open_tag="[[", close_tag="]]") == ("a", "r")
    splitter = ThinkSplitter("<reasoning>", "</reasoning>")
    assert splitter.feed("<reasoning>why</reason") == ("", "why")
    assert splitter.feed("ing>ok") == ("ok", "")


@pytest.mark.parametrize("tags", [("", "</think>"), ("<think>", "")])
def test_empty_tags_are_refused(tags: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ThinkSplitter(*tags)
    with pytest.raises(ValueError, match="non-empty"):
        ToolCallMarkupParser(*tags)
    with pytest.raises(ValueError, match="non-empty"):
        split_think("x", open_tag=tags[0], close_tag=tags[1])


# ---------------------------------------------------------------- ThinkSplitter
def test_think_splitter_holds_back_only_a_possible_tag() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("Hello <thi") == ("Hello ", "")
    # "<this" can no longer become "<think>": released at once.
    assert splitter.feed("s is text") == ("<this is text", "")
    assert splitter.feed(" <think>step one") == (" ", "step one")
    assert splitter.inside
    assert splitter.feed(", two </th") == ("", ", two ")
    assert splitter.feed("ink>\n") == ("", "")
    assert not splitter.inside
    assert splitter.feed("\nAnswer") == ("Answer", "")
    assert splitter.flush() == ("", "")


def test_think_splitter_flush_releases_partial_tags_to_their_side() -> None:
    outside = ThinkSplitter()
    assert outside.feed("abc<think") == ("abc", "")
    assert outside.flush() == ("<think", "")
    inside = ThinkSplitter()
    assert inside.feed("<think>abc</think") == ("", "abc")
    assert inside.flush() == ("", "</think")


def test_think_splitter_starts_inside() -> None:
    splitter = ThinkSplitter(starts_inside=True)
    assert splitter.feed("let me see") == ("", "let me see")
    assert splitter.feed("</think>\n\nFour") == ("Four", "")
    assert splitter.flush() == ("", "")


@pytest.mark.parametrize("starts_inside", [False, True])
@pytest.mark.parametrize("text", THINK_SAMPLES)
def test_think_stream_equals_whole_at_any_cut(text: str, starts_inside: bool) -> None:
    expected = split_think(text, starts_inside=starts_inside)
    rng = random.Random(text)
    for pieces in _partitions(text, rng, count=40):
        got = _stream_think(pieces, starts_inside=starts_inside)
        assert got == expected, pieces


@pytest.mark.parametrize("starts_inside", [False, True])
@pytest.mark.parametrize("text", THINK_SAMPLES)
def test_think_stream_never_holds_more_than_a_tag_prefix(
    text: str, starts_inside: bool
) -> None:
    for cut in range(len(text) + 1):
        splitter = ThinkSplitter(starts_inside=starts_inside)
        splitter.feed(text[:cut])
        held = "".join(splitter.flush())
        assert len(held) < len("</think>")
        assert "</think>".startswith(held) or "<think>".startswith(held)


def test_think_random_texts_stream_equals_whole() -> None:
    rng = random.Random(7)
    alphabet = ["<think>", "</think>", "<", "</", "<th", "think>", "\n", " ", "a"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        starts_inside = rng.random() < 0.5
        expected = split_think(text, starts_inside=starts_inside)
        for pieces in _partitions(text, rng, count=3):
            assert _stream_think(pieces, starts_inside=starts_inside) == expected


# ------------------------------------------------------------- parse_tool_calls
def test_parse_tool_calls_valid_blocks() -> None:
    content, calls, invalid = parse_tool_calls(TOOL_SAMPLES[3])
    assert content == "Let me check.\nDone."
    assert _no_ids(calls) == [
        {"name": "a", "args": {"x": 1}, "type": "tool_call"},
        {"name": "b", "args": {"y": [1, 2]}, "type": "tool_call"},
    ]
    assert invalid == []
    assert calls[0]["id"] != calls[1]["id"]


@pytest.mark.parametrize(
    ("text", "args"),
    [
        (TOOL_SAMPLES[2], {"city": "Paris"}),
        ('<tool_call>{"name": "f", "arguments": "{\\"q\\": 1}"}</tool_call>', {"q": 1}),
        ('<tool_call>{"name": "f", "arguments": ""}</tool_call>', {}),
        ('<tool_call>{"name": "f", "arguments": null}</tool_call>', {}),
        ('<tool_call>{"name": "f"}</tool_call>', {}),
        (
            '<tool_call>{"name": "f", "parameters": {"p": true}}</tool_call>',
            {"p": True},
        ),
        ('<tool_call>{"name": "f", "arguments": {"s": "</tool"}}</tool_call>', None),
    ],
)
def test_parse_tool_calls_argument_forms(text: str, args: dict | None) -> None:
    content, calls, invalid = parse_tool_calls(text)
    assert invalid == []
    assert len(calls) == 1
    if args is not None:
        assert calls[0]["args"] == args
    assert content == ""


@pytest.mark.parametrize(
    ("body", "name", "error"),
    [
        ("{not json}", None, "not valid JSON"),
        ('["a list"]', None, "JSON list, not an object"),
        ('{"arguments": {"x": 1}}', None, 'no "name"'),
        ('{"name": "", "arguments": {}}', None, 'no "name"'),
        ('{"name": 3}', None, 'no "name"'),
        ('{"name": "bad", "arguments": [1, 2]}', "bad", '"arguments" of tool `bad`'),
        ('{"name": "bad", "arguments": "{oops"}', "bad", "not valid JSON"),
        ('{"name": "bad", "parameters": 5}', "bad", '"parameters" of tool `bad`'),
        ("", None, "not valid JSON"),
    ],
)
def test_bad_blocks_become_invalid_tool_calls(
    body: str, name: str | None, error: str
) -> None:
    content, calls, invalid = parse_tool_calls(f"x<tool_call> {body} </tool_call>y")
    assert content == "xy"
    assert calls == []
    assert len(invalid) == 1
    assert invalid[0]["name"] == name
    assert invalid[0]["args"] == body
    assert error in (invalid[0]["error"] or "")
    assert CALL_ID.fullmatch(invalid[0]["id"] or "")


def test_unterminated_block_is_parsed_to_the_end() -> None:
    content, calls, invalid = parse_tool_calls(
        'Sure <tool_call>{"name": "f", "arguments": {"a": 1}}'
    )
    assert (content, _no_ids(calls), invalid) == (
        "Sure ",
        [{"name": "f", "args": {"a": 1}, "type": "tool_call"}],
        [],
    )
    content, calls, invalid = parse_tool_calls('<tool_call>{"name": "f", "argu')
    assert calls == []
    assert "unterminated" in (invalid[0]["error"] or "")


def test_text_around_blocks_and_partial_tags_is_content() -> None:
    assert parse_tool_calls("a <tool b <tool_ca c </tool_call> d") == (
        "a <tool b <tool_ca c </tool_call> d",
        [],
        [],
    )


# --------------------------------------------------------- ToolCallMarkupParser
def test_tool_parser_streams_content_and_completed_calls() -> None:
    parser = ToolCallMarkupParser()
    assert parser.feed("Checking <tool") == ("Checking ", [])
    assert parser.feed('_call>\n{"name": "get_weather", ') == ("", [])
    content, calls = parser.feed('"arguments": {"city": "Rome"}}\n</tool_')
    assert (content, calls) == ("", [])
    content, calls = parser.feed("call>\n\nThat is all")
    assert content == "That is all"
    assert _no_ids(calls) == [
        {"name": "get_weather", "args": {"city": "Rome"}, "type": "tool_call"}
    ]
    assert parser.flush() == ("", [])


def test_tool_parser_flush_parses_an_open_block() -> None:
    parser = ToolCallMarkupParser()
    assert parser.feed('<tool_call>{"name": "f"}') == ("", [])
    content, calls = parser.flush()
    assert content == ""
    assert _no_ids(calls) == [{"name": "f", "args": {}, "type": "tool_call"}]
    assert parser.flush() == ("", [])


@pytest.mark.parametrize("text", TOOL_SAMPLES)
def test_tool_stream_equals_whole_at_any_cut(text: str) -> None:
    content, calls, invalid = parse_tool_calls(text)
    expected = (content, _no_ids(calls), _no_ids(invalid))
    rng = random.Random(text)
    for pieces in _partitions(text, rng, count=40):
        got_content, got_calls, got_invalid = _stream_tools(pieces)
        got = (got_content, _no_ids(got_calls), _no_ids(got_invalid))
        assert got == expected, pieces


@pytest.mark.parametrize("text", TOOL_SAMPLES)
def test_tool_stream_holds_back_no_more_than_a_tag_prefix(text: str) -> None:
    for cut in range(len(text) + 1):
        parser = ToolCallMarkupParser()
        parser.feed(text[:cut])
        held, _ = parser.flush()
        assert len(held) < len("<tool_call>")
        assert "<tool_call>".startswith(held)


def test_tool_random_texts_never_raise_and_stream_equals_whole() -> None:
    rng = random.Random(11)
    alphabet = [
        "<tool_call>",
        "</tool_call>",
        "<tool",
        '{"name": "f"',
        ', "arguments": {"a": 1}',
        "}",
        '"',
        "\n",
        "x",
    ]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        content, calls, invalid = parse_tool_calls(text)
        expected = (content, _no_ids(calls), _no_ids(invalid))
        for pieces in _partitions(text, rng, count=3):
            got_content, got_calls, got_invalid = _stream_tools(pieces)
            assert (got_content, _no_ids(got_calls), _no_ids(got_invalid)) == expected


# ---------------------------------------------------------- to_tool_call_chunks
def test_tool_call_chunks_sum_to_the_tool_calls() -> None:
    parser = ToolCallMarkupParser()
    first = parser.feed('<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>')
    second = parser.feed('<tool_call>{"name": "b", "arguments": {}}</tool_call>')
    bad = parser.feed("<tool_call>{not json}</tool_call>")
    chunks = [
        AIMessageChunk(content="", tool_call_chunks=to_tool_call_chunks(first[1], 0)),
        AIMessageChunk(content="", tool_call_chunks=to_tool_call_chunks(second[1], 1)),
        AIMessageChunk(content="", tool_call_chunks=to_tool_call_chunks(bad[1], 2)),
    ]
    total = chunks[0] + chunks[1] + chunks[2]
    assert isinstance(total, AIMessageChunk)
    assert total.tool_calls == [*first[1], *second[1]]
    assert [(c["name"], c["args"], c["id"]) for c in total.invalid_tool_calls] == [
        (None, "{not json}", bad[1][0]["id"])
    ]


# -------------------------------------------------------------- both together
COMBINED_SAMPLES = [
    '<think>\nI should call the tool.\n</think>\n\n<tool_call>\n{"name": "f", '
    '"arguments": {"a": 1}}\n</tool_call>',
    '<think>a <tool_call>{"name": "in_reasoning"}</tool_call></think>text',
    'plan</think>\n<tool_call>{"name": "g"}</tool_call>\nok',
    *THINK_SAMPLES[:6],
    *TOOL_SAMPLES[2:6],
]


def test_markup_parser_keeps_tool_markup_inside_reasoning() -> None:
    content, reasoning, calls, invalid = split_markup(
        COMBINED_SAMPLES[1], think=True, tool_calls=True
    )
    assert (content, reasoning, calls, invalid) == (
        "text",
        'a <tool_call>{"name": "in_reasoning"}</tool_call>',
        [],
        [],
    )


@pytest.mark.parametrize("starts_inside", [False, True])
@pytest.mark.parametrize("think", [False, True])
@pytest.mark.parametrize("tools", [False, True])
@pytest.mark.parametrize("text", COMBINED_SAMPLES)
def test_markup_parser_stream_equals_whole(
    text: str, think: bool, tools: bool, starts_inside: bool
) -> None:
    content, reasoning, calls, invalid = split_markup(
        text, think=think, tool_calls=tools, starts_inside=starts_inside
    )
    expected = (content, reasoning, _no_ids([*calls, *invalid]))
    rng = random.Random(text)
    for pieces in _partitions(text, rng, count=10):
        parser = MarkupParser(
            think=think, tool_calls=tools, starts_inside=starts_inside
        )
        got_c, got_r, got_calls = [], [], []
        for piece in [*pieces, None]:
            c, r, new = parser.flush() if piece is None else parser.feed(piece)
            got_c.append(c)
            got_r.append(r)
            got_calls += new
        assert parser.calls_emitted == len(got_calls)
        valid = [call for call in got_calls if call["type"] == "tool_call"]
        bad = [call for call in got_calls if call["type"] != "tool_call"]
        got = ("".join(got_c), "".join(got_r), _no_ids([*valid, *bad]))
        assert got == expected, pieces


def test_markup_parser_with_nothing_enabled_is_a_pass_through() -> None:
    parser = MarkupParser(think=False, tool_calls=False)
    assert parser.feed("<think>x</think>") == ("<think>x</think>", "", [])
    assert parser.flush() == ("", "", [])
