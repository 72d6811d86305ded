"""ImageNet's val split as downloaded: a flat folder and the devkit's or Kaggle's ground truth, in ImageFolder's order."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gradprom_sidecar.data import DataError, build_data

# The devkit's ID order is not alphabetical: ID 1 is the fourth wnid in sorted order.
SYNSETS = ["n03000000", "n01000000", "n02000000", "n01500000"]
# Image k (1-based) has ILSVRC2012_ID TRUTH[k - 1].
TRUTH = [1, 2, 2, 3, 1, 4, 3, 2, 1]


def name(k: int) -> str:
    return f"ILSVRC2012_val_{k:08d}.JPEG"


def write_val(root: Path) -> Path:
    """``root/val/ILSVRC2012_val_<k>.JPEG`` of random sizes, the devkit ground truth and synsets, and LOC_val_solution.csv."""
    rng = np.random.default_rng(1)
    val = root / "val"
    val.mkdir(parents=True)
    for k in range(1, len(TRUTH) + 1):
        w, h = (int(v) for v in rng.integers(30, 50, 2))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(val / name(k), quality=90)
    (root / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{t}\n" for t in TRUTH))
    (root / "synsets.txt").write_text("".join(f"{w} some name, other name\n" for w in SYNSETS))
    rows = [f"{name(k)[:-5]},{SYNSETS[t - 1]} 10 20 30 40 {SYNSETS[t - 1]} 1 2 3 4" for k, t in enumerate(TRUTH, 1)]
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows[::-1]) + "\n")
    return val


def cfg(val: Path, **over: object) -> dict:
    base = {
        "kind": "imagenet-val",
        "path": str(val),
        "ground_truth": "../ILSVRC2012_validation_ground_truth.txt",
        "synsets": "../synsets.txt",
        "size": 24,
        "channels": 3,
        "resize": 28,
        "max_per_class": None,
        "augment": {"flip": False, "crop": False},
    }
    return {**base, **over}


def as_imagefolder(root: Path, val: Path) -> Path:
    """The same split sorted into class folders, as the third-party script does."""
    out = root / "sorted" / "val"
    for k, t in enumerate(TRUTH, 1):
        (out / SYNSETS[t - 1]).mkdir(parents=True, exist_ok=True)
        shutil.copy(val / name(k), out / SYNSETS[t - 1] / name(k))
    return out.parent


def test_devkit_and_loc_csv_read_as_imagefolder_reads_the_sorted_split(tmp_path: Path) -> None:
    val = write_val(tmp_path)
    folder = build_data(
        {
            **cfg(val),
            "kind": "imagefolder",
            "path": str(as_imagefolder(tmp_path, val)),
            "folders": {"train": None, "val": "val", "test": None},
        },
        0,
    )
    devkit = build_data(cfg(val), 0)
    loc = build_data(cfg(val, ground_truth="../LOC_val_solution.csv", synsets=None), 0)
    for got in (devkit, loc):
        assert got.class_names == sorted(SYNSETS) == folder.class_names
        assert torch.equal(got.val.labels, folder.val.labels)
        assert torch.equal(got.val.images, folder.val.images)  # ImageFolder's order: by wnid, then file name
        assert got.test is got.val and len(got.train) == 0
    # Image 1 has ID 1, n03000000: the last class in sorted order, with images 1, 5 and 9.
    assert devkit.val.names[-3:] == [name(1), name(5), name(9)] and devkit.val.labels[-3:].tolist() == [3, 3, 3]


def test_classes_come_from_the_mapping_and_max_per_class_keeps_the_first(tmp_path: Path) -> None:
    val = write_val(tmp_path)
    (tmp_path / "synsets.txt").write_text("".join(f"{w}\n" for w in [*SYNSETS, "n00900000"]))
    got = build_data(cfg(val, max_per_class=1), 0)
    assert got.num_classes == 5 and got.class_names[0] == "n00900000"  # all of the mapping's classes, sorted
    assert got.val.labels.tolist() == [1, 2, 3, 4]
    assert got.val.names == [name(2), name(6), name(4), name(1)]


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda r: (r / "ILSVRC2012_validation_ground_truth.txt").unlink(), r"ground_truth\.txt: ground-truth file not found"),
        (
            lambda r: (r / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n2\n2\n"),
            r"ground_truth\.txt: has no line for .*00000004\.JPEG \(6 image",
        ),
        (lambda r: (r / "val" / name(5)).unlink(), r"ground_truth\.txt:5: ILSVRC2012_val_00000005\.JPEG is not in"),
        (
            lambda r: (r / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n2\n\n"),
            r"ground_truth\.txt:3: expected an ILSVRC2012_ID 1\.\.4",
        ),
        (
            lambda r: (r / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n9\n"),
            r"ground_truth\.txt:2: expected an ILSVRC2012_ID 1\.\.4, got '9'",
        ),
        (lambda r: (r / "synsets.txt").write_text("n03000000\nn01000000\nn03000000\n"), r"synsets\.txt:3: n03000000 is listed twice"),
        (lambda r: (r / "synsets.txt").write_text("tench\n"), r"synsets\.txt:1: expected a wnid"),
    ],
)
def test_devkit_problems_name_the_file_and_line(tmp_path: Path, change, message: str) -> None:  # noqa: ANN001
    val = write_val(tmp_path)
    change(tmp_path)
    with pytest.raises(DataError, match=message):
        build_data(cfg(val), 0)


@pytest.mark.parametrize(
    "lines,message",
    [
        (["ImageId,Prediction"], r"LOC_val_solution\.csv:1: expected the header ImageId,PredictionString"),
        (
            ["ImageId,PredictionString", *(f"{name(k)[:-5]},n01000000 1 2 3 4" for k in range(1, 10)), f"{name(3)[:-5]},n02000000 1"],
            r"LOC_val_solution\.csv:11: ILSVRC2012_val_00000003 is listed twice \(first at line 4\)",
        ),
        (["ImageId,PredictionString", f"{name(1)[:-5]},"], r"LOC_val_solution\.csv:2: expected ImageId,<wnid>"),
        (
            ["ImageId,PredictionString", f"{name(1)[:-5]},n09999999 1 2 3 4"],
            r"LOC_val_solution\.csv:2: n09999999 is not a wnid of data\.synsets",
        ),
        (
            ["ImageId,PredictionString", f"{name(1)[:-5]},n01000000 1 2 3 4"],
            r"LOC_val_solution\.csv: has no line for .*00000002\.JPEG \(8 image",
        ),
    ],
)
def test_loc_csv_problems_name_the_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    val = write_val(tmp_path)
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        build_data(cfg(val, ground_truth="../LOC_val_solution.csv"), 0)


def test_the_devkit_needs_a_mapping_and_a_sorted_list_is_refused(tmp_path: Path) -> None:
    val = write_val(tmp_path)
    with pytest.raises(ValueError, match=r"config\.data\.synsets: required with ILSVRC2012_validation_ground_truth\.txt"):
        build_data(cfg(val, synsets=None), 0)
    (tmp_path / "synsets.txt").write_text("".join(f"n{i:08d}\n" for i in range(1000)))  # LOC_synset_mapping.txt's order
    with pytest.raises(DataError, match=r"synsets\.txt: its wnids are in sorted order"):
        build_data(cfg(val), 0)


def test_meta_mat_gives_the_leaf_synsets_in_id_order(tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")  # scipy is optional: the text mapping needs none
    val = write_val(tmp_path)
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")]
    rows = [(i + 1, w, 0) for i, w in enumerate(SYNSETS)] + [(len(SYNSETS) + 1, "n00001740", 3)]  # a non-leaf is left out
    scipy_io.savemat(tmp_path / "meta.mat", {"synsets": np.array(rows, dtype=dtype)})
    got = build_data(cfg(val, synsets="../meta.mat"), 0)
    want = build_data(cfg(val), 0)
    assert got.class_names == want.class_names and torch.equal(got.val.labels, want.val.labels)
