"""Run the walkthrough notebook top to bottom against the live rig servers.

The notebook starts its own servers unless `VLLM_API_BASE` (chat),
`VLLM_EMBEDDINGS_API_BASE` (embeddings), `VLLM_VISION_API_BASE` (vision) and
`VLLM_LORA_API_BASE` (a base model with LoRA adapters) are set; here they point at
the session's servers, so the suite does not start a second copy. The LoRA server,
shared with test_lora.py, is released after the notebook ran. Any failing cell
fails the test with the cell's source and traceback.

A second run points only `VLLM_API_BASE` at the rig's plain server (as
`vllm serve MODEL` starts one: no tool parser, no per-request metrics, no stored
responses, no adapters, text only), as a user's own server: every section that
needs more checks for it, prints `(skipped) needs ...` and the notebook goes on to
the end. On the full rig no such note may appear.

Refresh the committed outputs (the notebook then starts its own servers unless the
variables are set in your shell):

    .venv/bin/python tests/integration_tests/test_notebook.py --save
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.integration_tests.conftest import RIG

NOTEBOOK = (
    Path(__file__).resolve().parents[2] / "notebooks" / "vllm_chat_walkthrough.ipynb"
)
CELL_TIMEOUT = 900  # seconds; a cell that starts a server waits for /health


def execute(path: Path = NOTEBOOK) -> tuple[Any, float]:
    """Execute the notebook in a fresh kernel; return it (with outputs) and seconds."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.monotonic()
    client.execute()
    return nb, time.monotonic() - started


NEEDS = "(skipped) needs"
"""How the notebook says a section's server lacks a feature (its `needs` helper)."""


def _text(nb: Any) -> str:
    """Everything the code cells printed or displayed."""
    return "\n".join(
        out.get("text", "") or str(out.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for out in c.outputs
    )


def _ran_to_the_end(nb: Any) -> str:
    assert _errors(nb) == []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells
    assert all(c.execution_count is not None for c in code_cells)
    text = _text(nb)
    assert "Notebook ran in" in text
    return text


def _errors(nb: Any) -> list[str]:
    return [
        f"{out.get('ename')}: {out.get('evalue')}"
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


def test_notebook_runs_top_to_bottom(
    chat_url: str,
    embeddings_url: str,
    vision_url: str,
    lora_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VLLM_API_BASE", chat_url)
    monkeypatch.setenv("VLLM_EMBEDDINGS_API_BASE", embeddings_url)
    monkeypatch.setenv("VLLM_VISION_API_BASE", vision_url)
    monkeypatch.setenv("VLLM_LORA_API_BASE", lora_url)
    try:
        nb, _ = execute()
    except CellExecutionError as e:
        pytest.fail(f"A notebook cell failed:\n{e}")
    finally:
        RIG.release("lora")  # its memory back for the rest of the suite
    check_full_run(nb)


def check_full_run(nb: Any) -> None:
    """What a run against the full rig must show (also for a saved notebook)."""
    text = _ran_to_the_end(nb)
    # Every section ran for real: no feature check skipped anything.
    assert NEEDS not in text
    # Checks inside the notebook ran: the token count equals the server's usage.
    assert "equal: True" in text
    assert "same messages as the hand-built template: True" in text
    assert "'name': 'magic_function'" in text
    assert "image tokens equal: True" in text
    assert "invoke: 'Amo programmare.'" in text
    assert "stream: 'Amo programmare.'" in text
    assert "'time_to_first_token_ms'" in text
    assert "follow-up input:" in text  # a stored response named by a follow-up
    assert "3 vectors of 384 dimensions" in text
    assert "one logprob per completion token: True" in text  # rollouts
    # The LoRA section: discovery, runtime load and unload.
    assert "base model chosen: True" in text
    served = "'smollm2-135m-lora-base', 'pineapple'"
    assert f"after load:   [{served}, 'pineapple-2']" in text
    assert f"after unload: [{served}]" in text
    assert "No LoRA adapter 'pineapple-2' is loaded" in text


def test_notebook_on_a_server_without_optional_features(
    plain_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only VLLM_API_BASE, at a default server: the notebook says what it needs."""
    monkeypatch.setenv("VLLM_API_BASE", plain_url)
    for kind in ("EMBEDDINGS", "VISION", "LORA"):
        monkeypatch.delenv(f"VLLM_{kind}_API_BASE", raising=False)
    try:
        nb, _ = execute()
    except CellExecutionError as e:
        pytest.fail(f"A notebook cell failed on a plain server:\n{e}")
    text = _ran_to_the_end(nb)
    notes = [line for line in text.splitlines() if line.startswith(NEEDS)]
    wanted = [
        "--enable-auto-tool-choice --tool-call-parser hermes",  # tool calling
        "`--runner pooling`): VLLM_EMBEDDINGS_API_BASE",  # embeddings
        "reranker or embedding model",  # reranking
        "vision-language model's server, at VLLM_VISION_API_BASE",  # images
        "VLLM_ENABLE_RESPONSES_API_STORE=1",  # previous_response_id
        "--enable-per-request-metrics",  # response_metadata["metrics"]
        "--enable-lora --lora-modules",  # adapters served
    ]
    for flag in wanted:
        assert any(flag in note for note in notes), (flag, notes)
    # The sections that need nothing more ran for real on the plain server.
    assert "Using the server at VLLM_API_BASE" in text
    assert "Started" not in text  # no rig server started behind the user's back
    assert "equal: True" in text
    assert "invoke: 'Amo programmare.'" in text
    assert "first answer:" in text
    assert "'image_inputs': False" in text
    assert "base model chosen: True" in text
    assert "one logprob per completion token: True" in text


def main() -> int:
    if "--save" not in sys.argv[1:]:
        print(__doc__)
        return 2
    nb, seconds = execute()
    check_full_run(nb)  # only a full run's outputs are committed
    nbformat.write(nb, NOTEBOOK)
    print(f"Executed and saved {NOTEBOOK} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
