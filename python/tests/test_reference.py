"""The in-process reference loop (gradprom_sidecar.tools.reference): the CLI, --describe, and the bench-only train.step op."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import DEVICE, needs
from helpers import tiny_config

from gradprom_sidecar.tools.reference import main, run_reference
from gradprom_sidecar.training.config import resolve
from gradprom_sidecar.training.session import Session


def _ref_config(name: str = "gradprom", **policy: object) -> dict:
    base = {"name": name, "lambda": 0.003, "lambda_mode": "plain", "threshold": 0.0, "granularity": "global"}
    cfg = tiny_config(policy={**base, **policy, "lambda": 0.003})
    cfg["train"].update(steps=5, eval_every=2)
    return cfg


def test_reference_cli_writes_weights_and_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path, out, log = tmp_path / "config.json", tmp_path / "ip.safetensors", tmp_path / "log.jsonl"
    cfg_path.write_text(json.dumps(_ref_config()))
    assert main([str(cfg_path), "--steps", "5", "--out", str(out), "--log", str(log), "--timing", "--device", str(DEVICE)]) == 0
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    kinds = [x["kind"] for x in lines]
    assert kinds[0] == "pretrain" and kinds.count("step") == 5
    evals = [x for x in lines if x["kind"] == "eval"]
    assert [(e["split"], e["step"]) for e in evals] == [("val", 0), ("val", 2), ("val", 4), ("val", 5), ("test", 5)]
    first = next(x for x in lines if x["kind"] == "step")
    assert {"loss_ip", "loss_vr", "cos", "gate", "gate_rate", "ip_norm", "vr_norm", "lambda_eff", "skipped"} <= set(first)
    assert -1.0 <= first["ip_descent_actual"] <= 1.0 and 0.0 <= first["ip_descent"] <= 1.0  # gradprom never plans uphill
    from gradprom_sidecar.models.checkpoint import read_state_dict

    sd = read_state_dict(out)
    assert "head.0.weight" in sd
    printed = capsys.readouterr().out
    assert "median step:" in printed and '"steps": 5' in printed


PARTIAL = {"data": {"counts": {"train": 16, "val": 4, "test": 4}}, "vr": {"arch": "resnet18", "pretrain_steps": 1}, "device": "cpu"}


def test_reference_describe_reads_a_partial_config_as_gradprom_train_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(PARTIAL))
    assert main([str(path), "--describe"]) == 0
    out = json.loads(capsys.readouterr().out)
    # ip.channels stays null in the resolved config (the weights would say it); the built network has the fallback 32.
    assert out["config"] == resolve(PARTIAL) and out["config"]["ip"]["channels"] is None
    s = Session(resolve(PARTIAL), torch.device("cpu"))
    assert s.ip.state_dict()["head.0.weight"].shape[0] == 32
    assert out["blocks"] == [b.name for b in s.layout.blocks] and out["blocks"][0] == "head.0.weight"
    assert out["ip_params"] == sum(p.numel() for p in s.ip.parameters())
    assert out["vr_params"] == sum(p.numel() for p in s.vr.parameters()) > 11_000_000  # resnet18, 4 classes
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in s.ip.modules())  # defaults.ts: no BatchNorm in IP


def test_reference_trains_from_a_partial_config_and_refuses_an_unreadable_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "partial.json"
    path.write_text(
        json.dumps({**PARTIAL, "vr": {"pretrain_steps": 1, "kwargs": {"widths": [4, 8]}}, "train": {"steps": 2, "batch_size": 4}})
    )
    assert main([str(path)]) == 0
    assert '"steps": 2' in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{")
    assert main([str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not valid JSON" in capsys.readouterr().err


def test_huge_threshold_gradprom_is_exactly_ip_only() -> None:
    gated = run_reference(_ref_config(threshold=2.0), steps=4, device=DEVICE)
    plain = run_reference(_ref_config(name="ip-only"), steps=4, device=DEVICE)
    assert gated["gate_rate"] == 0.0
    for k, v in plain["ip_state"].items():
        assert torch.equal(gated["ip_state"][k], v), k
    joint = run_reference(_ref_config(name="joint"), steps=4, device=DEVICE)
    assert any(not torch.equal(joint["ip_state"][k], v) for k, v in plain["ip_state"].items())


def test_train_step_op_is_the_reference_loop_inside_the_sidecar() -> None:
    """`train.step` on a session (what the bench times the bridge against) takes the reference's steps exactly."""
    msgpack = needs("msgpack")
    from helpers import call, new_state

    from gradprom_sidecar.tools.bench_ops import train_step
    from gradprom_sidecar.wire.registry import Context

    cfg = _ref_config()
    cfg["policy"]["lambda"] = 0.5  # large enough that a different gate decision would show in the parameters
    cfg["train"]["eval_every"] = 0
    ref = run_reference(cfg, steps=4, device=DEVICE)
    state = new_state()
    call(state, "session.create", {"config": cfg})
    call(state, "vr.pretrain", {"steps": int(cfg["vr"]["pretrain_steps"])})
    results = [train_step(Context(state, request_id=1), {}, [])[0] for _ in range(4)]
    assert all(msgpack.unpackb(msgpack.packb(r)) == r for r in results)  # a reply the wire can carry
    ref_steps = [line for line in ref["log"] if line["kind"] == "step"]
    assert [r["step"] for r in results] == [1, 2, 3, 4]
    assert [r["loss_ip"] for r in results] == [line["loss_ip"] for line in ref_steps]
    assert [r["gate"] for r in results] == [line["gate"] for line in ref_steps]
    assert all(r["ms"] > 0 for r in results)
    for k, v in state.session.ip.state_dict().items():
        assert torch.equal(v, ref["ip_state"][k]), k


def _session_then_step(sock: Any) -> dict:
    from test_server import call, req

    assert call(sock, req("session.create", 1, args={"config": _ref_config()}))["status"] == "ok"
    assert call(sock, req("vr.pretrain", 2, args={"steps": 1}))["status"] == "ok"
    return call(sock, req("train.step", 3))


def test_train_step_is_not_an_op_of_the_production_sidecar(shared_sidecar: Any) -> None:
    sock, _ = shared_sidecar
    r = _session_then_step(sock)
    assert r["status"] == "error" and r["error"]["type"] == "UnknownOp" and "'train.step'" in r["error"]["message"]


def test_train_step_is_served_when_the_sidecar_starts_with_bench_ops(bench_sidecar: Any) -> None:
    sock, _ = bench_sidecar
    r = _session_then_step(sock)
    assert r["status"] == "ok", r.get("error")
    assert r["result"]["step"] == 1 and r["result"]["finite"] is True and r["result"]["ms"] > 0
    assert {"cos", "gate", "gate_rate", "ip_norm", "vr_norm", "lambda_eff"} <= r["result"].keys()
