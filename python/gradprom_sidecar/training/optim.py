"""Optimisation pieces of a session: the optimiser factory, the learning-rate schedule, the batch sampler.

Each reads one optimiser section of the resolved config (``train.ip_optim`` or
``train.vr_optim``: name, lr, momentum, weight_decay, schedule, step_size, gamma,
warmup_steps); a missing field is an error naming it, never a default.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gradprom_sidecar.training.config import setting, setting_in


def lr_factor(o: dict, step: int, total: int, where: str = "train.ip_optim") -> float:
    """The learning-rate multiplier at ``step``: linear warm-up, then constant, cosine or step decay.

    :param o: an optimiser section (schedule, step_size, gamma, warmup_steps).
    :param step: optimisation steps taken so far.
    :param total: ``train.steps`` (the cosine's length, warm-up included).
    :param where: the section's dotted path, for errors.
    """
    warm = int(setting(o, "warmup_steps", where))
    f = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
    t = max(0, step - warm)
    kind = setting_in(o, "schedule", ("constant", "cosine", "step"), where)
    if kind == "cosine":
        span = max(1, total - warm)
        f *= 0.5 * (1.0 + math.cos(math.pi * min(t, span) / span))
    elif kind == "step":
        f *= float(setting(o, "gamma", where)) ** (t // max(1, int(setting(o, "step_size", where))))
    return f


def optimizer_settings(o: dict, where: str) -> tuple[str, float, float, float]:
    """An optimiser section's name, lr, momentum and weight decay; errors name ``config.<where>``.

    :param o: the section (name, lr, momentum, weight_decay, ...).
    :param where: its dotted path, e.g. ``train.ip_optim``.
    """
    name = setting_in(o, "name", ("adam", "sgd"), where)
    return name, float(setting(o, "lr", where)), float(setting(o, "momentum", where)), float(setting(o, "weight_decay", where))


def make_optimizer(params: list[nn.Parameter], o: dict, where: str) -> torch.optim.Optimizer:
    """Adam (beta1 = momentum) or SGD from an optimiser section (see :func:`optimizer_settings`).

    :param params: the parameters to optimise.
    """
    name, lr, mom, wd = optimizer_settings(o, where)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(mom, 0.999), weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd)


def set_lr(optim: torch.optim.Optimizer, o: dict, step: int, total: int, where: str) -> float:
    """Set every parameter group's learning rate for ``step`` (peak ``lr`` × :func:`lr_factor`) and return it.

    :param step: optimisation steps taken so far.
    :param total: ``train.steps``.
    :param where: the section's dotted path, for errors.
    """
    lr = float(setting(o, "lr", where)) * lr_factor(o, step, total, where)
    for group in optim.param_groups:
        group["lr"] = lr
    return lr


class Sampler:
    """Epoch-wise random permutation of ``n`` indices, served ``batch`` at a time (the last partial batch is dropped).

    :param n: number of samples.
    :param batch: batch size (capped at ``n``).
    :param generator: the source of the permutations.
    """

    def __init__(self, n: int, batch: int, generator: torch.Generator) -> None:
        self.n, self.batch, self.generator = n, max(1, min(batch, n)), generator
        self.perm = torch.empty(0, dtype=torch.long)
        self.pos = 0

    def next(self) -> Tensor:
        """The next batch of indices (a new permutation when the current one has too few left)."""
        if self.pos + self.batch > self.perm.numel():
            self.perm = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return idx

    def peek(self) -> Tensor | None:
        """The indices :meth:`next` will return, when the current permutation holds them; None when it
        must draw a new one (nothing is drawn here, so peeking never moves the random stream)."""
        if self.pos + self.batch > self.perm.numel():
            return None
        return self.perm[self.pos : self.pos + self.batch]

    def state(self) -> dict:
        """The position in the current permutation (for checkpoints)."""
        return {"perm": self.perm.clone(), "pos": self.pos}

    def load(self, state: dict) -> None:
        """Continue from a :meth:`state`.

        :param state: what :meth:`state` returned.
        """
        self.perm, self.pos = state["perm"].clone().long(), int(state["pos"])
