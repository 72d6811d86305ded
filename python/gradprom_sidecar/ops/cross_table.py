"""The ``eval.transfer`` op: several processing models read by several recognizers (see ``gradprom_sidecar.evaluation.cross_table``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gradprom_sidecar.evaluation.cross_table import parse_specs, transfer_table
from gradprom_sidecar.wire.registry import Context, Result, op, require


@op("eval.transfer")
def eval_transfer(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """The transfer table of ``args.ips`` × ``args.vrs`` on ``args.split`` under ``args.config``; no session is used or changed."""
    config = require(args, "config", dict)
    split = require(args, "split", str)
    if split not in ("val", "test"):
        raise ValueError(f"args.split: expected val or test, got {split!r}")
    limit = args.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"args.limit: expected a positive integer or null, got {limit!r}")
    ips, vrs = parse_specs(args.get("ips"), "ips"), parse_specs(args.get("vrs"), "vrs")
    return transfer_table(config, ips, vrs, split, limit, ctx.state.device, ctx.check_cancelled), []
