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
    Markup,
    MarkupParser,
    ThinkSplitter,
    ToolCallMarkupParser,
    split_markup,
    to_tool_call_chunks,
)

CALL_ID = re.compile(r"call_[0-9a-f]{32}")

Parsed = tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]


def _no_ids(calls: Sequence[Any]) -> list[dict[str, Any]]:
    """The calls without their ids, after checking each id's form."""
    out = []
    for call in calls:
        assert CALL_ID.fullmatch(call["id"]), call
        out.append({k: v for k, v in call.items() if k != "id"})
    return out


def _whole(text: str, **flags: bool) -> Parsed:
    """`split_markup` of the text, ids checked and dropped."""
    content, reasoning, calls, invalid = split_markup(text, Markup(**flags))
    return content, reasoning, _no_ids(calls), _no_ids(invalid)


def _stream(pieces: Sequence[str], **flags: bool) -> Parsed:
    """The pieces fed to one `MarkupParser` in order, then flushed, joined up."""
    parser = MarkupParser(Markup(**flags))
    content: list[str] = []
    reasoning: list[str] = []
    calls: list[Any] = []
    for piece in [*pieces, None]:
        c, r, new = parser.flush() if piece is None else parser.feed(piece)
        content.append(c)
        reasoning.append(r)
        calls += new
    assert parser.calls_emitted == len(calls)
    valid = [call for call in calls if call["type"] == "tool_call"]
    invalid = [call for call in calls if call["type"] == "invalid_tool_call"]
    assert len(valid) + len(invalid) == len(calls)
    return "".join(content), "".join(reasoning), _no_ids(valid), _no_ids(invalid)


def _reasoning(text: str, *, starts_inside: bool = False) -> tuple[str, str]:
    content, reasoning, _, _ = _whole(
        text, think=True, tool_calls=False, starts_inside=starts_inside
    )
    return content, reasoning


def _tools(text: str) -> tuple[str, list[Any], list[Any]]:
    content, _, calls, invalid = split_markup(text, Markup(tool_calls=True))
    return content, calls, invalid


# ------------------------------------------------------------------- reasoning
@pytest.mark.parametrize(
    ("text", "starts_inside", "expected"),
    [
        ("", False, ("", "")),
        ("Just text.", False, ("Just text.", "")),
        ("<think>\nWhy.\n</think>\n\nFour.", False, ("Four.", "\nWhy.\n")),
        ("<think></think>Four.", False, ("Four.", "")),
        ("Why.</think>\n\nFour.", True, ("Four.", "Why.")),
        ("Why.</think>Four.", False, ("Why.</think>Four.", "")),
        ("<think>never closed", False, ("", "never closed")),
        ("only reasoning", True, ("", "only reasoning")),
        ("A <think>r1</think> B <think>r2</think> C", False, ("A B C", "r1r2")),
        ("<think>a <think> b</think>c", False, ("c", "a <think> b")),
        ("x\n<think>r</think>", False, ("x\n", "r")),
        ("<think>r</think>  \n  ", False, ("", "r")),
        (
            "</think></think>\n<think>\n</think>  tail  ",
            True,
            ("</think>\ntail  ", "\n"),
        ),
        (
            "<thinking>not a tag</thinking>",
            False,
            ("<thinking>not a tag</thinking>", ""),
        ),
        ("ends with a partial <thi", False, ("ends with a partial <thi", "")),
        ("<think>partial </thin", False, ("", "partial </thin")),
        ("ünïcödé <think>思考</think> 答え", False, ("ünïcödé 答え", "思考")),
    ],
)
def test_reasoning_is_split_from_content(
    text: str, starts_inside: bool, expected: tuple[str, str]
) -> None:
    assert _reasoning(text, starts_inside=starts_inside) == expected


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
    assert splitter.inside
    assert splitter.feed("let me see") == ("", "let me see")
    assert splitter.feed("</think>\n\nFour") == ("Four", "")
    assert splitter.flush() == ("", "")


# ------------------------------------------------------------------ tool calls
def test_several_tool_calls_and_the_text_around_them() -> None:
    content, calls, invalid = _tools(
        'Let me check.\n<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>\n'
        '<tool_call>{"name": "b", "parameters": {"y": [1, 2]}}</tool_call>\nDone.'
    )
    assert content == "Let me check.\nDone."
    assert _no_ids(calls) == [
        {"name": "a", "args": {"x": 1}, "type": "tool_call"},
        {"name": "b", "args": {"y": [1, 2]}, "type": "tool_call"},
    ]
    assert invalid == []
    assert calls[0]["id"] != calls[1]["id"]


