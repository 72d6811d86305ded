"""The data path's side of ``npm run bench`` (section "Data path"): one measurement per process.

    python -m gradprom_sidecar.data.bench fixture   '{"out": DIR, "n": 1000}'
    python -m gradprom_sidecar.data.bench build     '{"path": DIR, "size": 224, "cache_dir": DIR, "float32": false}'
    python -m gradprom_sidecar.data.bench batches   '{"path": DIR, "size": 224, "cache_dir": DIR, "rounds": 5, "per_round": 20}'
    python -m gradprom_sidecar.data.bench synthetic '{"n": 2000, "size": 32, "reps": 5}'

Each prints one JSON line. ``build`` runs in a fresh process so that its peak RSS (``ru_maxrss``)
is the build's own: a first decode (an empty cache folder), a load from the disk cache (the
folder a first decode filled; the file is memory-mapped, so the timing includes reading every
image once, from the page cache when the file was just written), or, with ``float32``, the decode as it was before compact storage
(the same readers with the rounding to the source's depth switched off, so every image is float32
in memory, as it was). ``batches`` times training batches on the CPU (16 images, RGB, flips,
Gaussian noise σ = 0.3) as this version makes them (uint8 storage, ``Feed.train_batch``) and as
the code before compact storage made them (float32 storage, gathered by indexing, flipped, noised),
one batch of each in turn in one process, plus the evaluation inputs degraded the first time and then
taken from the session's cache. Not part of the sidecar; no test asserts a speed.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from gradprom_sidecar.data import augment, base, cache
from gradprom_sidecar.data.base import parallel_map
from gradprom_sidecar.data.degrade import build_degradation
from gradprom_sidecar.data.feed import Feed
from gradprom_sidecar.data.storage import gatherable, to_unit
from gradprom_sidecar.data.synthetic import generate
from gradprom_sidecar.training.config import resolve

ISIC_CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
BATCH = 16


def _rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def fixture(out: str, n: int) -> dict:
    """``n`` ISIC 2018 Task 3 images (600×450 JPEG, quality 90) with lesion-like content, and the ground-truth CSV.

    :param out: the folder to fill.
    """
    from PIL import Image

    root = Path(out)
    inputs = root / "ISIC2018_Task3_Training_Input"
    inputs.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:450, 0:600].astype(np.float32)

    def one(i: int) -> None:
        rng = np.random.default_rng(i)
        cx, cy, a, b = rng.uniform(200, 400), rng.uniform(150, 300), rng.uniform(80, 180), rng.uniform(60, 150)
        inside = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1.0
        skin = np.array([220, 170, 150], np.float32) * rng.uniform(0.8, 1.05)
        lesion = np.array([120, 70, 50], np.float32) * rng.uniform(0.6, 1.2)
        img = np.where(inside[..., None], lesion, skin) + rng.normal(0, 12, (450, 600, 3)).astype(np.float32)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(inputs / f"ISIC_{i:07d}.jpg", quality=90)

    t0 = time.perf_counter()
    parallel_map(one, list(range(n)))
    rows = ["image," + ",".join(ISIC_CLASSES)] + [
        f"ISIC_{i:07d}," + ",".join("1.0" if j == i % 7 else "0.0" for j in range(7)) for i in range(n)
    ]
    (root / "ISIC2018_Task3_Training_GroundTruth.csv").write_text("\n".join(rows) + "\n")
    size = sum(p.stat().st_size for p in inputs.iterdir())
    return {"seconds": time.perf_counter() - t0, "bytes": size, "n": n}


def data_config(path: str, size: int, cache_dir: str) -> dict:
    """The resolved ``data`` section of the fixture: ISIC 2018 Task 3, RGB, ``size`` px, flips on."""
    return resolve(
        {
            "data": {
                "kind": "isic2018",
                "path": path,
                "isic_task": "classify",
                "size": size,
                "channels": 3,
                "cache_dir": cache_dir,
                "augment": {"flip": True},
            }
        }
    )["data"]


def build(path: str, size: int, cache_dir: str, float32: bool = False) -> dict:
    """Build the fixture's data set once and report time, peak RSS and where it came from.

    :param size: image side.
    :param cache_dir: the disk cache folder (empty: a first decode).
    :param float32: decode as before compact storage (no disk cache).
    """
    cfg = data_config(path, size, cache_dir)
    before = _rss_now()
    t0 = time.perf_counter()
    if float32:
        base.quantize = lambda x, depth: x.to(torch.float32)  # type: ignore[assignment]  # this process only
        from gradprom_sidecar.data import build_data

        bundle, source = build_data(cfg, 0), "decoded (float32)"
    else:
        loaded = cache.load_data(cfg, 0)
        bundle, source = loaded.bundle, loaded.source
    # A cache file is memory-mapped: its pages are read when first used, so read them all here.
    touched = [int(gatherable(bundle.split(k).images).max()) for k in ("train", "val", "test") if len(bundle.split(k))]
    seconds = time.perf_counter() - t0
    images = sum(bundle.split(k).images.numel() * bundle.split(k).images.element_size() for k in ("train", "val", "test"))
    n = len(bundle.train) + len(bundle.val) + len(bundle.test)
    return {
        "seconds": seconds,
        "source": source,
        "dtype": str(bundle.train.images.dtype).removeprefix("torch."),
        "n": n,
        "image_bytes": images,
        "bytes": bundle.nbytes(),
        "rss_before": before,
        "rss_peak": _rss_peak(),
        "rss_after": _rss_now(),
        "max_level": max(touched),
    }


def batch_paths(feed: Feed, g: torch.Generator) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The clean images of a training batch made two ways, from one generator.

    ``uint8``: this version (``Feed.train_batch`` from the feed's storage). ``float32``: the code
    before compact storage (``Session.batch`` as it was: index float32 storage, then ``augment``),
    on a float32 copy of the same images.

    :param feed: a CPU feed.
    :param g: draws the flips.
    """
    before = to_unit(feed.bundle.train.images)  # float32 storage, as before

    def now(idx: torch.Tensor) -> torch.Tensor:
        return feed.train_batch(idx, g, True, False)[0]

    def then(idx: torch.Tensor) -> torch.Tensor:
        return augment(before[idx], None, g)[0]

    return {"uint8": now, "float32": then}


