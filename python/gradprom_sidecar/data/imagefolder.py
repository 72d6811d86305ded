"""The ImageNet class-folder layout (torchvision's ``ImageFolder``), read with ESTR's transforms.

Layout: ``path/<folder>/<class>/<image>`` for each split's folder (``data.folders``: train ``train``,
val ``val``, test none by default). Classes are the sorted subfolder names, indexed from 0, the order
``ImageFolder`` uses, so an ImageNet recognizer's output indices match; every split read must have
the same class folders. Images (any depth under their class folder, sorted) are converted to RGB as
``ImageFolder`` does, then to gray for ``channels: 1``. The official splits are used as given; with
no test folder the val split serves as test (and the other way round), sharing its tensors.

Transforms, with PIL as torchvision's did for ESTR:

- ``data.resize`` (e.g. 256): the shorter side is resized to it (bilinear, the longer side
  ``int(resize · long / short)``), then the centre ``size``×``size`` (e.g. 224) is cropped, its corner
  at ``round((side − size) / 2)``: ESTR's evaluation transform;
- ``data.augment.crop``: training images are kept as the centre ``resize``×``resize`` square and a
  random ``size``×``size`` crop is drawn per batch (``data.augment``), with ``augment.flip`` for the
  horizontal flip: ESTR's training transform, except that ESTR draws its crop from the whole resized
  image, this one from its central square (images are held in memory at one shape);
- ``data.resize`` null: the largest centred square, resized to ``size`` (bilinear).

A session decodes every image into memory: ImageNet's val split (50 000 images) at 224 takes 7.5 GB
(8-bit values), the train split (1.28 M) far more; ``data.max_per_class`` keeps the first N images
of each class (sorted) per split. ``gradprom eval`` and the transfer table stream an evaluation split
instead (``evaluation.streaming``), from :func:`list_imagefolder`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from gradprom_sidecar.data.base import SPLITS, DataBundle, DataError, Split, list_images, parallel_map, require_dir
from gradprom_sidecar.data.storage import stack_images
from gradprom_sidecar.training.config import setting


def class_folders(folder: Path) -> list[str]:
    """The sorted class folder names of one split folder.

    :param folder: e.g. ``imagenet/val``.
    :raises DataError: no class folders.
    """
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not names:
        raise DataError(f"{folder}: no class folders (expected {folder}/<class>/<image>)")
    return names


def resize_shorter(img: Image.Image, side: int) -> Image.Image:
    """The image with its shorter side resized to ``side`` (bilinear), as torchvision's ``Resize(side)`` did.

    :param side: the new shorter side.
    """
    w, h = img.size
    if min(w, h) == side:
        return img
    size = (side, int(side * h / w)) if w < h else (int(side * w / h), side)
    return img.resize(size, Image.Resampling.BILINEAR)


def center_crop(img: Image.Image, side: int) -> Image.Image:
    """The centre ``side``×``side`` of an image at least that large, corner at ``round((extent − side) / 2)``.

    :param side: the crop's side.
    """
    w, h = img.size
    top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
    return img.crop((left, top, left + side, top + side))


def read_transformed(path: Path, resize: int | None, side: int, channels: int) -> torch.Tensor:
    """One image file as C×side×side uint8 (8-bit storage, like every 8-bit source; see ``storage``).

    :param resize: the shorter side before the crop, or None for the largest centred square.
    :param side: the output side.
    :param channels: 1 or 3.
    :raises DataError: unreadable or corrupt file.
    """
    try:
        with Image.open(path) as raw:
            img = raw.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable or corrupt image ({e})") from e
    if resize is None:
        img = center_crop(img, min(img.size)).resize((side, side), Image.Resampling.BILINEAR)
    else:
        img = center_crop(resize_shorter(img, resize), side)
    if channels == 1:
        img = img.convert("L")
    arr = np.array(img, dtype=np.uint8).reshape(side, side, channels)  # a writable copy for torch.from_numpy
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _samples(folder: Path, classes: list[str], per_class: int | None) -> list[tuple[Path, int]]:
    out: list[tuple[Path, int]] = []
    for index, name in enumerate(classes):
        files = list_images(folder / name)
        out += [(f, index) for f in (files[:per_class] if per_class else files)]
    if not out:
        raise DataError(f"{folder}: no images found in its class folders")
    return out


def _split(root: Path, folder: Path, samples: list[tuple[Path, int]], resize: int | None, side: int, channels: int) -> Split:
    images = parallel_map(lambda s: read_transformed(s[0], resize, side, channels), samples)
    return Split(
        stack_images(images),
        torch.tensor([label for _, label in samples], dtype=torch.long),
        None,
        [p.relative_to(root).as_posix() for p, _ in samples],
    )


def _layout(cfg: dict, size: int) -> tuple[Path, dict[str, Path], list[str]]:
    """The root, the split folders named by ``data.folders`` and the classes they share; config checked."""
    root = require_dir(setting(cfg, "path", "data"))
    folders = setting(cfg, "folders", "data")
    if not isinstance(folders, dict) or set(folders) != set(SPLITS):
        raise ValueError(f"config.data.folders: expected {{train, val, test}} folder names or nulls, got {folders!r}")
    resize = setting(cfg, "resize", "data")
    crop = bool(setting(cfg, "augment.crop", "data"))
    if resize is not None and int(resize) < size:
        raise ValueError(f"config.data.resize: expected at least data.size ({size}), got {resize}")
    if crop and resize is None:
        raise ValueError("config.data.augment.crop: needs data.resize (the crop comes out of the resize x resize centre)")
    named = {k: require_dir(root / v, f"data.folders.{k}") for k, v in folders.items() if v}
    if "val" not in named and "test" not in named:
        raise ValueError("config.data.folders: name a val or a test folder (the split evaluations read)")
    found = {k: class_folders(f) for k, f in named.items()}
    first, classes = next(iter(found.items()))
    for k, names in found.items():
        if names != classes:
            odd = sorted(set(names) ^ set(classes))[:5]
            raise DataError(f"{named[k]}: class folders differ from {named[first]}'s ({len(names)} vs {len(classes)}; e.g. {odd})")
    return root, named, classes


def list_imagefolder(cfg: dict, split_name: str) -> tuple[list[Path], list[int], list[str]]:
    """The files and classes of one evaluation split in split order, undecoded, as :func:`load_imagefolder` would read them.

    :param cfg: the data config.
    :param split_name: "val" or "test" (the other one when only it is named, as the loader shares them).
    """
    _, named, classes = _layout(cfg, int(setting(cfg, "size", "data")))
    folder = named.get(split_name) or named.get("test" if split_name == "val" else "val")
    if folder is None:
        raise ValueError(f"config.data.folders.{split_name}: not named")
    samples = _samples(folder, classes, setting(cfg, "max_per_class", "data"))
    return [p for p, _ in samples], [label for _, label in samples], classes


def load_imagefolder(cfg: dict, size: int, channels: int) -> DataBundle:
    """Load the class-folder layout (see the module docstring).

    :param cfg: the data config (path, folders, resize, max_per_class, augment.crop).
    :param size: the crop's side.
    :param channels: 1 or 3.
    :raises DataError: a missing folder, differing class folders, an empty split, an unreadable image.
    :raises ValueError: bad config values (named by their dotted path).
    """
    root, named, classes = _layout(cfg, size)
    resize, per_class = setting(cfg, "resize", "data"), setting(cfg, "max_per_class", "data")
    crop = bool(setting(cfg, "augment.crop", "data"))
    splits: dict[str, Split] = {}
    for name, folder in named.items():
        side = int(resize) if name == "train" and crop else size
        splits[name] = _split(root, folder, _samples(folder, classes, per_class), resize, side, channels)
    empty = Split(torch.zeros(0, channels, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), None, [])
    val = splits.get("val", splits.get("test"))
    return DataBundle(
        splits.get("train", empty),
        val,  # type: ignore[arg-type]
        splits.get("test", val),  # type: ignore[arg-type]
        len(classes),
        channels,
        size,
        classes,
        True,
        {"kind": "imagefolder", "path": str(root), "folders": {k: str(v) for k, v in named.items()}},
    )
