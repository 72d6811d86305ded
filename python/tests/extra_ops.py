"""Ops for the tests only, registered on top of production's when this module is imported (helpers.py does).

The step's parts on their own, ``train.grads`` → ``train.apply`` | ``train.skip``, let a test look at
one step's gradients and decide it by hand; production serves the same step as ``train.advance``
(python/gradprom_sidecar/ops/train.py), with the same argument checks. Here VR's update waits for
``train.apply``, and a skip updates nothing. ``data.describe`` gives counts per split and class.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gradprom_sidecar.ops.session import session_of
from gradprom_sidecar.ops.train import apply_weights, grads_reply, merged_arg, transport_arg
from gradprom_sidecar.ops.vectors import region_for
from gradprom_sidecar.wire.registry import Context, Result, op

EXTRA_OPS = ("train.grads", "train.apply", "train.skip", "data.describe")


@op("train.grads", all_ranks=True)
def train_grads(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """g_IP and g_VR of the next batch, kept pending: their per-block Gram, and with ``args.transport: vectors`` the flat vectors."""
    s = session_of(ctx)
    return grads_reply(s, transport_arg(args), region_for(ctx, s))


@op("train.apply", all_ranks=True)
def train_apply(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Apply per-block weights (``args.weights``) or a merged vector (``tensors[0]``); the step, with its descent read back now."""
    s = session_of(ctx)
    s.pipeline.require_pending("train.apply")
    if args.get("weights") is not None:
        if tensors:
            raise ValueError("train.apply: give either args.weights or a merged tensor, not both")
        applied = apply_weights(s, args["weights"], "args.weights")
    elif len(tensors) != 1:
        raise ValueError(f"train.apply: expected args.weights or exactly one merged tensor, got {len(tensors)} tensors")
    else:
        applied = s.pipeline.apply(merged=merged_arg(s, tensors, "train.apply"))
    return {**applied, "ip_descent_actual": s.pipeline.ip_descent_actual()}, []


@op("train.skip", all_ranks=True)
def train_skip(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Drop the pending gradients without a step."""
    s = session_of(ctx)
    s.pipeline.require_pending("train.skip")
    return s.pipeline.skip(), []


@op("data.describe")
def data_describe(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Counts per split and class, the image shape, and the class names (``args.split``: one split only)."""
    b = session_of(ctx).bundle
    out = b.describe()
    split = args.get("split")
    if split is not None:
        if split not in out:
            raise ValueError(f"args.split: expected train, val or test, got {split!r}")
        out = {split: out[split]}
    out.update({"num_classes": b.num_classes, "channels": b.channels, "size": b.size, "class_names": list(b.class_names)})
    return out, []
