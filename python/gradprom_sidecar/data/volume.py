"""Volumes as 2D slices: the rules the NIfTI and DICOM-series layouts share.

A :class:`Volume` is one subject: a 3-D intensity array already in [0, 1], an optional label
volume on the same grid, and an optional per-subject class. :func:`volume_pool` slices every
volume along ``data.axis`` (optionally keeping only slices with foreground), pads each slice to a
square with background (0) and resizes it to ``data.size`` (images bilinear, label maps nearest),
and assigns splits:

- several subjects: whole subjects go to train/val/test (seeded by ``data.seed``, stratified by
  the subject's class when there is one), so no subject has slices in two splits;
- one subject: contiguous slabs along the axis in train, val, test order, with
  ``data.slab_gap`` slices left out between neighbouring slabs (adjacent slices are nearly
  identical, so interleaving them would leak the test set into training).

Label tables (``data.label_map``): a CSV with columns ``id`` and ``region`` maps label ids to a
few larger regions, numbered 1, 2, ... in the order they first appear; ids it does not name go to
``data.unmapped`` ("background", or one of the table's regions). An id the table names that
occurs in no label volume is an error: the table was likely written for another atlas.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gradprom_sidecar.data.base import SPLITS, DataError, Pool, center_crop_resize, to_channels
from gradprom_sidecar.data.split import split_fractions, split_indices
from gradprom_sidecar.training.config import setting


@dataclass
class Volume:
    """One subject.

    :param name: the subject's name (file stem or series folder).
    :param image: X×Y×Z float array in [0, 1].
    :param labels: X×Y×Z int64 label map (after any remapping), or None.
    :param label: the subject's class index (per-subject CSV), or None.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray | None = None
    label: int | None = None


@dataclass
class LabelMap:
    """A parsed label table: original id → region index (1-based), the region names, and the unmapped target."""

    path: Path
    ids: dict[int, int]
    regions: list[str]
    unmapped: int

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """``labels`` with every id replaced by its region (0 stays background unless mapped).

        :param labels: an integer label volume.
        """
        lut_size = max(int(labels.max(initial=0)), max(self.ids, default=0)) + 1
        lut = np.full(lut_size, self.unmapped, dtype=np.int64)
        lut[0] = 0
        for k, v in self.ids.items():
            lut[k] = v
        return lut[labels]

    def check_occur(self, seen: set[int]) -> None:
        """Refuse a table whose ids never occur in the label volumes.

        :param seen: every id found in the (unmapped) label volumes.
        """
        missing = sorted(set(self.ids) - seen)
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise DataError(f"{self.path}: names label ids that occur in no label volume: {shown} ({len(missing)} of {len(self.ids)})")


def read_label_map(path: Path, unmapped: str) -> LabelMap:
    """Parse a label table (columns ``id``, ``region``; other columns ignored).

    :param unmapped: "background" or a region named in the table.
    :raises DataError: a missing file or column, a non-integer or repeated id.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise DataError(f"{path}: cannot read label table ({e})") from e
    if not rows or not {"id", "region"} <= set(rows[0].keys()):
        raise DataError(f"{path}: a label table needs the header columns 'id' and 'region'")
    ids: dict[int, int] = {}
    regions: list[str] = []
    for line, row in enumerate(rows, start=2):
        raw, region = (row["id"] or "").strip(), (row["region"] or "").strip()
        if not raw.isdigit() or not region:
            raise DataError(f"{path}: line {line}: expected a non-negative integer id and a region name, got {raw!r}, {region!r}")
        if int(raw) in ids:
            raise DataError(f"{path}: line {line}: id {raw} is mapped twice")
        if region not in regions:
            regions.append(region)
        ids[int(raw)] = regions.index(region) + 1
    if unmapped == "background":
        target = 0
    elif unmapped in regions:
        target = regions.index(unmapped) + 1
    else:
        raise ValueError(f"data.unmapped: expected 'background' or a region of {path} ({', '.join(regions)}), got {unmapped!r}")
    return LabelMap(path, ids, regions, target)


def percentile_scale(volume: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map a volume's ``low``..``high`` percentiles to 0..1, clipped (float32).

    :param volume: the raw intensities.
    :param low: lower percentile (0-100).
    :param high: upper percentile (0-100), above ``low``.
    """
    lo, hi = np.percentile(volume, [low, high])
    if hi <= lo:
        return np.zeros(volume.shape, dtype=np.float32)
    return np.clip((volume.astype(np.float64) - lo) / (hi - lo), 0, 1).astype(np.float32)


