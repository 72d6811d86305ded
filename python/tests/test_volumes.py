"""Volume data kinds (gradprom_sidecar.data.nifti, dicom_series, volume): NIfTI with label maps, DICOM series, slicing and splits."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import needs
from test_data import data, write_csv, write_dcm

from gradprom_sidecar.data import DataError, build_data

nib = needs("nibabel")

AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])


def brain(shape: tuple[int, int, int] = (20, 24, 16), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A phantom: a bright ellipsoid with two labelled blobs (ids 5 and 9) and noise outside; labels on the same grid."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    inside = x**2 + y**2 + (z / 0.8) ** 2 < 0.7
    image = np.where(inside, 600.0, 20.0) + rng.normal(0, 5, shape)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[inside & (x < 0)] = 5
    labels[inside & (x >= 0) & (y > 0.2)] = 9
    return image.astype(np.int16), labels


def save_nii(path: Path, arr: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, affine), str(path))
    return path


def subjects(root: Path, n: int, images: str = "images", labels: str = "labels", suffix: str = "") -> list[str]:
    names = [f"sub{i:02d}" for i in range(n)]
    for i, name in enumerate(names):
        img, lab = brain(seed=i)
        save_nii(root / images / f"{name}{suffix}.nii.gz", img)
        save_nii(root / labels / f"{name}.nii.gz", lab)
    return names


def subject_of(sample: str) -> str:
    return sample.rsplit(":", 1)[0]


def test_nifti_subjects_never_share_a_split(tmp_path: Path) -> None:
    subjects(tmp_path, 6)
    b = build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16, "axis": 2}), seed=0)
    parts = {k: {subject_of(n) for n in b.split(k).names} for k in ("train", "val", "test")}
    assert parts["train"] and parts["val"] and parts["test"]
    assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
    assert sum(len(v) for v in parts.values()) == 6
    assert len(b.train) + len(b.val) + len(b.test) == 6 * 16  # every axial slice of every subject
    assert b.train.images.shape[1:] == (1, 16, 16) and 0 <= float(b.train.images.min()) and float(b.train.images.max()) <= 1
    assert b.train.masks is not None and set(torch.unique(b.train.masks).tolist()) <= {0, 5, 9}
    assert b.num_classes == 10 and not b.has_labels
    again = build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16, "axis": 2}), seed=0)
    assert again.test.names == b.test.names
    other = build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16, "axis": 2, "seed": 3}), seed=3)
    assert {subject_of(n) for n in other.test.names} != parts["test"] or {subject_of(n) for n in other.val.names} != parts["val"]


def test_nnunet_naming_and_axis_and_drop_empty(tmp_path: Path) -> None:
    subjects(tmp_path, 3, "imagesTr", "labelsTr", suffix="_0000")
    cfg = {
        "kind": "nifti",
        "path": str(tmp_path),
        "size": 16,
        "axis": 0,
        "drop_empty": True,
        "split": {"train": 0.34, "val": 0.33, "test": 0.33},
    }
    b = build_data(data(cfg), seed=0)
    names = b.train.names + b.val.names + b.test.names
    assert all(":x" in n for n in names) and {subject_of(n) for n in names} == {"sub00", "sub01", "sub02"}
    _, lab = brain()
    assert len(names) == 3 * int(lab.any(axis=(1, 2)).sum()) < 3 * 20  # empty sagittal slices dropped
    for s in (b.train, b.val, b.test):
        assert s.masks is not None and all(bool((m > 0).any()) for m in s.masks)


def test_single_subject_slabs_with_a_gap(tmp_path: Path) -> None:
    img, lab = brain((16, 16, 40))
    save_nii(tmp_path / "one.nii.gz", img)
    save_nii(tmp_path / "one_seg.nii", lab)
    cfg = {
        "kind": "nifti",
        "image": str(tmp_path / "one.nii.gz"),
        "label_volume": "one_seg.nii",
        "path": str(tmp_path),
        "size": 16,
        "slab_gap": 3,
    }
    b = build_data(data(cfg), seed=0)
    index = {k: [int(n.split(":z")[1]) for n in b.split(k).names] for k in ("train", "val", "test")}
    for k, idx in index.items():
        assert idx == list(range(idx[0], idx[0] + len(idx))), f"{k} is not one contiguous slab"
    assert index["val"][0] - index["train"][-1] == 4 and index["test"][0] - index["val"][-1] == 4  # 3 slices left out between
    assert len(index["train"]) + len(index["val"]) + len(index["test"]) == 40 - 2 * 3
    assert abs(len(index["test"]) - 0.2 * 34) <= 1


def test_percentile_scaling_is_per_volume(tmp_path: Path) -> None:
    img, _ = brain((16, 16, 12))
    save_nii(tmp_path / "a.nii.gz", img)
    save_nii(tmp_path / "b.nii.gz", (img.astype(np.float32) * 10 + 1000))  # same anatomy, other scanner units
    cfg = {
        "kind": "nifti",
        "path": str(tmp_path),
        "size": 16,
        "split": {"train": 0.5, "val": 0.0, "test": 0.5},
        "percentiles": {"low": 1, "high": 99},
    }
    b = build_data(data(cfg), seed=0)
    (first, second) = (b.train, b.test)
    assert torch.allclose(first.images, second.images, atol=2e-3)
    lo, hi = np.percentile(img, [1, 99])
    mid = img[8, 8, 6]
    expect = np.clip((mid - lo) / (hi - lo), 0, 1)
    assert abs(float(first.images[6, 0, 8, 8]) - expect) < 1e-5  # slice 6, voxel (8, 8), no resize at 16


def test_label_map_groups_ids(tmp_path: Path) -> None:
    subjects(tmp_path, 3)
    write_csv(tmp_path / "map.csv", ["id,region,name", "5,left,five", "9,right,nine"])
    full = build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16, "label_map": "map.csv"}), seed=0)
    assert full.class_names == ["background", "left", "right"] and full.num_classes == 3
    assert set(torch.unique(torch.cat([full.train.masks, full.test.masks])).tolist()) == {0, 1, 2}
    write_csv(tmp_path / "map1.csv", ["id,region", "5,left"])
    b = build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16, "label_map": "map1.csv"}), seed=0)
    assert torch.equal(b.train.masks, (full.train.masks == 1).long())  # 9 is unmapped: background
    b = build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16, "label_map": "map1.csv", "unmapped": "left"}), seed=0)
    assert torch.equal(b.train.masks, (full.train.masks > 0).long())  # 9 is unmapped: "left"


def test_subject_classes_from_csv(tmp_path: Path) -> None:
    names = subjects(tmp_path, 6)
    write_csv(tmp_path / "labels.csv", ["image,label"] + [f"{n}.nii.gz,{'ad' if i % 2 else 'cn'}" for i, n in enumerate(names)])
    b = build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16}), seed=0)
    assert b.has_labels and b.class_names == ["ad", "cn"]
    for s in (b.train, b.val, b.test):
        for n, y in zip(s.names, s.labels.tolist()):
            assert y == (1 - int(n[3:5]) % 2)


def test_volumes_csv_lists_pairs(tmp_path: Path) -> None:
    subjects(tmp_path, 3)
    write_csv(tmp_path / "list.csv", ["image,labels", "images/sub00.nii.gz,labels/sub00.nii.gz", "images/sub02.nii.gz,labels/sub02.nii.gz"])
    cfg = {"kind": "nifti", "path": str(tmp_path), "size": 16, "volumes_csv": "list.csv", "split": {"train": 0.5, "val": 0.0, "test": 0.5}}
    b = build_data(data(cfg), seed=0)
    assert {subject_of(n) for n in b.train.names + b.test.names} == {"sub00", "sub02"}


# ---------------------------------------------------------------- bad input


def test_error_not_nifti_or_truncated(tmp_path: Path) -> None:
    img, _ = brain()
    good = save_nii(tmp_path / "images" / "a.nii.gz", img)
    (tmp_path / "images" / "b.nii.gz").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(DataError, match=r"images/b\.nii\.gz: not a readable NIfTI volume \(truncated or not NIfTI\?\)"):
        build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16}), seed=0)
    (tmp_path / "images" / "b.nii.gz").write_bytes(gzip.compress(b"hello, not a volume" * 30))
    with pytest.raises(DataError, match=r"images/b\.nii\.gz: not a readable NIfTI volume"):
        build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16}), seed=0)


def test_error_label_volume_on_another_grid(tmp_path: Path) -> None:
    img, lab = brain()
    save_nii(tmp_path / "images" / "a.nii.gz", img)
    save_nii(tmp_path / "labels" / "a.nii.gz", lab, affine=np.diag([1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(
        DataError, match=r"labels/a\.nii\.gz: label volume is not on the grid of its image .*images/a\.nii\.gz .*affines differ"
    ):
        build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16}), seed=0)
    save_nii(tmp_path / "labels" / "a.nii.gz", lab[:, :, :-1])
    with pytest.raises(DataError, match=r"shape \(20, 24, 15\) vs \(20, 24, 16\)"):
        build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16}), seed=0)


def test_error_label_map_naming_ids_that_never_occur(tmp_path: Path) -> None:
    subjects(tmp_path, 2)
    write_csv(tmp_path / "map.csv", ["id,region", "5,left", "9,right", "42,ghost", "77,ghost"])
    with pytest.raises(DataError, match=r"map\.csv: names label ids that occur in no label volume: 42, 77 \(2 of 4\)"):
        build_data(data({"kind": "nifti", "path": str(tmp_path), "size": 16, "label_map": "map.csv"}), seed=0)


# ---------------------------------------------------------------- DICOM series


def write_series(folder: Path, volume: np.ndarray, uid: str = "1.2.3.4", shuffle: bool = True, **elements: object) -> list[Path]:
    """Slices of ``volume`` (S×rows×cols, uint16) as a series, file names in a scrambled order."""
    n = volume.shape[0]
    order = np.random.default_rng(0).permutation(n) if shuffle else np.arange(n)
    paths = []
    for k in range(n):
        paths.append(
            write_dcm(
                folder / f"f{order[k]:03d}.dcm",
                volume[k],
                SeriesInstanceUID=uid,
                InstanceNumber=k + 1,
                ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                ImagePositionPatient=[0, 0, 2.5 * k - 40],
                **elements,
            )
        )
    return paths


def test_dicom_series_slice_order_rescale_and_window(tmp_path: Path) -> None:
    vol = np.stack([np.full((12, 12), 1000 + 10 * k, dtype=np.uint16) for k in range(10)])
    write_series(tmp_path / "s1", vol, RescaleSlope=1, RescaleIntercept=-1000, WindowCenter=50, WindowWidth=100)
    cfg = {
        "kind": "dicom-series",
        "path": str(tmp_path / "s1"),
        "size": 12,
        "slab_gap": 0,
        "split": {"train": 0.6, "val": 0.2, "test": 0.2},
    }
    b = build_data(data(cfg), seed=0)
    names = b.train.names + b.val.names + b.test.names
    values = torch.cat([b.train.images, b.val.images, b.test.images])[:, 0, 6, 6]
    assert [int(n.split(":z")[1]) for n in names] == list(range(10))
    # slice k holds HU 10k: window [0, 100] maps it to k/10, in slice-position order despite the scrambled file names
    assert torch.allclose(values, torch.arange(10) / 10.0, atol=1e-6)


def test_dicom_series_subjects_and_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(4):
        write_series(tmp_path / f"case{i}", rng.integers(0, 4000, (6, 10, 10)).astype(np.uint16), uid=f"1.2.3.{i}")
    write_csv(tmp_path / "labels.csv", ["image,label"] + [f"case{i},{i % 2}" for i in range(4)])
    cfg = {"kind": "dicom-series", "path": str(tmp_path), "size": 10, "split": {"train": 0.5, "val": 0.25, "test": 0.25}}
    b = build_data(data(cfg), seed=0)
    parts = {k: {subject_of(n) for n in b.split(k).names} for k in ("train", "val", "test")}
    assert sorted(parts["train"] | parts["val"] | parts["test"]) == [f"case{i}" for i in range(4)]
    assert all(len(v) >= 1 for v in parts.values()) and sum(map(len, parts.values())) == 4
    assert b.has_labels and all(y == int(n[4]) % 2 for n, y in zip(b.train.names, b.train.labels.tolist()))


def test_error_dicom_folder_mixing_two_series(tmp_path: Path) -> None:
    vol = np.zeros((3, 8, 8), dtype=np.uint16)
    write_series(tmp_path / "s", vol, uid="1.2.3.1")
    write_dcm(tmp_path / "s" / "stray.dcm", vol[0], SeriesInstanceUID="1.2.3.2")
    with pytest.raises(DataError, match=r"/s: mixes 2 series \(SeriesInstanceUID '1\.2\.3\.1' and '1\.2\.3\.2'\)"):
        build_data(data({"kind": "dicom-series", "path": str(tmp_path / "s"), "size": 8}), seed=0)


# ---------------------------------------------------------------- the real brain template, when installed

COLIN = Path("/usr/share/mricron/templates")


@pytest.mark.skipif(not (COLIN / "ch2.nii.gz").is_file(), reason="mricron-data not installed (apt-get install mricron-data)")
def test_colin27_with_aal_groups(tmp_path: Path) -> None:
    """Extra check on real anatomy (never the only loader test): the example's mapping groups AAL into its regions."""
    mapping = Path(__file__).resolve().parents[2] / "configs" / "examples" / "brain-mri-regions.csv"
    cfg = {
        "kind": "nifti",
        "image": str(COLIN / "ch2.nii.gz"),
        "label_volume": str(COLIN / "aal.nii.gz"),
        "label_map": str(mapping),
        "size": 32,
        "drop_empty": True,
    }
    b = build_data(data(cfg), seed=0)
    assert b.class_names[0] == "background" and len(b.class_names) >= 4
    assert all(int(b.split(k).masks.max()) >= 1 for k in ("train", "val", "test"))
    assert len(b.train) + len(b.val) + len(b.test) < 181  # slices without any atlas region dropped, slab gaps left out
