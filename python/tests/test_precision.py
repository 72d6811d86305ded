"""train.precision (fp32 | bf16 | fp16), train.channels_last, train.deterministic, and the CUDA faults they guard against, on the CPU."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import DEVICE
from helpers import call, make, new_state, params, step, tiny_config

from gradprom_sidecar.tools.reference import run_reference
from gradprom_sidecar.training import device as D
from gradprom_sidecar.training import grads as G
from gradprom_sidecar.training import snapshot
from gradprom_sidecar.training.precision import LossScaler, set_backend_modes

PSNR_DISTANCE_DB = 0.1  # bf16 vs fp32 at the end of the short run (measured: about 0.012 dB)


def _steps(precision: str, steps: int) -> tuple[list[dict], list[dict]]:
    cfg = tiny_config(train={"precision": precision, "steps": steps, "batch_size": 16})
    r = run_reference(cfg, device=torch.device("cpu"))
    return [line for line in r["log"] if line["kind"] == "step"], r["evals"]


def test_bf16_takes_fp32s_gate_decisions_and_ends_near_its_psnr() -> None:
    fp32, fp32_evals = _steps("fp32", 40)
    bf16, bf16_evals = _steps("bf16", 40)
    gates = [line["gate"] for line in fp32]
    assert 0 < sum(gates) < len(gates)  # both outcomes occur
    assert not any(line["skipped"] for line in fp32 + bf16)
    same = sum(a["gate"] == b["gate"] for a, b in zip(fp32, bf16))
    assert same >= 0.95 * len(fp32), f"bf16 took fp32's gate decision on {same} of {len(fp32)} steps"
    for a, b in zip(fp32_evals, bf16_evals):
        assert abs(a["psnr"] - b["psnr"]) <= PSNR_DISTANCE_DB, (a["split"], a["psnr"], b["psnr"])
    assert bf16[0]["loss_ip"] != fp32[0]["loss_ip"]  # bf16 did compute in bf16


def test_gradients_reach_the_buffers_in_float32_and_the_gram_in_float64() -> None:
    for precision in ("bf16", "fp16"):
        _, s = make(tiny_config(train={"precision": precision}))
        g = s.pipeline.grads()
        assert g.g_ip.dtype == g.g_vr.dtype == torch.float32
        assert all(p.grad is None or p.grad.dtype == torch.float32 for p in s.vr_params)
        gram = G.gram_tensor(g.g_ip, g.g_vr, s.layout)
        assert gram.dtype == torch.float64
        assert g.gram["ip_ip"] == pytest.approx(gram[0].tolist(), rel=1e-12)  # the Gram of the unscaled buffers


def test_fp16_unscales_before_the_gram() -> None:
    """The Gram does not depend on the loss scale (powers of two, while nothing overflows) and is fp32's, to fp16 rounding."""
    grams = []
    for scale in (2.0**10, 2.0**14):
        _, s = make(tiny_config(train={"precision": "fp16"}))
        s.precision.scaler.scale = scale
        g = s.pipeline.grads()
        assert g.finite
        grams.append(g.gram)
    _, s32 = make()
    fp32 = s32.pipeline.grads().gram
    for k in ("ip_ip", "vr_vr"):
        assert grams[0][k] == pytest.approx(grams[1][k], rel=1e-2)
    cosines = [[c / math.sqrt(a * b) for a, b, c in zip(g["ip_ip"], g["vr_vr"], g["ip_vr"])] for g in grams]
    assert cosines[0] == pytest.approx(cosines[1], abs=0.02)  # what the gate sees
    assert sum(grams[0]["ip_ip"]) == pytest.approx(sum(fp32["ip_ip"]), rel=5e-2)
    assert sum(grams[0]["vr_vr"]) == pytest.approx(sum(fp32["vr_vr"]), rel=5e-2)