def check_axis(cfg: dict) -> int:
    """``data.axis`` checked (0, 1 or 2)."""
    axis = setting(cfg, "axis", "data")
    if axis not in (0, 1, 2):
        raise ValueError(f"data.axis: expected 0, 1 or 2, got {axis!r}")
    return int(axis)


def pad_square(x: torch.Tensor) -> torch.Tensor:
    """Pad the last two dimensions to a square with zeros, centred.

    :param x: ...×H×W.
    """
    h, w = x.shape[-2:]
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    return F.pad(x, (left, s - w - left, top, s - h - top))


def _slice_indices(v: Volume, axis: int, drop_empty: bool) -> list[int]:
    n = v.image.shape[axis]
    if not drop_empty:
        return list(range(n))
    fg = v.labels > 0 if v.labels is not None else v.image > 0
    other = tuple(a for a in range(3) if a != axis)
    return [int(i) for i in np.nonzero(fg.any(axis=other))[0]]


def _slab_split(count: int, fractions: dict[str, float], gap: int, name: str) -> list[str | None]:
    """Train/val/test slabs of ``count`` consecutive slices with ``gap`` slices dropped between them (None)."""
    usable = count - 2 * gap
    sizes = {k: round(usable * fractions[k]) for k in ("val", "test")}
    sizes["train"] = usable - sizes["val"] - sizes["test"]
    if usable < 3 or any(sizes[k] <= 0 for k in SPLITS if fractions[k] > 0):
        raise DataError(f"{name}: {count} slices are too few for data.split {fractions} with data.slab_gap {gap}")
    out: list[str | None] = []
    for i, k in enumerate(SPLITS):
        out += [k] * sizes[k]
        if i < 2:
            out += [None] * gap
    return out


def _subject_split(volumes: list[Volume], fractions: dict[str, float], seed: int) -> list[str]:
    labels = [v.label for v in volumes]
    strat = torch.tensor(labels, dtype=torch.long) if all(x is not None for x in labels) else None
    idx = split_indices(len(volumes), strat, fractions, seed)
    of = [""] * len(volumes)
    for k, members in idx.items():
        for i in members.tolist():
            of[i] = k
    return of


