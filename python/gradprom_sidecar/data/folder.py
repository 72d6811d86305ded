"""The folder layout: images (any depth) plus a CSV of labels, and optionally a folder of masks.

CSV: ``image_column`` names the image by relative path, file name, or stem (extension optional, as
in ISIC's CSVs). Labels come from ``label_column`` (one column holding a class name or a 0-based
index) or ``label_columns`` (one-hot columns; each row exactly one 1). With neither set, a column
called "label" is used if present, else every other column is read as one-hot. An optional "split"
column (train / val / test) gives the data set's own split. Images not named in the CSV are ignored.
Sample names are paths relative to ``path``.

Masks (``masks_dir``, relative to ``path`` unless absolute): for image ``<stem>.<ext>`` the mask is
``<stem>_mask.png`` if it exists, else ``<stem>.png``; it must have the image's size.

Without a CSV (``labels_csv`` null and no ``labels.csv``): with ``masks_dir`` the set is segmentation-only (labels all zero); otherwise it is
unlabelled (labels all zero, ``has_labels`` False) — usable for unsupervised task-driven training.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from gradprom_sidecar.data.base import DataError, Pool, list_images, parallel_map, read_image, read_mask, require_dir
from gradprom_sidecar.data.storage import stack_images
from gradprom_sidecar.training.config import setting

_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass
class LabelTable:
    """The parsed rows of a labels CSV, in file order."""

    images: list[str]
    labels: list[int]
    class_names: list[str]
    lines: list[int]  # the CSV line of each row, for messages
    splits: list[str] | None = None


def resolve_path(base: Path, rel: str | None, default: str) -> Path:
    """``rel`` (or ``default`` when unset) relative to ``base`` unless absolute.

    :param default: used when ``rel`` is empty.
    """
    p = Path(rel if rel else default).expanduser()
    return p if p.is_absolute() else base / p


def labels_csv(cfg: dict, root: Path) -> tuple[Path, LabelTable] | None:
    """The data set's labels CSV and its parsed rows, or None for a set without labels.

    ``data.labels_csv`` is relative to ``root`` unless absolute; null means ``labels.csv`` when that
    file exists, else no labels. The columns are ``data.image_column``, ``data.label_column`` and
    ``data.label_columns`` (see the module docstring).

    :param cfg: the data section of the resolved config.
    :raises DataError: a named CSV that is missing or malformed.
    """
    name = setting(cfg, "labels_csv", "data")
    csv_path = resolve_path(root, name, "labels.csv")
    if not (name or csv_path.is_file()):
        return None
    columns = (setting(cfg, k, "data") for k in ("image_column", "label_column", "label_columns"))
    return csv_path, read_labels_csv(csv_path, *columns)


def read_labels_csv(
    csv_path: Path,
    image_column: str = "image",
    label_column: str | None = None,
    label_columns: Sequence[str] | None = None,
) -> LabelTable:
    """Parse a labels CSV (see the module docstring for the column rules).

    :param image_column: the column naming each image.
    :param label_column: a single class column (name or 0-based index).
    :param label_columns: one-hot columns, in class order.
    :raises DataError: missing file or header columns, duplicate rows, bad label values.
    """
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise DataError(f"{csv_path}: cannot read labels CSV ({e})") from e
    if not rows:
        raise DataError(f"{csv_path}: empty labels CSV (no header)")
    header = [h.strip() for h in rows[0]]
    if label_column is None and not label_columns:
        if "label" in header:
            label_column = "label"
        else:
            label_columns = [h for h in header if h not in (image_column, "split") and h]
            if not label_columns:
                raise DataError(f"{csv_path}: missing header columns: no label column besides {image_column!r}")
    wanted = [image_column] + ([label_column] if label_column else list(label_columns or []))
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(f"{csv_path}: missing header columns {missing} (header is {header})")
    col = {h: i for i, h in enumerate(header)}
    split_i = col.get("split")

    images: list[str] = []
    raw: list[str] = []
    lines: list[int] = []
    labels: list[int] = []
    splits: list[str] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise DataError(f"{csv_path}: line {line} has {len(row)} fields, header has {len(header)}")
        name = row[col[image_column]].strip()
        if not name:
            raise DataError(f"{csv_path}: line {line} has an empty {image_column!r} value")
        if name in seen:
            raise DataError(f"{csv_path}: duplicate row for image {name!r} (lines {seen[name]} and {line})")
        seen[name] = line
        images.append(name)
        lines.append(line)
        if label_column:
            raw.append(row[col[label_column]].strip())
        else:
            labels.append(_one_hot(csv_path, line, name, [row[col[c]] for c in label_columns or []]))
        if split_i is not None:
            value = _SPLIT_ALIASES.get(row[split_i].strip().lower())
            if value is None:
                raise DataError(f"{csv_path}: line {line}: split {row[split_i]!r} is not train, val or test")
            splits.append(value)
    if not images:
        raise DataError(f"{csv_path}: labels CSV has a header but no rows")
    if label_column:
        labels, class_names = _class_values(csv_path, lines, raw)
    else:
        class_names = list(label_columns or [])
    return LabelTable(images, labels, class_names, lines, splits if split_i is not None else None)


def _one_hot(csv_path: Path, line: int, name: str, values: list[str]) -> int:
    """The class index of a one-hot row; a DataError unless exactly one value is 1 and the rest 0."""
    try:
        nums = [float(v) for v in values]
    except ValueError:
        raise DataError(f"{csv_path}: line {line} ({name}): non-numeric one-hot value in {values}") from None
    if any(v not in (0.0, 1.0) for v in nums):
        raise DataError(f"{csv_path}: line {line} ({name}): one-hot values must be 0 or 1, got {values}")
    ones = [i for i, v in enumerate(nums) if v == 1.0]
    if len(ones) != 1:
        raise DataError(f"{csv_path}: line {line} ({name}): not one-hot ({len(ones)} ones in {values})")
    return ones[0]


def _class_values(csv_path: Path, lines: list[int], raw: list[str]) -> tuple[list[int], list[str]]:
    """Map a single label column to indices: all integers → 0-based indices, else sorted names."""
    for line, v in zip(lines, raw):
        if not v:
            raise DataError(f"{csv_path}: line {line}: empty label")
    if all(v.lstrip("-").isdigit() for v in raw):
        idx = [int(v) for v in raw]
        for line, i in zip(lines, idx):
            if i < 0:
                raise DataError(f"{csv_path}: line {line}: negative class index {i}")
        k = max(max(idx) + 1, 2)
        return idx, [str(i) for i in range(k)]
    names = sorted(set(raw))
    lookup = {n: i for i, n in enumerate(names)}
    return [lookup[v] for v in raw], names


def match_files(table: LabelTable, files: list[Path], root: Path, csv_path: Path) -> list[Path]:
    """The file for each CSV row, matched by relative path, file name, or stem.

    :param root: the folder relative paths start from.
    :param csv_path: for messages.
    :raises DataError: a row names no file, or a stem matches several files.
    """
    index: dict[str, list[Path]] = {}
    for f in files:
        keys = {f.relative_to(root).as_posix(), f.name, f.stem}
        for k in keys:
            index.setdefault(k, []).append(f)
    out = []
    for name, line in zip(table.images, table.lines):
        hits = index.get(name)
        if not hits:
            raise DataError(f"{csv_path}: line {line} names unknown image {name!r} (no such file under {root})")
        if len(hits) > 1:
            raise DataError(f"{csv_path}: line {line}: image {name!r} is ambiguous: {[str(h) for h in hits[:3]]}")
        out.append(hits[0])
    return out


def find_mask(masks_dir: Path, image: Path) -> Path:
    """The mask of ``image``: ``<stem>_mask.png``, else ``<stem>.png``, in ``masks_dir``.

    :raises DataError: neither exists.
    """
    for cand in (masks_dir / f"{image.stem}_mask.png", masks_dir / f"{image.stem}.png"):
        if cand.is_file():
            return cand
    raise DataError(f"{masks_dir}: no mask for image {image.name} (expected {image.stem}_mask.png or {image.stem}.png)")


def load_pairs(
    images: list[Path], masks: list[Path] | None, size: int, channels: int, binary: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read images (and their masks, checked for size) into N×C×S×S (compact, :func:`stack_images`) and N×S×S uint8 tensors.

    :param masks: mask files in the same order, or None.
    :param size: output side.
    :param channels: 1 or 3.
    :param binary: threshold masks at 128.
    """

    def one(i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, hw = read_image(images[i], size, channels)
        m = read_mask(masks[i], size, hw, binary) if masks is not None else None
        return x, m

    out = parallel_map(one, list(range(len(images))))
    xs = stack_images([o[0] for o in out])
    ms = torch.stack([o[1] for o in out]) if masks is not None else None  # type: ignore[misc]
    return xs, ms


def mask_pool_info(masks: torch.Tensor) -> tuple[int, list[str]]:
    """(num_classes, class_names) of a segmentation-only set from its masks (at least binary)."""
    k = max(int(masks.max()) + 1 if masks.numel() else 2, 2)
    return k, ["background", "lesion"] if k == 2 else ["background"] + [f"class{i}" for i in range(1, k)]


def load_folder(cfg: dict, size: int, channels: int) -> Pool:
    """Load the folder layout (see the module docstring).

    :param cfg: the data config (path, labels_csv, image_column, label_column(s), masks_dir).
    :param size: output side.
    :param channels: 1 or 3.
    """
    root = require_dir(setting(cfg, "path", "data"))
    masks_dir = resolve_path(root, cfg["masks_dir"], "") if setting(cfg, "masks_dir", "data") else None
    if masks_dir is not None and not masks_dir.is_dir():
        raise DataError(f"{masks_dir}: missing path (data.masks_dir does not exist)")
    files = list_images(root, exclude=[masks_dir] if masks_dir else [])
    if not files:
        raise DataError(f"{root}: no images found (looked for {', '.join(('png', 'jpg', 'jpeg', 'bmp', 'tif'))})")
    labelled = labels_csv(cfg, root)
    if labelled is not None:
        csv_path, table = labelled
        paths = match_files(table, files, root, csv_path)
        mask_paths = [find_mask(masks_dir, p) for p in paths] if masks_dir else None
        images, masks = load_pairs(paths, mask_paths, size, channels)
        return Pool(
            images,
            torch.tensor(table.labels, dtype=torch.long),
            masks,
            [p.relative_to(root).as_posix() for p in paths],
            table.class_names,
            len(table.class_names),
            True,
            table.splits,
            {"csv": str(csv_path)},
        )
    mask_paths = [find_mask(masks_dir, p) for p in files] if masks_dir else None
    images, masks = load_pairs(files, mask_paths, size, channels)
    zeros = torch.zeros(len(files), dtype=torch.long)
    names = [p.relative_to(root).as_posix() for p in files]
    if masks is not None:
        k, class_names = mask_pool_info(masks)
        return Pool(images, zeros, masks, names, class_names, k, False)
    return Pool(images, zeros, None, names, ["unlabelled"], 1, False)
