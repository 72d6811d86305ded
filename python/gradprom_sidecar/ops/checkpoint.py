"""Checkpoint ops: save the session to a file, restore it from one (see ``snapshot`` and ``gradprom_sidecar.models.checkpoint``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from gradprom_sidecar.models.checkpoint import CheckpointError, load_checkpoint, save_atomic
from gradprom_sidecar.ops.session import new_session, session_of
from gradprom_sidecar.training.snapshot import pack, restore
from gradprom_sidecar.wire.registry import Context, Result, op, require


@op("checkpoint.save")
def checkpoint_save(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Write the session to ``args.path`` atomically, with the caller's ``args.extra``."""
    path = require(args, "path", str)
    save_atomic(pack(session_of(ctx), args.get("extra")), path)
    return {"path": path, "bytes": Path(path).stat().st_size}, []


@op("checkpoint.load", all_ranks=True)
def checkpoint_load(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Restore a checkpoint; with no session yet, build one from the checkpoint's own config."""
    path = require(args, "path", str)
    ckpt = ctx.state.dist.load_checkpoint(path) if ctx.state.dist is not None else load_checkpoint(path)
    if not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"{path}: not a gradprom checkpoint (no config)")
    if ctx.state.session is None:
        ctx.state.session = new_session(ctx, ckpt["config"], load_model_weights=False)
    s = ctx.state.session
    restore(s, ckpt, path)
    return {"step": s.step, "skipped": s.pipeline.skipped, "extra": ckpt.get("extra"), "config": s.config}, []
