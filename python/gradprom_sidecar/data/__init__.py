"""Data sets: ``build_data(cfg, seed)`` turns the config's ``data`` section into three in-memory splits.

Kinds: "synthetic" (the built-in default, generated per split from disjoint derived seeds),
"isic2018", "folder" and "dicom" (loaded, then split by seed unless the data set gives its own
split), "nifti" and "dicom-series" (volumes cut into 2D slices and split by subject, or into
slabs for one subject: see ``volume``). Every image is center-cropped to a square, resized to ``size``×``size`` (bilinear,
antialiased; masks nearest) and converted to ``channels``, and kept in compact storage: at the
source's bit depth (uint8 for 8-bit files), masks uint8 (``base``); the synthetic set stays
float32 (its images are made in float, and rounding them would change every figure measured on it).

``build_data`` decodes every time; sessions go through ``cache.load_data`` (decoded once per
sidecar, and kept on disk for the next one) and ``feed.Feed`` (on the device, per batch).

"imagefolder" (ImageNet's class folders, official splits, ESTR's resize-then-crop transforms) is
described in ``imagefolder``; "imagenet-val" (ImageNet's val split as downloaded: a flat folder and a
ground-truth file) in ``imagenet_val``.

``cfg`` is the ``data`` section of the resolved config: the fields a kind reads are required
(the defaults live in src/config/defaults.ts, see ``config.resolve``).
"""

from __future__ import annotations

import torch

from gradprom_sidecar.data.base import SPLITS, DataBundle, DataError, Pool, Split
from gradprom_sidecar.data.split import split_fractions, split_indices
from gradprom_sidecar.data.storage import gatherable, stored, to_unit
from gradprom_sidecar.data.synthetic import class_names as synthetic_class_names
from gradprom_sidecar.data.synthetic import derive_seed, generate
from gradprom_sidecar.training.config import setting
from gradprom_sidecar.training.device import to_device

__all__ = ["DataBundle", "DataError", "Split", "augment", "build_data", "split_indices", "to_unit"]

KINDS = ("synthetic", "isic2018", "folder", "dicom", "imagefolder", "imagenet-val", "nifti", "dicom-series")


def _int_field(cfg: dict, key: str, low: int) -> int:
    value = setting(cfg, key, "data")
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"data.{key}: expected an integer >= {low}, got {value!r}")
    return value


def _synthetic(cfg: dict, seed: int, size: int, channels: int) -> DataBundle:
    classes = _int_field(cfg, "classes", 2)
    counts = setting(cfg, "counts", "data")
    if not isinstance(counts, dict):
        raise ValueError(f"data.counts: expected {{train, val, test}} counts, got {counts!r}")
    for k, v in counts.items():
        if k not in SPLITS or isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"data.counts.{k}: expected a split name with an integer count >= 0, got {v!r}")
    for k in SPLITS:
        setting(counts, k, "data.counts")
    splits, start = {}, 0
    for name in SPLITS:
        splits[name] = generate(counts[name], size, channels, classes, derive_seed(seed, name), start)
        start += counts[name]
    return DataBundle(
        splits["train"],
        splits["val"],
        splits["test"],
        classes,
        channels,
        size,
        synthetic_class_names(classes),
        True,
        {"kind": "synthetic", "seed": seed},
    )


def _from_pool(pool: Pool, cfg: dict, seed: int, size: int, channels: int, kind: str) -> DataBundle:
    if pool.split_of is not None:
        idx = {k: torch.tensor([i for i, s in enumerate(pool.split_of) if s == k], dtype=torch.long) for k in SPLITS}
    else:
        idx = split_indices(len(pool.names), pool.labels if pool.has_labels else None, split_fractions(cfg), seed)
    whole = Split(pool.images, pool.labels, pool.masks, pool.names)
    parts = {k: whole.subset(v) for k, v in idx.items()}
    return DataBundle(
        parts["train"],
        parts["val"],
        parts["test"],
        pool.num_classes,
        channels,
        size,
        pool.class_names,
        pool.has_labels,
        {"kind": kind, "path": str(setting(cfg, "path", "data")), **pool.source},
    )


