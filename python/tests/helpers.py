"""Helpers shared by the Python tests: a tiny resolved config, and compute ops run the way the server runs them.

Importing it registers production's ops and the tests' own (``extra_ops``: the step's parts on their own, ``data.describe``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import extra_ops  # noqa: F401  (registers the test-only ops)
import torch
from conftest import DEVICE

from gradprom_sidecar import ops  # noqa: F401  (importing ops registers them)
from gradprom_sidecar.training import session as S
from gradprom_sidecar.wire.registry import HANDLERS, Context, State

T = TypeVar("T")


def optim_section(**over: object) -> dict:
    """An optimiser section: Adam, lr 1e-3, constant schedule, ``over`` on top."""
    base = {
        "name": "adam",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 0,
        "schedule": "constant",
        "step_size": 1000,
        "gamma": 0.5,
        "warmup_steps": 0,
    }
    return {**base, **over}


def tiny_config(**over: dict) -> dict:
    """A complete, resolved config small enough for a test (16×16, 48 train images, tiny nets)."""
    cfg = {
        "seed": 0,
        "device": "cpu",
        "data": {
            "kind": "synthetic",
            "path": None,
            "size": 16,
            "channels": 1,
            "classes": 3,
            "counts": {"train": 48, "val": 12, "test": 12},
            "split": {"train": 0.7, "val": 0.1, "test": 0.2},
            "seed": 0,
            "augment": {"flip": False, "crop": False},
            "window": None,
            "device_cache": "auto",
            "rng": "device",
            "disk_cache": True,
            "cache_dir": None,
        },
        "degradation": [{"kind": "gaussian", "sigma": 0.3, "clip": False}],
        "ip": {
            "arch": "srresnet",
            "channels": 4,
            "blocks": 1,
            "batch_norm": False,
            "depth": None,
            "levels": 3,
            "scale": 1,
            "weights": None,
            "plugin_path": None,
            "kwargs": {},
        },
        "vr": {
            "arch": "smallresnet",
            "task": "classify",
            "mode": "supervised",
            "weights": None,
            "normalize": "none",
            "weights_channels": None,
            "pretrain_steps": 2,
            "pretrain_lr": 1e-3,
            "plugin_path": None,
            "kwargs": {"widths": [4, 8]},
        },
        "policy": {"name": "gradprom", "lambda": 0.003, "lambda_mode": "plain", "threshold": 0, "granularity": "global"},
        "train": {
            "steps": 5,
            "batch_size": 8,
            "loss": "mse",
            "grad_exchange": "gram",
            "max_skips": 3,
            "precision": "fp32",
            "channels_last": "auto",
            "deterministic": False,
            "ip_optim": optim_section(),
            "vr_optim": optim_section(),
            "eval_every": 0,
            "checkpoint_every": 0,
        },
        "eval": {"batch_size": 8, "limit": None, "ssim": "skimage", "psnr": "image"},
        "output": {"dir": "runs", "name": None},
    }
    for section, values in over.items():
        if isinstance(values, dict) and isinstance(cfg.get(section), dict):
            cfg[section].update(values)
        else:
            cfg[section] = values
    return cfg


def plain(value: object) -> bool:
    """True for what msgpack carries unchanged: None, bool, int, float, str, bytes, and lists and str-keyed maps of them."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return True
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return isinstance(value, dict) and all(isinstance(k, str) and plain(v) for k, v in value.items())


def call(state: State, name: str, args: dict | None = None, tensors: list | None = None) -> tuple[dict, list]:
    """Run a compute op the way the server does (its result must be plain data: it goes out as msgpack)."""
    result, out = HANDLERS[name](Context(state, request_id=1), args or {}, tensors or [])
    assert plain(result), result
    return result, out


def new_state() -> State:
    return State(device=DEVICE, devices=[str(DEVICE)])


def make(cfg: dict | None = None, pretrain: int = 2) -> tuple[State, S.Session]:
    state = new_state()
    call(state, "session.create", {"config": cfg or tiny_config()})
    call(state, "vr.pretrain", {"steps": pretrain})
    return state, state.session


def step(state: State, weights: float = 0.003) -> dict:
    """One step in parts (``train.grads``, then ``train.apply`` with IP's weights 1 and VR's ``weights``); the gradients' reply."""
    res, _ = call(state, "train.grads", {"transport": "gram"})
    n = len(state.session.layout)
    call(state, "train.apply", {"weights": {"ip": [1.0] * n, "vr": [weights] * n}})
    return res


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def wait_for(cond: Callable[[], T], what: str, timeout: float = 30.0, every: float = 0.05) -> T:
    """Poll ``cond`` until it returns something truthy and return that; fail naming ``what`` after ``timeout`` s.

    Tests wait for a condition, never for a fixed time: a loaded machine only makes them slower, not wrong.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def signal_pending(pid: int, sig: int) -> bool:
    """True while ``sig`` sent to process ``pid`` is pending, not yet delivered (Linux's /proc; elsewhere False)."""
    status = Path(f"/proc/{pid}/status")
    try:
        lines = status.read_text().splitlines()
    except OSError:
        return False
    bit = 1 << (sig - 1)
    return any(int(line.split()[1], 16) & bit for line in lines if line.startswith(("SigPnd:", "ShdPnd:")))
