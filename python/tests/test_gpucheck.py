"""scripts/gpu-check: its parts on the CPU (``--cpu``, as a bare GPU machine: no pyzmq, msgpack or pydicom), and its report."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradprom_sidecar.tools.gpucheck.suite import parse_junit

REPO = Path(__file__).resolve().parents[2]

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite>
<testcase classname="tests.test_grads" name="test_ok" time="0.1"/>
<testcase classname="tests.test_session" name="test_bits" time="0.1"><failure message="AssertionError: not equal&#10;more">tb</failure></testcase>
<testcase classname="tests.test_data" name="test_dicom" time="0.1"><skipped message="pydicom is not installed (a bare GPU machine has only PyTorch)"/></testcase>
<testcase classname="" name="tests.test_protocol" time="0"><skipped message="collection skipped">('conftest.py', 31, 'Skipped: msgpack is not installed (a bare GPU machine has only PyTorch)')</skipped></testcase>
</testsuite></testsuites>"""


def test_the_junit_report_gives_each_failure_and_skip_with_why(tmp_path: Path) -> None:
    path = tmp_path / "j.xml"
    path.write_text(JUNIT)
    r = parse_junit(path, "cuda")
    assert r.passed == 1 and not r.ok
    assert r.failed == [("test_session::test_bits", "AssertionError: not equal")]
    assert r.skipped == [
        ("test_data::test_dicom", "pydicom is not installed (a bare GPU machine has only PyTorch)"),
        ("test_protocol (the whole file)", "msgpack is not installed (a bare GPU machine has only PyTorch)"),
    ]


WITHOUT = "zmq,msgpack,pydicom,nibabel,torchmetrics,tensorboard,skimage"  # every module the GPU image may lack


@pytest.mark.slow
def test_gpu_check_runs_every_part_on_the_cpu_without_the_optional_modules(tmp_path: Path) -> None:
    """The whole script as a bare GPU machine runs it (--cpu: its small test subset, CPU_TESTS, not the whole suite again)."""
    out = tmp_path / "gpu.md"
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu-check"), "--cpu", "--without", WITHOUT, "--out", str(out)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    md = out.read_text()
    assert md in r.stdout
    for part in (
        "(a) The sidecar's tests",
        "(b) The reference loop",
        "(c) Step profile",
        "(d) Checkpoint save and restore",
        "(e) What the",
    ):
        assert f"### {part}" in md
    assert "0 failed" in md and "**" not in md.split("### (a)")[1].split("###")[0]  # no note: pytest ran to its end
    for module in ("msgpack", "pydicom", "nibabel", "tensorboard"):
        assert f"- {module} is not installed (a bare GPU machine has only PyTorch)" in md
    assert "within tolerance" in md and "differing at steps: none" in md
    for scenario in ("| denoise | fp32 |", "| sr×4 | fp32 |", "| segment | fp32 |"):
        assert scenario in md
    assert "bit-identical" in md and "Restored on the CPU: yes" in md
    assert "256 of 256 equal the CPU's division" in md and "65536 of 65536" in md
    assert "Not installed here: zmq, msgpack, pydicom, nibabel, skimage, torchmetrics, tensorboard (made unimportable" in md


def test_gpu_check_refuses_an_unknown_part() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu-check"), "--cpu", "--skip", "everything"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "--skip: unknown part(s) everything" in r.stderr


HANGS = """
import os, subprocess, sys, time
from pathlib import Path


def test_passes():
    pass


def test_hangs_with_a_child():
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"])
    Path(os.environ["CHILD_PID"]).write_text(str(child.pid))
    time.sleep(600)
"""


