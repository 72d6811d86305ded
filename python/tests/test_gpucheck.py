"""scripts/gpu-check: its parts on the CPU (``--cpu``, as a bare GPU machine: no pyzmq, msgpack or pydicom), and its report."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.mark.slow
def test_gpu_check_runs_every_part_on_the_cpu_without_the_wire_or_pydicom(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu-check"), "--cpu", "--without", "zmq,msgpack,pydicom", "--out", str(out)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    md = out.read_text()
    assert md in r.stdout
    for part in ("(a) The sidecar's tests", "(b) The reference loop", "(c) Step profile", "(d) Checkpoint save and restore"):
        assert f"### {part}" in md
    assert "0 failed" in md and "msgpack is not installed" in md and "pydicom is not installed" in md
    assert "within tolerance" in md and "differing at steps: none" in md
    for scenario in ("| denoise | fp32 |", "| sr×4 | fp32 |", "| segment | fp32 |"):
        assert scenario in md
    assert "bit-identical" in md and "Restored on the CPU: yes" in md
    assert "Not installed here: zmq, msgpack, pydicom" in md


def test_gpu_check_refuses_an_unknown_part() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu-check"), "--cpu", "--skip", "everything"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "--skip: unknown part(s) everything" in r.stderr


def test_a_test_file_needing_a_missing_test_only_module_is_left_out_and_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a bare GPU machine (no nibabel, torchmetrics, tensorboard) those files are skipped with why, not failed."""
    from gradprom_sidecar.tools.gpucheck import suite

    real = suite.importlib.util.find_spec
    monkeypatch.setattr(suite.importlib.util, "find_spec", lambda name, *a: None if name == "nibabel" else real(name, *a))
    out = dict(suite.left_out(["tests"]))
    assert out == {"tests/test_volumes.py": "nibabel"}
    assert suite.left_out(["tests/test_grads.py"]) == []
