"""(a) The sidecar's pytest suite on the device, and what in it cannot run or hold there.

pytest runs in a child process with ``GRADPROM_TEST_DEVICE`` set (the tests' device-aware
factories and sessions then use it; on CUDA they run with deterministic kernels, see
``tests/conftest.py``). Its JUnit report gives every failure with its message and every skip
with its reason: tests of the wire skip where pyzmq or msgpack is missing, DICOM tests where
pydicom is.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[3]  # python/: the package and its tests
# Test-only requirements a test file imports at its top (CI installs them, so there they never skip);
# a bare GPU machine may lack them, and then the file is left out and listed as skipped, with why.
TEST_ONLY_MODULES = ("nibabel", "torchmetrics", "tensorboard")


def _top_imports(path: Path) -> set[str]:
    """The top-level package names a test file imports at module level."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def left_out(tests: list[str]) -> list[tuple[str, str]]:
    """(test file, missing module) for each file under ``tests`` that imports a test-only module this Python lacks.

    :param tests: test files or folders, relative to python/.
    """
    files = sorted(f for t in tests for f in ([PYTHON_DIR / t] if t.endswith(".py") else (PYTHON_DIR / t).glob("test_*.py")))
    out = []
    for f in files:
        missing = [m for m in TEST_ONLY_MODULES if m in _top_imports(f) and importlib.util.find_spec(m) is None]
        if missing:
            out.append((f.relative_to(PYTHON_DIR).as_posix(), missing[0]))
    return out


@dataclass
class SuiteResult:
    """Counts, and each failing or skipped test with why."""

    device: str
    passed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.note


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:200] if (text or "").strip() else ""


def _skip_reason(skip: ET.Element) -> str:
    """A skip's reason; a skipped file's is inside the text: ``('conftest.py', 31, 'Skipped: REASON')``."""
    message = _first_line(skip.get("message"))
    if message == "collection skipped":
        try:
            where = ast.literal_eval((skip.text or "").strip())
            return str(where[2]).removeprefix("Skipped: ")
        except (ValueError, SyntaxError, IndexError, TypeError):
            return _first_line(skip.text) or message
    return message


def parse_junit(path: Path, device: str) -> SuiteResult:
    """Read pytest's JUnit XML report.

    :param device: the device the tests ran on (for the result).
    """
    out = SuiteResult(device)
    for case in ET.parse(path).getroot().iter("testcase"):
        cls, name = case.get("classname", ""), case.get("name", "")
        name = (f"{cls}::{name}" if cls else f"{name} (the whole file)").removeprefix("tests.")
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            out.failed.append((name, _first_line(bad.get("message")) or _first_line(bad.text)))
        elif skip is not None:
            out.skipped.append((name, _skip_reason(skip)))
        else:
            out.passed += 1
    return out


def run_suite(device: str, tests: list[str], timeout_s: float, env_extra: dict[str, str], workdir: Path) -> SuiteResult:
    """Run pytest on ``tests`` (paths under python/) with the tests' device set to ``device``.

    :param device: ``cuda`` or ``cpu``.
    :param tests: test files or folders, relative to python/.
    :param timeout_s: the child is stopped after this long (the result says so).
    :param env_extra: more environment for the child (PYTHONPATH additions, e.g. an import blocker).
    :param workdir: where the JUnit report is written.
    """
    report = workdir / f"pytest-{device}.xml"
    env = {**os.environ, **env_extra, "GRADPROM_TEST_DEVICE": device, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env_extra.get("PYTHONPATH"), str(PYTHON_DIR)) if p)
    ignored = left_out(tests)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests]
    cmd += [f"--ignore={f}" for f, _ in ignored]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=PYTHON_DIR, env=env, capture_output=True, text=True, timeout=timeout_s)
        note = "" if proc.returncode in (0, 1) else f"pytest exited with {proc.returncode}: {_first_line(proc.stderr or proc.stdout)}"
    except subprocess.TimeoutExpired:
        note = f"pytest stopped after {timeout_s:.0f} s (the figures below cover the tests reported before that)"
    result = parse_junit(report, device) if report.exists() else SuiteResult(device)
    result.seconds = time.perf_counter() - t0
    result.note = note if note or report.exists() else "pytest wrote no report"
    result.skipped += [
        (f"{Path(f).stem} (the whole file)", f"{m} is not installed (a bare GPU machine has only PyTorch)") for f, m in ignored
    ]
    return result
