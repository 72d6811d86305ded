"""Fails when modules of the sidecar package import each other in a cycle.

Every import statement counts, including those inside functions and under
``TYPE_CHECKING``: a function-local import hides a cycle from Python's loader
but not from a reader. Importing ``pkg.mod`` counts as an edge to ``pkg.mod``
only, not to ``pkg/__init__``, as grimp and import-linter count it.

Run as ``node scripts/run-python.mjs scripts/check-python-cycles.py``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "gradprom_sidecar"
ROOT = Path(__file__).resolve().parent.parent / "python"

# Cycles accepted on purpose, each as the sorted tuple of its modules, with the reason.
ALLOWED: dict[tuple[str, ...], str] = {}


def module_names(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Maps each dotted module name in ``root/package`` to its file."""
    names: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import mod` names a module; `from mod import thing` names the module itself.
            targets = [
                f"{source}.{a.name}" if f"{source}.{a.name}" in known else source
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            # `import a.b.c` where only `a.b` is ours still depends on `a.b`.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package mapped to the package's modules it imports."""
    names = module_names(root, package)
    return {name: imports_of(name, path, set(names)) for name, path in names.items()}


def main() -> int:
    graph = import_graph(ROOT)
    failed = False
    for component in cycles(graph):
        if tuple(component) in ALLOWED:
            continue
        failed = True
        members = set(component)
        print("import cycle among:", file=sys.stderr)
        for module in component:
            inner = sorted(graph[module] & members)
            print(f"  {module} -> {', '.join(inner)}", file=sys.stderr)
    if not failed:
        print(f"no import cycles in {len(graph)} modules of {PACKAGE}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
