"""The descent telemetry (gradprom_sidecar.training.descent) and the per-image evaluation results (per_image)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import DEVICE, randn
from helpers import call, make, new_state, tiny_config

from gradprom_sidecar.tools.reference import run_reference
from gradprom_sidecar.training import grads as G
from gradprom_sidecar.training.descent import StepProbe, ip_descent


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(a @ b / (a.norm() * b.norm()))


def test_ip_descent_from_the_gram_is_the_cosine_of_the_merged_vector() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3)).to(DEVICE)
    layout = G.Layout(model)
    g_ip, g_vr = randn(layout.numel), randn(layout.numel) * 30
    gram = G.gram(g_ip, g_vr, layout)
    for w_ip, w_vr in [([1.0] * 4, [0.0] * 4), ([1.0] * 4, [0.2] * 4), ([1.0, 0.5, 2.0, 1.0], [0.3, 0.0, -0.1, 1.0])]:
        merged = G.merge_weights(g_ip, g_vr, layout, w_ip, w_vr)
        assert ip_descent(gram, w_ip, w_vr) == pytest.approx(_cos(g_ip, merged), abs=1e-6)
    # A VR term that outweighs g_IP against it makes the merged update point uphill for IP.
    against = G.gram(g_ip, -g_ip * 3, layout)
    assert ip_descent(against, [1.0] * 4, [1.0] * 4) == pytest.approx(-1.0, abs=1e-9)
    zero = G.gram(torch.zeros_like(g_ip), g_vr, layout)
    assert ip_descent(zero, [1.0] * 4, [0.5] * 4) == 0.0  # no g_IP: no direction to descend (cosine 0)


def test_with_plain_sgd_the_actual_step_is_the_planned_one() -> None:
    """SGD without momentum or weight decay moves θ by −lr·g, so cos(−g_IP, Δθ) = cos(g_IP, g)."""
    cfg = tiny_config()
    cfg["train"]["ip_optim"].update(name="sgd", momentum=0.0, lr=0.05)
    state, s = make(cfg)
    n = len(s.layout)
    for lam in (0.0, 0.5, 50.0):
        res, _ = call(state, "train.grads", {"transport": "gram"})
        applied, _ = call(state, "train.apply", {"weights": {"ip": [1.0] * n, "vr": [lam] * n}})
        planned = ip_descent(res["gram"], [1.0] * n, [lam] * n)
        assert applied["ip_descent_actual"] == pytest.approx(planned, abs=1e-4), lam
    assert not math.isclose(planned, 1.0, abs_tol=1e-3)  # the λ = 50 step was not g_IP itself


def test_step_probe_measures_adam_as_it_moves() -> None:
    """Adam's first step is about −lr·sign(g): even with g = g_IP its cosine with −g_IP is ‖g‖₁/(‖g‖₂√n), not 1."""
    state, s = make()
    n = len(s.layout)
    _, (g_ip, _) = call(state, "train.grads", {"transport": "vectors"})
    applied, _ = call(state, "train.apply", {"weights": {"ip": [1.0] * n, "vr": [0.0] * n}})
    g = g_ip.double()
    sign_like = float(g.abs().sum() / (g.norm() * math.sqrt(g.numel())))
    assert applied["ip_descent_actual"] == pytest.approx(sign_like, abs=1e-3)
    assert applied["ip_descent_actual"] < 0.99


def test_step_probe_on_a_known_change() -> None:
    model = torch.nn.Linear(3, 2).to(DEVICE)
    layout = G.Layout(model)
    probe = StepProbe(layout, DEVICE)
    g = randn(layout.numel)
    probe.take()
    with torch.no_grad():
        for p, v in zip(layout.params, layout.views(g)):
            p.add_(v)  # θ moved along +g_IP: straight uphill
    assert StepProbe.cosine(probe.measure(g).tolist(), float(g.double() @ g.double())) == pytest.approx(-1.0, abs=1e-6)


def _run(name: str, lam: float) -> list[dict]:
    cfg = tiny_config(policy={"name": name, "lambda": lam, "lambda_mode": "plain", "threshold": 0, "granularity": "global"})
    cfg["train"].update(steps=30, eval_every=0)
    return [line for line in run_reference(cfg, device=DEVICE)["log"] if line["kind"] == "step"]


@pytest.mark.slow
def test_gradprom_never_points_against_g_ip_where_joint_does() -> None:
    """λ = 20 on the tiny nets, where ‖g_VR‖ ≈ ‖g_IP‖: the VR term outweighs g_IP whenever they conflict."""
    gradprom, joint = _run("gradprom", 20.0), _run("joint", 20.0)
    assert {line["gate"] for line in gradprom} == {True, False}  # the gate closed on some steps and opened on others
    assert all(line["ip_descent"] >= 0 for line in gradprom)
    assert any(line["ip_descent"] < 0 for line in joint)
    closed = [line for line in gradprom if not line["gate"]]
    assert all(line["ip_descent"] == pytest.approx(1.0, abs=1e-9) for line in closed)  # a closed gate hands over g_IP


def test_eval_per_image_results_average_to_the_metrics() -> None:
    state, _ = make()
    plain, none = call(state, "eval", {"split": "test"})
    assert none == [] and "per_image" not in plain
    res, tensors = call(state, "eval", {"split": "test", "per_image": True})
    names = res["per_image"]
    assert set(names) == {"psnr", "ssim", "fixed_enhanced_acc", "cotrained_enhanced_acc"}
    for name, t in zip(names, tensors):
        assert t.dtype == torch.float32 and t.shape == (res["n"],), name
        assert float(t.double().mean()) == pytest.approx(res[name], abs=1e-6), name
    assert {k: v for k, v in res.items() if k != "per_image"} == plain


def test_eval_per_image_results_for_segmentation() -> None:
    state = new_state()
    cfg = tiny_config(vr={"arch": "unet", "task": "segment", "kwargs": {"channels": 4, "depth": 2}})
    call(state, "session.create", {"config": cfg})
    call(state, "vr.pretrain", {"steps": 1})
    res, tensors = call(state, "eval", {"split": "test", "limit": 5, "per_image": True})
    table = dict(zip(res["per_image"], tensors))
    assert {"fixed_enhanced_dice", "fixed_enhanced_iou", "cotrained_enhanced_dice"} <= set(table)
    assert float(table["fixed_enhanced_dice"].double().mean()) == pytest.approx(res["fixed_enhanced_dice"], abs=1e-6)
    assert table["psnr"].shape == (5,)


def test_a_restore_forgets_the_descent_of_the_step_before_it(tmp_path: Path) -> None:
    """After checkpoint.load the next ip_descent_actual is the restored run's (none yet: NaN), not the abandoned step's."""
    state, s = make()
    call(state, "checkpoint.save", {"path": str(tmp_path / "c.pt")})
    s.pipeline.grads()
    s.pipeline.apply([1.0] * len(s.layout), [0.003] * len(s.layout))  # as the reference loop steps: the descent waits on the device
    assert s.pipeline.descent_measured is not None
    call(state, "checkpoint.load", {"path": str(tmp_path / "c.pt")})
    assert state.session.pipeline.descent_measured is None and math.isnan(state.session.pipeline.ip_descent_actual())
