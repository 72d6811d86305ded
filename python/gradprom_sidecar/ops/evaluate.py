"""The ``eval`` ops: a session scored on a split, or trained weights scored without one (see ``gradprom_sidecar.evaluation.evaluate``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradprom_sidecar.data.base import reporting
from gradprom_sidecar.data.cache import Loaded
from gradprom_sidecar.evaluation.evaluate import evaluate
from gradprom_sidecar.evaluation.streaming import Source, empty_bundle, open_source, streams
from gradprom_sidecar.models.checkpoint import CheckpointError, load_checkpoint
from gradprom_sidecar.ops.session import session_of
from gradprom_sidecar.training.config import setting
from gradprom_sidecar.training.session import Session, frozen_copy
from gradprom_sidecar.training.snapshot import restore
from gradprom_sidecar.wire.registry import Context, Result, op, require


def _split_and_limit(args: dict[str, Any], splits: tuple[str, ...]) -> tuple[str, int | None]:
    split = require(args, "split", str)
    if split not in splits:
        raise ValueError(f"args.split: expected one of {', '.join(splits)}, got {split!r}")
    limit = args.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"args.limit: expected a positive integer or null, got {limit!r}")
    return split, limit


@op("eval", all_ranks=True)
def eval_op(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Score ``args.split`` (its first ``args.limit`` images; default ``eval.limit``); ``args.per_image`` adds the per-image values."""
    split, limit = _split_and_limit(args, ("train", "val", "test"))
    if not args.get("per_image"):
        return evaluate(session_of(ctx), split, limit), []
    # The per-image values, one float32 tensor each, named in result.per_image (for bootstraps over images).
    table: dict[str, Tensor] = {}
    result = evaluate(session_of(ctx), split, limit, per_image_out=table)
    return {**result, "per_image": list(table)}, list(table.values())


def weights_session(config: dict, device: torch.device, split: str, checkpoint: str | None) -> tuple[Session, Source | None]:
    """A session holding the networks to score, and the split streamed when its kind is file-based (``streaming.streams``).

    With a streamed split the session holds no images (``streaming.empty_bundle``): nothing is decoded but the batch
    being scored. Otherwise it holds its data as a training session does.

    :param config: the resolved config; ``ip.weights`` and ``vr.weights`` fill the networks when there is no checkpoint.
    :param device: where the networks run.
    :param split: the split to score.
    :param checkpoint: a gradprom checkpoint whose networks (fixed VR included) are scored, or None.
    """
    data_cfg = setting(config, "data")
    source = open_source(data_cfg, int(setting(config, "data.seed")), split) if streams(data_cfg) else None
    data = None if source is None else Loaded(empty_bundle(source), key="streamed", source="streamed")
    s = Session(config, device, load_model_weights=checkpoint is None, data=data)
    if checkpoint is None:
        s.fixed_vr = frozen_copy(s.vr)  # the loaded VR is the fixed evaluation VR too, as after zero pre-training steps
    else:
        ckpt = load_checkpoint(checkpoint)
        if not isinstance(ckpt.get("config"), dict):
            raise CheckpointError(f"{checkpoint}: not a gradprom checkpoint (no config)")
        restore(s, ckpt, checkpoint, optimizers=False)
    return s, source


@op("eval.weights")
def eval_weights_op(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Score ``args.config``'s weights, or ``args.checkpoint``'s networks, on ``args.split`` (first ``args.limit`` images); a
    file-based split streams. Needs no session and changes none."""
    config = require(args, "config", dict)
    split, limit = _split_and_limit(args, ("val", "test"))
    checkpoint = args.get("checkpoint")
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise ValueError(f"args.checkpoint: expected a file path or null, got {checkpoint!r}")
    with reporting(lambda done, total: ctx.report("loading data", done, total)):
        s, source = weights_session(config, ctx.state.device, split, checkpoint)
    return evaluate(s, split, limit, source=source, check=ctx.check_cancelled), []
