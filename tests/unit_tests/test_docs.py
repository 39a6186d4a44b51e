"""Every Python code block of README.md and docs/*.md compiles, and runs if it can.

The blocks of one file run in order in one namespace, like a reader going through
the page: a block may use names an earlier block defined. A block whose first line
starts with `# needs ` (`# needs a running vLLM server`, `# needs langchain-community`)
is only compiled; every other block is executed here, offline (the unit tests block
the network), so it must not make a request.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMPILE_ONLY = "# needs "
"""First line of a block that needs what unit tests lack (a server, a package)."""

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    source: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def runs_offline(self) -> bool:
        first = self.source.lstrip().splitlines()[0] if self.source.strip() else ""
        return not first.startswith(COMPILE_ONLY)


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        source = textwrap.dedent(match.group("body"))
        found.append(Block(path, line, source))
    return found


ALL_BLOCKS = [block for path in DOCS for block in blocks(path)]


def test_docs_have_python_blocks() -> None:
    readme = blocks(ROOT / "README.md")
    assert len(readme) >= 6
    assert any(block.runs_offline for block in readme)
    assert any(not block.runs_offline for block in readme)


def test_fence_parser_finds_indented_and_plain_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n- item\n\n  ```python\n  # needs a server\n"
        "  y = 2\n  ```\n```bash\nls\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [b.source for b in found] == ["x = 1\n", "# needs a server\ny = 2\n"]
    assert [b.line for b in found] == [2, 7]
    assert [b.runs_offline for b in found] == [True, False]


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.name)
def test_block_compiles(block: Block) -> None:
    compile(block.source, block.name, "exec")


def run_offline_blocks(path: Path) -> dict[str, Any]:
    """Run a page's offline blocks in order, in one namespace; return it."""
    namespace: dict[str, Any] = {"__name__": f"docs_{path.stem}"}
    for block in blocks(path):
        if block.runs_offline:
            exec(compile(block.source, block.name, "exec"), namespace)
    return namespace


# langchain-openai probes socket options when a chat model is built (no connection);
# pytest-socket refuses that socket, langchain-openai falls back, pytest-socket warns.
_SOCKET_PROBE = "ignore:A test tried to use socket:UserWarning"


@pytest.mark.filterwarnings(_SOCKET_PROBE)
@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_offline_blocks_run(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_offline_blocks(path)
    capsys.readouterr()


@pytest.mark.filterwarnings(_SOCKET_PROBE)
def test_readme_blocks_do_what_they_say(capsys: pytest.CaptureFixture[str]) -> None:
    from langchain_vllm import ChatVLLM
    from langchain_vllm.llms import VLLMOpenAI

    namespace = run_offline_blocks(ROOT / "README.md")
    printed = capsys.readouterr().out
    assert "missing variable(s) ['text']" in printed
    assert "unexpected variable(s) ['txt']" in printed
    # the migration example ends with the ChatVLLM that replaces ChatOpenAI
    chat = namespace["chat"]
    assert isinstance(chat, ChatVLLM)
    assert chat.top_k == 20
    assert chat.repetition_penalty == 1.05
    migrating = run_offline_blocks(ROOT / "docs" / "migrating.md")
    assert isinstance(migrating["llm"], VLLMOpenAI)
