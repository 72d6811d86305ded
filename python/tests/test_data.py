"""Data sets: the synthetic default, the file layouts (folder, ISIC 2018, DICOM), splits and errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import needs
from PIL import Image

from gradprom_sidecar.data import DataError, augment, build_data, split_indices, to_unit
from gradprom_sidecar.data.dicom import GrayWindow
from gradprom_sidecar.data.synthetic import generate
from gradprom_sidecar.training.config import resolve

# ---------------------------------------------------------------- helpers


def data(fields: dict) -> dict:
    """A resolved ``data`` section: ``fields`` over the defaults, and ``labels_csv`` null unless given
    (a ``labels.csv`` is then read when present, as the layouts document)."""
    return resolve({"data": {"labels_csv": None, **fields}})["data"]


def save(path: Path, arr: np.ndarray) -> Path:
    """Write a uint8 H×W or H×W×3 array as an image (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path


def rand_img(h: int = 20, w: int = 24, rgb: bool = True, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3) if rgb else (h, w))


def write_csv(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def folder_set(root: Path, n: int = 6) -> Path:
    """n RGB images of differing sizes with a class-name labels CSV."""
    for i in range(n):
        save(root / "imgs" / f"im{i}.png", rand_img(16 + i, 20, seed=i))
    write_csv(root / "labels.csv", ["image,label"] + [f"im{i}.png,{'cat' if i % 2 else 'dog'}" for i in range(n)])
    return root


def write_dcm(path: Path, arr: np.ndarray, pixels: bool = True, **elements: object) -> Path:
    """A minimal uncompressed 16-bit MONOCHROME2 DICOM file (the test is skipped where pydicom is not installed)."""
    needs("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    for k, v in elements.items():
        setattr(ds, k, v)
    if pixels:
        ds.PixelData = arr.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.save_as(path, enforce_file_format=True)  # pydicom >= 3
    except TypeError:  # pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
    return path


SMALL = {"kind": "synthetic", "counts": {"train": 40, "val": 8, "test": 12}}

# ---------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_seed_dependent() -> None:
    a, b, c = build_data(data(SMALL), 3), build_data(data(SMALL), 3), build_data(data(SMALL), 4)
    for name in ("train", "val", "test"):
        sa, sb = a.split(name), b.split(name)
        assert sa.images.numpy().tobytes() == sb.images.numpy().tobytes()
        assert torch.equal(sa.labels, sb.labels) and torch.equal(sa.masks, sb.masks)
        assert not torch.equal(sa.images, c.split(name).images)
    # Splits come from disjoint derived seeds: no image repeats across them.
    assert not torch.equal(a.train.images[:8], a.val.images)
    names = a.train.names + a.val.names + a.test.names
    assert len(set(names)) == len(names) and names[0] == "synthetic-000000"


@pytest.mark.parametrize("channels,size,classes", [(1, 32, 4), (3, 24, 4), (1, 48, 9), (3, 16, 2)])
def test_synthetic_shapes_range_balance(channels: int, size: int, classes: int) -> None:
    cfg = {**SMALL, "channels": channels, "size": size, "classes": classes, "counts": {"train": 9 * classes, "val": 0, "test": 2}}
    d = build_data(data(cfg), 0)
    assert d.train.images.shape == (9 * classes, channels, size, size) and d.train.images.dtype == torch.float32
    assert (
        d.train.masks.shape == (9 * classes, size, size) and d.train.masks.dtype == torch.uint8
    )  # masks are stored as uint8 (compact storage: a mask holds class ids < 256)
    assert d.train.labels.dtype == torch.int64 and len(d.val) == 0
    assert float(d.train.images.min()) >= 0.0 and float(d.train.images.max()) <= 1.0
    assert torch.bincount(d.train.labels, minlength=classes).tolist() == [9] * classes
    assert d.num_classes == classes == len(d.class_names) == len(set(d.class_names))
    desc = d.describe()
    assert desc["train"]["per_class"][d.class_names[0]] == 9 and desc["train"]["shape"] == [channels, size, size]
    assert 0.05 < desc["train"]["mask_fraction"] < 0.5


def test_synthetic_masks_cover_the_lesion() -> None:
    s = generate(200, 32, 1, 4, seed=11)
    x, m = s.images[:, 0], s.masks.bool()
    assert bool(m.flatten(1).any(1).all())
    inside = (x * m).sum((1, 2)) / m.sum((1, 2))
    outside = (x * ~m).sum((1, 2)) / (~m).sum((1, 2))
    # Lesions are darker than their background by the drawn contrast (0.15-0.35, minus the soft edge).
    assert bool((outside - inside > 0.05).all())


def test_synthetic_generation_makes_2000_balanced_images() -> None:
    # Its speed (2000 images in under 1 s on 2 cores) is a benchmark figure, not a test assertion.
    s = generate(2000, 32, 1, 4, seed=1)
    assert s.images.shape == (2000, 1, 32, 32) and s.masks.shape == (2000, 32, 32) and len(s.names) == 2000
    assert torch.bincount(s.labels, minlength=4).tolist() == [500] * 4


def _spectral_features(images: torch.Tensor) -> torch.Tensor:
    """Log fraction of power in 8 orientation sectors of the texture's frequency band, plus the high band."""
    s = images.shape[-1]
    z = images[:, 0] - images[:, 0].mean((-1, -2), keepdim=True)
    power = torch.fft.fft2(z).abs() ** 2
    k = torch.fft.fftfreq(s) * s
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    r, ang = torch.sqrt(kx**2 + ky**2), torch.atan2(ky, kx) % math.pi
    band = (r > s / 5.6) & (r < s / 3.2)
    cells = [band & (ang >= a * math.pi / 8) & (ang < (a + 1) * math.pi / 8) for a in range(8)] + [r >= s / 3.2]
    feats = torch.stack([power[:, c].sum(1) for c in cells], 1)
    return torch.log(feats / power.sum((1, 2))[:, None] + 1e-6)


def _fit_probe(x: torch.Tensor, y: torch.Tensor, k: int):
    mu, sd = x.mean(0), x.std(0) + 1e-6
    w = torch.zeros(x.shape[1], k, requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=100)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy((x - mu) / sd @ w + b, y) + 1e-3 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda z: ((z - mu) / sd @ w + b).argmax(1)


def test_synthetic_class_is_in_the_texture_and_noise_destroys_it() -> None:
    d = build_data(data({"kind": "synthetic", "counts": {"train": 800, "val": 0, "test": 400}}), 0)
    g = torch.Generator().manual_seed(1)
    noisy = lambda x: x + 0.3 * torch.randn(x.shape, generator=g)  # noqa: E731
    probe = _fit_probe(_spectral_features(d.train.images), d.train.labels, 4)
    clean_acc = float((probe(_spectral_features(d.test.images)) == d.test.labels).float().mean())
    noisy_acc = float((probe(_spectral_features(noisy(d.test.images))) == d.test.labels).float().mean())
    assert clean_acc > 0.9 and noisy_acc < 0.6, (clean_acc, noisy_acc)
    # Even a probe trained on noisy images recovers only part of it.
    probe_n = _fit_probe(_spectral_features(noisy(d.train.images)), d.train.labels, 4)
    noisy_trained = float((probe_n(_spectral_features(noisy(d.test.images))) == d.test.labels).float().mean())
    assert noisy_trained < clean_acc - 0.2, (clean_acc, noisy_trained)
    # σ = 0.3 unclipped would score 10.5 dB (MSE = σ²); clamping x to [0, 1] removes part of the error: ≈ 11.9 dB.
    x = d.test.images
    mse = ((noisy(x).clamp(0, 1) - x) ** 2).mean((1, 2, 3))
    assert 11.4 < float((10 * torch.log10(1 / mse)).mean()) < 12.4


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"data\.kind"):
        build_data(data({"kind": "nope"}), 0)
    with pytest.raises(ValueError, match=r"data\.channels"):
        build_data(data({"kind": "synthetic", "channels": 2}), 0)
    with pytest.raises(ValueError, match=r"data\.classes"):
        build_data(data({"kind": "synthetic", "classes": 1}), 0)
    with pytest.raises(ValueError, match=r"data\.split"):
        build_data(data({"kind": "folder", "path": ".", "split": {"train": 0.5, "val": 0.1, "test": 0.1}, "channels": 3}), 0)


# ---------------------------------------------------------------- splits and augmentation


def test_split_indices_stratified_seeded_and_disjoint() -> None:
    labels = torch.tensor([0] * 70 + [1] * 20 + [2] * 10)
    fr = {"train": 0.7, "val": 0.1, "test": 0.2}
    a, b, c = split_indices(100, labels, fr, 1), split_indices(100, labels, fr, 1), split_indices(100, labels, fr, 2)
    assert [len(a[k]) for k in ("train", "val", "test")] == [70, 10, 20]
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["test"], c["test"])
    assert sorted(torch.cat(list(a.values())).tolist()) == list(range(100))
    assert torch.bincount(labels[a["test"]], minlength=3).tolist() == [14, 4, 2]