def test_a_suite_past_its_time_is_interrupted_keeps_its_results_and_leaves_no_child(tmp_path: Path) -> None:
    """SIGINT first (pytest writes its report of what ran), then the process group, a child ignoring SIGINT included, is ended."""
    from gradprom_sidecar.tools.gpucheck.suite import run_suite

    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_hang.py").write_text(HANGS)
    pid_file = tmp_path / "child.pid"
    for timeout in (5.0, 20.0):  # a loaded machine may start pytest too slowly to reach the hang in 5 s: then once more
        r = run_suite("cpu", [str(tmp_path / "tests" / "test_hang.py")], timeout, {"CHILD_PID": str(pid_file)}, tmp_path, grace_s=10.0)
        if pid_file.exists():
            break
    assert f"pytest interrupted after {timeout:.0f} s, in " in r.note and "test_hang.py:13" in r.note and not r.ok
    assert r.passed == 1  # the report pytest wrote when interrupted
    pid, deadline = int(pid_file.read_text()), time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:  # SIGKILL is sent; the kernel ends the process a moment later
        time.sleep(0.05)
    assert not _running(pid)


def _running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, ended but not yet reaped by an init that does not reap, is not running)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text() if Path("/proc").is_dir() else None
    except FileNotFoundError:
        return False
    if status is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return "\nState:\tZ" not in status


def test_a_failing_part_is_reported_with_its_error_and_the_others_still_run_and_are_written_as_they_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradprom_sidecar.tools import gpucheck
    from gradprom_sidecar.tools.gpucheck import agree, properties

    out = tmp_path / "gpu.md"
    seen: list[str] = []

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def after(device: object, big: bool) -> tuple[bool, list[str]]:
        seen.append(out.read_text())  # what the file held when the last part started
        return True, ["fine"]

    monkeypatch.setattr(agree, "agree", out_of_memory)
    monkeypatch.setattr(properties, "device_properties", after)
    code = gpucheck.main(["--cpu", "--skip", "suite,profile,resume", "--out", str(out)])
    md = out.read_text()
    assert code == 1
    assert "**Failed: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB**" in md and "in out_of_memory" in md
    assert "### (e) What the device promises" in md and "fine" in md
    assert "**Failed: RuntimeError" in seen[0] and "### (e)" not in seen[0]  # (b) was on disk before (e) began


def test_the_profile_steps_as_production_does_and_counts_a_skipped_step_apart() -> None:
    """``train.advance`` with the last reply's decision; a non-finite reply is answered with a skip (no gate, no IP step)."""
    from helpers import make

    from gradprom_sidecar.tools.gpucheck.profile import AdvanceLoop, _where

    _, s = make()
    loop = AdvanceLoop(s, s.config["policy"])
    assert loop.step() == (None, False) and s.pipeline.pending is not None  # the first: gradients only
    assert loop.step()[1] is False and s.step == 1
    assert loop.last is not None
    loop.last = {**loop.last, "finite": False}  # as an fp16 overflow reads back
    assert loop.step() == (None, True) and s.pipeline.skipped == 1 and s.step == 1
    assert _where("/x/python/gradprom_sidecar/training/step.py", 75) == "training/step.py:75"


def test_the_profile_marks_every_phase_in_order_and_leaves_the_step_unhooked() -> None:
    """Timed steps mark each phase as its method starts; outside them the session runs its own methods, no wrapper."""
    from helpers import make

    from gradprom_sidecar.tools.gpucheck.profile import STEP_PHASES, AdvanceLoop, PhaseClock, _timed_step
    from gradprom_sidecar.training.step import PHASES

    _, s = make()
    assert set(STEP_PHASES) == {*PHASES, "policy"}
    loop, clock, gates = AdvanceLoop(s, s.config["policy"]), PhaseClock(s.device), []
    _timed_step(loop, clock, gates)  # the first: gradients only
    _timed_step(loop, clock, gates)
    first, second = ([name for name, _ in marks] for marks in clock.steps)
    after_reply = ["inputs", "forward", "backward", "gram", "readback", "vr_step", "prefetch", "end"]
    assert first == after_reply and second == ["policy", "merge", "ip_step", *after_reply]
    assert not set(PHASES.values()) & vars(s.pipeline).keys()  # unwrapped: an unprofiled step calls no hook
    assert all(d[p] >= 0 for d in clock.durations() for p in d) and s.step == 1
    loop.step()
    assert [len(marks) for marks in clock.steps] == [len(first), len(second)] and s.step == 2  # unprofiled: no mark
