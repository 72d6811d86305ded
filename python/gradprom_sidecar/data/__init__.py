"""Data sets: ``build_data(cfg, seed)`` turns the config's ``data`` section into three in-memory splits.

Kinds: "synthetic" (the built-in default, generated per split from disjoint derived seeds),
"isic2018", "folder" and "dicom" (loaded, then split by seed unless the data set gives its own
split), "nifti" and "dicom-series" (volumes cut into 2D slices and split by subject, or into
slabs for one subject: see ``volume``). Every image is center-cropped to a square, resized to ``size``×``size`` (bilinear,
antialiased; masks nearest) and converted to ``channels``.

``cfg`` is the ``data`` section of the resolved config: the fields a kind reads are required
(the defaults live in src/config/defaults.ts, see ``config.resolve``).
"""

from __future__ import annotations

import torch

from ..config import at
from .base import SPLITS, DataBundle, DataError, Pool, Split
from .synthetic import class_names as synthetic_class_names
from .synthetic import derive_seed, generate

__all__ = ["DataBundle", "DataError", "Split", "augment", "build_data", "split_indices"]

KINDS = ("synthetic", "isic2018", "folder", "dicom", "nifti", "dicom-series")


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
    _fractions(cfg)  # a bad split fails before any file is read
    if kind == "isic2018":
        from .isic2018 import load_isic2018 as load
    elif kind == "folder":
        from .folder import load_folder as load
    elif kind == "nifti":
        from .nifti import load_nifti as load
    elif kind == "dicom-series":
        from .dicom_series import load_dicom_series as load
    else:
        from .dicom import load_dicom as load
    return _from_pool(load(cfg, size, channels), cfg, seed, size, channels, kind)


def augment(
    images: torch.Tensor, masks: torch.Tensor | None, generator: torch.Generator, flip: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Train-time augmentation: a random horizontal flip per sample (images and masks together).

    The draws come from ``generator`` (on its own device) and are moved to the images' device, so
    a seeded run flips the same samples on CPU and GPU.

    :param images: N×C×H×W.
    :param masks: N×H×W or None.
    :param generator: the training generator.
    :param flip: when False, return the inputs unchanged.
    """
    if not flip or images.shape[0] == 0:
        return images, masks
    draw = torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5
    draw = draw.to(images.device)
    images = torch.where(draw.view(-1, 1, 1, 1), images.flip(-1), images)
    if masks is not None:
        masks = torch.where(draw.view(-1, 1, 1), masks.flip(-1), masks)
    return images, masks
