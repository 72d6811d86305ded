"""The ``eval`` op: image quality and recognition on a split (see ``gradprom_sidecar.evaluation.evaluate``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gradprom_sidecar.evaluation.evaluate import evaluate
from gradprom_sidecar.ops.session import session_of
from gradprom_sidecar.wire.registry import Context, Result, op, require


@op("eval", all_ranks=True)
def eval_op(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Score ``args.split`` (its first ``args.limit`` images; default ``eval.limit``); ``args.per_image`` adds the per-image values."""
    split = require(args, "split", str)
    if split not in ("train", "val", "test"):
        raise ValueError(f"args.split: expected val or test (or train), got {split!r}")
    limit = args.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"args.limit: expected a positive integer or null, got {limit!r}")
    if not args.get("per_image"):
        return evaluate(session_of(ctx), split, limit), []
    # The per-image values, one float32 tensor each, named in result.per_image (for bootstraps over images).
    table: dict[str, Tensor] = {}
    result = evaluate(session_of(ctx), split, limit, per_image_out=table)
    return {**result, "per_image": list(table)}, list(table.values())
