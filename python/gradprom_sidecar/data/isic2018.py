"""ISIC 2018 in its official layouts, found anywhere under ``path``.

- ``isic_task: classify`` (Task 3): ``ISIC_*.jpg`` images (e.g. in ``ISIC2018_Task3_Training_Input/``)
  and a ground-truth CSV (``ISIC2018_Task3_Training_GroundTruth.csv``, or any ``*GroundTruth*.csv``)
  with header ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` and one-hot rows. When several ground-truth
  CSVs are present, the one whose name holds "Task3" and "Training" wins.
- ``isic_task: segment`` (Task 1): ``ISIC_*.jpg`` inputs (e.g. in ``ISIC2018_Task1-2_Training_Input/``)
  and ``ISIC_*_segmentation.png`` masks (e.g. in ``ISIC2018_Task1_Training_GroundTruth/``); every mask
  needs its image, images without a mask are ignored. Masks are thresholded at 128.

Folder names are not required: files are found by their official names, at any depth. When one
image name occurs in several folders, the copy under a folder naming the task wins. The official
validation/test folders are not used as splits: the set is split by seed like any other.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gradprom_sidecar.data.base import DataError, Pool, require_dir
from gradprom_sidecar.data.folder import load_pairs, read_labels_csv
from gradprom_sidecar.training.config import setting

ISIC_CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
_SEG_SUFFIX = "_segmentation"


def _index(files: list[Path], prefer: str) -> dict[str, Path]:
    """stem → file, keeping the copy whose path names ``prefer`` when a stem is repeated."""
    out: dict[str, Path] = {}
    for f in sorted(files):
        if f.stem not in out or (prefer in f.as_posix() and prefer not in out[f.stem].as_posix()):
            out[f.stem] = f
    return out


def _inputs(root: Path, prefer: str) -> dict[str, Path]:
    files = [p for p in root.rglob("ISIC_*") if p.suffix.lower() in (".jpg", ".jpeg", ".png") and _SEG_SUFFIX not in p.stem]
    found = _index([p for p in files if p.is_file()], prefer)
    if not found:
        raise DataError(f"{root}: no images found (no ISIC_*.jpg files at any depth)")
    return found


def _ground_truth_csv(root: Path) -> Path:
    cands = sorted(root.rglob("*GroundTruth*.csv"))
    if not cands:
        raise DataError(f"{root}: no ISIC ground-truth CSV found (expected ISIC2018_Task3_Training_GroundTruth.csv)")
    for token in (("Task3", "Training"), ("Task3",), ()):
        hits = [c for c in cands if all(t in c.name for t in token)]
        if hits:
            return hits[0]
    return cands[0]


def load_isic2018(cfg: dict, size: int, channels: int) -> Pool:
    """Load ISIC 2018 Task 3 (classify) or Task 1 (segment).

    :param cfg: the data config (path, isic_task).
    :param size: output side.
    :param channels: 1 or 3.
    """
    root = require_dir(setting(cfg, "path", "data"))
    task = setting(cfg, "isic_task", "data")
    if task == "classify":
        return _classify(root, size, channels)
    if task == "segment":
        return _segment(root, size, channels)
    raise ValueError(f"data.isic_task: expected 'classify' or 'segment', got {task!r}")


def _classify(root: Path, size: int, channels: int) -> Pool:
    inputs = _inputs(root, "Task3")
    csv_path = _ground_truth_csv(root)
    table = read_labels_csv(csv_path, "image", label_columns=ISIC_CLASSES)
    paths = []
    for name, line in zip(table.images, table.lines):
        p = inputs.get(Path(name).stem)
        if p is None:
            raise DataError(f"{csv_path}: line {line} names unknown image {name!r} (no {name}.jpg under {root})")
        paths.append(p)
    images, _ = load_pairs(paths, None, size, channels)
    labels = torch.tensor(table.labels, dtype=torch.long)
    return Pool(images, labels, None, [p.name for p in paths], list(ISIC_CLASSES), len(ISIC_CLASSES), True, source={"csv": str(csv_path)})


def _segment(root: Path, size: int, channels: int) -> Pool:
    inputs = _inputs(root, "Task1")
    masks = _index([p for p in root.rglob(f"ISIC_*{_SEG_SUFFIX}.png") if p.is_file()], "Task1")
    if not masks:
        raise DataError(f"{root}: no masks found (no ISIC_*{_SEG_SUFFIX}.png files at any depth)")
    pairs = []
    for stem, m in sorted(masks.items()):
        image_stem = stem[: -len(_SEG_SUFFIX)]
        p = inputs.get(image_stem)
        if p is None:
            raise DataError(f"{m}: mask without an image (no {image_stem}.jpg under {root})")
        pairs.append((p, m))
    images, ms = load_pairs([p for p, _ in pairs], [m for _, m in pairs], size, channels, binary=True)
    zeros = torch.zeros(len(pairs), dtype=torch.long)
    return Pool(images, zeros, ms, [p.name for p, _ in pairs], ["background", "lesion"], 2, False)
