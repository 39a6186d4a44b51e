"""Run the walkthrough notebook top to bottom against the live rig servers.

The notebook starts its own servers unless `VLLM_API_BASE` (chat),
`VLLM_EMBEDDINGS_API_BASE` (embeddings), `VLLM_VISION_API_BASE` (vision) and
`VLLM_LORA_API_BASE` (a base model with LoRA adapters) are set; here they point at
the session's servers, so the suite does not start a second copy. The LoRA server,
shared with test_lora.py, is released after the notebook ran. Any failing cell
fails the test
with the cell's source and traceback.

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
    assert _errors(nb) == []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells
    assert all(c.execution_count is not None for c in code_cells)
    text = "\n".join(
        out.get("text", "") or str(out.get("data", {}).get("text/plain", ""))
        for c in code_cells
        for out in c.outputs
    )
    # Checks inside the notebook ran: the token count equals the server's usage.
    assert "equal: True" in text
    assert "same messages as the hand-built template: True" in text
    assert "'name': 'magic_function'" in text
    assert "image tokens equal: True" in text
    assert "invoke: 'Amo programmare.'" in text
    assert "stream: 'Amo programmare.'" in text
    assert "'time_to_first_token_ms'" in text
    # The LoRA section: discovery, runtime load and unload.
    assert "base model chosen: True" in text
    served = "'smollm2-135m-lora-base', 'pineapple'"
    assert f"after load:   [{served}, 'pineapple-2']" in text
    assert f"after unload: [{served}]" in text
    assert "No LoRA adapter 'pineapple-2' is loaded" in text


def main() -> int:
    if "--save" not in sys.argv[1:]:
        print(__doc__)
        return 2
    nb, seconds = execute()
    nbformat.write(nb, NOTEBOOK)
    print(f"Executed and saved {NOTEBOOK} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
