"""The data path's bench script (gradprom_sidecar.data.bench): its builds are what they say, and both batch paths do the same work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gradprom_sidecar.data import base, cache
from gradprom_sidecar.data.bench import COMMANDS, batch_paths, data_config, fixture
from gradprom_sidecar.data.degrade import build_degradation
from gradprom_sidecar.data.feed import Feed


def bench(cmd: str, **args: object) -> dict:
    """``python -m gradprom_sidecar.data.bench CMD JSON`` in a new process, as ``npm run bench`` runs it: its JSON line."""
    r = subprocess.run(
        [sys.executable, "-m", "gradprom_sidecar.data.bench", cmd, json.dumps(args)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_here(cmd: str, **args: object) -> dict:
    """The command run in this process (each new process costs seconds of CPU importing torch), through the same
    table the command line reads, its result as the JSON line would carry it."""
    return json.loads(json.dumps(COMMANDS[cmd](**args)))


def test_builds_report_a_decode_a_disk_load_and_the_float32_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = bench_here("fixture", out=str(tmp_path / "isic"), n=20)
    assert made["n"] == 20 and len(list((tmp_path / "isic" / "ISIC2018_Task3_Training_Input").glob("ISIC_*.jpg"))) == 20
    at = {"path": str(tmp_path / "isic"), "size": 32}
    first = bench("build", **at, cache_dir=str(tmp_path / "cache"))  # the first decode, in a process of its own
    cache.clear_memory()
    disk = bench_here("build", **at, cache_dir=str(tmp_path / "cache"))  # this process never decoded it: from the disk
    with monkeypatch.context() as m:
        m.setattr(base, "quantize", base.quantize)  # the float32 build replaces it (for its process): restored here
        f32 = bench_here("build", **at, cache_dir=str(tmp_path / "unused"), float32=True)
    assert (first["source"], first["dtype"], disk["source"], f32["source"], f32["dtype"]) == (
        "decoded",
        "uint8",
        "disk",
        "decoded (float32)",
        "float32",
    )
    assert first["n"] == disk["n"] == f32["n"] == 20 and f32["image_bytes"] == 4 * first["image_bytes"] == 4 * 20 * 3 * 32 * 32
    assert first["max_level"] == disk["max_level"] and not (tmp_path / "unused").exists()
    assert first["rss_peak"] >= first["rss_before"] > 0
    timed = bench_here("batches", **at, cache_dir=str(tmp_path / "cache"), rounds=1, per_round=2)
    assert {k: len(v) for k, v in timed["batch_s"].items()} == {"uint8": 2, "float32": 2} and timed["eval_first_s"] > 0
    assert len(bench_here("synthetic", n=40, size=16, reps=2)["seconds"]) == 2
    cache.clear_memory()


def test_both_batch_paths_make_the_same_images(tmp_path: Path) -> None:
    fixture(str(tmp_path / "isic"), 12)
    bundle = cache.load_data(data_config(str(tmp_path / "isic"), 16, str(tmp_path / "cache")), 0).bundle
    cache.clear_memory()
    feed = Feed(bundle, torch.device("cpu"), "auto", build_degradation([]), 0)
    paths = {k: batch_paths(feed, torch.Generator().manual_seed(5)) for k in ("a", "b")}
    idx = torch.tensor([3, 0, 5, 1, 7, 2])
    now, then = paths["a"]["uint8"](idx), paths["b"]["float32"](idx)
    assert now.dtype == then.dtype == torch.float32 and torch.equal(now, then)
    assert not torch.equal(now, paths["a"]["uint8"](idx))  # the flips come from the generator
