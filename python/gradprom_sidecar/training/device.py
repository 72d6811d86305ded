"""Where the tensors live: the ``device`` setting resolved to a torch device, and the devices this machine has.

Kept apart from the server so that the compute modules and ``reference.py`` import where only
Python and PyTorch exist (no pyzmq, no msgpack), as on a bare GPU machine.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Sequence

import torch
from torch import Tensor


def list_devices() -> list[str]:
    """This machine's devices, CUDA first (``"cuda:0 <name>"``), then ``"cpu"``."""
    if torch.cuda.is_available():
        return [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())] + ["cpu"]
    return ["cpu"]


def resolve_device(spec: str) -> torch.device:
    """The device for a ``device`` setting: ``auto`` is CUDA when present, else the CPU; ``cuda:N`` is made current.

    :param spec: auto | cpu | cuda | cuda:N.
    :raises SystemExit: CUDA was asked for and is not available, or ``cuda:N`` names no visible device
        (refused here, at start, rather than at the first copy; the message lists the visible devices).
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type != "cuda":
        return dev
    visible = ", ".join(list_devices())
    if not torch.cuda.is_available():
        raise SystemExit(
            f"gradprom sidecar: device {spec!r} requested but CUDA is not available (torch {torch.__version__}); visible devices: {visible}"
        )
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise SystemExit(f"gradprom sidecar: device {spec!r} is not visible on this machine; visible devices: {visible}")
    if dev.index is not None:
        # cuda:N becomes the process's current device: otherwise pinned buffers, CUDA events, the caching
        # allocator's streams and every bare "cuda" tensor belong to cuda:0 (a context there, copies that sync).
        torch.cuda.set_device(dev)
    return dev


def device_name(device: torch.device) -> str:
    """``"cuda:0 NVIDIA H100 80GB HBM3"`` or ``"cpu"``: what evaluation records name the device by.

    :param device: a session's device.
    """
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} {torch.cuda.get_device_name(index)}"


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far, MiB: ``torch.cuda.max_memory_allocated`` on CUDA, the process's peak RSS on the CPU.

    :param device: a session's device.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """``t`` (on the host) on ``device`` without a host-device sync.

    To CUDA the copy goes through pinned memory and does not block (a copy from pageable memory
    waits for the whole stream); PyTorch's pinned-memory cache keeps the staging buffer until
    the copy is done. On the CPU ``t`` is returned as it is.

    :param t: a host tensor (a device one is returned as it is, or copied between devices).
    :param device: where it is needed.
    """
    if device.type != "cuda":
        return t
    if t.is_cuda:  # drawn on the device already (data.rng: device)
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class SyncCount:
    """How many times :func:`to_host` waited for the device (read by scripts/gpu-check)."""

    count = 0


def to_host(tensors: list[Tensor], into: Sequence[Tensor | None] = ()) -> list[Tensor]:
    """Host copies of ``tensors``, with ONE host-device sync for all of them.

    On CUDA every copy is queued non-blocking into pinned memory (the tensor ``into`` gives for it,
    or a fresh one) and the stream is waited for once. On the CPU a tensor with a place in ``into``
    is copied there (nothing at all when it is that place: the flat gradient buffers, which stay
    as they are until the next step), the others cloned.

    :param tensors: tensors on one device.
    :param into: for each of the first ``len(into)`` tensors, a host tensor of its shape to read it into, or None.
    """
    dst = [*into, *[None] * (len(tensors) - len(into))]
    if not tensors or tensors[0].device.type != "cuda":
        return [t.clone() if d is None else d if d is t else d.copy_(t) for t, d in zip(tensors, dst)]
    out = [t.to("cpu", non_blocking=True) if d is None else d.copy_(t, non_blocking=True) for t, d in zip(tensors, dst)]
    torch.cuda.current_stream(tensors[0].device).synchronize()  # host-device sync: the step's one
    SyncCount.count += 1
    return out
