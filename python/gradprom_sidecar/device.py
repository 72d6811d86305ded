"""Where the tensors live: the ``device`` setting resolved to a torch device, and the devices this machine has.

Kept apart from the server so that the compute modules and ``reference.py`` import where only
Python and PyTorch exist (no pyzmq, no msgpack), as on a bare GPU machine.
"""

from __future__ import annotations

import torch


def list_devices() -> list[str]:
    """This machine's devices, CUDA first (``"cuda:0 <name>"``), then ``"cpu"``."""
    if torch.cuda.is_available():
        return [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())] + ["cpu"]
    return ["cpu"]


def resolve_device(spec: str) -> torch.device:
    """The device for a ``device`` setting: ``auto`` is CUDA when present, else the CPU.

    :param spec: auto | cpu | cuda | cuda:N.
    :raises SystemExit: CUDA was asked for and is not available.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"gradprom sidecar: device {spec!r} requested but CUDA is not available (torch {torch.__version__})")
    return dev
