"""(a) The sidecar's pytest suite on the device, and what in it cannot run or hold there.

pytest runs in a child process with ``GRADPROM_TEST_DEVICE`` set (the tests' device-aware
factories and sessions then use it; on CUDA they run with deterministic kernels, see
``tests/conftest.py``). Its JUnit report gives every failure with its message and every skip
with its reason: a test that needs a module the machine lacks (pyzmq, msgpack, pydicom, nibabel,
scikit-image, torchmetrics, tensorboard) skips through ``conftest.needs``, naming it.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[3]  # python/: the package and its tests
# A gpu-check inside the checked suite would run the suite again (on the CPU): left out, and listed.
NESTED = "tests/test_gpucheck.py::test_gpu_check_runs_every_part_on_the_cpu_without_the_optional_modules"
INTERRUPT_GRACE_S = 30.0  # after SIGINT, how long pytest has to write its report before its process group is ended


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
        if not name:
            continue  # the nameless case an interrupted pytest adds for the test it was in (not a pass)
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


def _end_group(proc: subprocess.Popen[bytes], grace_s: float) -> str:
    """Interrupt pytest's process group (SIGINT: pytest writes its report), then end what is left of it.

    :returns: how it ended, for the result's note.
    """
    how = "interrupted"
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            how = "killed"
    return how


def run_suite(
    device: str,
    tests: list[str],
    timeout_s: float,
    env_extra: dict[str, str],
    workdir: Path,
    grace_s: float = INTERRUPT_GRACE_S,
) -> SuiteResult:
    """Run pytest on ``tests`` (paths under python/) with the tests' device set to ``device``.

    pytest runs in its own process group. At ``timeout_s`` it gets SIGINT, so that it writes its
    JUnit report of the tests done so far, then the group (its sidecars, its ranks) is ended;
    whatever remains of the group when pytest exits is ended too.

    :param device: ``cuda`` or ``cpu``.
    :param tests: test files or folders, relative to python/ (or absolute).
    :param timeout_s: the child is interrupted after this long (the result says so).
    :param env_extra: more environment for the child (PYTHONPATH additions, e.g. an import blocker).
    :param workdir: where the JUnit report and pytest's output are written.
    :param grace_s: how long an interrupted pytest has to write its report.
    """
    report = workdir / f"pytest-{device}.xml"
    report.unlink(missing_ok=True)
    env = {**os.environ, **env_extra, "GRADPROM_TEST_DEVICE": device, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env_extra.get("PYTHONPATH"), str(PYTHON_DIR)) if p)
    nested = [NESTED] if any(t.rstrip("/") in ("tests", "tests/test_gpucheck.py") for t in tests) else []
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests]
    cmd += [f"--deselect={n}" for n in nested]
    t0 = time.perf_counter()
    with open(workdir / f"pytest-{device}.out", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=PYTHON_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
            note = "" if code in (0, 1) else f"pytest exited with {code}: {_first_line(_tail(workdir / f'pytest-{device}.out'))}"
        except subprocess.TimeoutExpired:
            how = _end_group(proc, grace_s)
            where = [ln.rsplit(": ", 1)[0] for ln in _lines(workdir / f"pytest-{device}.out") if ln.endswith(": KeyboardInterrupt")]
            note = f"pytest {how} after {timeout_s:.0f} s" + (f", in {where[-1]}" if where else "")
            note += " (the figures below cover the tests that finished before that)"
        _end_leftovers(proc.pid)
    result = parse_junit(report, device) if report.exists() else SuiteResult(device)
    result.seconds = time.perf_counter() - t0
    result.note = note if note or report.exists() else "pytest wrote no report"
    result.skipped += [(n.removeprefix("tests/").replace(".py", ""), "a gpu-check inside the checked suite (left out)") for n in nested]
    return result


def _end_leftovers(pgid: int) -> None:
    """End what pytest left running in its group (a sidecar or rank a failed test did not stop)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]


def _tail(path: Path) -> str:
    """The last non-empty line of pytest's output (why it could not run)."""
    lines = _lines(path)
    return lines[-1] if lines else ""
