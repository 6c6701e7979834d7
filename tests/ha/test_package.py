"""The integration's modules import each other without cycles (type-only imports included),
so each can be read, tested and changed from the bottom up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "custom_components" / "lan_guard"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's own modules that ``path`` imports (relative imports resolved)."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package.split(".") if package else []
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join([*base, *([node.module] if node.module else [])])
        for alias in node.names:
            # "from . import x" and "from .pkg import module" name modules; the rest names
            # things inside the target module.
            candidate = f"{target}.{alias.name}" if target else alias.name
            found.add(candidate if candidate in modules else target)
    return found & modules - {name}


def _graph() -> dict[str, set[str]]:
    paths = [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {_module(p) for p in paths}
    return {_module(p): _imports(p, modules) for p in paths}


def test_no_import_cycles() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_graph_sees_the_imports() -> None:
    graph = _graph()
    assert "coordinator" in graph["evacuation.runner"]
    assert "evacuation.record" in graph["evacuation.machine"]
    assert "runtime" in graph["switch"]
    assert not graph["evacuation.record"]