def build_data(cfg: dict, seed: int) -> DataBundle:
    """Build the data set described by ``cfg`` (the config's ``data`` section).

    :param cfg: kind, path, size, channels, and the kind's own fields (see the module docstring).
    :param seed: the data seed (synthetic generation and the split).
    :raises DataError: a problem with the files (named in the message).
    :raises ValueError: a bad or missing config value (named by its dotted path).
    """
    kind = setting(cfg, "kind", "data")
    if kind not in KINDS:
        raise ValueError(f"data.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    size = _int_field(cfg, "size", 8)
    channels = _int_field(cfg, "channels", 1)
    if channels not in (1, 3):
        raise ValueError(f"data.channels: expected 1 or 3, got {channels}")
    if kind == "synthetic":
        return _synthetic(cfg, seed, size, channels)
    if kind == "imagefolder":
        from gradprom_sidecar.data.imagefolder import load_imagefolder

        return load_imagefolder(cfg, size, channels)
    if kind == "imagenet-val":
        from gradprom_sidecar.data.imagenet_val import load_imagenet_val

        return load_imagenet_val(cfg, size, channels)
    split_fractions(cfg)  # a bad split fails before any file is read
    if kind == "isic2018":
        from gradprom_sidecar.data.isic2018 import load_isic2018 as load
    elif kind == "folder":
        from gradprom_sidecar.data.folder import load_folder as load
    elif kind == "nifti":
        from gradprom_sidecar.data.nifti import load_nifti as load
    elif kind == "dicom-series":
        from gradprom_sidecar.data.dicom_series import load_dicom_series as load
    else:
        from gradprom_sidecar.data.dicom import load_dicom as load
    return _from_pool(load(cfg, size, channels), cfg, seed, size, channels, kind)


def augment(
    images: torch.Tensor,
    masks: torch.Tensor | None,
    generator: torch.Generator,
    flip: bool = True,
    crop: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Train-time augmentation: a random ``crop``×``crop`` window per sample, then a random horizontal flip.

    The draws come from ``generator`` (on its own device) and are moved to the images' device, so
    a seeded run crops and flips the same samples on CPU and GPU. Crop corners are drawn only when
    the images are larger than ``crop`` (``data.augment.crop`` with ``data.resize``).

    :param images: N×C×H×W, stored (uint8, uint16) or float.
    :param masks: N×H×W or None.
    :param generator: the training generator.
    :param flip: when False, no flips.
    :param crop: the side of the random crop, or None for none.
    """
    if images.shape[0] == 0:
        return images, masks
    if crop is not None and tuple(images.shape[-2:]) != (crop, crop):
        images, masks = _random_crop(images, masks, generator, crop)
    if not flip:
        return images, masks
    draw = torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5
    draw = to_device(draw, images.device)  # host-generator draws: a pinned, non-blocking copy
    bits = gatherable(images)
    images = stored(torch.where(draw.view(-1, 1, 1, 1), bits.flip(-1), bits), images.dtype)
    if masks is not None:
        masks = torch.where(draw.view(-1, 1, 1), masks.flip(-1), masks)
    return images, masks


def _random_crop(
    images: torch.Tensor, masks: torch.Tensor | None, generator: torch.Generator, crop: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One random ``crop``×``crop`` window per sample (corners uniform over the valid range).

    Gathered with index tensors on the images' device: no corner is read back to the host (a read
    would be a host-device sync on every CUDA step).
    """
    n, _, h, w = images.shape
    if h < crop or w < crop:
        raise ValueError(f"data.augment.crop: images of {h}x{w} are smaller than the {crop} px crop")
    top = to_device(torch.randint(0, h - crop + 1, (n,), generator=generator, device=generator.device), images.device)
    left = to_device(torch.randint(0, w - crop + 1, (n,), generator=generator, device=generator.device), images.device)
    span = torch.arange(crop, device=images.device)
    rows = (top[:, None] + span)[:, :, None]  # n×crop×1
    cols = (left[:, None] + span)[:, None, :]  # n×1×crop
    sample = torch.arange(n, device=images.device)[:, None, None]
    out = gatherable(images).permute(0, 2, 3, 1)[sample, rows, cols].permute(0, 3, 1, 2).contiguous()
    if masks is not None:
        masks = masks[sample, rows, cols].contiguous()
    return stored(out, images.dtype), masks
