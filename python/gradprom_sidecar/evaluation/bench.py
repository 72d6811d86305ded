"""The streamed evaluation's side of ``scripts/bench-eval-stream.ts``: one measurement per process.

    python -m gradprom_sidecar.evaluation.bench fixture   '{"out": DIR, "n": 3000}'
    python -m gradprom_sidecar.evaluation.bench in_memory '{"config": RESOLVED_CONFIG, "split": "val"}'

``fixture`` writes ImageNet's val split as downloaded, in miniature: ``n`` JPEGs (quality 90, 500×375 or
375×500, smooth random content) in ``DIR/val``, ``DIR/LOC_val_solution.csv`` over 1000 wnids, and small
weights (``ip.pt``: an ``srresnet`` with 2 channels and 1 block; ``vr.pt``: a ``smallresnet`` of widths 2, 4, 4 and
1000 classes).
``in_memory`` scores the config's weights as a training session does (the split decoded into memory
first, the loaded VR made the fixed one), in a fresh process so that its peak RSS (``ru_maxrss``) is
that evaluation's own. Not part of the sidecar; no test asserts a speed.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradprom_sidecar.data.base import parallel_map
from gradprom_sidecar.models import build_ip, build_vr
from gradprom_sidecar.training.config import resolve

WNIDS = 1000
# Networks small enough that decoding and the metrics, not the forwards, set the pace: the measurement is of the data path.
IP_SHAPE = {"arch": "srresnet", "channels": 2, "blocks": 1, "scale": 1}
VR_WIDTHS = [2, 4, 4]


def fixture(out: str, n: int) -> dict:
    """A flat val folder of ``n`` JPEGs, its ``LOC_val_solution.csv`` and weights (see the module docstring).

    :param out: the folder to fill.
    """
    from PIL import Image

    root = Path(out)
    val = root / "val"
    val.mkdir(parents=True, exist_ok=True)
    wnids = [f"n{10000000 + 7 * i:08d}" for i in range(WNIDS)]

    def one(k: int) -> None:
        rng = np.random.default_rng(k)
        w, h = (500, 375) if k % 3 else (375, 500)
        small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
        img = Image.fromarray(small, "RGB").resize((w, h), Image.Resampling.BICUBIC)
        img.save(val / f"ILSVRC2012_val_{k:08d}.JPEG", quality=90)

    t0 = time.perf_counter()
    parallel_map(one, list(range(1, n + 1)))
    rows = [f"ILSVRC2012_val_{k:08d},{wnids[k % WNIDS]} 1 2 3 4" for k in range(1, n + 1)]
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    torch.manual_seed(0)
    defaults = resolve({})
    torch.save(build_ip({**defaults["ip"], **IP_SHAPE, "in_channels": 3}).state_dict(), root / "ip.pt")
    classes = min(n, WNIDS)
    vr = {**defaults["vr"], "arch": "smallresnet", "normalize": "imagenet", "kwargs": {"widths": VR_WIDTHS}}
    torch.save(build_vr(vr, 3, classes).state_dict(), root / "vr.pt")
    size = sum(p.stat().st_size for p in val.iterdir())
    return {"seconds": time.perf_counter() - t0, "bytes": size, "n": n, "classes": classes}


def in_memory(config: dict, split: str) -> dict:
    """The evaluation a training session gives (the split decoded into memory first), timed, with this process's peak RSS.

    :param config: the resolved config, ``ip.weights``/``vr.weights`` set.
    :param split: "val" or "test".
    """
    from gradprom_sidecar.evaluation.evaluate import evaluate
    from gradprom_sidecar.training.session import Session, frozen_copy

    t0 = time.perf_counter()
    s = Session(config, torch.device("cpu"))
    s.fixed_vr = frozen_copy(s.vr)
    loaded = time.perf_counter() - t0
    metrics = evaluate(s, split)
    return {
        "seconds": time.perf_counter() - t0,
        "load_seconds": loaded,
        "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB on Linux
        "metrics": {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()},  # JSON has no NaN
    }


COMMANDS: dict[str, Any] = {"fixture": fixture, "in_memory": in_memory}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m gradprom_sidecar.evaluation.bench {{{'|'.join(COMMANDS)}}} JSON", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(COMMANDS[sys.argv[1]](**json.loads(sys.argv[2]))))
