"""Session ops: create a session, pre-train its VR (its data is described in ``session.create``'s reply)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gradprom_sidecar.data.base import reporting
from gradprom_sidecar.training.pretrain import pretrain
from gradprom_sidecar.training.session import Session
from gradprom_sidecar.wire.registry import Context, Result, op, require


def new_session(ctx: Context, config: dict, load_model_weights: bool = True) -> Session:
    """A session for this process: a plain one, or a rank's share of a distributed one.

    :param config: the resolved experiment config.
    :param load_model_weights: load ``ip.weights``/``vr.weights`` (False when a checkpoint follows).
    """
    if ctx.state.dist is not None:
        return ctx.state.dist.new_session(config, ctx.state.device, load_model_weights)
    return Session(config, ctx.state.device, load_model_weights)


def session_of(ctx: Context) -> Session:
    """The current session, or an error saying how to make one."""
    if ctx.state.session is None:
        raise RuntimeError("no session: call session.create (or checkpoint.load) first")
    return ctx.state.session


def close_region(ctx: Context) -> None:
    """Close the open region, if any (its file and folder go; the session's buffers stay readable in memory)."""
    if ctx.state.region is not None:
        ctx.state.region[1].close()
        ctx.state.region = None


@op("session.create", all_ranks=True)
def session_create(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Build data, models, optimizers and RNG from the resolved config (replacing any session)."""
    config = require(args, "config", dict)
    ctx.state.session = None  # free the old one first
    close_region(ctx)  # sized from the old layout
    with reporting(lambda done, total: ctx.report("loading data", done, total)):
        ctx.state.session = new_session(ctx, config)
    return ctx.state.session.describe(), []


@op("vr.pretrain", all_ranks=True)
def vr_pretrain(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Train VR on clean images for ``args.steps``, then keep it as the fixed evaluation VR."""
    steps = require(args, "steps", int)
    if steps < 0:
        raise ValueError(f"args.steps: expected >= 0, got {steps}")
    return pretrain(session_of(ctx), steps, ctx.check_cancelled, lambda done: ctx.report("pretraining VR", done, steps)), []
