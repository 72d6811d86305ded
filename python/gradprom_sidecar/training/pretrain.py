"""VR pre-training: the session's VR trained on clean train images, then a frozen copy kept as the fixed evaluation VR.

Its own generators (``Session.pretrain_generator`` and ``pretrain_draws``, seeded ``seed +
PRETRAIN_SEED_OFFSET``) draw its batches, so pre-training never moves the training loop's RNG.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from gradprom_sidecar.evaluation.evaluate import clean_score
from gradprom_sidecar.training import grads as G
from gradprom_sidecar.training.config import setting
from gradprom_sidecar.training.optim import Sampler
from gradprom_sidecar.training.session import Session, frozen_copy


def pretrain(
    s: Session,
    steps: int,
    check: Callable[[], None] = lambda: None,
    report: Callable[[int], None] = lambda done: None,
) -> dict:
    """Train VR on clean train images, then keep a frozen copy as the fixed evaluation VR.

    :param s: the session whose VR trains.
    :param steps: optimisation steps (0: the fixed VR is a copy of the current VR).
    :param check: called before each step (raises when the request was cancelled).
    :param report: called with the number of steps done after each step (progress).
    :returns: ``{loss, accuracy, steps}``: the mean loss of the last 20 steps (NaN with none) and
        the fixed VR's clean validation score (``evaluate.clean_score``).
    """
    losses: list[Tensor] = []
    if steps > 0:
        s.vr.requires_grad_(True)
        s.vr.train()
        opt = torch.optim.Adam(s.vr.parameters(), lr=float(setting(s.config, "vr.pretrain_lr")))
        # One loss, one optimiser: torch's own scaler fits (its found-inf check syncs once a step; fp16 only).
        scaler = torch.amp.GradScaler(s.device.type, enabled=s.precision.scaler is not None)
        sampler = Sampler(len(s.bundle.train), s.batch_size, s.pretrain_generator)
        for done in range(steps):
            check()
            report(done)
            clean, target = s.batch(sampler.next(), s.pretrain_draws)
            s.feed.prefetch(sampler.peek())
            clean, target = s.local(clean), s.local(target)
            with s.precision.autocast():
                logits = s.vr_forward(s.precision.memory_format(clean))
            loss = G.task_loss(logits.float(), target)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(loss.detach())
        s.vr.zero_grad(set_to_none=True)
        if s.mode == "frozen":
            s.vr.requires_grad_(False)
            s.vr.eval()
    s.fixed_vr = frozen_copy(s.vr)
    tail = math.nan
    if losses:
        mean = torch.stack(losses[-20:]).mean()
        s.average([mean])
        tail = mean.item()  # host-device sync
    return {"loss": tail, "accuracy": clean_score(s, "val"), "steps": steps}
