"""The ImageNet class-folder layout: class order, official splits, ESTR's resize-then-crop, the train crop, errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gradprom_sidecar.data import DataError, augment, build_data, to_unit

CLASSES = ["n02", "n01", "n10"]  # written out of order: indices follow the sorted names


def write_set(root: Path, splits: dict[str, int], sizes: tuple[tuple[int, int], ...] = ((40, 30), (30, 44), (36, 36))) -> None:
    """``root/<split>/<class>/img<k>.png`` with random RGB content, ``splits[name]`` images per class, sizes cycling."""
    rng = np.random.default_rng(0)
    for split, count in splits.items():
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for k in range(count):
                w, h = sizes[k % len(sizes)]
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(root / split / c / f"img{k}.png")


def cfg(root: Path, **over: object) -> dict:
    """The data section as config.resolve gives it, for the imagefolder kind."""
    base = {
        "kind": "imagefolder",
        "path": str(root),
        "size": 24,
        "channels": 3,
        "resize": 28,
        "folders": {"train": "train", "val": "val", "test": None},
        "max_per_class": None,
        "augment": {"flip": False, "crop": False},
    }
    return {**base, **over}


def expected(path: Path, resize: int, side: int) -> torch.Tensor:
    """torchvision's Resize(resize) then CenterCrop(side), written out here from its definition."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    ow, oh = (resize, int(resize * h / w)) if w < h else (int(resize * w / h), resize)
    img = img.resize((ow, oh), Image.Resampling.BILINEAR)
    top, left = int(round((oh - side) / 2.0)), int(round((ow - side) / 2.0))
    arr = np.asarray(img.crop((left, top, left + side, top + side)), dtype=np.float32) / 255
    return torch.from_numpy(arr).permute(2, 0, 1)


def test_classes_sorted_splits_as_given_and_estr_transform(tmp_path: Path) -> None:
    write_set(tmp_path, {"train": 2, "val": 3})
    b = build_data(cfg(tmp_path), seed=0)
    assert b.class_names == sorted(CLASSES) and b.num_classes == 3
    assert (len(b.train), len(b.val), len(b.test)) == (6, 9, 9)
    assert b.test is b.val  # no test folder: val serves as test
    assert b.val.names[:3] == ["val/n01/img0.png", "val/n01/img1.png", "val/n01/img2.png"]
    assert b.val.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert b.val.images.shape == (9, 3, 24, 24)
    for i in (0, 1, 2):  # landscape, portrait and square sources
        assert b.val.images.dtype == torch.uint8 and torch.equal(to_unit(b.val.images[i]), expected(tmp_path / b.val.names[i], 28, 24))


def test_train_kept_at_resize_for_the_random_crop(tmp_path: Path) -> None:
    write_set(tmp_path, {"train": 2, "val": 1})
    b = build_data(cfg(tmp_path, augment={"flip": True, "crop": True}), seed=0)
    assert b.train.images.shape == (6, 3, 28, 28) and b.val.images.shape == (3, 3, 24, 24)
    assert torch.equal(to_unit(b.train.images[0]), expected(tmp_path / b.train.names[0], 28, 28))
    g = torch.Generator().manual_seed(3)
    crops, _ = augment(b.train.images, None, g, flip=False, crop=24)
    assert crops.shape == (6, 3, 24, 24)
    for i in range(6):  # each crop is a window of its source
        src = b.train.images[i]
        assert any(torch.equal(crops[i], src[:, t : t + 24, u : u + 24]) for t in range(5) for u in range(5))
    again, _ = augment(b.train.images, None, torch.Generator().manual_seed(3), flip=False, crop=24)
    assert torch.equal(crops, again)


def test_only_the_named_folders_are_read_with_a_cap_per_class(tmp_path: Path) -> None:
    write_set(tmp_path, {"train": 2, "val": 3})
    b = build_data(cfg(tmp_path, folders={"train": None, "val": "val", "test": None}, max_per_class=2, channels=1), seed=0)
    assert len(b.train) == 0 and len(b.val) == 6 and b.val.images.shape[1] == 1
    assert [n.split("/")[-1] for n in b.val.names[:2]] == ["img0.png", "img1.png"]
    ref = expected(tmp_path / b.val.names[0], 28, 24)  # RGB reference, then ITU-R 601 luma as PIL's convert("L")
    assert float((to_unit(b.val.images[0, 0]) - (0.299 * ref[0] + 0.587 * ref[1] + 0.114 * ref[2])).abs().max()) <= 1 / 255 + 1e-6


def test_problems_name_the_folder_or_file(tmp_path: Path) -> None:
    write_set(tmp_path, {"train": 1, "val": 1})
    with pytest.raises(DataError, match="test"):
        build_data(cfg(tmp_path, folders={"train": "train", "val": "val", "test": "test"}), seed=0)
    (tmp_path / "val" / "n99").mkdir()
    with pytest.raises(DataError, match=r"class folders differ.*n99"):
        build_data(cfg(tmp_path), seed=0)
    (tmp_path / "val" / "n99").rmdir()
    bad = tmp_path / "val" / "n01" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        build_data(cfg(tmp_path), seed=0)
    bad.unlink()
    with pytest.raises(ValueError, match=r"config\.data\.resize"):
        build_data(cfg(tmp_path, resize=20), seed=0)
    with pytest.raises(ValueError, match=r"config\.data\.folders"):
        build_data(cfg(tmp_path, folders={"train": "train", "val": None, "test": None}), seed=0)


def test_a_session_trains_on_random_crops_and_evaluates_centre_crops(tmp_path: Path) -> None:
    from gradprom_sidecar.training.config import resolve
    from gradprom_sidecar.training.session import Session

    write_set(tmp_path, {"train": 2, "val": 1})
    data = {**cfg(tmp_path, augment={"flip": True, "crop": True}), "seed": 0}
    config = resolve({"device": "cpu", "data": data, "ip": {"channels": 4, "blocks": 1}, "train": {"batch_size": 4}})
    s = Session(config, torch.device("cpu"))
    assert s.bundle.train.images.shape[-1] == 28 and s.bundle.val.images.shape[-1] == 24
    clean, labels = s.batch(s.sampler.next(), s.generator)
    assert clean.shape == (4, 3, 24, 24) and labels.shape == (4,)
    assert s.pipeline.grads().finite  # a whole step's forward and backward passes on the cropped batch


def test_the_disk_cache_keeps_the_larger_train_side_and_val_serving_as_test(tmp_path: Path) -> None:
    from gradprom_sidecar.data.cache import read_bundle, save_bundle

    write_set(tmp_path / "set", {"train": 2, "val": 2})
    b = build_data(cfg(tmp_path / "set", augment={"flip": False, "crop": True}), seed=0)
    assert b.test is b.val and b.train.images.shape[-1] == 28 and b.val.images.shape[-1] == 24
    save_bundle(b, tmp_path / "cache.safetensors", "k")
    back = read_bundle(tmp_path / "cache.safetensors", "k")
    assert back.test is back.val  # stored once, not twice
    for name in ("train", "val", "test"):
        assert torch.equal(back.split(name).images, b.split(name).images) and back.split(name).names == b.split(name).names
