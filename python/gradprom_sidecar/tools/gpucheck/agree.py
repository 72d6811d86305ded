"""(b) CPU against CUDA: the reference loop's losses, cosines and gate decisions, step by step.

One session is built and its VR pre-trained on the CPU; its checkpoint is restored into a second
session on the other device, so both start from the same weights. Every step both take the same
inputs, drawn once on the host (``Session.use_inputs``), whatever the data path draws with, then
run the reference step (grads → after_grads → policy → apply). CUDA convolutions run in TF32 by
default (10 mantissa bits), so the numbers agree to about 1e-3, not to float32 rounding; a gate is
compared only where the cosine is clear of the threshold by more than the cosine tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from gradprom_sidecar.tools.gpucheck.scenarios import Scenario
from gradprom_sidecar.tools.reference import reference_step
from gradprom_sidecar.training.config import setting
from gradprom_sidecar.training.pretrain import pretrain as pretrain_vr
from gradprom_sidecar.training.session import Session
from gradprom_sidecar.training.snapshot import pack, restore

LOSS_RTOL = 1e-2  # relative, per loss and step (TF32: ~1e-3 per operation, a few steps of drift)
COS_ATOL = 2e-2  # absolute, on the global cosine


@dataclass
class Agreement:
    """Per-step differences between the two devices, and whether they are within tolerance."""

    device: str
    steps: int
    max_loss_rel: float = 0.0
    max_cos_abs: float = 0.0
    gates_compared: int = 0
    gates_differing: list[int] = field(default_factory=list)
    ip_max_rel: float = 0.0

    @property
    def ok(self) -> bool:
        return self.max_loss_rel <= LOSS_RTOL and self.max_cos_abs <= COS_ATOL and not self.gates_differing


def _rel(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-30) if math.isfinite(a) and math.isfinite(b) else math.inf


def agree(scenario: Scenario, device: torch.device, steps: int, pretrain: int) -> Agreement:
    """Run ``steps`` reference steps on the CPU and on ``device`` from one start and one input stream.

    :param scenario: the networks and data (small: this is about the numbers, not the time).
    :param device: the device checked against the CPU (``cpu`` in ``--cpu``: checks the script).
    :param steps: steps compared.
    :param pretrain: VR pre-training steps on the CPU first (so the gradients look like training's).
    """
    cpu = Session(scenario.resolved("cpu"), torch.device("cpu"))
    pretrain_vr(cpu, pretrain)
    other = Session(scenario.resolved(str(device)), device, load_model_weights=False)
    restore(other, pack(cpu), "(the CPU session)")
    policy_cfg = setting(cpu.config, "policy")
    out = Agreement(str(device), steps)
    for t in range(steps):
        inputs = cpu.draw_inputs()
        for s in (cpu, other):
            s.use_inputs(*inputs)
        (ga, ta, _), (gb, tb, _) = reference_step(cpu, policy_cfg), reference_step(other, policy_cfg)
        out.max_loss_rel = max(out.max_loss_rel, _rel(ga.loss_ip, gb.loss_ip), _rel(ga.loss_vr, gb.loss_vr))
        out.max_cos_abs = max(out.max_cos_abs, abs(ta["cos"] - tb["cos"]))
        threshold = float(setting(policy_cfg, "threshold", "policy"))
        if abs(ta["cos"] - threshold) > COS_ATOL:
            out.gates_compared += 1
            if ta["gate"] != tb["gate"]:
                out.gates_differing.append(t + 1)
    for a, b in zip(cpu.ip.parameters(), other.ip.parameters()):
        scale = float(a.detach().abs().max()) or 1.0
        out.ip_max_rel = max(out.ip_max_rel, float((a.detach() - b.detach().cpu()).abs().max()) / scale)
    return out
