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
described in ``imagefolder``.

``cfg`` is the ``data`` section of the resolved config: the fields a kind reads are required
(the defaults live in src/config/defaults.ts, see ``config.resolve``).
"""

from __future__ import annotations

import torch

from gradprom_sidecar.data.base import SPLITS, DataBundle, DataError, Pool, Split
from gradprom_sidecar.data.storage import gatherable, stored, to_unit
from gradprom_sidecar.data.synthetic import class_names as synthetic_class_names
from gradprom_sidecar.data.synthetic import derive_seed, generate
from gradprom_sidecar.training.config import at
from gradprom_sidecar.training.device import to_device

__all__ = ["DataBundle", "DataError", "Split", "augment", "build_data", "split_indices", "to_unit"]

KINDS = ("synthetic", "isic2018", "folder", "dicom", "imagefolder", "nifti", "dicom-series")


def _int_field(cfg: dict, key: str, low: int) -> int:
    value = at(cfg, key, "data")
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"data.{key}: expected an integer >= {low}, got {value!r}")
    return value


def _fractions(cfg: dict) -> dict[str, float]:
    frac = at(cfg, "split", "data")
    if not isinstance(frac, dict) or set(frac) != set(SPLITS) or any(not isinstance(v, (int, float)) or v < 0 for v in frac.values()):
        raise ValueError(f"data.split: expected {{train, val, test}} fractions >= 0, got {frac!r}")
    if abs(sum(frac.values()) - 1.0) > 1e-6:
        raise ValueError(f"data.split: fractions must sum to 1, got {sum(frac.values()):.6g}")
    return {k: float(v) for k, v in frac.items()}


def split_indices(n: int, labels: torch.Tensor | None, fractions: dict[str, float], seed: int) -> dict[str, torch.Tensor]:
    """Seeded, stratified assignment of ``n`` samples to train/val/test (sorted index tensors).

    Sizes are ``round(n × fraction)`` for val and test (at least 1 each when its fraction is > 0
    and ``n`` allows), train takes the rest. Stratification: each sample gets the key
    (rank within its class in a random order + 0.5) / class size, and samples are dealt out in key
    order, so every class is spread over the splits in about the split's proportions.

    :param n: number of samples.
    :param labels: N class indices to stratify by, or None.
    :param fractions: {train, val, test}, summing to 1.
    :param seed: the experiment seed.
    """
    g = torch.Generator().manual_seed(derive_seed(seed, "split"))
    perm = torch.randperm(n, generator=g)
    key = torch.empty(n, dtype=torch.float64)
    groups = labels[perm] if labels is not None else torch.zeros(n, dtype=torch.long)
    for c in torch.unique(groups):
        pos = (groups == c).nonzero().flatten()
        key[pos] = (torch.arange(len(pos), dtype=torch.float64) + 0.5) / len(pos)
    order = perm[torch.sort(key, stable=True).indices]
    sizes = {k: round(n * fractions[k]) for k in ("val", "test")}
    for k in ("val", "test"):
        if fractions[k] > 0 and sizes[k] == 0 and n >= 3:
            sizes[k] = 1
    sizes["train"] = n - sizes["val"] - sizes["test"]
    if sizes["train"] < 0:
        raise ValueError(f"data.split: {n} samples cannot be split as {fractions}")
    out, start = {}, 0
    for k in SPLITS:
        out[k] = torch.sort(order[start : start + sizes[k]]).values
        start += sizes[k]
    return out


def _synthetic(cfg: dict, seed: int, size: int, channels: int) -> DataBundle:
    classes = _int_field(cfg, "classes", 2)
    counts = at(cfg, "counts", "data")
    if not isinstance(counts, dict):
        raise ValueError(f"data.counts: expected {{train, val, test}} counts, got {counts!r}")
    for k, v in counts.items():
        if k not in SPLITS or isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"data.counts.{k}: expected a split name with an integer count >= 0, got {v!r}")
    for k in SPLITS:
        at(counts, k, "data.counts")
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
        idx = split_indices(len(pool.names), pool.labels if pool.has_labels else None, _fractions(cfg), seed)
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
        {"kind": kind, "path": str(at(cfg, "path", "data")), **pool.source},
    )


def build_data(cfg: dict, seed: int) -> DataBundle:
    """Build the data set described by ``cfg`` (the config's ``data`` section).

    :param cfg: kind, path, size, channels, and the kind's own fields (see the module docstring).
    :param seed: the data seed (synthetic generation and the split).
    :raises DataError: a problem with the files (named in the message).
    :raises ValueError: a bad or missing config value (named by its dotted path).
    """
    kind = at(cfg, "kind", "data")
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
    _fractions(cfg)  # a bad split fails before any file is read
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
