"""Bench-only ops: ``train.step``, one whole step inside the sidecar, the in-process reference on the
session the bridge drives (``npm run bench`` times the bridge against it); ``bench.lean``, steps of
the plain-PyTorch floor (``bench.LeanLoop``) on copies of that session's networks, in this process.

Not part of the production sidecar: :func:`register` adds them when the sidecar starts with
``GRADPROM_BENCH_OPS=1`` (:data:`BENCH_ENV`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gradprom_sidecar.ops.session import session_of
from gradprom_sidecar.tools.bench import LeanLoop
from gradprom_sidecar.tools.reference import reference_step
from gradprom_sidecar.training.config import setting
from gradprom_sidecar.training.session import Session
from gradprom_sidecar.wire.registry import HANDLERS, Context, Result, require
from gradprom_sidecar.wire.registry import register as register_op

_lean: tuple[Session, LeanLoop] | None = None  # the floor of the current session (made on first use)


def train_step(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """grads → the config's built-in policy (``policies.weights``) → apply, or skip when not finite."""
    s = session_of(ctx)
    g, tel, ms = reference_step(s, setting(s.config, "policy"))
    return {"step": s.step, "loss_ip": g.loss_ip, "loss_vr": g.loss_vr, "finite": g.finite, **tel, "ms": ms}, []


def bench_lean(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """``args.steps`` steps of the plain-PyTorch floor; ``{ms: [one per step]}`` timed in-process."""
    global _lean
    steps = require(args, "steps", int)
    s = session_of(ctx)
    if _lean is None or _lean[0] is not s:
        _lean = (s, LeanLoop(s))
    loop = _lean[1]
    return {"ms": [loop.step() for _ in range(steps)]}, []


BENCH_ENV = "GRADPROM_BENCH_OPS"
BENCH_OPS = ("train.step", "bench.lean")


def register() -> None:
    """Register the bench-only ops; a second call does nothing."""
    if "train.step" not in HANDLERS:
        register_op("train.step", train_step, all_ranks=True)
        register_op("bench.lean", bench_lean)
