"""(d) Checkpoints on the device: save at a step boundary, restore into a fresh session, continue as if never stopped.

The steps are driven as ``train.advance`` drives them (gradients, then what follows the reply, then
the decision), so the save happens with the next step's inputs already drawn: the checkpoint must
hold the random state from before them. The continued run and the resumed one are compared
parameter by parameter; the device's checkpoint is also restored on the CPU.

Both runs use deterministic kernels where torch has them, and SGD with momentum (its buffers are
in the checkpoint too): Adam divides by √v, so a rounding-level difference from a kernel without
a deterministic version could move a near-zero-gradient weight by up to its learning rate and
hide what this checks.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from gradprom_sidecar.models.checkpoint import load_checkpoint, save_atomic
from gradprom_sidecar.tools.gpucheck.scenarios import Scenario
from gradprom_sidecar.tools.reference import reference_step
from gradprom_sidecar.training.config import resolve, setting
from gradprom_sidecar.training.pretrain import pretrain
from gradprom_sidecar.training.session import Session
from gradprom_sidecar.training.snapshot import pack, restore


@dataclass
class ResumeCheck:
    """How the resumed run compares with the uninterrupted one."""

    device: str
    before: int
    after: int
    identical: bool
    max_abs: float
    bytes: int
    loads_on_cpu: bool

    @property
    def ok(self) -> bool:
        return self.max_abs <= 1e-5 and self.loads_on_cpu


def _params(s: Session) -> list[torch.Tensor]:
    return [p.detach().cpu().clone() for p in [*s.ip.parameters(), *s.vr.parameters()]]


def resume_check(scenario: Scenario, device: torch.device, before: int, after: int) -> ResumeCheck:
    """Train ``before`` steps, checkpoint, train ``after`` more; restore the checkpoint elsewhere and train ``after``.

    :param scenario: the networks and data.
    :param device: where both runs train.
    :param before: steps before the checkpoint.
    :param after: steps after it, in each run.
    """
    sgd = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
    config = resolve(
        {**scenario.config, "device": str(device), "train": {**scenario.config.get("train", {}), "ip_optim": sgd, "vr_optim": sgd}}
    )
    policy_cfg = setting(config, "policy")
    s = Session(config, device)
    pretrain(s, 2)
    for _ in range(before):
        reference_step(s, policy_cfg)
    if s.prefetched is None:  # the point of the check: a save with the next inputs already drawn
        raise RuntimeError("gpu-check: no inputs were drawn ahead before the checkpoint")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "last.pt"
        save_atomic(pack(s, {"note": "gpu-check"}), path)
        size = path.stat().st_size
        for _ in range(after):
            reference_step(s, policy_cfg)
        ckpt = load_checkpoint(path)
    resumed = Session(config, device, load_model_weights=False)
    restore(resumed, ckpt, "gpu-check checkpoint")
    for _ in range(after):
        reference_step(resumed, policy_cfg)
    a, b = _params(s), _params(resumed)
    diff = max(float((x - y).abs().max()) for x, y in zip(a, b))
    on_cpu = Session({**config, "device": "cpu"}, torch.device("cpu"), load_model_weights=False)
    restore(on_cpu, ckpt, "gpu-check checkpoint, on the CPU")
    return ResumeCheck(str(device), before, after, all(torch.equal(x, y) for x, y in zip(a, b)), diff, size, on_cpu.step == before)
