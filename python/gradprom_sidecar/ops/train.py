"""Training-step ops: the two-pass gradients, applying the policy's decision, skipping a step."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..registry import Context, Result, op
from .session import session_of


@op("train.grads", all_ranks=True)
def train_grads(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """g_IP and g_VR of the next batch, kept pending: their per-block Gram, and with ``vectors`` the flat vectors."""
    transport = args.get("transport", "gram")
    if transport not in ("gram", "vectors"):
        raise ValueError(f"args.transport: expected gram or vectors, got {transport!r}")
    s = session_of(ctx)
    g = s.grads()
    result = {"step": s.step, "loss_ip": g.loss_ip, "loss_vr": g.loss_vr, "finite": g.finite, "gram": g.gram}
    out = [g.g_ip.detach().cpu().clone(), g.g_vr.detach().cpu().clone()] if transport == "vectors" else []
    return result, out


def _weights_arg(weights: Any, key: str, n: int) -> list[float]:
    if not isinstance(weights, dict) or key not in weights:
        raise ValueError(f"args.weights.{key}: required (one weight per block)")
    w = weights[key]
    if not isinstance(w, (list, tuple)):
        raise ValueError(f"args.weights.{key}: expected a list of {n} numbers, got {type(w).__name__}")
    if len(w) != n:
        raise ValueError(f"args.weights.{key}: expected {n} blocks, got {len(w)}")
    out = []
    for i, v in enumerate(w):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"args.weights.{key}[{i}]: expected a finite number, got {v!r}")
        out.append(float(v))
    return out


@op("train.apply", all_ranks=True)
def train_apply(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Apply per-block weights (``args.weights``) or a merged vector (``tensors[0]``)."""
    s = session_of(ctx)
    s.require_pending("train.apply")
    n = len(s.layout)
    if "weights" in args and args["weights"] is not None:
        if tensors:
            raise ValueError("train.apply: give either args.weights or a merged tensor, not both")
        w_ip = _weights_arg(args["weights"], "ip", n)
        w_vr = _weights_arg(args["weights"], "vr", n)
        return s.apply(w_ip, w_vr), []
    if len(tensors) != 1:
        raise ValueError(f"train.apply: expected args.weights or exactly one merged tensor, got {len(tensors)} tensors")
    merged = tensors[0]
    if merged.dtype != torch.float32:
        raise ValueError(f"tensors[0].dtype: expected float32, got {str(merged.dtype).removeprefix('torch.')}")
    if merged.dim() != 1 or merged.numel() != s.layout.numel:
        raise ValueError(f"tensors[0].shape: expected [{s.layout.numel}], got {list(merged.shape)}")
    if not bool(torch.isfinite(merged).all()):
        raise ValueError("tensors[0]: the merged vector is not finite")
    return s.apply(merged=merged), []


@op("train.skip", all_ranks=True)
def train_skip(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Drop the pending gradients without a step (the policy saw a non-finite step)."""
    return session_of(ctx).skip(), []
