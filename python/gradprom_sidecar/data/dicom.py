"""A folder of DICOM files (``*.dcm``, any depth), read with pydicom.

Pixel values (:class:`GrayWindow`, shared with ``enhance.files``): stored values × RescaleSlope +
RescaleIntercept, then a linear window to [0, 1]: ``lo = center - width/2``, ``hi = center +
width/2``, clipped (the simple form, not DICOM's ``width - 1`` variant). The window is
``data.window`` ({center, width}) when set, else the file's first WindowCenter/WindowWidth, else
the image's min–max. MONOCHROME1 images are inverted after windowing so that bright means dense
everywhere. A multi-frame file contributes its middle frame.
Colour files (SamplesPerPixel 3) are scaled by their bit depth instead of windowed.
Images are kept as float32 (``storage``): the windowed values are not the file's stored ones, and
each file has its own window, so no one integer depth holds them as read.

Labels come from an optional CSV exactly as in the folder layout (``labels_csv``; null means
``labels.csv`` if present; images named by file name or stem); without one, labels are all zero.
``masks_dir`` works as in the folder layout. Sample names are paths relative to ``path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradprom_sidecar.data.base import DataError, Pool, center_crop_resize, parallel_map, read_mask, require_dir, to_channels
from gradprom_sidecar.data.folder import find_mask, labels_csv, mask_pool_info, match_files, resolve_path
from gradprom_sidecar.data.storage import stack_images
from gradprom_sidecar.training.config import setting


def first_number(ds: object, keyword: str) -> float | None:
    """A numeric element (first value when multi-valued) as a float, or None when absent or bad.

    :param keyword: the element's keyword, e.g. ``"WindowCenter"``.
    """
    if keyword not in ds:  # type: ignore[operator]
        return None
    value = ds[keyword].value  # type: ignore[index]
    try:
        if hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
            return float(value[0]) if len(value) else None
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class GrayWindow:
    """How a grayscale DICOM's stored values map to [0, 1], and back (the one windowing of this package).

    Forward: ``v = stored × slope + intercept`` (the linear modality rescale), then
    ``x = clip((v - lo) / (hi - lo), 0, 1)`` with ``lo, hi = center ∓ width/2``, then ``1 - x`` for
    MONOCHROME1. pydicom's ``apply_modality_lut``/``apply_voi_lut`` are not used: its linear VOI
    window is DICOM's ``((v - (c - 0.5)) / (w - 1) + 0.5)``, which moves every windowed value (0 HU
    in a 1000-wide window becomes 0.5005, not 0.5, and the tests pin ours), and its modality LUT
    step may be a lookup table that ``enhance.files`` could not invert when writing pixels back.

    :param lo: the value mapped to 0 (after rescale).
    :param hi: the value mapped to 1.
    :param slope: RescaleSlope.
    :param intercept: RescaleIntercept.
    :param invert: MONOCHROME1 (bright means low values).
    """

    lo: float
    hi: float
    slope: float
    intercept: float
    invert: bool

    @classmethod
    def of(cls, ds: object, stored: np.ndarray, window: dict | None) -> GrayWindow:
        """The window of a file: ``window`` when given, else the file's first WindowCenter/WindowWidth,
        else the min-max of ``stored`` after rescale.

        :param stored: its stored pixel values (float64; the frames that will be windowed).
        :param window: ``{center, width}`` (``data.window``) or None.
        """
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
        c = window["center"] if window else first_number(ds, "WindowCenter")
        w = window["width"] if window else first_number(ds, "WindowWidth")
        if c is not None and w is not None and float(w) > 0:
            lo, hi = float(c) - float(w) / 2, float(c) + float(w) / 2
        else:
            values = stored * slope + intercept
            lo, hi = float(values.min()), float(values.max())
        return cls(lo, hi, slope, intercept, str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1")

    def to_unit(self, stored: np.ndarray) -> np.ndarray:
        """Stored values → [0, 1] (all zeros for an empty window).

        :param stored: float64 stored values.
        """
        values = stored * self.slope + self.intercept
        lo, hi = self.lo, self.hi
        x = np.clip((values - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(values)
        return 1.0 - x if self.invert else x

    def to_stored(self, unit: np.ndarray) -> np.ndarray:
        """[0, 1] → stored values (float64, unrounded): :meth:`to_unit` undone inside the window.

        :param unit: values in [0, 1].
        """
        v = 1.0 - unit if self.invert else unit
        return ((self.lo + v * (self.hi - self.lo)) - self.intercept) / self.slope


def open_dicom(path: Path) -> Any:
    """A DICOM file's dataset, or a DataError naming the file when it cannot be read or holds no pixel data.

    :param path: the .dcm file.
    """
    import pydicom  # imported here: only the DICOM layouts need it

    try:
        ds = pydicom.dcmread(path)
    except Exception as e:  # pydicom raises several types for a bad file
        raise DataError(f"{path}: unreadable DICOM file ({e})") from e
    if "PixelData" not in ds:
        raise DataError(f"{path}: DICOM without pixel data")
    return ds


def read_dicom(path: Path, size: int, channels: int, window: dict | None) -> tuple[torch.Tensor, tuple[int, int]]:
    """Read one DICOM file into C×size×size float32 in [0, 1]; also return its (rows, columns).

    :param path: the .dcm file.
    :param size: output side.
    :param channels: 1 or 3.
    :param window: {center, width} to override the file's window, or None.
    :raises DataError: unreadable file, no pixel data, or pixel data that cannot be decoded.
    """
    ds = open_dicom(path)
    try:
        arr = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception as e:  # e.g. a compressed transfer syntax with no decoder installed
        raise DataError(f"{path}: cannot decode DICOM pixel data ({e})") from e
    spp = int(getattr(ds, "SamplesPerPixel", 1))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[frames // 2]
    if spp == 3:
        bits = int(getattr(ds, "BitsStored", 8))
        x = torch.from_numpy(arr / (2**bits - 1)).float().permute(2, 0, 1).clamp(0, 1)
    else:
        x = torch.from_numpy(GrayWindow.of(ds, arr, window).to_unit(arr)).float()[None]
    hw = (int(x.shape[-2]), int(x.shape[-1]))
    x = to_channels(x, channels)
    return center_crop_resize(x, size, "bilinear").clamp_(0.0, 1.0).contiguous(), hw


def check_window(window: object) -> dict | None:
    """``data.window`` checked: None, or ``{center, width}`` with width > 0.

    :raises ValueError: naming ``data.window``.
    """
    if window is not None and not (isinstance(window, dict) and {"center", "width"} <= window.keys() and float(window["width"]) > 0):
        raise ValueError(f"data.window: expected {{center, width}} with width > 0, got {window!r}")
    return window  # type: ignore[return-value]


def load_dicom(cfg: dict, size: int, channels: int) -> Pool:
    """Load a folder of DICOM files (see the module docstring).

    :param cfg: the data config (path, window, labels_csv, image_column, label_column(s), masks_dir).
    :param size: output side.
    :param channels: 1 or 3.
    """
    root = require_dir(setting(cfg, "path", "data"))
    window = check_window(setting(cfg, "window", "data"))
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".dcm" and p.is_file())
    if not files:
        raise DataError(f"{root}: no images found (no .dcm files at any depth)")
    labelled = labels_csv(cfg, root)
    if labelled is not None:
        files = match_files(labelled[1], files, root, labelled[0])
    masks_dir = resolve_path(root, cfg["masks_dir"], "") if setting(cfg, "masks_dir", "data") else None
    mask_paths = [find_mask(masks_dir, p) for p in files] if masks_dir else None

    def one(i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, hw = read_dicom(files[i], size, channels, window)
        return x, (read_mask(mask_paths[i], size, hw) if mask_paths else None)

    out = parallel_map(one, list(range(len(files))))
    images = stack_images([o[0] for o in out])
    masks = torch.stack([o[1] for o in out]) if mask_paths else None  # type: ignore[misc]
    names = [p.relative_to(root).as_posix() for p in files]
    if labelled is not None:
        csv_path, table = labelled
        return Pool(
            images,
            torch.tensor(table.labels, dtype=torch.long),
            masks,
            names,
            table.class_names,
            len(table.class_names),
            True,
            table.splits,
            {"csv": str(csv_path)},
        )
    zeros = torch.zeros(len(files), dtype=torch.long)
    if masks is not None:
        k, class_names = mask_pool_info(masks)
        return Pool(images, zeros, masks, names, class_names, k, False)
    return Pool(images, zeros, None, names, ["unlabelled"], 1, False)
