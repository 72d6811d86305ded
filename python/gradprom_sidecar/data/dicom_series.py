"""DICOM series: a folder holding one series is one volume (one subject), read with pydicom.

``data.path`` is either one series folder (``.dcm`` files directly in it), or a folder whose
subfolders each hold one series (one subject each, named by the subfolder). A folder whose files
carry two SeriesInstanceUIDs is refused, naming the folder and both series.

Slices are ordered by their position along the slice normal (ImagePositionPatient projected on
the cross product of ImageOrientationPatient's row and column directions), then by
InstanceNumber. The volume is indexed like a NIfTI one, [column, row, slice], so ``data.axis`` 2
gives the acquired images and 0, 1 the reformatted planes. Intensities go through the
single-file reader's window (:class:`data.dicom.GrayWindow`: each file's RescaleSlope/Intercept,
then ``data.window``, else the first file's WindowCenter/WindowWidth, else the series' min-max;
MONOCHROME1 inverted). Per-subject classes come from ``data.labels_csv`` (rows name the series
folders); a series has no label volume. Slicing and splits: ``volume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradprom_sidecar.data.base import DataError, Pool, parallel_map, require_dir
from gradprom_sidecar.data.dicom import GrayWindow, check_window, first_number, open_dicom
from gradprom_sidecar.data.volume import Volume, subject_classes, volume_pool
from gradprom_sidecar.training.config import setting


@dataclass
class Series:
    """One series read from disk, in slice order.

    :param folder: where its files are.
    :param files: the files, in slice order.
    :param datasets: their pydicom datasets (pixel data decoded on demand).
    :param stored: S×rows×columns stored values (float64).
    :param windows: each slice's :class:`GrayWindow` (shared lo/hi, each file's own rescale).
    """

    folder: Path
    files: list[Path]
    datasets: list[Any]
    stored: np.ndarray
    windows: list[GrayWindow]

    def unit(self) -> np.ndarray:
        """S×rows×columns in [0, 1] through each slice's window."""
        return np.stack([w.to_unit(s) for w, s in zip(self.windows, self.stored)])


def _position(ds: Any) -> float:
    """The slice's position along its normal (0 when the geometry is missing)."""
    iop, ipp = getattr(ds, "ImageOrientationPatient", None), getattr(ds, "ImagePositionPatient", None)
    if iop is None or ipp is None or len(iop) != 6 or len(ipp) != 3:
        return 0.0
    normal = np.cross(np.asarray(iop[:3], dtype=float), np.asarray(iop[3:], dtype=float))
    return float(np.dot(normal, np.asarray(ipp, dtype=float)))


def read_series(folder: Path, window: dict | None) -> Series:
    """Read the one series in ``folder`` (its ``.dcm`` files, not recursive).

    :param window: ``data.window`` or None.
    :raises DataError: no files, unreadable files, two series in one folder, slices of differing size.
    """
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".dcm")
    if not files:
        raise DataError(f"{folder}: no .dcm files (a DICOM series folder was expected)")

    def one(p: Path) -> Any:
        ds = open_dicom(p)
        if int(getattr(ds, "SamplesPerPixel", 1)) != 1 or int(getattr(ds, "NumberOfFrames", 1) or 1) != 1:
            raise DataError(f"{p}: a series slice must be a single-frame grayscale image")
        return ds

    datasets = parallel_map(one, files)
    uids = sorted({str(getattr(ds, "SeriesInstanceUID", "")) for ds in datasets})
    if len(uids) > 1:
        raise DataError(
            f"{folder}: mixes {len(uids)} series (SeriesInstanceUID {uids[0]!r} and {uids[1]!r}); put each series in its own folder"
        )
    order = sorted(
        range(len(files)), key=lambda i: (_position(datasets[i]), first_number(datasets[i], "InstanceNumber") or 0.0, files[i].name)
    )
    files, datasets = [files[i] for i in order], [datasets[i] for i in order]
    try:
        stored = [np.asarray(ds.pixel_array, dtype=np.float64) for ds in datasets]
    except Exception as e:
        raise DataError(f"{folder}: cannot decode DICOM pixel data ({e})") from e
    shapes = {s.shape for s in stored}
    if len(shapes) > 1:
        raise DataError(f"{folder}: slices of differing sizes {sorted(shapes)} in one series")
    volume = np.stack(stored)
    first = GrayWindow.of(datasets[0], volume, window)
    if window is None and first_number(datasets[0], "WindowWidth") is None:
        # No window anywhere: the series' own min-max after each file's rescale, one range for all slices.
        values = [
            s * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
            for s, ds in zip(stored, datasets)
        ]
        lo, hi = float(min(v.min() for v in values)), float(max(v.max() for v in values))
    else:
        lo, hi = first.lo, first.hi
    windows = [
        GrayWindow(lo, hi, float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0), first.invert)
        for ds in datasets
    ]
    return Series(folder, files, datasets, volume, windows)


def series_folders(root: Path) -> list[Path]:
    """``root`` itself when it holds .dcm files, else its subfolders that do (sorted).

    :param root: ``data.path``.
    """
    if any(p.suffix.lower() == ".dcm" and p.is_file() for p in root.iterdir()):
        return [root]
    return sorted(d for d in root.iterdir() if d.is_dir() and any(p.suffix.lower() == ".dcm" for p in d.iterdir()))


def load_dicom_series(cfg: dict, size: int, channels: int) -> Pool:
    """Load DICOM series as 2D slices (see the module docstring).

    :param cfg: the data section of the resolved config.
    :param size: output side.
    :param channels: 1 or 3.
    """
    root = require_dir(setting(cfg, "path", "data"))
    window = check_window(setting(cfg, "window", "data"))
    folders = series_folders(root)
    if not folders:
        raise DataError(f"{root}: no DICOM series (no .dcm files in it or in its subfolders)")
    names = [f.name for f in folders]
    classes = subject_classes(cfg, root, names)
    volumes = []
    for folder, name in zip(folders, names):
        unit = read_series(folder, window).unit()  # S×rows×columns
        volumes.append(Volume(name, np.ascontiguousarray(unit.transpose(2, 1, 0)).astype(np.float32)))
    if classes is not None:
        for v, c in zip(volumes, classes[0]):
            v.label = c
    return volume_pool(volumes, cfg, size, channels, None, classes[1] if classes else None, {"series": [str(f) for f in folders][:20]})
