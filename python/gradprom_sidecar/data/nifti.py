"""NIfTI volumes (``.nii``, ``.nii.gz``), read with nibabel, with optional label volumes on the same grid.

Where the volumes are (first that applies):

- ``data.image`` (and optionally ``data.label_volume``): one subject, explicit files;
- ``data.volumes_csv``: a CSV with columns ``image`` and optionally ``labels``, one subject a row;
- ``data.path`` holding ``images/`` and ``labels/`` with volumes of the same file names, or
  nnU-Net's ``imagesTr/`` + ``labelsTr/`` (``case_0000.nii.gz`` pairs with ``case.nii.gz``; a
  subject's first channel is used); without a labels folder, the images alone.

Relative paths are relative to ``data.path``. Every volume is turned to the closest canonical
(RAS+) orientation first, so ``data.axis`` means the same for every subject: 0 sagittal, 1
coronal, 2 axial. A label volume must have its image's shape and affine (checked before
reorienting, to 1e-3 mm), or loading stops with an error naming both files. Intensities are scaled
per volume from the ``data.percentiles`` {low, high} percentiles to [0, 1]. Label ids are remapped
through ``data.label_map`` when set (see ``volume``); per-subject classes come from
``data.labels_csv``. Slicing and splits: ``volume``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from gradprom_sidecar.data.base import DataError, Pool, parallel_map
from gradprom_sidecar.data.folder import resolve_path
from gradprom_sidecar.data.volume import (
    LabelMap,
    Volume,
    check_percentiles,
    percentile_scale,
    read_label_map,
    strip_volume_suffix,
    subject_classes,
    volume_pool,
)
from gradprom_sidecar.training.config import setting

SUFFIXES = (".nii.gz", ".nii")


def is_nifti(path: Path) -> bool:
    """True for a ``.nii`` or ``.nii.gz`` file name."""
    return path.name.lower().endswith(SUFFIXES)


def load_nifti_image(path: Path) -> object:
    """The nibabel image at ``path``, with its data read (so a truncated file fails here).

    :raises DataError: not a NIfTI file, unreadable, or truncated.
    """
    import nibabel as nib

    if not path.is_file():
        raise DataError(f"{path}: missing file (a NIfTI volume was expected here)")
    try:
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise DataError(f"{path}: not a NIfTI file (nibabel reads it as {type(img).__name__})")
        np.asanyarray(img.dataobj)  # reads the voxels: a truncated file fails now, not later
    except DataError:
        raise
    except Exception as e:  # nibabel raises ImageFileError, EOFError, OSError, zlib errors ...
        raise DataError(f"{path}: not a readable NIfTI volume (truncated or not NIfTI?): {type(e).__name__}: {e}") from e
    if len(img.shape) not in (3, 4):
        raise DataError(f"{path}: expected a 3-D volume, got shape {tuple(img.shape)}")
    return img


def _data3d(img: object) -> np.ndarray:
    """The first 3-D volume of an image (4-D: its first channel or time point)."""
    arr = np.asanyarray(img.dataobj)  # type: ignore[attr-defined]
    return arr[..., 0] if arr.ndim == 4 else arr


def read_pair(
    name: str, image: Path, labels: Path | None, percentiles: tuple[float, float], table: LabelMap | None
) -> tuple[Volume, set[int]]:
    """One subject: scaled canonical image, label volume (checked, remapped) and the label ids seen.

    :param labels: its label volume, or None.
    :param percentiles: (low, high) for the intensity scaling.
    :param table: a label table, or None.
    """
    import nibabel as nib

    img = load_nifti_image(image)
    canon = nib.as_closest_canonical(img)
    scaled = percentile_scale(np.asarray(_data3d(canon), dtype=np.float64), *percentiles)
    vol = Volume(name, scaled)
    seen: set[int] = set()
    if labels is not None:
        lab = load_nifti_image(labels)
        if tuple(lab.shape[:3]) != tuple(img.shape[:3]) or not np.allclose(lab.affine, img.affine, atol=1e-3):
            raise DataError(
                f"{labels}: label volume is not on the grid of its image {image} "
                f"(shape {tuple(lab.shape[:3])} vs {tuple(img.shape[:3])}; affines {'equal' if np.allclose(lab.affine, img.affine, atol=1e-3) else 'differ'})"
            )
        raw = np.asarray(_data3d(nib.as_closest_canonical(lab)))
        if not np.all(np.isfinite(raw)) or np.any(raw < 0) or np.any(raw != np.round(raw)):
            raise DataError(f"{labels}: label volume must hold non-negative integer ids")
        ids = raw.astype(np.int64)
        seen = set(np.unique(ids).tolist())
        vol.labels = table.apply(ids) if table is not None else ids
    return vol, seen


def subject_name(image: Path) -> str:
    """A subject's name: the image file's name without .nii/.nii.gz, and without nnU-Net's channel suffix ``_0000``."""
    stem = strip_volume_suffix(image.name)
    return stem[:-5] if len(stem) > 5 and stem.endswith("_0000") else stem


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_nifti(p))