def test_augment_flips_images_and_masks_together() -> None:
    s = generate(64, 16, 1, 4, seed=0)
    x, m = augment(s.images, s.masks, torch.Generator().manual_seed(5))
    x2, _ = augment(s.images, s.masks, torch.Generator().manual_seed(5))
    assert torch.equal(x, x2)
    flipped = [bool(torch.equal(x[i], s.images[i].flip(-1))) and not torch.equal(x[i], s.images[i]) for i in range(64)]
    assert 16 < sum(flipped) < 48
    for i in range(64):
        assert torch.equal(m[i], s.masks[i].flip(-1) if flipped[i] else s.masks[i])
    assert augment(s.images, None, torch.Generator(), flip=False)[0] is s.images


# ---------------------------------------------------------------- folder layout


def test_folder_with_label_names(tmp_path: Path) -> None:
    root = folder_set(tmp_path, 10)
    d = build_data(data({"kind": "folder", "path": str(root), "size": 12, "channels": 1}), 0)
    assert d.class_names == ["cat", "dog"] and d.num_classes == 2 and d.channels == 1
    assert d.train.images.shape[1:] == (1, 12, 12) and d.train.masks is None
    assert d.train.images.dtype == torch.uint8  # 8-bit PNGs are kept at 8 bits
    assert [len(d.split(k)) for k in ("train", "val", "test")] == [7, 1, 2]
    assert 0.0 <= float(to_unit(d.train.images).min()) and float(to_unit(d.train.images).max()) <= 1.0
    everything = build_data(
        data({"kind": "folder", "path": str(root), "size": 12, "split": {"train": 1.0, "val": 0.0, "test": 0.0}, "channels": 3}), 0
    )
    labels = dict(zip(everything.train.names, everything.train.labels.tolist()))
    assert labels["imgs/im1.png"] == 0 and labels["imgs/im2.png"] == 1  # cat, dog
    assert everything.train.images.shape[1] == 3  # channels 3: RGB


