"""A folder of DICOM files (``*.dcm``, any depth), read with pydicom.

Pixel values: stored values × RescaleSlope + RescaleIntercept, then a linear window to [0, 1]:
``lo = center - width/2``, ``hi = center + width/2``, clipped (the simple form, not DICOM's
``width - 1`` variant). The window is ``data.window`` ({center, width}) when set, else the file's
first WindowCenter/WindowWidth, else the image's min–max. MONOCHROME1 images are inverted after
windowing so that bright means dense everywhere. A multi-frame file contributes its middle frame.
Colour files (SamplesPerPixel 3) are scaled by their bit depth instead of windowed.

Labels come from an optional CSV exactly as in the folder layout (``labels_csv``, default
``labels.csv`` if present; images named by file name or stem); without one, labels are all zero.
``masks_dir`` works as in the folder layout. Sample names are paths relative to ``path``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import DataError, Pool, center_crop_resize, parallel_map, read_mask, require_dir, to_channels
from .folder import find_mask, mask_pool_info, match_files, read_labels_csv, resolve_path


def _first(ds: object, keyword: str) -> float | None:
    """A numeric element (first value when multi-valued) as a float, or None when absent or bad."""
    if keyword not in ds:  # type: ignore[operator]
        return None
    value = ds[keyword].value  # type: ignore[index]
    try:
        if hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
            return float(value[0]) if len(value) else None
        return float(value)
    except (TypeError, ValueError):
        return None


def read_dicom(path: Path, size: int, channels: int, window: dict | None) -> tuple[torch.Tensor, tuple[int, int]]:
    """Read one DICOM file into C×size×size float32 in [0, 1]; also return its (rows, columns).

    :param path: the .dcm file.
    :param size: output side.
    :param channels: 1 or 3.
    :param window: {center, width} to override the file's window, or None.
    :raises DataError: unreadable file, no pixel data, or pixel data that cannot be decoded.
    """
    import pydicom  # imported here: only this layout needs it

    try:
        ds = pydicom.dcmread(path)
    except Exception as e:  # pydicom raises several types for a bad file
        raise DataError(f"{path}: unreadable DICOM file ({e})") from e
    if "PixelData" not in ds:
        raise DataError(f"{path}: DICOM without pixel data")
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
        arr = arr * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
        c = window["center"] if window else _first(ds, "WindowCenter")
        w = window["width"] if window else _first(ds, "WindowWidth")
        if c is not None and w is not None and float(w) > 0:
            lo, hi = float(c) - float(w) / 2, float(c) + float(w) / 2
        else:
            lo, hi = float(arr.min()), float(arr.max())
        arr = np.clip((arr - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(arr)
        if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
            arr = 1.0 - arr
        x = torch.from_numpy(arr).float()[None]
    hw = (int(x.shape[-2]), int(x.shape[-1]))
    x = to_channels(x, channels)
    return center_crop_resize(x, size, "bilinear").clamp_(0.0, 1.0).contiguous(), hw


def load_dicom(cfg: dict, size: int, channels: int) -> Pool:
    """Load a folder of DICOM files (see the module docstring).

    :param cfg: the data config (path, window, labels_csv, image_column, label_column(s), masks_dir).
    :param size: output side.
    :param channels: 1 or 3.
    """
    root = require_dir(cfg.get("path"))
    window = cfg.get("window")
    if window is not None and not (isinstance(window, dict) and {"center", "width"} <= window.keys() and float(window["width"]) > 0):
        raise ValueError(f"data.window: expected {{center, width}} with width > 0, got {window!r}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".dcm" and p.is_file())
    if not files:
        raise DataError(f"{root}: no images found (no .dcm files at any depth)")
    csv_path = resolve_path(root, cfg.get("labels_csv"), "labels.csv")
    table = None
    if csv_path.is_file() or cfg.get("labels_csv"):
        table = read_labels_csv(csv_path, cfg.get("image_column", "image"), cfg.get("label_column"), cfg.get("label_columns"))
        files = match_files(table, files, root, csv_path)
    masks_dir = resolve_path(root, cfg["masks_dir"], "") if cfg.get("masks_dir") else None
    mask_paths = [find_mask(masks_dir, p) for p in files] if masks_dir else None

    def one(i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, hw = read_dicom(files[i], size, channels, window)
        return x, (read_mask(mask_paths[i], size, hw) if mask_paths else None)

    out = parallel_map(one, list(range(len(files))))
    images = torch.stack([o[0] for o in out])
    masks = torch.stack([o[1] for o in out]) if mask_paths else None  # type: ignore[misc]
    names = [p.relative_to(root).as_posix() for p in files]
    if table is not None:
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
