"""ImageNet's val split as downloaded: a flat folder of JPEGs and a ground-truth file, no sorting script.

``data.path`` is the folder (``ILSVRC2012_val_00000001.JPEG`` ...); ``data.ground_truth`` (relative
to it unless absolute) is one of

- the devkit's ``ILSVRC2012_validation_ground_truth.txt``: one 1-based ILSVRC2012_ID per line, line
  k for ``ILSVRC2012_val_<k, 8 digits>.JPEG``. The ID → wnid mapping comes from ``data.synsets``:
  the devkit's ``meta.mat`` (read with scipy), or a text file with one wnid per line in
  ILSVRC2012_ID order (line k: the wnid of ID k; extra words after the wnid are ignored);
- ``LOC_val_solution.csv`` (Kaggle's): a header ``ImageId,PredictionString``, then one row per image
  whose PredictionString starts with its wnid. ``data.synsets`` is optional here; when given, every
  wnid must be in it and its wnids are the classes.

Classes are the sorted wnids (all of the mapping's, or those the CSV names), indexed from 0:
torchvision's ``ImageFolder`` order over the sorted-into-folders split, so an ImageNet recognizer's
outputs line up. Images are ordered as that ``ImageFolder`` lists them (by wnid, then file name),
so an image's index in the split is its ``ImageFolder`` index (ESTR's per-index noise depends on
it). Each image is read with ``imagefolder``'s transforms (``data.resize``, ``data.size``,
``data.channels``); ``data.max_per_class`` keeps the first N of each class. The split is val, and
test is the same split.

Every image the folder holds must have a ground-truth line, every line an image, and no name may
appear twice: a truncated file or a partial download is an error naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from gradprom_sidecar.data.base import DataBundle, DataError, Split, parallel_map, require_dir
from gradprom_sidecar.data.folder import resolve_path
from gradprom_sidecar.data.imagefolder import read_transformed
from gradprom_sidecar.data.storage import stack_images
from gradprom_sidecar.training.config import setting

WNID = re.compile(r"^n\d{8}$")
DEVKIT_NAME = "ILSVRC2012_val_{:08d}.JPEG"
LOC_HEADER = ("ImageId", "PredictionString")
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class ValListing:
    """A file-based split before decoding: each image's file and class, in split order, and the class names."""

    files: list[Path]
    labels: list[int]
    classes: list[str]
    root: Path


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: ground-truth file not found")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable ({e})") from e


def read_synsets(path: Path) -> list[str]:
    """The wnids in ILSVRC2012_ID order (entry k − 1 is ID k), from the devkit's ``meta.mat`` or a wnid-per-line file.

    :param path: ``meta.mat`` or a text file.
    :raises DataError: a missing file, a line that is not a wnid, a wnid listed twice.
    """
    if not path.is_file():
        raise DataError(f"{path}: synset mapping file not found (data.synsets)")
    if path.suffix.lower() == ".mat":
        return _meta_mat(path)
    wnids: list[str] = []
    for number, line in enumerate(_lines(path), 1):
        word = line.split(maxsplit=1)[0] if line.strip() else ""
        if not WNID.match(word):
            raise DataError(f"{path}:{number}: expected a wnid (n########) first, got {line[:40]!r}")
        if word in wnids:
            raise DataError(f"{path}:{number}: {word} is listed twice (first at line {wnids.index(word) + 1})")
        wnids.append(word)
    if len(wnids) == IMAGENET_CLASSES and wnids == sorted(wnids):
        # The devkit's ID order is not alphabetical; a sorted list (LOC_synset_mapping.txt) would mislabel every image.
        raise DataError(f"{path}: its wnids are in sorted order, not the devkit's ILSVRC2012_ID order (meta.mat's)")
    return wnids


def _meta_mat(path: Path) -> list[str]:
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise DataError(f"{path}: reading meta.mat needs scipy; give a wnid-per-line file in ILSVRC2012_ID order instead") from e
    try:
        synsets = loadmat(str(path), squeeze_me=True)["synsets"]
        rows = sorted((int(s["ILSVRC2012_ID"]), str(s["WNID"])) for s in synsets if int(s["num_children"]) == 0)
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise DataError(f"{path}: not the devkit's meta.mat (no synsets with ILSVRC2012_ID, WNID, num_children: {e})") from e
    if [i for i, _ in rows] != list(range(1, len(rows) + 1)):
        raise DataError(f"{path}: the leaf synsets' ILSVRC2012_IDs are not 1..{len(rows)}")
    return [w for _, w in rows]