def test_folder_one_hot_index_and_split_columns(tmp_path: Path) -> None:
    for i in range(4):
        save(tmp_path / f"a{i}.jpg", rand_img(12, 12, seed=i))
    write_csv(tmp_path / "oh.csv", ["image,x,y,z", "a0,1,0,0", "a1,0.0,1.0,0.0", "a2,0,0,1", "a3,1,0,0"])
    d = build_data(
        data({"kind": "folder", "path": str(tmp_path), "labels_csv": "oh.csv", "size": 8, "label_columns": ["x", "y", "z"], "channels": 3}),
        0,
    )
    assert d.class_names == ["x", "y", "z"] and d.channels == 3
    write_csv(tmp_path / "idx.csv", ["file,cls,split", "a0.jpg,2,train", "a1.jpg,0,train", "a2.jpg,1,validation", "a3.jpg,0,test"])
    d = build_data(
        data(
            {
                "kind": "folder",
                "path": str(tmp_path),
                "labels_csv": str(tmp_path / "idx.csv"),
                "image_column": "file",
                "label_column": "cls",
                "size": 8,
                "channels": 3,
            }
        ),
        0,
    )
    assert d.train.names == ["a0.jpg", "a1.jpg"] and d.train.labels.tolist() == [2, 0]
    assert d.val.names == ["a2.jpg"] and d.test.names == ["a3.jpg"] and d.class_names == ["0", "1", "2"]