@pytest.mark.parametrize(
    ("body", "args"),
    [
        ('\n{"name": "f", "arguments": {"city": "Paris"}}\n', {"city": "Paris"}),
        ('{"name": "f", "arguments": "{\\"q\\": 1}"}', {"q": 1}),
        ('{"name": "f", "arguments": ""}', {}),
        ('{"name": "f", "arguments": null}', {}),
        ('{"name": "f"}', {}),
        ('{"name": "f", "parameters": {"p": true}}', {"p": True}),
        ('{"name": "f", "arguments": {"s": "</tool"}}', {"s": "</tool"}),
    ],
)
def test_tool_call_argument_forms(body: str, args: dict[str, Any]) -> None:
    content, calls, invalid = _tools(f"<tool_call>{body}</tool_call>")
    assert (content, _no_ids(calls), invalid) == (
        "",
        [{"name": "f", "args": args, "type": "tool_call"}],
        [],
    )


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
    content, calls, invalid = _tools(f"x<tool_call> {body} </tool_call>y")
    assert content == "xy"
    assert calls == []
    assert len(invalid) == 1
    assert invalid[0]["type"] == "invalid_tool_call"
    assert invalid[0]["name"] == name
    assert invalid[0]["args"] == body
    assert error in (invalid[0]["error"] or "")
    assert "unterminated" not in (invalid[0]["error"] or "")
    assert CALL_ID.fullmatch(invalid[0]["id"] or "")


def test_unterminated_block_is_parsed_to_the_end() -> None:
    content, calls, invalid = _tools(
        'Sure <tool_call>{"name": "f", "arguments": {"a": 1}}'
    )
    assert (content, _no_ids(calls), invalid) == (
        "Sure ",
        [{"name": "f", "args": {"a": 1}, "type": "tool_call"}],
        [],
    )
    content, calls, invalid = _tools('<tool_call>{"name": "f", "argu')
    assert (content, calls) == ("", [])
    assert invalid[0]["args"] == '{"name": "f", "argu'
    assert "unterminated" in (invalid[0]["error"] or "")


def test_text_around_blocks_and_partial_tags_is_content() -> None:
    text = "a <tool b <tool_ca c </tool_call> d"
    assert _tools(text) == (text, [], [])
    assert _tools("ends with a partial <tool_ca") == (
        "ends with a partial <tool_ca",
        [],
        [],
    )
    content, calls, invalid = _tools(
        '<tool_call></tool_call><tool_call>{"name": "x"}</tool_call>  \n tail'
    )
    assert content == "tail"
    assert _no_ids(calls) == [{"name": "x", "args": {}, "type": "tool_call"}]
    assert [call["args"] for call in invalid] == [""]


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


def test_tool_parser_flush_parses_an_open_block_once() -> None:
    parser = ToolCallMarkupParser()
    assert parser.feed('<tool_call>{"name": "f"}') == ("", [])
    content, calls = parser.flush()
    assert content == ""
    assert _no_ids(calls) == [{"name": "f", "args": {}, "type": "tool_call"}]
    assert parser.flush() == ("", [])


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


