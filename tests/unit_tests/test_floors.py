"""The declared floors (`scripts/floor_env.py`): what `make unit_tests_floors` pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit_tests._scripts import load_script


def test_every_runtime_dependency_declares_its_floor() -> None:
    floor_env = load_script("floor_env")
    assert floor_env.floors() == {
        "langchain-core": "1.8.1",
        "langchain-openai": "1.8.1",
        "openai": "3.30",
        "httpx2": "2.12",
    }


def test_a_dependency_without_a_floor_is_refused(tmp_path: Path) -> None:
    floor_env = load_script("floor_env")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["openai>=3.30,<4", "extra[x] >= 1.2", "bare"]\n'
    )
    with pytest.raises(SystemExit, match="'bare' declares no floor"):
        floor_env.floors(pyproject)
    pyproject.write_text('[project]\ndependencies = ["openai>=3.30,<4", "x[y]>=1.2"]\n')
    assert floor_env.floors(pyproject) == {"openai": "3.30", "x": "1.2"}
