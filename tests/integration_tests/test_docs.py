"""The README's code, then docs/guide.md's, runs against a live server, as a reader
would run it.

The unit tests compile every block and execute the offline ones; here the README
and the guide run top to bottom in one namespace (the guide builds on the README's
names), the blocks marked `# needs a running vLLM server` included, with
`VLLM_API_BASE` pointing at the session's chat server (the README's quickstart
builds `ChatVLLM()` without a URL). Blocks that need something else
(`# needs a vision model served`, `# needs langchain-community`, ...) stay
compile-only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from langchain_vllm import ChatVLLM
from tests.unit_tests.test_docs import ROOT, Block, blocks

README = ROOT / "README.md"
PAGES = [README, ROOT / "docs" / "guide.md"]
NEEDS_SERVER = "# needs a running vLLM server"


def runs_live(block: Block) -> bool:
    first = block.source.lstrip().splitlines()[0]
    return block.runs_offline or first.startswith(NEEDS_SERVER)


def test_readme_has_live_blocks() -> None:
    found = blocks(README)
    live = [b for b in found if not b.runs_offline and runs_live(b)]
    assert len(live) >= 4, [b.name for b in live]


def test_readme_and_guide_run_top_to_bottom(
    chat_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("VLLM_API_BASE", chat_url)
    monkeypatch.chdir(tmp_path)  # files the pages write (rollouts.jsonl) land here
    namespace: dict[str, object] = {"__name__": "readme"}
    ran = []
    with warnings.catch_warnings():
        # the README's own examples may warn (e.g. an answer cut by max_tokens);
        # a warning is not a failure of the page
        warnings.simplefilter("ignore")
        for block in [b for page in PAGES for b in blocks(page)]:
            if not runs_live(block):
                continue
            try:
                exec(compile(block.source, block.name, "exec"), namespace)
            except Exception as e:
                pytest.fail(f"{block.name} failed: {type(e).__name__}: {e}")
            ran.append(block.name)
    printed = capsys.readouterr().out
    assert len(ran) == len([b for p in PAGES for b in blocks(p) if runs_live(b)])
    # the quickstart's model talked to the session's server, not localhost:8000
    quick = namespace["agent_chat"]
    assert isinstance(quick, ChatVLLM)
    assert quick.openai_api_base == chat_url
    assert "missing variable(s) ['text']" in printed