def volume_pool(
    volumes: list[Volume],
    cfg: dict,
    size: int,
    channels: int,
    regions: list[str] | None,
    class_names: list[str] | None,
    source: dict,
) -> Pool:
    """Slice the volumes into a :class:`Pool` with its split assignment (see the module docstring).

    :param volumes: the subjects, in a stable order.
    :param cfg: the data section (axis, drop_empty, split, slab_gap, seed).
    :param size: output side.
    :param channels: 1 or 3.
    :param regions: foreground class names of the label volumes (index 1..), or None for the ids' own numbers.
    :param class_names: the per-subject classes' names when every volume has a class, else None.
    :param source: what the bundle reports as its source.
    """
    axis, drop_empty, fractions = check_axis(cfg), bool(setting(cfg, "drop_empty", "data")), split_fractions(cfg)
    gap = int(setting(cfg, "slab_gap", "data"))
    if gap < 0:
        raise ValueError(f"data.slab_gap: expected >= 0, got {gap}")
    with_labels = all(v.labels is not None for v in volumes)
    if len(volumes) == 1:
        subject_of = None
    else:
        subject_of = _subject_split(volumes, fractions, int(setting(cfg, "seed", "data")))
    images: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []
    names: list[str] = []
    split_of: list[str] = []
    classes: list[int] = []
    for vi, v in enumerate(volumes):
        keep = _slice_indices(v, axis, drop_empty)
        if not keep:
            continue
        assign = _slab_split(len(keep), fractions, gap, v.name) if subject_of is None else [subject_of[vi]] * len(keep)
        img = torch.from_numpy(np.ascontiguousarray(np.moveaxis(v.image, axis, 0)[keep])).float()
        img = center_crop_resize(pad_square(img), size, "bilinear").clamp_(0.0, 1.0)
        lab = None
        if with_labels:
            lab = torch.from_numpy(np.ascontiguousarray(np.moveaxis(v.labels, axis, 0)[keep])).long()  # type: ignore[arg-type]
            lab = center_crop_resize(pad_square(lab), size, "nearest-exact").long()
        for j, (i, part) in enumerate(zip(keep, assign)):
            if part is None:
                continue
            images.append(to_channels(img[j : j + 1], channels))
            if lab is not None:
                masks.append(lab[j])
            names.append(f"{v.name}:{'xyz'[axis]}{i:03d}")
            split_of.append(part)
            classes.append(v.label if v.label is not None else 0)
    if not images:
        shown = ", ".join(v.name for v in volumes[:3]) + (" ..." if len(volumes) > 3 else "")
        raise DataError(f"{shown}: no slices left (every slice is empty; see data.drop_empty)")
    labels = torch.tensor(classes, dtype=torch.long)
    mask_t = torch.stack(masks) if with_labels else None
    source = {**source, "subjects": len(volumes)}
    if class_names is not None:
        return Pool(torch.stack(images), labels, mask_t, names, class_names, len(class_names), True, split_of, source)
    if mask_t is not None:
        fg = regions or [f"class{i}" for i in range(1, max(int(mask_t.max()), 1) + 1)]
        return Pool(torch.stack(images), labels, mask_t, names, ["background", *fg], max(len(fg) + 1, 2), False, split_of, source)
    return Pool(torch.stack(images), labels, None, names, ["unlabelled"], 1, False, split_of, source)


def subject_classes(cfg: dict, root: Path, names: list[str]) -> tuple[list[int], list[str]] | None:
    """Per-subject classes from ``data.labels_csv`` (null: ``labels.csv`` when present), or None.

    Rows name a subject by its name (file stem without .nii/.nii.gz, or series folder); every
    subject must have a row.

    :param cfg: the data section.
    :raises DataError: a subject without a row, or a row naming no subject.
    """
    from gradprom_sidecar.data.folder import labels_csv

    found = labels_csv(cfg, root)
    if found is None:
        return None
    csv_path, table = found
    row = {strip_volume_suffix(n): (i, line) for i, (n, line) in enumerate(zip(table.images, table.lines))}
    for n, (_, line) in row.items():
        if n not in names:
            raise DataError(
                f"{csv_path}: line {line} names unknown subject {n!r} (subjects: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''})"
            )
    missing = [n for n in names if n not in row]
    if missing:
        raise DataError(f"{csv_path}: no row for subject(s) {', '.join(missing[:5])}")
    return [table.labels[row[n][0]] for n in names], table.class_names


def strip_volume_suffix(name: str) -> str:
    """A volume's subject name: its file name without .nii.gz / .nii / .dcm, or the name itself.

    :param name: a file name or path.
    """
    base = Path(name).name
    for suffix in (".nii.gz", ".nii", ".dcm"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def check_percentiles(cfg: dict) -> tuple[float, float]:
    """``data.percentiles`` checked: ``{low, high}`` with 0 <= low < high <= 100."""
    p = setting(cfg, "percentiles", "data")
    if not (isinstance(p, dict) and {"low", "high"} <= p.keys()) or not (0 <= float(p["low"]) < float(p["high"]) <= 100):
        raise ValueError(f"data.percentiles: expected {{low, high}} with 0 <= low < high <= 100, got {p!r}")
    return float(p["low"]), float(p["high"])