def test_an_fp16_overflow_is_a_counted_skip_and_the_scale_backs_off() -> None:
    state, s = make(tiny_config(train={"precision": "fp16"}))
    step(state)
    scaler = s.precision.scaler
    scaler.scale = 2.0**60  # far beyond fp16's range: the scaled backward overflows
    ip_before, vr_before = params(s.ip), params(s.vr)
    res, _ = call(state, "train.advance", {"next": True, "transport": "gram"})
    nxt = res["next"]
    assert nxt["finite"] is False and scaler.scale == 2.0**59 and scaler.overflows == 1
    assert "loss_scale" not in nxt  # TypeScript has no use for it: the step reply carries only what it reads
    s.pipeline.after_grads()  # VR's own update: none for an overflowed step
    res, _ = call(state, "train.advance", {"decision": {"kind": "skip"}, "next": True, "transport": "gram"})
    assert res["skipped"] == 1 and res["step"] == 1
    assert all(torch.equal(x, y) for x, y in zip(ip_before + vr_before, params(s.ip) + params(s.vr)))
    scaler.scale = 2.0**8  # a scale that fits
    res, _ = call(state, "train.advance", {"decision": {"kind": "skip"}, "next": True, "transport": "gram"})
    assert res["next"]["finite"] is True and scaler.scale == 2.0**8


def test_an_overflow_in_vrs_own_gradients_makes_the_step_non_finite() -> None:
    vr = torch.nn.Linear(2, 2)
    vr.weight.grad = torch.tensor([[1.0, float("inf")], [0.0, 0.0]])
    vr.bias.grad = torch.ones(2)
    found = torch.zeros(1)
    scaler = LossScaler()
    g = torch.full((4,), 2.0**16)
    scaler.unscale((g, g.clone()), list(vr.parameters()), found)
    assert found.item() == 1.0 and torch.equal(g, torch.ones(4)) and torch.equal(vr.bias.grad, torch.full((2,), 2.0**-16))
    stats = torch.tensor([0.5, 0.5, found.item(), 1.0, 1.0, 1.0], dtype=torch.float64)
    assert not G.StepGrads.read(stats, g, g).finite
    scaler.update(False)
    assert scaler.scale == 2.0**15 and scaler.overflows == 1


def test_the_scale_grows_after_an_interval_of_finite_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LossScaler, "INTERVAL", 3)
    scaler = LossScaler()
    for _ in range(3):
        scaler.update(True)
    assert scaler.scale == 2.0**17 and scaler.growth_tracker == 0


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_resume_is_bit_identical_in_each_precision(tmp_path: Path, precision: str) -> None:
    cfg = tiny_config(train={"precision": precision})
    state, s = make(cfg)
    for _ in range(3):
        step(state)
    if s.precision.scaler is not None:
        s.precision.scaler.scale, s.precision.scaler.growth_tracker = 2.0**9, 7  # a state the checkpoint must carry
    path = tmp_path / "ckpt.pt"
    call(state, "checkpoint.save", {"path": str(path), "extra": {}})
    straight = [step(state) for _ in range(3)]
    resumed_state = new_state()
    call(resumed_state, "checkpoint.load", {"path": str(path)})
    r = resumed_state.session
    assert r.precision.name == precision
    resumed = [step(resumed_state) for _ in range(3)]
    assert [(x["loss_ip"], x["loss_vr"], x["gram"]) for x in straight] == [(x["loss_ip"], x["loss_vr"], x["gram"]) for x in resumed]
    for x, y in zip(params(s.ip) + params(s.vr), params(r.ip) + params(r.vr)):
        assert torch.equal(x, y)
    if s.precision.scaler is not None:
        assert r.precision.scaler.state_dict() == s.precision.scaler.state_dict()
        assert r.precision.scaler.growth_tracker == 10


def test_an_fp16_session_refuses_a_checkpoint_without_a_loss_scale(tmp_path: Path) -> None:
    state, _ = make()
    path = tmp_path / "fp32.pt"
    call(state, "checkpoint.save", {"path": str(path), "extra": {}})
    ckpt = torch.load(path, weights_only=True)
    _, s16 = make(tiny_config(train={"precision": "fp16"}))
    with pytest.raises(snapshot.CheckpointError, match=r"fp32\.pt.*no fp16 loss scale"):
        snapshot.restore(s16, ckpt, str(path))


def test_evaluation_runs_in_each_precision() -> None:
    for precision in ("bf16", "fp16"):
        state, _ = make(tiny_config(train={"precision": precision}))
        m, _ = call(state, "eval", {"split": "val"})
        assert 0 < m["psnr"] < 100 and 0 <= m["cotrained_enhanced_acc"] <= 1


