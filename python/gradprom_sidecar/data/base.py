"""Data set types (Split, DataBundle), DataError, and the image reading helpers every layout shares.

Storage is compact, and that is decided here, not by each layout: :func:`read_image` keeps an
image at its source's bit depth (uint8 for 8-bit files, uint16 for 16-bit ones, float32 for float
sources), ``storage.stack_images`` stacks a set at the narrowest depth that holds every image
exactly, and :class:`Split` keeps masks as uint8. ``storage.to_unit`` turns stored images into
float32 in [0, 1] (per batch, on the device: ``data.feed``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from gradprom_sidecar.data.storage import STORAGE_DTYPES, quantize

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")

T = TypeVar("T")
R = TypeVar("R")


class DataError(ValueError):
    """A problem with input data; the message always names the file or folder and the problem."""


@dataclass
class Split:
    """One split held in memory (CPU), in compact storage.

    images: N×C×H×W as stored (see :func:`to_unit`): uint8 or uint16 for 8- and 16-bit sources,
    float32 in [0, 1] otherwise (the synthetic set, windowed DICOM); labels: N int64 (zeros for
    segmentation-only sets); masks: N×H×W uint8 class map (0 = background) or None; names: one
    identifier per sample.
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None
    names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype not in STORAGE_DTYPES:
            raise ValueError(f"Split.images: expected uint8, uint16 or float32 storage, got {self.images.dtype}")
        if self.masks is not None and self.masks.dtype != torch.uint8:
            m = self.masks
            if m.numel() and (int(m.min()) < 0 or int(m.max()) > 255):
                raise ValueError(f"Split.masks: class values must lie in 0..255, got {int(m.min())}..{int(m.max())}")
            self.masks = m.to(torch.uint8)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor) -> Split:
        """The samples at ``index`` (a 1-D long tensor), in that order.

        :param index: sample positions.
        """
        idx = [int(i) for i in index]
        return Split(
            images=self.images[index],
            labels=self.labels[index],
            masks=None if self.masks is None else self.masks[index],
            names=[self.names[i] for i in idx],
        )


@dataclass
class DataBundle:
    """The three splits plus what a model needs to know about them.

    num_classes: classification classes; for a segmentation-only set, mask classes including
    background (2 for binary). has_labels is False for segmentation-only and unlabelled sets, whose
    labels are all zero.
    """

    train: Split
    val: Split
    test: Split
    num_classes: int
    channels: int
    size: int
    class_names: list[str]
    has_labels: bool = True
    source: dict = field(default_factory=dict)

    def split(self, name: str) -> Split:
        """The split called ``name``.

        :param name: "train", "val" or "test".
        """
        if name not in SPLITS:
            raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {name!r}")
        return getattr(self, name)

    def nbytes(self) -> int:
        """Bytes held by the three splits' tensors (images, labels, masks)."""
        out = 0
        for name in SPLITS:
            s = self.split(name)
            out += sum(t.numel() * t.element_size() for t in (s.images, s.labels, s.masks) if t is not None)
        return out

    def describe(self) -> dict:
        """Counts per split and class, the image shape, and (with masks) the mean foreground fraction."""
        out: dict = {}
        for name in SPLITS:
            s = self.split(name)
            entry: dict = {"count": len(s), "shape": [self.channels, self.size, self.size]}
            if self.has_labels:
                counts = torch.bincount(s.labels, minlength=len(self.class_names)).tolist()
                entry["per_class"] = {n: int(c) for n, c in zip(self.class_names, counts)}
            if s.masks is not None:
                entry["mask_fraction"] = float((s.masks > 0).float().mean()) if len(s) else 0.0
            out[name] = entry
        return out


