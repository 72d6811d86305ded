"""The compute session and its ops (gradprom_sidecar.training.session), on tiny synthetic configs."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE
from helpers import call, make, new_state, optim_section, params, step, tiny_config

from gradprom_sidecar import ops  # noqa: F401  (importing ops registers them)
from gradprom_sidecar.training import grads as G
from gradprom_sidecar.training.config import resolve


def test_create_reports_layout_params_and_data() -> None:
    state = new_state()
    res, _ = call(state, "session.create", {"config": tiny_config()})
    s = state.session
    assert res["layout"] == s.layout.to_dict() and res["layout"]["numel"] == sum(p.numel() for p in s.ip.parameters())
    assert res["ip_params"] > 0 and res["vr_params"] > 0 and res["device"] == str(DEVICE)
    assert res["data"]["train"] == 48 and res["data"]["num_classes"] == 3 and res["data"]["size"] == 16
    assert res["data"]["class_names"] == s.bundle.class_names
    desc, _ = call(state, "data.describe", {})
    assert desc["train"]["count"] == 48 and desc["num_classes"] == 3


def test_pretrain_sets_a_frozen_fixed_vr() -> None:
    state = new_state()
    call(state, "session.create", {"config": tiny_config()})
    res, _ = call(state, "vr.pretrain", {"steps": 3})
    s = state.session
    assert math.isfinite(res["loss"]) and 0.0 <= res["accuracy"] <= 1.0
    assert not s.fixed_vr.training and not any(p.requires_grad for p in s.fixed_vr.parameters())
    for a, b in zip(s.fixed_vr.parameters(), s.vr.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    step(state)
    assert any(not torch.equal(a, b) for a, b in zip(s.fixed_vr.parameters(), s.vr.parameters()))


def test_grads_result_and_vectors_transport() -> None:
    state, s = make()
    res, tensors = call(state, "train.grads", {"transport": "vectors"})
    assert set(res) == {"step", "loss_ip", "loss_vr", "finite", "gram"} and res["finite"] is True
    g_ip, g_vr = tensors
    assert g_ip.dtype == torch.float32 and g_ip.device.type == "cpu" and g_ip.shape == (s.layout.numel,)
    gram = G.gram(g_ip, g_vr, s.layout)
    for k in ("ip_ip", "vr_vr", "ip_vr"):
        assert res["gram"][k] == pytest.approx(gram[k], rel=1e-12, abs=1e-30)
    assert all(p.grad is not None for p in s.vr.parameters())  # ∇φ kept for the VR step


def test_weights_and_merged_vector_decisions_give_the_same_parameters() -> None:
    state_a, a = make()
    state_b, b = make()
    n = len(a.layout)
    w_ip, w_vr = [1.0] * n, [0.003 * (1 + i % 2) for i in range(n)]
    for _ in range(2):
        call(state_a, "train.grads", {"transport": "gram"})
        call(state_a, "train.apply", {"weights": {"ip": w_ip, "vr": w_vr}})
        _, (g_ip, g_vr) = call(state_b, "train.grads", {"transport": "vectors"})
        merged = G.merge_weights(g_ip, g_vr, b.layout, w_ip, w_vr)
        call(state_b, "train.apply", {}, [merged])
    for x, y in zip(params(a.ip) + params(a.vr), params(b.ip) + params(b.vr)):
        assert torch.equal(x, y)


def test_frozen_mode_never_changes_vr() -> None:
    state, s = make(tiny_config(vr={"mode": "frozen"}))
    before = params(s.vr)
    assert not any(p.requires_grad for p in s.vr.parameters())
    for _ in range(2):
        step(state, weights=1.0)
    assert all(torch.equal(x, y) for x, y in zip(before, params(s.vr)))
    assert all(p.grad is None for p in s.vr.parameters())
    assert s.vr_optim is None


def test_unsupervised_target_is_vr_on_the_clean_image() -> None:
    state, s = make(tiny_config(vr={"mode": "unsupervised"}))
    seen: list[tuple[torch.Tensor, torch.Tensor, bool]] = []
    hook = s.vr.register_forward_hook(
        lambda m, inp, out: seen.append((inp[0].detach().clone(), out.detach().clone(), torch.is_grad_enabled()))
    )
    res, _ = call(state, "train.grads", {"transport": "gram"})
    hook.remove()
    (clean_in, clean_out, clean_grad), (hat_in, hat_out, hat_grad) = seen
    idx = s.sampler.perm[s.sampler.pos - s.sampler.batch : s.sampler.pos]
    assert torch.equal(clean_in, s.bundle.train.images[idx].to(DEVICE)) and not clean_grad
    assert hat_grad and not torch.equal(hat_in, clean_in)
    expected = -(F.softmax(clean_out, 1) * F.log_softmax(hat_out, 1)).sum(1).mean()
    assert res["loss_vr"] == pytest.approx(float(expected), rel=1e-5)


def test_two_sessions_with_one_config_are_identical() -> None:
    state_a, _ = make()
    state_b, _ = make()
    for _ in range(3):
        ra, rb = step(state_a), step(state_b)
        assert (ra["loss_ip"], ra["loss_vr"], ra["gram"]) == (rb["loss_ip"], rb["loss_vr"], rb["gram"])


def test_eval_does_not_perturb_training() -> None:
    state_a, _ = make()
    state_b, _ = make()
    call(state_a, "eval", {"split": "val"})
    for _ in range(2):
        ra = step(state_a)
        call(state_a, "eval", {"split": "test", "limit": 5})
        rb = step(state_b)
        assert ra["loss_ip"] == rb["loss_ip"] and ra["loss_vr"] == rb["loss_vr"]


def test_checkpoint_resume_is_bit_identical(tmp_path: Path) -> None:
    cfg = tiny_config(train={"ip_optim": optim_section(schedule="cosine", warmup_steps=2)})
    state, s = make(cfg)
    for _ in range(7):  # crosses an epoch boundary (48 / 8 = 6 batches)
        step(state)
    path = tmp_path / "ckpt.pt"
    res, _ = call(state, "checkpoint.save", {"path": str(path), "extra": {"note": "x", "best": 1.5}})
    assert res["bytes"] == path.stat().st_size > 0
    assert torch.load(path, weights_only=True)["format"] == "gradprom-checkpoint"
    straight = [step(state) for _ in range(3)]
    resumed_state = new_state()
    res, _ = call(resumed_state, "checkpoint.load", {"path": str(path)})
    assert res["step"] == 7 and res["extra"] == {"note": "x", "best": 1.5} and res["config"] == cfg
    resumed = [step(resumed_state) for _ in range(3)]
    assert [(r["loss_ip"], r["loss_vr"], r["gram"]) for r in straight] == [(r["loss_ip"], r["loss_vr"], r["gram"]) for r in resumed]
    r = resumed_state.session
    for x, y in zip(params(s.ip) + params(s.vr) + params(s.fixed_vr), params(r.ip) + params(r.vr) + params(r.fixed_vr)):
        assert torch.equal(x, y)


def test_run_checkpoint_serves_as_ip_and_vr_weights(tmp_path: Path) -> None:
    """``gradprom eval --ip RUN/checkpoints/last.pt --vr ...``: each model takes its part of the checkpoint."""
    state, s = make()
    for _ in range(3):
        step(state)
    path = tmp_path / "last.pt"
    call(state, "checkpoint.save", {"path": str(path), "extra": {}})
    cfg = copy.deepcopy(tiny_config())
    cfg["ip"]["weights"] = cfg["vr"]["weights"] = str(path)
    other = new_state()
    call(other, "session.create", {"config": cfg})
    for x, y in zip(params(s.ip) + params(s.vr), params(other.session.ip) + params(other.session.vr)):
        assert torch.equal(x, y)


def test_eval_keys_and_ranges_classify() -> None:
    state, _ = make()
    step(state)
    m, _ = call(state, "eval", {"split": "test"})
    assert m["n"] == 12 and isinstance(m["ssim_convention"], str)
    for k in ("psnr", "psnr_degraded"):
        assert 0 < m[k] < 100
    for k in (
        "ssim",
        "ssim_degraded",
        "fixed_clean_acc",
        "fixed_degraded_acc",
        "fixed_enhanced_acc",
        "fixed_enhanced_bacc",
        "fixed_enhanced_f1",
        "fixed_enhanced_auc",
        "cotrained_clean_acc",
        "cotrained_enhanced_acc",
    ):
        assert -1.0 <= m[k] <= 1.0, k
    assert call(state, "eval", {"split": "val", "limit": 5})[0]["n"] == 5
    assert state.session.ip.training and state.session.vr.training


def test_eval_without_fixed_vr_has_no_fixed_keys() -> None:
    state = new_state()
    call(state, "session.create", {"config": tiny_config()})
    m, _ = call(state, "eval", {"split": "val"})
    assert "cotrained_enhanced_acc" in m and not any(k.startswith("fixed_") for k in m)


def test_segmentation_and_super_resolution() -> None:
    cfg = tiny_config(
        vr={"arch": "unet", "task": "segment", "kwargs": {"channels": 4, "depth": 2}},
        ip={"scale": 2},
        degradation=[{"kind": "downsample", "scale": 2, "clip": False}],
    )
    state, s = make(cfg, pretrain=1)
    assert s.num_classes == 2  # the synthetic masks' own classes
    res = step(state)
    assert res["finite"]
    m, _ = call(state, "eval", {"split": "val"})
    for k in (
        "fixed_clean_dice",
        "fixed_degraded_dice",
        "fixed_enhanced_dice",
        "fixed_enhanced_iou",
        "cotrained_clean_dice",
        "cotrained_enhanced_dice",
    ):
        assert 0.0 <= m[k] <= 1.0, k
    assert "fixed_enhanced_acc" not in m and m["psnr_degraded"] > 0
    _, (out,) = call(state, "enhance", {}, [torch.rand(3, 1, 8, 8)])
    assert out.shape == (3, 1, 16, 16) and out.min() >= 0 and out.max() <= 1


def test_errors_name_what_and_where() -> None:
    state = new_state()
    with pytest.raises(RuntimeError, match="no session"):
        call(state, "train.grads", {"transport": "gram"})
    with pytest.raises(ValueError, match="config.ip.scale"):
        call(state, "session.create", {"config": tiny_config(ip={"scale": 2})})
    with pytest.raises(ValueError, match="config.vr.mode"):
        call(state, "session.create", {"config": tiny_config(vr={"mode": "sometimes"})})
    with pytest.raises(ValueError, match="config.ip.arch"):
        call(state, "session.create", {"config": tiny_config(ip={"arch": "nope"})})
    with pytest.raises(ValueError, match="config.train.ip_optim.name"):
        call(state, "session.create", {"config": tiny_config(train={"ip_optim": optim_section(name="rmsprop")})})
    state, s = make()
    with pytest.raises(RuntimeError, match="train.apply: no pending gradients"):
        call(state, "train.apply", {"weights": {"ip": [1.0], "vr": [0.0]}})
    with pytest.raises(RuntimeError, match="train.skip: no pending gradients"):
        call(state, "train.skip", {})
    call(state, "train.grads", {"transport": "gram"})
    n = len(s.layout)
    with pytest.raises(ValueError, match=f"args.weights.ip: expected {n} blocks, got 2"):
        call(state, "train.apply", {"weights": {"ip": [1.0, 1.0], "vr": [0.0] * n}})
    with pytest.raises(ValueError, match=r"args.weights.vr\[0\]: expected a finite number"):
        call(state, "train.apply", {"weights": {"ip": [1.0] * n, "vr": [float("nan")] * n}})
    with pytest.raises(ValueError, match=r"tensors\[0\].shape"):
        call(state, "train.apply", {}, [torch.zeros(3)])
    with pytest.raises(ValueError, match="args.transport"):
        call(state, "train.grads", {"transport": "smoke"})
    with pytest.raises(ValueError, match="args.split"):
        call(state, "eval", {"split": "dev"})


ONLY_SCORES = """
import json, sys
import torch
from helpers import call, new_state, step, tiny_config
state = new_state()
call(state, "session.create", {"config": tiny_config()})
call(state, "eval", {"split": "val"})
call(state, "enhance", {}, [torch.rand(2, 1, 8, 8)])
call(new_state(), "eval.weights", {"config": tiny_config(), "split": "val", "checkpoint": sys.argv[1]})
before = "torch._dynamo" in sys.modules
step(state)
print(json.dumps([before, "torch._dynamo" in sys.modules]))
"""


def test_a_session_that_only_scores_or_enhances_makes_no_optimizer(tmp_path: Path) -> None:
    """torch.optim's first optimiser imports torch._dynamo (about 1.4 s of CPU): evaluating, enhancing and scoring a
    checkpoint make none, so a sidecar that only does those never pays for it; the first training step makes them."""
    state, _ = make(pretrain=1)
    step(state)
    call(state, "checkpoint.save", {"path": str(tmp_path / "c.pt")})
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent)])}
    r = subprocess.run([sys.executable, "-c", ONLY_SCORES, str(tmp_path / "c.pt")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [False, True]


def test_a_config_that_skipped_resolution_names_the_missing_field() -> None:
    for section, key, path in (
        ("train", "ip_optim", "train.ip_optim"),
        ("data", "size", "data.size"),
        ("ip", "blocks", "ip.blocks"),
        ("vr", "normalize", "vr.normalize"),
        ("eval", "batch_size", "eval.batch_size"),
    ):
        cfg = tiny_config()
        del cfg[section][key]
        state = new_state()
        with pytest.raises(ValueError, match=re.escape(f"config.{path}: required")):
            call(state, "session.create", {"config": cfg})
            call(state, "vr.pretrain", {"steps": 1})  # eval.batch_size is read when the clean score is taken


def test_a_resolved_partial_config_builds_the_default_networks() -> None:
    partial = {"data": {"counts": {"train": 16, "val": 4, "test": 4}}, "train": {"batch_size": 8}, "device": "cpu"}
    state = new_state()
    res, _ = call(state, "session.create", {"config": resolve(partial)})
    s = state.session
    assert s.ip.config.channels == 32 and s.ip.config.blocks == 4 and not s.ip.config.batch_norm  # defaults.ts, not 64x16+BN
    assert res["ip_params"] == sum(p.numel() for p in s.ip.parameters()) and res["data"]["train"] == 16


def test_pretrain_accuracy_is_the_eval_paths_fixed_clean_score() -> None:
    """One evaluation path: pre-training's clean validation score is ``eval``'s fixed/clean score on every image."""
    for cfg in (
        tiny_config(eval={"batch_size": 5, "limit": 3}),
        tiny_config(vr={"arch": "unet", "task": "segment", "kwargs": {"channels": 4, "depth": 2}}),
    ):
        state = new_state()
        call(state, "session.create", {"config": cfg})
        res, _ = call(state, "vr.pretrain", {"steps": 2})
        seg = cfg["vr"]["task"] == "segment"
        n = len(state.session.bundle.val)
        m, _ = call(state, "eval", {"split": "val", "limit": n})
        assert m["n"] == n == 12
        assert res["accuracy"] == m["fixed_clean_dice" if seg else "fixed_clean_acc"]


def test_skip_drops_the_step_and_counts() -> None:
    state, s = make()
    before = params(s.ip)
    call(state, "train.grads", {"transport": "gram"})
    res, _ = call(state, "train.skip", {})
    assert res == {"step": 0, "skipped": 1}
    assert all(torch.equal(x, y) for x, y in zip(before, params(s.ip)))
    assert all(p.grad is None for p in list(s.ip.parameters()) + list(s.vr.parameters()))
