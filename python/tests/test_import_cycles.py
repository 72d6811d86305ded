"""scripts/check-python-cycles.py: finds cycles through any import, function-local and relative ones included."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check-python-cycles.py"


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_python_cycles", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_function_local_import_still_closes_a_cycle(tmp_path: Path) -> None:
    check = _checker()
    _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg.b import f\n",
            "b.py": "def f():\n    from pkg.a import g  # hidden from the loader, not from the check\n",
            "sub/__init__.py": "",
            "sub/c.py": "from ..a import f\n",
        },
    )
    graph = check.import_graph(tmp_path, "pkg")
    assert graph["pkg.sub.c"] == {"pkg.a"}  # relative import resolved; `pkg/__init__` is not an edge
    assert check.cycles(graph) == [["pkg.a", "pkg.b"]]


def test_from_package_import_module_is_an_edge_to_the_module(tmp_path: Path) -> None:
    check = _checker()
    _package(tmp_path, {"__init__.py": "from pkg import a\n", "a.py": "import pkg.b\n", "b.py": "X = 1\n"})
    graph = check.import_graph(tmp_path, "pkg")
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": set()}
    assert check.cycles(graph) == []


def test_the_sidecar_package_has_no_cycle_beyond_the_listed_ones() -> None:
    check = _checker()
    found = [tuple(c) for c in check.cycles(check.import_graph(check.ROOT))]
    assert set(found) <= set(check.ALLOWED)