def test_channels_last_trains_as_the_default_layout() -> None:
    state_a, a = make(tiny_config(train={"channels_last": "off"}))
    state_b, b = make(tiny_config(train={"channels_last": "on"}))
    assert not a.precision.channels_last and b.precision.channels_last
    x = b.precision.memory_format(torch.rand(2, 1, 16, 16))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert b.ip(x).is_contiguous(memory_format=torch.channels_last)  # the layout carries through the convolutions
    assert [p.shape for p in a.layout.params] == [p.shape for p in b.layout.params]
    for _ in range(3):
        ra, rb = step(state_a), step(state_b)
        assert rb["loss_ip"] == pytest.approx(ra["loss_ip"], rel=1e-5, abs=1e-7)
        assert rb["loss_vr"] == pytest.approx(ra["loss_vr"], rel=1e-5, abs=1e-7)
        for k in ("ip_ip", "vr_vr", "ip_vr"):
            assert rb["gram"][k] == pytest.approx(ra["gram"][k], rel=1e-3, abs=1e-9)
    for x, y in zip(params(a.ip) + params(a.vr), params(b.ip) + params(b.vr)):
        torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-4)  # Adam's step (lr 1e-3) amplifies rounding of near-zero gradients
    ma, _ = call(state_a, "eval", {"split": "val"})
    mb, _ = call(state_b, "eval", {"split": "val"})
    assert mb["psnr"] == pytest.approx(ma["psnr"], abs=1e-3) and mb["cotrained_enhanced_acc"] == ma["cotrained_enhanced_acc"]


def test_channels_last_auto_is_off_on_the_cpu() -> None:
    _, s = make()
    assert s.precision.channels_last is False and s.describe()["channels_last"] is False


def test_deterministic_sets_the_backend_modes() -> None:
    cpu = torch.device("cpu")
    was = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(False)
        set_backend_modes(tiny_config(), cpu)
        assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark  # on only with CUDA
        set_backend_modes(tiny_config(train={"deterministic": True}), cpu)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        # A later session without it leaves the process's deterministic kernels on (the test suite on CUDA relies on it).
        set_backend_modes(tiny_config(), cpu)
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(was, warn_only=True)
        torch.backends.cudnn.deterministic = was


def test_cuda_rng_restores_what_this_machine_has(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint written with 8 visible GPUs, resumed with 1: no IndexError, the run's own device's state continues."""
    saved = [torch.full((16,), i, dtype=torch.uint8) for i in range(8)]
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(
        torch.cuda,
        "set_rng_state",
        lambda state, device: calls.append((int(state[0]), device if isinstance(device, int) else device.index)),
    )
    snapshot.restore_cuda_rng(saved, 5, torch.device("cuda:0"))
    assert calls == [(0, 0), (5, 0)]  # device 0 takes saved device 0, then the run's device (5) into ours
    calls.clear()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    snapshot.restore_cuda_rng(saved[:1], None, torch.device("cuda:1"))  # fewer saved than visible, an older checkpoint
    assert calls == [(0, 0)]
    with pytest.raises(IndexError, match="cuda_index 8"):
        snapshot.restore_cuda_rng(saved, 8, torch.device("cuda:0"))


def test_cuda_device_beyond_the_visible_ones_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match=r"'cuda:0'.*CUDA is not available.*visible devices: cpu"):
            D.resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Fake GPU {i}")
    current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    with pytest.raises(SystemExit, match=r"'cuda:2' is not visible.*cuda:0 Fake GPU 0, cuda:1 Fake GPU 1, cpu"):
        D.resolve_device("cuda:2")
    assert D.resolve_device("cuda:1") == torch.device("cuda:1")
    assert current == [torch.device("cuda:1")]  # the sidecar's current device: its pinned buffers and events are that GPU's
    assert D.resolve_device("cuda") == torch.device("cuda") and current == [torch.device("cuda:1")]  # no index: left as is


def test_eval_records_carry_the_device_and_its_peak_memory() -> None:
    state, _ = make()
    m, _ = call(state, "eval", {"split": "val"})
    assert m["device"] == D.device_name(DEVICE)  # "cpu", or "cuda:0 <its name>"
    # The CPU's figure is this process's peak RSS (tens of MiB at least); CUDA's counts only tensors (a tiny model: under 1 MiB).
    assert (0 if DEVICE.type == "cuda" else 10) < m["peak_memory_mb"] < 1e6