def _devkit(gt: Path, synsets: list[str]) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(_lines(gt), 1):
        text = line.strip()
        if not text.isdigit() or not 1 <= int(text) <= len(synsets):
            raise DataError(f"{gt}:{number}: expected an ILSVRC2012_ID 1..{len(synsets)}, got {line[:40]!r}")
        out[DEVKIT_NAME.format(number)] = (synsets[int(text) - 1], number)
    return out


def _loc_csv(gt: Path, known: set[str] | None) -> dict[str, tuple[str, int]]:
    lines = _lines(gt)
    if not lines or tuple(c.strip() for c in lines[0].split(",")) != LOC_HEADER:
        raise DataError(f"{gt}:1: expected the header ImageId,PredictionString, got {(lines[0] if lines else '')[:60]!r}")
    out: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(lines[1:], 2):
        image, _, prediction = line.partition(",")
        image, words = image.strip(), prediction.split()
        if not image or not words or not WNID.match(words[0]):
            raise DataError(f"{gt}:{number}: expected ImageId,<wnid> ..., got {line[:60]!r}")
        if known is not None and words[0] not in known:
            raise DataError(f"{gt}:{number}: {words[0]} is not a wnid of data.synsets")
        name = image if Path(image).suffix else f"{image}.JPEG"
        if name in out:
            raise DataError(f"{gt}:{number}: {image} is listed twice (first at line {out[name][1]})")
        out[name] = (words[0], number)
    return out


def list_imagenet_val(cfg: dict) -> ValListing:
    """The val split's files and classes, in ``ImageFolder`` order, checked against the folder (see the module docstring).

    :param cfg: the data section (path, ground_truth, synsets, max_per_class).
    :raises DataError: a missing or malformed file, an image without a line or a line without an image.
    :raises ValueError: a missing config field.
    """
    root = require_dir(setting(cfg, "path", "data"))
    gt_name, syn_name = setting(cfg, "ground_truth", "data"), setting(cfg, "synsets", "data")
    if not gt_name:
        raise ValueError("config.data.ground_truth: required for data.kind imagenet-val (the devkit's .txt or LOC_val_solution.csv)")
    gt = resolve_path(root, str(gt_name), "")
    synsets = read_synsets(resolve_path(root, str(syn_name), "")) if syn_name else None
    if gt.suffix.lower() == ".csv":
        truth = _loc_csv(gt, None if synsets is None else set(synsets))
    elif synsets is None:
        raise ValueError(f"config.data.synsets: required with {gt.name} (its lines are ILSVRC2012_IDs): meta.mat or a wnid-per-line file")
    else:
        truth = _devkit(gt, synsets)
    on_disk = {p.name: p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")}
    for name, (_, number) in truth.items():
        if name not in on_disk:
            raise DataError(f"{gt}:{number}: {name} is not in {root}")
    extra = sorted(n for n in on_disk if n not in truth and Path(n).suffix.lower() in (".jpeg", ".jpg", ".png"))
    if extra:
        raise DataError(f"{gt}: has no line for {root / extra[0]} ({len(extra)} image(s) without one: truncated file?)")
    classes = sorted(synsets) if synsets is not None else sorted({w for w, _ in truth.values()})
    index = {w: i for i, w in enumerate(classes)}
    order = sorted(truth, key=lambda n: (truth[n][0], n))
    per_class = setting(cfg, "max_per_class", "data")
    files: list[Path] = []
    labels: list[int] = []
    kept: dict[int, int] = {}
    for name in order:
        label = index[truth[name][0]]
        if per_class and kept.get(label, 0) >= int(per_class):
            continue
        kept[label] = kept.get(label, 0) + 1
        files.append(on_disk[name])
        labels.append(label)
    if not files:
        raise DataError(f"{gt}: names no images")
    return ValListing(files, labels, classes, root)


def load_imagenet_val(cfg: dict, size: int, channels: int) -> DataBundle:
    """Decode the val split into memory (see the module docstring; streaming evaluation lists it instead).

    :param cfg: the data config.
    :param size: the crop's side.
    :param channels: 1 or 3.
    """
    listing = list_imagenet_val(cfg)
    resize = setting(cfg, "resize", "data")
    images = parallel_map(lambda f: read_transformed(f, resize, size, channels), listing.files)
    split = Split(stack_images(images), torch.tensor(listing.labels, dtype=torch.long), None, [f.name for f in listing.files])
    empty = Split(torch.zeros(0, channels, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), None, [])
    source = {"kind": "imagenet-val", "path": str(listing.root), "ground_truth": str(setting(cfg, "ground_truth", "data"))}
    return DataBundle(empty, split, split, len(listing.classes), channels, size, listing.classes, True, source)