def batches(path: str, size: int, cache_dir: str, rounds: int, per_round: int) -> dict:
    """Times of single training batches from uint8 storage and from float32 storage, taken in turn.

    :param path: the fixture (its cache folder filled by ``build``).
    :param size: image side.
    :param cache_dir: the disk cache folder.
    :param rounds: with ``per_round``: ``rounds × per_round`` timed batches of each.
    :param per_round: see ``rounds``.
    """
    cfg = data_config(path, size, cache_dir)
    compact = cache.load_data(cfg, 0).bundle
    deg = build_degradation([{"kind": "gaussian", "sigma": 0.3, "clip": False}])
    feed = Feed(compact, torch.device("cpu"), "auto", deg, 7919)
    g = torch.Generator().manual_seed(0)
    n = len(compact.train)
    paths = batch_paths(feed, g)
    times: dict[str, list[float]] = {k: [] for k in paths}
    images: dict[str, list[float]] = {k: [] for k in paths}  # the part before the noise: gather, flip, convert
    for i in range(rounds * per_round + 2):  # one batch of each, alternating which goes first; two pairs warm up
        for name in paths if i % 2 else reversed(list(paths)):
            t0 = time.perf_counter()
            clean = paths[name](torch.randint(0, n, (BATCH,), generator=g))
            t1 = time.perf_counter()
            deg(clean, g)
            if i >= 2:
                images[name].append(t1 - t0)
                times[name].append(time.perf_counter() - t0)
    evals = []
    for _ in range(2):  # the first evaluation degrades the test split; the second takes what it kept
        t0 = time.perf_counter()
        for start in range(0, len(compact.test), 200):
            feed.eval_degraded("test", start, min(len(compact.test), start + 200))
        evals.append(time.perf_counter() - t0)
    return {
        "batch_s": times,
        "images_s": images,
        "eval_first_s": evals[0],
        "eval_cached_s": evals[1],
        "test_images": len(compact.test),
        "threads": torch.get_num_threads(),
    }


def synthetic(n: int, size: int, reps: int) -> dict:
    """Times of generating the synthetic set (``n`` images at ``size``, 1 channel, 4 classes).

    :param reps: timed repetitions (after one untimed).
    """
    generate(n, size, 1, 4, seed=1)
    out = []
    for r in range(reps):
        t0 = time.perf_counter()
        generate(n, size, 1, 4, seed=2 + r)
        out.append(time.perf_counter() - t0)
    return {"seconds": out}


COMMANDS: dict[str, Any] = {"fixture": fixture, "build": build, "batches": batches, "synthetic": synthetic}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m gradprom_sidecar.data.bench {{{'|'.join(COMMANDS)}}} JSON", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(COMMANDS[sys.argv[1]](**json.loads(sys.argv[2]))))
