"""The training-step op: ``train.advance``, the training loop's one op per step.

``train.advance`` applies step t's decision and computes step t+1's gradients in one round trip;
the reply carries t+1's losses and Gram (and both vectors in vectors transport). After the reply
is sent, the sidecar makes VR's own update for t+1 and draws t+2's inputs (``PipelinedStep.after_grads``),
so that work overlaps TypeScript's decision. The step's states and their order are ``training.step``'s;
this module reads the request and shapes the reply. The same step in separate calls (``train.grads``,
``train.apply``, ``train.skip``) is for tests only: python/tests/extra_ops.py registers them from
the helpers below, which production serves through ``train.advance``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gradprom_sidecar.ops.session import session_of
from gradprom_sidecar.ops.vectors import region_for
from gradprom_sidecar.training.session import Session
from gradprom_sidecar.wire.region import Region
from gradprom_sidecar.wire.registry import Context, Result, op


def transport_arg(args: dict[str, Any]) -> bool:
    """True for vectors transport (``args.transport``: gram, the default, or vectors)."""
    transport = args.get("transport", "gram")
    if transport not in ("gram", "vectors"):
        raise ValueError(f"args.transport: expected gram or vectors, got {transport!r}")
    return transport == "vectors"


def grads_reply(s: Session, vectors: bool, region: Region | None) -> Result:
    """The next step's gradients as a reply: its numbers, and in vectors transport the two vectors.

    With a shared region the vectors are already in it (or copied there with the step's one sync)
    and the reply carries only ``region_seq``; otherwise they go as two frames, straight from the
    session's buffers (no clone: they stay as they are until the next step's gradients).
    """
    g = s.pipeline.grads(vectors)
    result = {"step": s.step, "loss_ip": g.loss_ip, "loss_vr": g.loss_vr, "finite": g.finite, "gram": g.gram}
    if vectors and region is not None:
        return {**result, "region_seq": region.published()}, []
    return result, list(g.host) if g.host is not None else []


def _weights_arg(weights: Any, key: str, n: int, where: str) -> list[float]:
    if not isinstance(weights, dict) or key not in weights:
        raise ValueError(f"{where}.{key}: required (one weight per block)")
    w = weights[key]
    if not isinstance(w, (list, tuple)):
        raise ValueError(f"{where}.{key}: expected a list of {n} numbers, got {type(w).__name__}")
    if len(w) != n:
        raise ValueError(f"{where}.{key}: expected {n} blocks, got {len(w)}")
    out = []
    for i, v in enumerate(w):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where}.{key}[{i}]: expected a finite number, got {v!r}")
        out.append(float(v))
    return out


def merged_arg(s: Session, tensors: list[Tensor], what: str) -> Tensor:
    """The one merged float32 vector of ``tensors``, checked against the layout."""
    if len(tensors) != 1:
        raise ValueError(f"{what}: expected exactly one merged tensor, got {len(tensors)} tensors")
    merged = tensors[0]
    if merged.dtype != torch.float32:
        raise ValueError(f"tensors[0].dtype: expected float32, got {str(merged.dtype).removeprefix('torch.')}")
    if merged.dim() != 1 or merged.numel() != s.layout.numel:
        raise ValueError(f"tensors[0].shape: expected [{s.layout.numel}], got {list(merged.shape)}")
    if not bool(torch.isfinite(merged).all()):
        raise ValueError("tensors[0]: the merged vector is not finite")
    return merged


def apply_weights(s: Session, weights: Any, where: str) -> dict:
    """Apply the per-block weights ``weights.ip`` and ``weights.vr`` (errors name ``where``); the step applied."""
    n = len(s.layout)
    return s.pipeline.apply(_weights_arg(weights, "ip", n, where), _weights_arg(weights, "vr", n, where))


@op("train.advance", all_ranks=True)
def train_advance(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Apply the pending step's ``args.decision`` (if any), then with ``args.next`` compute the next step's gradients.

    ``decision``: ``{kind: weights, ip, vr}`` (one weight per block each), ``{kind: merged}`` (the
    vector is ``tensors[0]``) or ``{kind: skip}``; absent when nothing is pending. The result:
    ``{step, skipped, lr_ip, lr_vr, ip_descent_actual, next}`` (``ip_descent_actual``: cos(−g_IP, Δθ) of
    the IP step just taken, NaN when none was, see ``descent``), ``next`` being the new step's ``{loss_ip, loss_vr,
    finite, gram}`` (with a shared region also ``region_seq``) or None; tensors out: [g_ip, g_vr] with
    ``next`` in vectors transport without a shared region.
    """
    s = session_of(ctx)
    step = s.pipeline
    vectors = transport_arg(args)
    want_next = args.get("next", True)
    if not isinstance(want_next, bool):
        raise ValueError(f"args.next: expected a boolean, got {type(want_next).__name__}")
    decision = args.get("decision")
    kind = decision.get("kind") if isinstance(decision, dict) else None
    if decision is not None and kind not in ("weights", "merged", "skip"):
        raise ValueError(f"args.decision.kind: expected weights, merged or skip, got {kind!r}")
    if tensors and kind != "merged":
        raise ValueError(f"train.advance: tensors come only with a merged decision, got {len(tensors)}")
    region = region_for(ctx, s)  # checked before anything reads or writes it: a truncated file is an error, not a SIGBUS
    applied: dict[str, Any] = {"step": s.step, "lr_ip": 0.0, "lr_vr": 0.0, "ip_descent_actual": math.nan}
    step.expect_decision(kind is not None, "train.advance")
    if kind == "weights":
        applied = apply_weights(s, decision, "args.decision")
    elif kind == "merged" and "region_seq" in decision:
        if region is None:
            raise RuntimeError("args.decision.region_seq: no shared region is open for this session (vectors.region)")
        applied = step.apply(merged=merged_arg(s, [region.merged_slot(decision["region_seq"])], "train.advance"))
    elif kind == "merged":
        applied = step.apply(merged=merged_arg(s, tensors, "train.advance"))
    elif kind == "skip":
        step.skip()
    result: dict[str, Any] = {**applied, "skipped": step.skipped, "next": None}
    out: list[Tensor] = []
    if want_next:
        grads, out = grads_reply(s, vectors, region)
        result["next"] = {k: grads[k] for k in ("loss_ip", "loss_vr", "finite", "gram", "region_seq") if k in grads}
        ctx.defer(step.after_grads)
    if kind in ("weights", "merged"):
        result["ip_descent_actual"] = step.ip_descent_actual()  # read back with the next step's numbers when they came
    return result, out
