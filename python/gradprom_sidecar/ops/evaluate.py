"""The ``eval`` op: image quality and recognition on a split (see ``gradprom_sidecar.evaluate``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..evaluate import evaluate
from ..registry import Context, Result, op, require
from .session import session_of


@op("eval", all_ranks=True)
def eval_op(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Score ``args.split`` (its first ``args.limit`` images; default ``eval.limit``)."""
    split = require(args, "split", str)
    if split not in ("train", "val", "test"):
        raise ValueError(f"args.split: expected val or test (or train), got {split!r}")
    limit = args.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"args.limit: expected a positive integer or null, got {limit!r}")
    return evaluate(session_of(ctx), split, limit), []
