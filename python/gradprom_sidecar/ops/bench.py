"""Bench-only op ``train.step``: one whole step inside the sidecar, the in-process reference on the
session the bridge drives (``npm run bench`` times the bridge against it).

Not part of the production sidecar: ``ops.register_bench_ops`` adds it when the sidecar starts
with ``GRADPROM_BENCH_OPS=1``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..config import at
from ..reference import reference_step
from ..registry import Context, Result
from .session import session_of


def train_step(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """grads → the config's built-in policy (``policies.weights``) → apply, or skip when not finite."""
    s = session_of(ctx)
    g, tel, ms = reference_step(s, at(s.config, "policy"))
    return {"step": s.step, "loss_ip": g.loss_ip, "loss_vr": g.loss_vr, "finite": g.finite, **tel, "ms": ms}, []
