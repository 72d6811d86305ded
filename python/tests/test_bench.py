"""The benchmark worker's pieces: the GradCosine step does the reference step's work, and the helpers round-trip."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import torch
from helpers import tiny_config

from gradprom_sidecar.tools import bench
from gradprom_sidecar.tools.reference import reference_step
from gradprom_sidecar.training.session import Session


def test_gradcosine_step_makes_the_same_update_as_the_reference_step() -> None:
    # joint with a large λ: the VR term is always in and visible, so a wrong merge would show.
    cfg = tiny_config(policy={"name": "joint", "lambda": 0.5, "lambda_mode": "plain", "threshold": 0, "granularity": "global"})
    ref, gc = Session(cfg, torch.device("cpu")), Session(cfg, torch.device("cpu"))
    for _ in range(2):
        assert reference_step(ref, cfg["policy"])[2] > 0
        assert bench.gradcosine_step(gc, cfg["policy"]) > 0
    assert ref.step == gc.step == 2
    for (name, a), b in zip(ref.ip.state_dict().items(), gc.ip.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=f"ip.{name}")
    for (name, a), b in zip(ref.vr.state_dict().items(), gc.vr.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=f"vr.{name}")
    assert all(p.grad is None for p in [*gc.ip.parameters(), *gc.vr.parameters()])


def test_helpers_round_trip() -> None:
    v = torch.arange(10, dtype=torch.float32) / 3
    back = base64.b64decode(bench.echo_b64(base64.b64encode(v.numpy().tobytes()).decode()))
    assert torch.equal(torch.frombuffer(bytearray(back), dtype=torch.float32), v)
    assert bench.echo_list(v.tolist()) == v.tolist()
    times = bench.memcpy_ms(4096, 3)
    assert len(times) == 3 and all(t >= 0 for t in times)


def test_serve_answers_json_lines_and_reports_errors() -> None:
    python_dir = Path(bench.__file__).resolve().parents[2]
    lines = [
        {"cmd": "info"},
        {"cmd": "nope"},
        {"cmd": "create", "name": "s", "config": tiny_config(), "pretrain": 0},
        {"cmd": "step", "name": "s", "kind": "ref"},
        {"cmd": "quit"},
    ]
    out = subprocess.run(
        [sys.executable, "-m", "gradprom_sidecar.tools.bench", "serve"],
        input="".join(json.dumps(x) + "\n" for x in lines),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=python_dir,
        check=True,
    ).stdout
    replies = [json.loads(line) for line in out.splitlines()]
    assert [r["ok"] for r in replies] == [True, False, True, True]
    assert replies[0]["torch"] == torch.__version__
    assert "unknown command" in replies[1]["error"]
    assert replies[3]["step"] == 1 and replies[3]["ms"] > 0


def test_the_lean_loop_trains_its_own_copies_of_the_sessions_networks() -> None:
    cfg = tiny_config(policy={"name": "joint", "lambda": 0.5, "lambda_mode": "plain", "threshold": 0, "granularity": "global"})
    s = Session(cfg, torch.device("cpu"))
    before = [p.detach().clone() for p in [*s.ip.parameters(), *s.vr.parameters()]]
    lean = bench.LeanLoop(s)
    assert all(torch.equal(a, b) and a.data_ptr() != b.data_ptr() for a, b in zip(before, [*lean.ip.parameters(), *lean.vr.parameters()]))
    assert all(bench.LeanLoop.step(lean) > 0 for _ in range(2))
    assert all(not torch.equal(a, b) for a, b in zip(before, [*lean.ip.parameters(), *lean.vr.parameters()]) if a.numel() > 1)
    assert all(torch.equal(a, b) for a, b in zip(before, [*s.ip.parameters(), *s.vr.parameters()]))  # the session is untouched
    assert all(p.grad is None for p in [*lean.ip.parameters(), *lean.vr.parameters()])
