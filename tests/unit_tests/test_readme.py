"""docs/parameters.md's table is generated from `_params.py` and must stay current."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from langchain_vllm.params import (
    VLLMChatParams,
    VLLMCompletionParams,
    param_names,
)
from tests.unit_tests._scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _param_table() -> ModuleType:
    return load_script("param_table")


@pytest.fixture(scope="module")
def param_table() -> ModuleType:
    return _param_table()


def test_page_table_is_the_generated_one(param_table: ModuleType) -> None:
    page = (ROOT / "docs" / "parameters.md").read_text(encoding="utf-8")
    assert param_table.page_table(page) == param_table.table(), (
        "docs/parameters.md's vLLM parameter table is out of date: "
        "run `python scripts/param_table.py --write`"
    )


def test_table_has_every_parameter_once(param_table: ModuleType) -> None:
    names = [row[0].strip("`") for row in param_table.rows()]
    declared = set(param_names(VLLMChatParams)) | set(param_names(VLLMCompletionParams))
    assert sorted(names) == sorted(declared)
    assert len(names) == len(set(names))


def test_rows_carry_type_constraints_and_docs(param_table: ModuleType) -> None:
    rows = {row[0].strip("`"): row for row in param_table.rows()}
    assert rows["min_p"][1] == "`float (≥ 0.0, ≤ 1.0)`"
    assert rows["top_k"][1] == "`int (≥ -1)`"
    assert rows["stop_token_ids"][1] == "`list[int (≥ 0)]`"
    assert rows["structured_outputs"][1] == "`StructuredOutputs \\| dict`"
    assert rows["chat_template"][2] == "chat"
    assert rows["return_prompt_text"][2] == "chat"
    assert rows["top_k"][2] == "chat, completions"
    assert rows["priority"][2].startswith("all")
    doc = VLLMChatParams.model_fields["min_p"].description
    assert doc is not None
    assert rows["min_p"][3] == " ".join(doc.split())
    for row in rows.values():
        assert all(cell and "\n" not in cell for cell in row)


def test_page_markers_are_required(param_table: ModuleType) -> None:
    with pytest.raises(ValueError, match="lacks the markers"):
        param_table.page_table("# no table here")


def test_write_page_replaces_only_the_table(
    param_table: ModuleType, tmp_path: Path
) -> None:
    stale = tmp_path / "parameters.md"
    stale.write_text(
        f"intro\n{param_table.START}\n| old |\n{param_table.END}\noutro\n",
        encoding="utf-8",
    )
    assert param_table.write_page(stale) is True
    text = stale.read_text(encoding="utf-8")
    assert text.startswith("intro\n")
    assert text.endswith(f"{param_table.END}\noutro\n")
    assert param_table.page_table(text) == param_table.table()
    assert param_table.write_page(stale) is False


def test_readme_names_the_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