def test_folder_masks_follow_the_crop(tmp_path: Path) -> None:
    # A 20x30 image with a bright block; the mask marks the same block.
    img = np.zeros((20, 30), np.uint8)
    img[4:10, 12:20] = 255
    for i in range(3):
        save(tmp_path / "images" / f"s{i}.png", img)
        save(tmp_path / "masks" / (f"s{i}_mask.png" if i else "s0.png"), (img > 0) * 255)
    d = build_data(data({"kind": "folder", "path": str(tmp_path), "masks_dir": "masks", "size": 10, "channels": 1}), 0)
    assert d.num_classes == 2 and not d.has_labels and d.class_names == ["background", "lesion"]
    s = d.train if len(d.train) else d.test
    assert set(s.masks.unique().tolist()) == {0, 1} and s.masks.dtype == torch.uint8
    assert bool(((to_unit(s.images)[:, 0] > 0.5) == (s.masks == 1)).float().mean() > 0.95)
    assert "mask_fraction" in d.describe()["train"] and "per_class" not in d.describe()["train"]


# ---------------------------------------------------------------- ISIC 2018


def test_isic2018_task3_layout(tmp_path: Path) -> None:
    root = tmp_path / "downloads" / "isic"
    cls = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    rows = ["image," + ",".join(cls)]
    for i in range(14):
        save(root / "ISIC2018_Task3_Training_Input" / f"ISIC_{24306 + i:07d}.jpg", rand_img(15, 20, seed=i))
        rows.append(f"ISIC_{24306 + i:07d}," + ",".join("1.0" if j == i % 7 else "0.0" for j in range(7)))
    write_csv(root / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv", rows)
    d = build_data(data({"kind": "isic2018", "path": str(tmp_path), "isic_task": "classify", "size": 8, "channels": 3}), 0)
    assert d.class_names == cls and d.num_classes == 7 and d.channels == 3
    assert sum(len(d.split(k)) for k in ("train", "val", "test")) == 14
    assert d.describe()["train"]["per_class"]["MEL"] >= 1


def test_isic2018_task1_layout(tmp_path: Path) -> None:
    for i in range(5):
        save(tmp_path / "ISIC2018_Task1-2_Training_Input" / f"ISIC_{i:07d}.jpg", rand_img(16, 24, seed=i))
        m = np.zeros((16, 24))
        m[4:12, 6:18] = 255
        save(tmp_path / "ISIC2018_Task1_Training_GroundTruth" / f"ISIC_{i:07d}_segmentation.png", m)
    save(tmp_path / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000099.jpg", rand_img(16, 24))  # no mask: ignored
    d = build_data(data({"kind": "isic2018", "path": str(tmp_path), "isic_task": "segment", "size": 8, "channels": 3}), 0)
    assert d.num_classes == 2 and not d.has_labels
    total = sum(len(d.split(k)) for k in ("train", "val", "test"))
    assert total == 5 and all(d.split(k).masks.shape[1:] == (8, 8) for k in ("train", "val", "test"))


# ---------------------------------------------------------------- DICOM


def test_dicom_rescale_and_window(tmp_path: Path) -> None:
    arr = np.zeros((16, 16), np.uint16)
    arr[0, :] = 0  # HU -1000
    arr[1, :] = 500  # HU 0
    arr[2, :] = 1000  # HU 1000
    arr[3, :] = 750  # HU 500
    write_dcm(tmp_path / "a" / "x.dcm", arr, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=0, WindowWidth=1000)
    write_dcm(tmp_path / "y.dcm", arr, RescaleSlope=2, RescaleIntercept=-1000)
    write_dcm(tmp_path / "z.dcm", arr, PhotometricInterpretation="MONOCHROME1")
    cfg = {"kind": "dicom", "path": str(tmp_path), "size": 16, "split": {"train": 1.0, "val": 0.0, "test": 0.0}}
    d = build_data(data(cfg), 0)
    by = dict(zip(d.train.names, d.train.images))
    assert by["a/x.dcm"][0, :4, 0].tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0])  # file window
    assert by["y.dcm"][0, :4, 0].tolist() == pytest.approx([0.0, 0.5, 1.0, 0.75])  # min-max
    assert by["z.dcm"][0, :4, 0].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.25])  # MONOCHROME1: inverted
    d = build_data(data({**cfg, "window": {"center": 500, "width": 1000}}), 0)
    assert dict(zip(d.train.names, d.train.images))["a/x.dcm"][0, :4, 0].tolist() == pytest.approx([0.0, 0.0, 1.0, 0.5])
    assert d.train.labels.tolist() == [0, 0, 0] and not d.has_labels


