"""``vectors.region``: the shared region of vectors transport for the current session (``region.py``).

Not offered with several ranks (their merged decision travels with the op to every rank, as a frame). A new region replaces the
last one; a region made for another session is closed when this one's is asked for, and is not
used by ``train.advance`` (see :func:`region_for`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gradprom_sidecar.ops.session import close_region, session_of
from gradprom_sidecar.training.session import Session
from gradprom_sidecar.wire.region import Region
from gradprom_sidecar.wire.registry import Context, Result, op, require


@op("vectors.region")
def vectors_region(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Make the region in ``args.dir`` (TypeScript's private folder), sized from the session's layout, and move the vectors there.

    ``args.nonce``: 16 bytes written into the header. Nothing may be pending (the buffers move).
    The result: ``{path, bytes, numel, header, slot}``.
    """
    s = session_of(ctx)
    folder = require(args, "dir", str)
    nonce = require(args, "nonce", bytes)
    if ctx.state.dist is not None:
        raise RuntimeError("vectors.region: not with several ranks (every rank needs the merged decision: it goes as a frame)")
    if s.pipeline.pending is not None:
        raise RuntimeError(f"vectors.region: step {s.step + 1} is pending: give its decision first")
    close_region(ctx)
    region = Region(folder, s.layout.numel, nonce)
    try:
        if s.device.type == "cuda":
            region.pin()  # device → host copies into the slots then overlap, waited for by the step's one sync
        s.buffers.place(region.g_ip, region.g_vr, region.merged)
    except BaseException:
        region.close()
        raise
    ctx.state.region = (s, region)
    return region.describe(), []


def region_for(ctx: Context, s: Session) -> Region | None:
    """The open region of session ``s``, checked (size, header), or None when vectors go as frames."""
    held = ctx.state.region
    if held is None or held[0] is not s:
        return None
    held[1].check()
    return held[1]
