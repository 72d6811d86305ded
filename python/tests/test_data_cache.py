"""Decoded once per sidecar (gradprom_sidecar.data.cache): the memory cache, the disk cache, invalidation, corruption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import needs
from helpers import call, new_state, tiny_config
from test_data import rand_img, save, write_csv

from gradprom_sidecar.data import cache as C
from gradprom_sidecar.data.base import SPLITS, DataBundle

ISIC_CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


def isic_task3(root: Path, n: int = 14) -> Path:
    """A tiny ISIC 2018 Task 3 layout: n JPEGs and the ground-truth CSV."""
    rows = ["image," + ",".join(ISIC_CLASSES)]
    for i in range(n):
        save(root / "ISIC2018_Task3_Training_Input" / f"ISIC_{i:07d}.jpg", rand_img(30, 40, seed=i))
        rows.append(f"ISIC_{i:07d}," + ",".join("1.0" if j == i % 7 else "0.0" for j in range(7)))
    write_csv(root / "ISIC2018_Task3_Training_GroundTruth.csv", rows)
    return root


def isic_config(root: Path, cache_dir: Path, **over: object) -> dict:
    """tiny_config on the ISIC layout (RGB, 16 px), with the disk cache in ``cache_dir``."""
    data = {"kind": "isic2018", "path": str(root), "isic_task": "classify", "channels": 3, "cache_dir": str(cache_dir), **over}
    cfg = tiny_config(data=data)
    cfg["data"].update(
        {"labels_csv": "labels.csv", "image_column": "image", "label_column": None, "label_columns": None, "masks_dir": None}
    )
    return cfg


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """Every real decode (``build_data`` call) made through the cache, with an empty memory cache to start."""
    seen: list[dict] = []
    real = C.build_data

    def counting(cfg: dict, seed: int) -> DataBundle:
        seen.append(cfg)
        return real(cfg, seed)

    monkeypatch.setattr(C, "build_data", counting)
    C.clear_memory()
    yield seen
    C.clear_memory()


def same_bundle(a: DataBundle, b: DataBundle) -> bool:
    for name in SPLITS:
        x, y = a.split(name), b.split(name)
        if x.images.dtype != y.images.dtype or not torch.equal(x.images.view(torch.uint8), y.images.view(torch.uint8)):
            return False
        if not torch.equal(x.labels, y.labels) or x.names != y.names:
            return False
        if (x.masks is None) != (y.masks is None) or (x.masks is not None and not torch.equal(x.masks, y.masks)):  # type: ignore[arg-type]
            return False
    return (a.num_classes, a.channels, a.size, a.class_names, a.has_labels, a.source) == (
        b.num_classes,
        b.channels,
        b.size,
        b.class_names,
        b.has_labels,
        b.source,
    )


def test_a_second_session_create_in_one_sidecar_does_not_decode_again(tmp_path: Path, decodes: list[dict]) -> None:
    cfg = isic_config(isic_task3(tmp_path / "isic"), tmp_path / "cache")
    state = new_state()
    first, _ = call(state, "session.create", {"config": cfg})
    bundle = state.session.bundle
    assert len(decodes) == 1 and first["data"]["storage"]["cache"]["source"] == "decoded"
    assert first["data"]["storage"]["dtype"] == "uint8" and first["data"]["storage"]["placement"] == "host"
    # The next run of a compare: another training seed, policy and optimiser; the same data section.
    other = {**cfg, "seed": 3, "policy": {**cfg["policy"], "name": "joint"}}
    other["data"] = {
        **cfg["data"],
        "augment": {"flip": True, "crop": False},
        "device_cache": "off",
        "rng": "host",
    }  # runtime fields: same arrays
    second, _ = call(state, "session.create", {"config": other})
    assert len(decodes) == 1 and second["data"]["storage"]["cache"]["source"] == "memory"
    assert state.session.bundle is bundle
    # Another data seed splits the set differently: decoded again (then found on disk by the next process).
    call(state, "session.create", {"config": {**cfg, "data": {**cfg["data"], "seed": 1}}})
    assert len(decodes) == 2


# The loader a session calls (session.create's use of it: test_a_second_session_create_...), without the session's
# networks and optimisers: their first optimiser alone imports torch._dynamo, seconds of CPU in a new process.
_CHILD = textwrap.dedent(
    """
    import json, sys
    from gradprom_sidecar.data import cache
    data = json.loads(sys.argv[1])["data"]
    loaded = cache.load_data(data, int(data["seed"]))  # as Session calls it
    print(json.dumps({"cache": loaded.describe(), "decodes": cache.STATS.decodes, "disk_hits": cache.STATS.disk_hits,
                      "images": loaded.bundle.train.images.sum().item(), "names": loaded.bundle.train.names}))
    """
)


def run_child(cfg: dict) -> dict:
    """A new Python process loads ``cfg``'s data as a session does and says where it came from."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_new_process_loads_from_the_disk_cache(tmp_path: Path, decodes: list[dict]) -> None:
    cfg = isic_config(isic_task3(tmp_path / "isic"), tmp_path / "cache")
    here = C.load_data(cfg["data"], 0)
    assert here.source == "decoded" and here.path is not None and here.path.is_file() and here.path.parent == tmp_path / "cache"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [here.path.name]  # no temporary file left behind
    child = run_child(cfg)
    assert child["cache"]["source"] == "disk" and child["decodes"] == 0 and child["disk_hits"] == 1
    assert child["cache"]["path"] == str(here.path)
    assert child["images"] == here.bundle.train.images.sum().item() and child["names"] == here.bundle.train.names
    # What the disk gives back is what was decoded, to the bit.
    C.clear_memory()
    back = C.load_data(cfg["data"], 0)
    assert back.source == "disk" and same_bundle(back.bundle, here.bundle)