def test_gray_window_is_undone_inside_the_window(tmp_path: Path) -> None:
    """The one windowing (reader and enhance.files): stored → [0, 1] → stored is exact inside the window, clipped outside."""
    pydicom = needs("pydicom")

    arr = np.arange(0, 1600, 100, dtype=np.uint16).reshape(4, 4)
    ds = pydicom.dcmread(write_dcm(tmp_path / "w.dcm", arr, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=0, WindowWidth=1000))
    stored = arr.astype(np.float64)
    gw = GrayWindow.of(ds, stored, None)
    assert (gw.lo, gw.hi, gw.slope, gw.intercept, gw.invert) == (-500.0, 500.0, 2.0, -1000.0, False)
    unit = gw.to_unit(stored)
    inside = (stored * 2 - 1000 >= -500) & (stored * 2 - 1000 <= 500)
    assert np.allclose(gw.to_stored(unit)[inside], stored[inside], atol=1e-9)
    assert unit[~inside].tolist() == [0.0 if v < 250 else 1.0 for v in stored[~inside].tolist()]
    given = GrayWindow.of(ds, stored, {"center": 500, "width": 1000})  # data.window wins over the file's
    assert (given.lo, given.hi) == (0.0, 1000.0)
    inverted = GrayWindow(given.lo, given.hi, given.slope, given.intercept, True)  # MONOCHROME1
    assert np.allclose(inverted.to_unit(stored), 1.0 - given.to_unit(stored))
    inside = (stored >= 500) & (stored <= 1000)
    assert np.allclose(inverted.to_stored(inverted.to_unit(stored))[inside], stored[inside], atol=1e-9)


def test_dicom_labels_from_csv(tmp_path: Path) -> None:
    for i in range(3):
        write_dcm(tmp_path / f"p{i}.dcm", np.full((10, 10), i * 100, np.uint16))
    write_csv(tmp_path / "labels.csv", ["image,label", "p0.dcm,1", "p1,0", "p2.dcm,1"])
    d = build_data(
        data({"kind": "dicom", "path": str(tmp_path), "size": 10, "channels": 3, "split": {"train": 1.0, "val": 0.0, "test": 0.0}}), 0
    )
    assert d.has_labels and d.train.images.shape == (3, 3, 10, 10)
    assert dict(zip(d.train.names, d.train.labels.tolist())) == {"p0.dcm": 1, "p1.dcm": 0, "p2.dcm": 1}


# ---------------------------------------------------------------- errors


