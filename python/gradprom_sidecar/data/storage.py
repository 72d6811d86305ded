"""Compact image storage: images kept at their source's bit depth, turned into float32 in [0, 1] per batch.

uint8 for 8-bit sources, uint16 for 16-bit ones, float32 for the rest (the synthetic set, windowed
DICOM). A split of ISIC 2018 Task 3 at 224×224 RGB takes a quarter of its float32 size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

STORAGE_DTYPES = (torch.uint8, torch.uint16, torch.float32)
_SCALE = {torch.uint8: 255.0, torch.uint16: 65535.0}


_DIVISORS: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Stored images as float32 in [0, 1]: uint8 / 255, uint16 / 65535, float32 as it is (no copy).

    The same bits on every device: the divisor is a tensor on the images' device, because CUDA turns
    division by a Python number into multiplication by its reciprocal (one ulp off for about half the
    8-bit levels), and ``data.rng: host`` promises a CUDA run the CPU run's batches exactly.

    :param images: any tensor of stored images (a batch or a whole split, on any device).
    """
    scale = _SCALE.get(images.dtype)
    if scale is None:
        return images
    key = (images.device, images.dtype)
    if key not in _DIVISORS:  # made once per device (a CUDA tensor: one copy, at the first batch)
        _DIVISORS[key] = torch.tensor(scale, dtype=torch.float32, device=images.device)
    return images.to(torch.float32).div_(_DIVISORS[key])


def gatherable(images: torch.Tensor) -> torch.Tensor:
    """A view of stored images that indexing, ``index_select`` and ``flip`` support on every device.

    PyTorch implements few kernels for uint16; its bits, viewed as int16, move the same way.
    Undo with :func:`stored`.
    """
    return images.view(torch.int16) if images.dtype == torch.uint16 else images


def stored(view: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Undo :func:`gatherable`: the view back as stored images of ``dtype``.

    :param view: a tensor made from a :func:`gatherable` view.
    """
    return view.view(dtype) if view.dtype != dtype else view


def quantize(x: torch.Tensor, depth: int | None) -> torch.Tensor:
    """An image in [0, 1] at its source's bit depth: uint8 (8), uint16 (16), or float32 as it is (None).

    Rounds to the nearest level: at most half a grey level from ``x`` (1/510 of the range at 8 bits).

    :param x: float image in [0, 1].
    :param depth: 8, 16 or None.
    """
    if depth == 8:
        return torch.round(x * 255.0).to(torch.uint8)
    if depth == 16:
        return torch.round(x * 65535.0).to(torch.uint16)
    return x.to(torch.float32)


def stack_images(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack stored images at the narrowest dtype that holds them all exactly.

    All uint8: uint8. uint8 with uint16: uint16 (an 8-bit level k is 257·k at 16 bits, exactly).
    Any float32: float32 for all.

    :param images: C×H×W tensors of one shape, each uint8, uint16 or float32.
    """
    dtypes = {x.dtype for x in images}
    bad = dtypes - set(STORAGE_DTYPES)
    if bad:
        raise ValueError(f"stack_images: images must be uint8, uint16 or float32, got {sorted(map(str, bad))}")
    if dtypes == {torch.uint8} or dtypes == {torch.uint16}:
        return torch.stack(list(images))
    if torch.float32 not in dtypes:  # uint8 and uint16
        return torch.stack([x.to(torch.int32).mul_(257).to(torch.uint16) if x.dtype == torch.uint8 else x for x in images])
    return torch.stack([to_unit(x) for x in images])