def find_pairs(cfg: dict) -> tuple[Path, list[tuple[Path, Path | None]]]:
    """(the data folder, [(image, labels or None)]) from the config (see the module docstring).

    A subject is named by its image's file name without .nii/.nii.gz (and nnU-Net's ``_0000``).

    :param cfg: the data section.
    :raises DataError: no volumes, a missing folder or file, an image without its label volume.
    """
    root = Path(setting(cfg, "path", "data") or ".").expanduser()
    image, labels, listing = setting(cfg, "image", "data"), setting(cfg, "label_volume", "data"), setting(cfg, "volumes_csv", "data")
    if image:
        return root, [(resolve_path(root, image, ""), resolve_path(root, labels, "") if labels else None)]
    if labels:
        raise ValueError("data.label_volume: set together with data.image (one subject); for several use images/ and labels/")
    if not root.is_dir():
        raise DataError(f"{root}: missing path (data.path is not a folder; or set data.image)")
    if listing:
        csv_path = resolve_path(root, listing, "")
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
        except OSError as e:
            raise DataError(f"{csv_path}: cannot read volumes CSV ({e})") from e
        if not rows or "image" not in rows[0]:
            raise DataError(f"{csv_path}: a volumes CSV needs the header column 'image' (and optionally 'labels')")
        return root, [
            (
                resolve_path(root, r["image"].strip(), ""),
                resolve_path(root, r["labels"].strip(), "") if (r.get("labels") or "").strip() else None,
            )
            for r in rows
        ]
    for img_dir, lab_dir, nnunet in (("images", "labels", False), ("imagesTr", "labelsTr", True)):
        if (root / img_dir).is_dir():
            images = _nifti_files(root / img_dir)
            if not images:
                raise DataError(f"{root / img_dir}: no .nii or .nii.gz volumes")
            if not (root / lab_dir).is_dir():
                return root, [(p, None) for p in images]
            pairs = []
            for p in images:
                stem = strip_volume_suffix(p.name)
                if nnunet and len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit():
                    if stem[-4:] != "0000":
                        continue  # further channels of a multi-channel case: the first is used
                    stem = stem[:-5]
                cands = [root / lab_dir / f"{stem}{s}" for s in SUFFIXES]
                found = next((c for c in cands if c.is_file()), None)
                if found is None:
                    raise DataError(f"{p}: no label volume for it in {root / lab_dir} (expected {cands[0].name} or {cands[1].name})")
                pairs.append((p, found))
            return root, pairs
    images = _nifti_files(root)
    if not images:
        raise DataError(
            f"{root}: no NIfTI volumes found (expected images/ + labels/, imagesTr/ + labelsTr/, .nii/.nii.gz files, or data.image)"
        )
    return root, [(p, None) for p in images]


def load_nifti(cfg: dict, size: int, channels: int) -> Pool:
    """Load NIfTI volumes as 2D slices (see the module docstring).

    :param cfg: the data section of the resolved config.
    :param size: output side.
    :param channels: 1 or 3.
    """
    root, pairs = find_pairs(cfg)
    percentiles = check_percentiles(cfg)
    table_file = setting(cfg, "label_map", "data")
    table = read_label_map(resolve_path(root, table_file, ""), str(setting(cfg, "unmapped", "data"))) if table_file else None
    if table is not None and not any(lab for _, lab in pairs):
        raise ValueError("data.label_map: set, but there are no label volumes to remap")
    names = [subject_name(p) for p, _ in pairs]
    if len(set(names)) != len(names):
        raise DataError(f"{root}: two volumes share a subject name ({sorted(n for n in names if names.count(n) > 1)[0]})")
    classes = subject_classes(cfg, root, names)
    out = parallel_map(lambda i: read_pair(names[i], pairs[i][0], pairs[i][1], percentiles, table), list(range(len(pairs))))
    volumes = [v for v, _ in out]
    if table is not None:
        table.check_occur(set().union(*(seen for _, seen in out)))
    if classes is not None:
        for v, c in zip(volumes, classes[0]):
            v.label = c
    regions = table.regions if table is not None else None
    if regions is None and all(v.labels is not None for v in volumes):
        top = max(int(v.labels.max(initial=0)) for v in volumes)  # type: ignore[union-attr]
        regions = [str(i) for i in range(1, max(top, 1) + 1)]
    source = {"volumes": [str(p) for p, _ in pairs][:20]}
    if table is not None:
        source["label_map"] = str(table.path)
    return volume_pool(volumes, cfg, size, channels, regions, classes[1] if classes else None, source)