def test_a_changed_source_file_invalidates_the_cache(tmp_path: Path, decodes: list[dict]) -> None:
    root = isic_task3(tmp_path / "isic")
    cfg = isic_config(root, tmp_path / "cache")
    before = C.load_data(cfg["data"], 0)
    name = "ISIC_0000003"
    split = next(s for s in SPLITS if f"{name}.jpg" in before.bundle.split(s).names)
    pos = before.bundle.split(split).names.index(f"{name}.jpg")
    save(root / "ISIC2018_Task3_Training_Input" / f"{name}.jpg", np.full((30, 40, 3), 7))  # same name, new pixels
    C.clear_memory()
    after = C.load_data(cfg["data"], 0)
    assert after.key != before.key and after.source == "decoded" and len(decodes) == 2
    assert int(after.bundle.split(split).images[pos].float().mean().round()) == 7
    assert not torch.equal(after.bundle.split(split).images[pos], before.bundle.split(split).images[pos])
    C.clear_memory()
    again = C.load_data(cfg["data"], 0)  # as a new process would (test_a_new_process_...): no memory cache, the disk's
    assert again.source == "disk" and again.key == after.key and len(decodes) == 2  # the rewritten cache holds the new key
    assert torch.equal(again.bundle.split(split).images[pos], after.bundle.split(split).images[pos])
    # A new file under the folder (even one the loader ignores) changes the key too: nothing stale is read.
    (root / "notes.txt").write_text("x")
    C.clear_memory()
    assert C.load_data(cfg["data"], 0).source == "decoded"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-key"])
def test_a_corrupt_cache_file_is_reported_and_rebuilt(tmp_path: Path, decodes: list[dict], damage: str) -> None:
    cfg = isic_config(isic_task3(tmp_path / "isic"), tmp_path / "cache")
    good = C.load_data(cfg["data"], 0)
    path = good.path
    assert path is not None
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json" + b"\0" * 64)
    else:
        C.save_bundle(good.bundle, path, "0" * 64)
    C.clear_memory()
    with pytest.raises(C.CacheError, match=str(path)):
        C.read_bundle(path, good.key)
    rebuilt = C.load_data(cfg["data"], 0)
    assert rebuilt.source == "decoded" and rebuilt.problem is not None and str(path) in rebuilt.problem
    assert rebuilt.describe()["problem"] == rebuilt.problem and len(decodes) == 2
    assert same_bundle(C.read_bundle(path, good.key), good.bundle)  # the file was written again, whole


def test_disk_cache_off_writes_nothing_and_synthetic_stays_in_memory(tmp_path: Path, decodes: list[dict]) -> None:
    cfg = isic_config(isic_task3(tmp_path / "isic"), tmp_path / "cache", disk_cache=False)
    assert C.load_data(cfg["data"], 0).path is None and not (tmp_path / "cache").exists()
    synthetic = tiny_config()["data"] | {"cache_dir": str(tmp_path / "cache2")}
    first = C.load_data(synthetic, 0)
    assert first.source == "decoded" and first.path is None and not (tmp_path / "cache2").exists()
    assert C.load_data(synthetic, 0).source == "memory" and len(decodes) == 2


def test_cache_dir_follows_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config()["data"]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.cache_dir(cfg) == tmp_path / "xdg" / "gradprom" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert C.cache_dir(cfg) == Path.home() / ".cache" / "gradprom" / "data"
    assert C.cache_dir({**cfg, "cache_dir": str(tmp_path / "mine")}) == tmp_path / "mine"


def test_a_lone_nifti_volume_outside_any_folder_is_fingerprinted(tmp_path: Path, decodes: list[dict]) -> None:
    """data.image and data.label_volume without data.path: a changed volume gives another key (a resumed run re-reads it)."""
    needs("nibabel")
    from test_volumes import brain, save_nii

    img, lab = brain()
    save_nii(tmp_path / "vol" / "t1.nii.gz", img)
    save_nii(tmp_path / "vol" / "seg.nii.gz", lab)
    cfg = tiny_config()["data"] | {
        "kind": "nifti",
        "path": None,
        "image": str(tmp_path / "vol" / "t1.nii.gz"),
        "label_volume": str(tmp_path / "vol" / "seg.nii.gz"),
        "cache_dir": str(tmp_path / "cache"),
        "disk_cache": True,
        "size": 16,
        "slab_gap": 1,
    }
    first = C.data_key(cfg, 0)
    names = [row[1] for row in C.fingerprint(cfg)]
    assert names == ["t1.nii.gz", "seg.nii.gz"]
    save_nii(tmp_path / "vol" / "seg.nii.gz", lab, np.eye(4))  # same name, another grid
    assert C.data_key(cfg, 0) != first


def test_without_safetensors_the_module_imports_and_the_disk_cache_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare GPU machine may lack safetensors: gradprom still imports; only writing or reading the cache needs it, and says so."""
    code = "import sys; sys.modules['safetensors'] = None; import gradprom_sidecar.data.cache, gradprom_sidecar.training.session"
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert r.returncode == 0, r.stderr
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    cfg = isic_config(isic_task3(tmp_path / "isic"), tmp_path / "cache")
    with pytest.raises(
        ModuleNotFoundError, match=r"data.disk_cache: .*safetensors.*pip install safetensors, or set data.disk_cache: false"
    ):
        C.load_data(cfg["data"], 0)
