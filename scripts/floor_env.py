"""The environment of the declared floors: every runtime dependency at its lowest version.

    python scripts/floor_env.py [VENV]      # default .venv-floors; prints its python

pyproject's ``[project].dependencies`` each say ``name>=floor``; this builds (or
reuses, while pyproject is unchanged) a virtual environment with the package in
editable mode, its ``test`` group, and a constraints file pinning every runtime
dependency to its floor (``VENV/constraints-floor.txt``), then checks that the
installed versions are exactly those. ``make unit_tests_floors`` runs the unit suite
in it; ``make unit_tests`` runs it on the newest versions the resolver picks. uv
installs where found (`setup_rig.pip_command`), else pip.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

# setup_rig (uv or pip, as the rig installs) is beside this file; importing it puts
# the clone's root, where rig.py is, on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_rig import pip_command

from rig import _release as rig_release

ROOT = Path(__file__).resolve().parents[1]
FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def floors(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """Runtime dependency -> its declared floor (every one must declare ``>=``)."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        match = FLOOR.match(dep)
        if match is None:
            msg = f"runtime dependency {dep!r} declares no floor (name>=version)"
            raise SystemExit(msg)
        out[match.group(1).lower()] = match.group(2)
    return out


def _release(version: str) -> tuple[int, ...]:
    """``"3.30"`` and ``"3.30.0"`` -> ``(3, 30, 0)`` (`rig._release`, zeros padded)."""
    return (*rig_release(version), 0, 0, 0)[:3]


def build(where: Path) -> Path:
    pins = floors()
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    py = where / "bin" / "python"
    stamp = where / ".langchain-vllm-floors"
    if stamp.exists() and stamp.read_text() == key:
        return py
    if not py.exists():
        venv.EnvBuilder(with_pip=True).create(where)
        subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip>=25.1"],
            check=True,
        )
    constraints = where / "constraints-floor.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
    command = [
        *pip_command(str(py)),
        "-e",
        ".",
        "--group",
        "test",
        "-c",
        str(constraints),
    ]
    subprocess.run(command, check=True, cwd=ROOT)  # --group reads ./pyproject.toml
    probe = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
    for name, floor in pins.items():
        got = subprocess.run(
            [str(py), "-c", probe, name], check=True, capture_output=True, text=True
        ).stdout.strip()
        if _release(got) != _release(floor):
            raise SystemExit(f"{name} {got} installed, not its floor {floor}")
    stamp.write_text(key)
    return py


def main(argv: list[str]) -> int:
    where = Path(argv[0]) if argv else ROOT / ".venv-floors"
    py = build(where.resolve())
    print(", ".join(f"{n}=={v}" for n, v in floors().items()), file=sys.stderr)
    print(py)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