@dataclass
class Pool:
    """Every sample of a data set before splitting (what each layout's loader returns).

    split_of: the data set's own split per sample ("train"/"val"/"test"), or None to split by seed.
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None
    names: list[str]
    class_names: list[str]
    num_classes: int
    has_labels: bool = True
    split_of: list[str] | None = None
    source: dict = field(default_factory=dict)


_REPORT: list[Callable[[int, int], None]] = []  # the innermost ``reporting`` callback last


@contextmanager
def reporting(fn: Callable[[int, int], None]) -> Iterator[None]:
    """While inside, :func:`parallel_map` calls ``fn(done, total)`` as its items complete (data-loading progress)."""
    _REPORT.append(fn)
    try:
        yield
    finally:
        _REPORT.remove(fn)


def parallel_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """Map ``fn`` over ``items`` on a few threads (PIL and pydicom decoding release the GIL).

    :param fn: the function; its exceptions propagate (the first one raised, in item order).
    """
    report = _REPORT[-1] if _REPORT else (lambda done, total: None)
    if len(items) < 16:
        out = []
        for x in items:
            out.append(fn(x))
            report(len(out), len(items))
        return out
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = []
        for r in pool.map(fn, items):
            results.append(r)
            report(len(results), len(items))
        return results


def list_images(folder: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """All image files under ``folder`` (recursive, sorted), skipping anything under ``exclude``.

    :param folder: where to look.
    :param exclude: folders whose files are not images (e.g. a masks folder).
    """
    ex = [e.resolve() for e in exclude]
    out = []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
            continue
        rp = p.resolve()
        if any(rp.is_relative_to(e) for e in ex):
            continue
        out.append(p)
    return out


def require_dir(path: str | os.PathLike | None, what: str = "data.path") -> Path:
    """``path`` as a Path, or a DataError when it is unset, missing or not a folder.

    :param what: the config field, for the message.
    """
    if path is None or path == "":
        raise DataError(f"{what}: missing path (a folder is required for this data kind)")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: missing path ({what} does not exist)")
    if not p.is_dir():
        raise DataError(f"{p}: not a folder ({what})")
    return p


def source_depth(img: Image.Image) -> int | None:
    """The bit depth :func:`to_float_array` reads ``img`` at: 8, 16, or None for a float source.

    :param img: a loaded PIL image.
    """
    if img.mode in ("I;16", "I;16B", "I;16L"):
        return 16
    if img.mode == "I":
        return 16 if int(np.asarray(img).max(initial=0)) <= 65535 else None
    return None if img.mode == "F" else 8


def to_float_array(img: Image.Image) -> np.ndarray:
    """H×W×C float32 in [0, 1] from a PIL image of any common mode (8/16-bit gray, RGB, RGBA, P)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float32)
        # 16-bit PNG/TIFF arrive as mode I or I;16: scale by the 16-bit range, or by the data's max
        # when a 32-bit image goes beyond it.
        top = 65535.0 if arr.max(initial=0) <= 65535 else float(arr.max())
        return (arr / top)[..., None]
    if img.mode == "F":
        arr = np.asarray(img).astype(np.float32)
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
        return ((arr - lo) / (hi - lo if hi > lo else 1.0))[..., None]
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[..., None] if arr.ndim == 2 else arr


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert a C×H×W image to ``channels`` (1: ITU-R 601 luma, 3: repeat gray).

    :param x: C×H×W with C in {1, 3}.
    :param channels: 1 or 3.
    """
    c = x.shape[0]
    if c == channels:
        return x
    if channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(3, 1, 1)
        return (x[:3] * w).sum(0, keepdim=True)
    return x[:1].expand(3, -1, -1).clone()


def center_crop_resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Center-crop a C×H×W tensor to a square, then resize it to ``size``×``size``.

    :param x: C×H×W tensor.
    :param size: output side.
    :param mode: "bilinear" for images (antialiased when shrinking), "nearest-exact" for masks.
    """
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = x[..., top : top + s, left : left + s]
    if s == size:
        return x
    kwargs = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
    return F.interpolate(x[None].float(), size=(size, size), mode=mode, **kwargs)[0]


def read_image(path: Path, size: int, channels: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Read an image file into C×size×size at its source's depth (:func:`quantize`); also return its original (H, W).

    The crop, resize and channel conversion run in float32; the result is rounded to the file's
    bit depth (uint8 for 8-bit files, uint16 for 16-bit ones; float sources stay float32).
    JPEGs are decoded at a reduced scale (PIL draft mode) when far larger than ``size``, which is
    several times faster and changes nothing visible after the antialiased resize.

    :param size: output side.
    :param channels: 1 or 3.
    :raises DataError: the file is unreadable or corrupt.
    """
    try:
        with Image.open(path) as img:
            orig = (img.height, img.width)
            if img.format == "JPEG":
                img.draft("RGB" if channels == 3 else "L", (size * 4, size * 4))
            img.load()
            arr, depth = to_float_array(img), source_depth(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable or corrupt image ({e})") from e
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    x = to_channels(x, channels)
    return quantize(center_crop_resize(x, size, "bilinear").clamp_(0.0, 1.0), depth).contiguous(), orig


def read_mask(path: Path, size: int, expect_hw: tuple[int, int] | None, binary: bool = False) -> torch.Tensor:
    """Read a mask image into a size×size uint8 class map.

    Values: a mask holding only 0 and 255, one with values above 63 (anti-aliased edges), or any
    mask when ``binary``, is thresholded at 128 to {0, 1}; otherwise the gray values are taken as
    class indices (0 = background, 1, 2, ...).

    :param size: output side.
    :param expect_hw: the (H, W) of its image; a different size is a DataError.
    :param binary: threshold at 128 (for masks saved with interpolated edges).
    :raises DataError: unreadable mask, a size that differs from its image, or a negative class.
    """
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L") if img.mode not in ("L", "I;16", "I") else img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable or corrupt mask ({e})") from e
    if expect_hw is not None and tuple(arr.shape[:2]) != tuple(expect_hw):
        raise DataError(
            f"{path}: mask size {arr.shape[1]}x{arr.shape[0]} differs from its image's {expect_hw[1]}x{expect_hw[0]} (width x height)"
        )
    values = np.unique(arr)
    if binary or set(values.tolist()) <= {0, 255} or int(values.max(initial=0)) > 63:
        arr = arr >= 128
    elif int(values.min(initial=0)) < 0:  # a signed 16/32-bit mask: uint8 would wrap the value round
        raise DataError(f"{path}: mask class values must be >= 0, got {int(values.min())}")
    m = torch.from_numpy(arr.astype(np.uint8))[None]
    return center_crop_resize(m, size, "nearest-exact")[0].to(torch.uint8)
