"""The package's import graph read from the source, function-local imports included.

Used by ``tests/system/test_layout.py``; kept apart so that the same graph can be printed
(``python tests/import_graph.py``) when a layer rule fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "wganlab"

# top to bottom; each layer may import only the layers below it (and itself)
LAYERS = ["wganlab.__main__", "wganlab.cli", "wganlab.api", "wganlab.experiments", "wganlab.report",
          "wganlab.observe", "wganlab.training", "wganlab.runs", "wganlab.config", "wganlab.metrics",
          "wganlab.data", "wganlab.core", "wganlab.util"]


def modules() -> dict[str, Path]:
    """Module name -> file, for every .py file of the package."""
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(name: str, known) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, known) -> set[str]:
    """The package modules ``module`` imports, anywhere in its file (functions included)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            if target.split(".")[0] != PACKAGE:
                continue
            resolved = _resolve(target, known)
            if resolved and resolved != module:
                found.add(resolved)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer_of(module: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return index
    return None


def upward_imports(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a module imports a layer above its own."""
    bad = []
    for source, targets in edges.items():
        for target in targets:
            low, high = layer_of(source), layer_of(target)
            if low is not None and high is not None and high < low:
                bad.append((source, target))
    return sorted(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


if __name__ == "__main__":
    edges = graph()
    for source, target in upward_imports(edges):
        print(f"upward: {source} -> {target}")
    for component in cycles(edges):
        print("cycle:", " <-> ".join(component))