def _folder_error(tmp_path: Path, lines: list[str], match: str, **cfg: object) -> None:
    for i in range(3):
        save(tmp_path / f"im{i}.png", rand_img(10, 10, seed=i))
    write_csv(tmp_path / "labels.csv", lines)
    with pytest.raises(DataError, match=match):
        build_data(data({"kind": "folder", "path": str(tmp_path), "size": 8, **cfg, "channels": 3}), 0)


def test_error_corrupt_image(tmp_path: Path) -> None:
    folder_set(tmp_path, 3)
    (tmp_path / "imgs" / "im1.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(DataError, match=r"im1\.png: unreadable or corrupt image"):
        build_data(data({"kind": "folder", "path": str(tmp_path), "size": 8, "channels": 3}), 0)


def test_error_unknown_image(tmp_path: Path) -> None:
    _folder_error(tmp_path, ["image,label", "im0.png,a", "ghost.png,b"], r"labels\.csv: line 3 names unknown image 'ghost\.png'")


def test_error_duplicate_row(tmp_path: Path) -> None:
    _folder_error(
        tmp_path,
        ["image,label", "im0.png,a", "im1.png,b", "im0.png,b"],
        r"labels\.csv: duplicate row for image 'im0\.png' \(lines 2 and 4\)",
    )


@pytest.mark.parametrize(
    "row,what",
    [("im1.png,0,0", "0 ones"), ("im1.png,1,1", "2 ones"), ("im1.png,0.5,0", "must be 0 or 1"), ("im1.png,yes,0", "non-numeric")],
)
def test_error_not_one_hot(tmp_path: Path, row: str, what: str) -> None:
    _folder_error(tmp_path, ["image,a,b", "im0.png,1,0", row], rf"labels\.csv: line 3 \(im1\.png\).*{what}")


def test_error_missing_header_columns(tmp_path: Path) -> None:
    _folder_error(tmp_path, ["file,label", "im0.png,a"], r"labels\.csv: missing header columns \['image'\]")
    with pytest.raises(DataError, match=r"GroundTruth\.csv: missing header columns \['VASC'\]"):
        write_csv(tmp_path / "isic" / "ISIC2018_Task3_Training_GroundTruth.csv", ["image,MEL,NV,BCC,AKIEC,BKL,DF", "ISIC_1,1,0,0,0,0,0"])
        save(tmp_path / "isic" / "ISIC_1.jpg", rand_img(8, 8))
        build_data(data({"kind": "isic2018", "path": str(tmp_path / "isic"), "size": 8, "channels": 3}), 0)


def test_error_mask_size(tmp_path: Path) -> None:
    save(tmp_path / "img" / "a.png", rand_img(12, 16))
    save(tmp_path / "m" / "a_mask.png", np.zeros((12, 12)))
    with pytest.raises(DataError, match=r"a_mask\.png: mask size 12x12 differs from its image's 16x12"):
        build_data(data({"kind": "folder", "path": str(tmp_path), "masks_dir": "m", "size": 8, "channels": 3}), 0)


def test_error_empty_folder_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for kind in ("folder", "dicom", "isic2018"):
        with pytest.raises(DataError, match=r"empty: no images found"):
            build_data(data({"kind": kind, "path": str(tmp_path / "empty"), "channels": 3 if kind != "dicom" else 1}), 0)
        with pytest.raises(DataError, match=r"nowhere: missing path"):
            build_data(data({"kind": kind, "path": str(tmp_path / "nowhere"), "channels": 3 if kind != "dicom" else 1}), 0)
    with pytest.raises(DataError, match="missing path"):
        build_data(data({"kind": "folder", "channels": 3}), 0)


def test_error_dicom_without_pixel_data(tmp_path: Path) -> None:
    write_dcm(tmp_path / "ok.dcm", np.zeros((8, 8), np.uint16))
    write_dcm(tmp_path / "hollow.dcm", np.zeros((8, 8), np.uint16), pixels=False)
    with pytest.raises(DataError, match=r"hollow\.dcm: DICOM without pixel data"):
        build_data(data({"kind": "dicom", "path": str(tmp_path), "size": 8}), 0)
