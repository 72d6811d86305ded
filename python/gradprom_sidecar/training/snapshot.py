"""What a checkpoint holds of a session, and putting it back (reading and writing files: ``checkpoint``).

A checkpoint is a plain dict of CPU tensors and containers (``torch.load(weights_only=True)``
reads it): format and version, the resolved config, step and skip counts, the seed, the three
networks (IP, co-trained VR, fixed VR), both optimisers, the RNG states and the sampler's place,
fp16's loss scale, plus the caller's ``extra``. Restoring it into a session built from the same
config continues bit-identically; it holds no per-rank state, so it resumes on any number of ranks.
CUDA RNG states are saved for every visible device, with the index of the session's own: a machine
with fewer devices restores those it has, and the session's device gets its saved device's state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradprom_sidecar.models.checkpoint import CheckpointError
from gradprom_sidecar.training.session import Session, frozen_copy

CHECKPOINT_FORMAT = "gradprom-checkpoint"
CHECKPOINT_VERSION = 1


def _state_cpu(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def pack(s: Session, extra: Any = None) -> dict:
    """Everything needed to continue ``s`` bit-identically (CPU tensors and plain containers only).

    :param extra: the caller's own data (TypeScript's run state), stored as given.
    :raises RuntimeError: a step is half-applied (VR updated, IP waiting for its decision).
    """
    if s.pipeline.state == "vr_updated":
        raise RuntimeError(
            f"checkpoint: step {s.step + 1} is half-applied (VR updated, IP waiting for its decision): apply or skip it first"
        )
    # Inputs drawn ahead of time are not saved: the checkpoint holds the state they were drawn from.
    inputs = s.prefetched[1] if s.prefetched is not None else s.input_rng_state()
    rng: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "generator": inputs["generator"],
        "pretrain_generator": s.pretrain_generator.get_state(),
    }
    if s.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state_all()
        rng["cuda_index"] = s.device.index if s.device.index is not None else torch.cuda.current_device()
    if "draws" in inputs:  # flips and noise drawn on the device (data.rng: device on CUDA)
        rng["draws"] = inputs["draws"]
    if s.pretrain_draws is not s.pretrain_generator:
        rng["pretrain_draws"] = s.pretrain_draws.get_state()
    sched = {"step": s.step, "total": s.total_steps}
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": s.config,
        "step": s.step,
        "skipped": s.pipeline.skipped,
        "seed": s.seed,
        "ip": _state_cpu(s.ip),
        "vr": _state_cpu(s.vr),
        "fixed_vr": _state_cpu(s.fixed_vr) if s.fixed_vr is not None else None,
        "ip_optim": s.ip_optim.state_dict(),
        "vr_optim": s.vr_optim.state_dict() if s.vr_optim is not None else None,
        "ip_sched": dict(sched),
        "vr_sched": dict(sched),
        "rng": rng,
        "sampler": inputs["sampler"],
        "scaler": s.precision.scaler.state_dict() if s.precision.scaler is not None else None,
        "extra": extra,
    }


def restore(s: Session, ckpt: dict, path: str, optimizers: bool = True) -> None:
    """Load a :func:`pack` dict into ``s``; errors name ``path`` and the part.

    :param s: a session built from the checkpoint's config.
    :param path: its file, for messages.
    :param optimizers: restore the optimisers' states too (False: a session that only evaluates, which makes none).
    :raises CheckpointError: another format or version, or networks that do not fit.
    """
    if ckpt.get("format") != CHECKPOINT_FORMAT or ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: not a gradprom checkpoint v{CHECKPOINT_VERSION} (format {ckpt.get('format')!r}, version {ckpt.get('version')!r})"
        )
    try:
        rng = ckpt["rng"]
        if "cuda" in rng and s.device.type == "cuda":  # first: a state this machine cannot take leaves the models as they were
            restore_cuda_rng(rng["cuda"], rng.get("cuda_index"), s.device)
        if s.precision.scaler is not None:
            if ckpt.get("scaler") is None:
                raise ValueError("no fp16 loss scale in it (written by a run in another train.precision)")
            s.precision.scaler.load_state_dict(ckpt["scaler"])
        s.ip.load_state_dict(ckpt["ip"])
        s.vr.load_state_dict(ckpt["vr"])
        if ckpt.get("fixed_vr") is not None:
            fixed = s.build_vr()
            fixed.load_state_dict(ckpt["fixed_vr"])
            s.fixed_vr = frozen_copy(fixed)
        else:
            s.fixed_vr = None
        if optimizers:
            s.ip_optim.load_state_dict(ckpt["ip_optim"])
            if s.vr_optim is not None and ckpt.get("vr_optim") is not None:
                s.vr_optim.load_state_dict(ckpt["vr_optim"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
        raise CheckpointError(f"{path}: does not fit this session's models: {e}") from e
    torch.set_rng_state(rng["torch"])
    s.set_input_rng_state(
        {"generator": rng["generator"], "sampler": ckpt["sampler"], **({"draws": rng["draws"]} if "draws" in rng else {})}
    )
    if "pretrain_generator" in rng:
        s.pretrain_generator.set_state(rng["pretrain_generator"])
    if "pretrain_draws" in rng and s.pretrain_draws is not s.pretrain_generator:
        s.pretrain_draws.set_state(rng["pretrain_draws"])
    s.pipeline.reset(int(ckpt["step"]), int(ckpt["skipped"]))


def restore_cuda_rng(states: list[Tensor], saved_index: int | None, device: torch.device) -> None:
    """Put back saved CUDA RNG states on the devices this machine has (``set_rng_state_all`` needs as many).

    Devices ``0..k-1`` get the first ``k`` saved states (k: the fewer of saved and visible devices);
    then the session's device gets the state of the device the run was on, which is what its
    draws continue from (saved on cuda:5 of 8, resumed on cuda:0 of 1: cuda:0 continues cuda:5).

    :param states: ``torch.cuda.get_rng_state_all()`` of the writing machine.
    :param saved_index: the writing session's device index (None in older checkpoints).
    :param device: this session's CUDA device.
    :raises IndexError: ``saved_index`` names no saved state.
    """
    for i, state in enumerate(states[: torch.cuda.device_count()]):
        torch.cuda.set_rng_state(state, i)
    if saved_index is not None:
        if not 0 <= saved_index < len(states):
            raise IndexError(f"rng.cuda_index {saved_index}: the checkpoint holds {len(states)} CUDA RNG states")
        torch.cuda.set_rng_state(states[saved_index], device)