# ------------------------------------------------------------- both together
def test_reasoning_then_a_tool_call() -> None:
    text = (
        "<think>\nI should call the tool.\n</think>\n\n"
        '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    )
    assert _whole(text, think=True, tool_calls=True) == (
        "",
        "\nI should call the tool.\n",
        [{"name": "f", "args": {"a": 1}, "type": "tool_call"}],
        [],
    )
    text = 'plan</think>\n<tool_call>{"name": "g"}</tool_call>\nok'
    assert _whole(text, think=True, tool_calls=True, starts_inside=True) == (
        "ok",
        "plan",
        [{"name": "g", "args": {}, "type": "tool_call"}],
        [],
    )


def test_tool_markup_inside_reasoning_is_reasoning() -> None:
    text = '<think>a <tool_call>{"name": "in_reasoning"}</tool_call></think>text'
    assert split_markup(text, Markup(think=True, tool_calls=True)) == (
        "text",
        'a <tool_call>{"name": "in_reasoning"}</tool_call>',
        [],
        [],
    )


def test_markup_parser_counts_the_calls_it_emitted() -> None:
    parser = MarkupParser(Markup(think=True, tool_calls=True))
    parser.feed('<tool_call>{"name": "a"}</tool_call><tool_call>{bad}</tool_call>')
    assert parser.calls_emitted == 2
    parser.feed('<tool_call>{"name": "b"}')
    assert parser.calls_emitted == 2
    parser.flush()
    assert parser.calls_emitted == 3


def test_markup_parser_with_nothing_enabled_is_a_pass_through() -> None:
    parser = MarkupParser(Markup())
    assert parser.feed("<think>x</think>") == ("<think>x</think>", "", [])
    assert parser.flush() == ("", "", [])
    text = "<think>x</think><tool_call>{}</tool_call>"
    assert split_markup(text, Markup()) == (text, "", [], [])


# --------------------------------------------------- chunking does not matter
SAMPLES = [
    "",
    "Plain answer, no tags.",
    "<think>\nAdd two and two.\n</think>\n\nFour.",
    "Before <think>r1</think> middle <think>r2</think>\n after",
    "<think>cut off while thinking",
    "<think>a</think>\n\n",
    "a < b and c <th d </think> e",
    "<think>x <think> nested is text </th </think>done",
    "<<think>>x</think></think>",
    "<think>ends inside with a partial </thin",
    "</think></think>\n<think>\n</think>  tail  ",
    "ünïcödé <think>思考</think> 答え",
    'Let me check.\n<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>\n'
    '<tool_call>{"name": "b", "parameters": {"y": [1, 2]}}</tool_call>\nDone.',
    '<tool_call>{"name": "s", "arguments": "{\\"q\\": \\"hi\\"}"}</tool_call>',
    "<tool_call>{not json}</tool_call>after",
    '<tool_call>{"name": "bad", "arguments": [1, 2]}</tool_call>',
    '<tool_call>{"name": "open", "arguments": {"x": 1}}',
    "<tool_call>{garbage without end",
    "a <tool b <tool_ca c </tool_call> d",
    '<tool_call>{"name": "t", "arguments": {"s": "</tool"}}</tool_call>',
    '<tool_call></tool_call><tool_call>{"name": "x"}</tool_call>  \n tail',
    '<think>\nI should call the tool.\n</think>\n\n<tool_call>\n{"name": "f", '
    '"arguments": {"a": 1}}\n</tool_call>',
    '<think>a <tool_call>{"name": "in_reasoning"}</tool_call></think>text',
    'plan</think>\n<tool_call>{"name": "g"}</tool_call>\nok',
]

FLAGS = [
    {"think": think, "tool_calls": tools, "starts_inside": inside}
    for think, tools, inside in itertools.product([False, True], repeat=3)
]


def _chunkings(text: str, rng: random.Random, count: int) -> Iterator[list[str]]:
    """Every single cut, char by char, and `count` random multi-cut chunkings."""
    for cut in range(len(text) + 1):
        yield [text[:cut], text[cut:]]
    yield list(text)
    for _ in range(count):
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text), 5)))
        bounds = [0, *cuts, len(text)]
        yield [text[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "-".join(k for k in f if f[k]))
@pytest.mark.parametrize("text", SAMPLES)
def test_any_chunking_gives_the_whole_text_result(
    text: str, flags: dict[str, bool]
) -> None:
    expected = _whole(text, **flags)
    assert _stream([text], **flags) == expected
    rng = random.Random(text)
    for pieces in _chunkings(text, rng, count=10):
        assert _stream(pieces, **flags) == expected, pieces


def test_random_texts_never_raise_and_any_chunking_gives_the_same() -> None:
    rng = random.Random(7)
    alphabet = [
        *("<think>", "</think>", "<tool_call>", "</tool_call>"),
        *("<", "</", "<th", "<tool", "think>", "\n", " ", "x"),
        *('{"name": "f"', ', "arguments": {"a": 1}', "}", '"'),
    ]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        flags = rng.choice(FLAGS)
        expected = _whole(text, **flags)
        for pieces in _chunkings(text, rng, count=3):
            assert _stream(pieces, **flags) == expected, (text, flags, pieces)


@pytest.mark.parametrize("starts_inside", [False, True])
@pytest.mark.parametrize("text", SAMPLES)
def test_streams_hold_back_no_more_than_a_tag_prefix(
    text: str, starts_inside: bool
) -> None:
    for cut in range(len(text) + 1):
        splitter = ThinkSplitter(starts_inside=starts_inside)
        splitter.feed(text[:cut])
        held = "".join(splitter.flush())
        assert len(held) < len("</think>")
        assert "</think>".startswith(held) or "<think>".startswith(held)
        parser = ToolCallMarkupParser()
        parser.feed(text[:cut])
        held, _ = parser.flush()
        assert len(held) < len("<tool_call>")
        assert "<tool_call>".startswith(held)
