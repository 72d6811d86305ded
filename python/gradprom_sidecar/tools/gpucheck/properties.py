"""(e) What the device promises to match the CPU in, shown on the device itself.

- stored images to [0, 1]: every 8- and 16-bit level gives the CPU's float32 division, bit for bit
  (``data.rng: host`` then gives a CUDA run the CPU run's batches);
- the float64 Gram: the same inputs give the same bits on a repeat (no atomics), with the default,
  non-deterministic kernels, so a repeated or resumed run takes the same gate decisions;
- the shared region of vectors transport: page-locked (portable) on a memory file system;
- ``cuda:N``: the sidecar's current device becomes N.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import torch
from torch import nn

from gradprom_sidecar.data.storage import to_unit
from gradprom_sidecar.training import grads as G
from gradprom_sidecar.training.device import resolve_device
from gradprom_sidecar.wire import region as R


class _Blocks(nn.Module):
    """Parameters of the given sizes: a layout with blocks large and small, rows straddling them."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.ps = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in sizes)


def _levels(device: torch.device) -> list[str]:
    lines, ok = [], True
    for dtype, top in ((torch.uint8, 255), (torch.uint16, 65535)):
        want = torch.from_numpy(np.arange(top + 1, dtype=np.float32) / np.float32(top))
        got = to_unit(torch.arange(top + 1, dtype=torch.int32).to(dtype).to(device)).cpu()
        bad = int((got != want).sum())
        ok &= bad == 0
        lines.append(f"- {str(dtype).removeprefix('torch.')} levels to [0, 1]: {top + 1 - bad} of {top + 1} equal the CPU's division")
    return lines if ok else [*lines, "  **differs**"]


def _gram_repeat(device: torch.device, big: bool) -> tuple[bool, str]:
    sizes = [(2_000_003 if big else 20_003) // (i + 1) + i for i in range(60)]  # ResNet-like: a few large, many small
    layout = G.Layout(_Blocks(sizes))
    g = torch.Generator().manual_seed(0)
    a = torch.randn(layout.numel, generator=g).to(device)
    v = torch.randn(layout.numel, generator=g).to(device)
    grams = [G.gram_tensor(a, v, layout).cpu() for _ in range(3)]
    same = all(torch.equal(grams[0], x) for x in grams[1:])
    return same, (
        f"- float64 Gram of {layout.numel / 1e6:.1f} M elements in {len(layout)} blocks, 3 times (default kernels): "
        + ("bit-identical" if same else "**differs between repeats**")
    )


def _region(device: torch.device) -> tuple[bool, str]:
    if device.type != "cuda":
        return True, "- shared region pinning: not applicable on the CPU"
    base = tempfile.mkdtemp(prefix="gradprom-gpu-check-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        folder = os.path.join(base, "region")
        os.mkdir(folder, 0o700)
        region = R.Region(folder, 1 << 20, bytes(16))
        region.pin()
        pinned = region.pinned
        region.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return pinned, f"- shared region on {base.rsplit('/', 1)[0]}: " + ("page-locked (portable)" if pinned else "**not page-locked**")


def _current(device: torch.device) -> tuple[bool, str]:
    if device.type != "cuda":
        return True, "- `cuda:N` as the current device: not applicable on the CPU"
    last = torch.cuda.device_count() - 1
    before = torch.cuda.current_device()
    try:
        resolve_device(f"cuda:{last}")
        now = torch.cuda.current_device()
    finally:
        torch.cuda.set_device(before)
    return now == last, f"- `device: cuda:{last}` makes cuda:{now} the current device" + ("" if now == last else " **(not the one asked)**")


def device_properties(device: torch.device, big: bool) -> tuple[bool, list[str]]:
    """Each property as one line; ok when all hold.

    :param device: the device checked.
    :param big: a Gram of paper size (about 9 M elements) rather than a small one.
    """
    levels = _levels(device)
    checks = [_gram_repeat(device, big), _region(device), _current(device)]
    ok = not any("**" in ln for ln in levels) and all(c for c, _ in checks)
    return ok, [f"On `{device}`:", "", *levels, *(line for _, line in checks)]
