"""The in-process reference loop (gradprom_sidecar.reference) and the Python policy mirrors (policies)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import DEVICE
from test_session import tiny_config

from gradprom_sidecar import policies as P
from gradprom_sidecar.reference import main, run_reference


def _gram(aa: list[float], bb: list[float], ab: list[float]) -> dict:
    return {"ip_ip": aa, "vr_vr": bb, "ip_vr": ab}


def _policy(name: str, **kw: object) -> dict:
    return {"name": name, "lambda": 0.5, "lambda_mode": "plain", "threshold": 0.0, "granularity": "global", **kw}


# Two blocks: block 0 agrees (dot > 0), block 1 conflicts; globally they agree (dot total 1.0).
GRAM = _gram([4.0, 1.0], [1.0, 4.0], [2.0, -1.0])


def test_policy_weights_pinned_global() -> None:
    cos = 1.0 / (math.sqrt(5.0) * math.sqrt(5.0) + 1e-12)
    w_ip, w_vr, t = P.weights(_policy("gradprom"), GRAM)
    assert (w_ip, w_vr, t["gate"], t["gate_rate"]) == ([1.0, 1.0], [0.5, 0.5], True, 1.0)
    assert t["cos"] == pytest.approx(cos, rel=1e-12) and t["ip_norm"] == pytest.approx(math.sqrt(5))
    assert P.weights(_policy("gradprom", threshold=0.3), GRAM)[1] == [0.0, 0.0]  # strict: cos 0.2 is not > 0.3
    assert P.weights(_policy("ip-only"), GRAM)[:2] == ([1.0, 1.0], [0.0, 0.0])
    assert P.weights(_policy("joint"), GRAM)[1] == [0.5, 0.5]
    assert P.weights(_policy("soft"), GRAM)[1] == pytest.approx([0.5 * cos] * 2)
    w_ip, w_vr, t = P.weights(_policy("gradprom", lambda_mode="normalized"), GRAM)
    assert t["lambda_eff"] == pytest.approx(0.5) and w_vr == pytest.approx([0.5, 0.5])  # ‖g_IP‖ = ‖g_VR‖


def test_policy_weights_layer_and_pcgrad() -> None:
    w_ip, w_vr, t = P.weights(_policy("gradprom", granularity="layer"), GRAM)
    assert w_vr == [0.5, 0.0] and t["gate"] is None and t["gate_rate"] == 0.5
    w_ip, w_vr, _ = P.weights(_policy("gradprom", granularity="layer", lambda_mode="normalized"), GRAM)
    assert w_vr == pytest.approx([0.5 * 2.0, 0.0])  # per block λ·‖g_IP_b‖/‖g_VR_b‖
    # pcgrad per layer on block 1 equals projecting the two vectors explicitly.
    a, v = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-1.0, math.sqrt(3.0)], dtype=torch.float64)
    g = _gram([float(a @ a)], [float(v @ v)], [float(a @ v)])
    w_ip, w_vr, t = P.weights(_policy("pcgrad", granularity="layer"), g)
    d = a @ v
    expected = (a - d / (v @ v) * v) + 0.5 * (v - d / (a @ a) * a)
    torch.testing.assert_close(w_ip[0] * a + w_vr[0] * v, expected)
    assert t["gate_rate"] == 0.0


def test_policy_zero_norms_never_open_the_gate() -> None:
    g = _gram([0.0, 1.0], [1.0, 0.0], [0.0, 0.0])
    for name in P.NAMES:
        w_ip, w_vr, t = P.weights(_policy(name, threshold=-1.0, granularity="layer", lambda_mode="normalized"), g)
        assert all(math.isfinite(x) for x in w_ip + w_vr) and w_vr == [0.0, 0.0], name
    assert P.cosine(1.0, 0.0, 1.0) == 0.0 and P.effective_lambda(0.1, "normalized", 1.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="config.policy.name"):
        P.weights(_policy("magic"), g)


def _ref_config(name: str = "gradprom", **policy: object) -> dict:
    cfg = tiny_config(policy={**_policy(name, **policy), "lambda": 0.003})
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
    from gradprom_sidecar.checkpoint import read_state_dict

    sd = read_state_dict(out)
    assert "head.0.weight" in sd
    printed = capsys.readouterr().out
    assert "median step:" in printed and '"steps": 5' in printed


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
    from test_session import call, new_state

    cfg = _ref_config()
    cfg["policy"]["lambda"] = 0.5  # large enough that a different gate decision would show in the parameters
    cfg["train"]["eval_every"] = 0
    ref = run_reference(cfg, steps=4, device=DEVICE)
    state = new_state()
    call(state, "session.create", {"config": cfg})
    call(state, "vr.pretrain", {"steps": int(cfg["vr"]["pretrain_steps"])})
    results = [call(state, "train.step")[0] for _ in range(4)]
    ref_steps = [line for line in ref["log"] if line["kind"] == "step"]
    assert [r["step"] for r in results] == [1, 2, 3, 4]
    assert [r["loss_ip"] for r in results] == [line["loss_ip"] for line in ref_steps]
    assert [r["gate"] for r in results] == [line["gate"] for line in ref_steps]
    assert all(r["ms"] > 0 for r in results)
    for k, v in state.session.ip.state_dict().items():
        assert torch.equal(v, ref["ip_state"][k]), k
