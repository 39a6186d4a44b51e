"""The package's import graph: no cycles, and no helper module imports a class above it.

Data flows one way: the model classes (and the modules built on them) use the private
helpers and the public data modules (errors, parameter types, served models); a helper
never imports a model class. Imports under `if TYPE_CHECKING:` are left out (they do
not run).
"""

import ast
from pathlib import Path

import langchain_vllm

PACKAGE = Path(langchain_vllm.__file__).parent
BOTTOM = {"errors", "params", "structured", "models"}
"""Public modules that hold data types and may be imported by the helpers."""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "langchain_vllm":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("langchain_vllm."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.split(".")[1]
                for alias in node.names
                if alias.name.startswith("langchain_vllm.")
            )
    return found


def _graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return {
        p.stem: _imports(p) & modules
        for p in PACKAGE.glob("*.py")
        if p.stem != "__init__"
    }


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_helpers_do_not_import_upward() -> None:
    upward = {
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module.startswith("_") or module in BOTTOM
        for target in targets
        if not (target.startswith("_") or target in BOTTOM)
    }
    assert upward == set()
