"""Bridge ops, for transport tests and benchmarks: echo and sleep (on the compute thread, like every op here)."""

from __future__ import annotations

import time
from typing import Any

import torch

from gradprom_sidecar.wire.registry import Context, Result, op, require


@op("echo")
def echo(ctx: Context, args: dict[str, Any], tensors: list[torch.Tensor]) -> Result:
    """Return the request's tensors unchanged (transport tests and benchmarks)."""
    return {}, tensors


@op("sleep")
def sleep(ctx: Context, args: dict[str, Any], tensors: list[torch.Tensor]) -> Result:
    """Busy the compute thread for `seconds`, stopping early when cancelled."""
    seconds = float(require(args, "seconds", (int, float)))
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        ctx.check_cancelled()
        time.sleep(min(0.01, seconds))
    return {"slept": time.monotonic() - start}, []
