"""``gradprom eval``'s evaluation of a file-based split: streamed batch by batch, the same numbers as the in-memory path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gradprom_sidecar.data import cache
from gradprom_sidecar.data.base import DataError
from gradprom_sidecar.evaluation import streaming
from gradprom_sidecar.evaluation.evaluate import evaluate
from gradprom_sidecar.models import build_ip, build_vr
from gradprom_sidecar.models.checkpoint import save_atomic
from gradprom_sidecar.ops.evaluate import weights_session
from gradprom_sidecar.training.config import resolve
from gradprom_sidecar.training.pretrain import pretrain
from gradprom_sidecar.training.session import Session
from gradprom_sidecar.training.snapshot import pack

CLASSES = 5
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small class-folder set (5 classes; 1 train, 3 val images each, PNG and JPEG of several shapes) and weights."""
    root = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(3)
    for split, count in (("train", 1), ("val", 3)):
        for c in range(CLASSES):
            (root / "data" / split / f"c{c}").mkdir(parents=True)
            for k in range(count):
                arr = rng.integers(0, 256, (38 + 3 * k, 44, 3), dtype=np.uint8)
                Image.fromarray(arr, "RGB").save(root / "data" / split / f"c{c}" / f"{k}.{'jpg' if k % 2 else 'png'}")
    torch.manual_seed(7)
    torch.save(build_ip({**resolve({})["ip"], "arch": "estr_srresnet", "in_channels": 3, "scale": 1}).state_dict(), root / "ip.pt")
    vr_cfg = {**resolve({})["vr"], "normalize": "imagenet"}
    torch.save(build_vr({**vr_cfg, "arch": "resnet18"}, 3, CLASSES).state_dict(), root / "r18.pth")
    return {"root": root, "data": root / "data", "ip": root / "ip.pt", "vr": root / "r18.pth"}


def config(files: dict[str, Path], data: Path | None = None, **over: dict) -> dict:
    """configs/estr/eval-dn.yaml's choices (per-index noise, per-batch PSNR, pytorch_ssim) at a small size."""
    return resolve(
        {
            "device": "cpu",
            "data": {"kind": "imagefolder", "path": str(data or files["data"]), "size": 32, "resize": 36, "channels": 3},
            "degradation": [{"kind": "gaussian", "sigma": 0.1, "clip": True, "seeding": "per-index"}],
            "ip": {"arch": "estr_srresnet", "scale": 1, "residual": False, "weights": str(files["ip"])},
            "vr": {"arch": "resnet18", "normalize": "imagenet", "mode": "frozen", "pretrain_steps": 0, "weights": str(files["vr"])},
            "eval": {"batch_size": 4, "psnr": "batch", "ssim": "pytorch_ssim"},
            **over,
        }
    )


def in_memory(cfg: dict, split: str, per_image: dict) -> dict:
    """The evaluation a training session gives: the split decoded into memory, the loaded VR made the fixed one."""
    s = Session(cfg, CPU)
    pretrain(s, 0)
    return evaluate(s, split, per_image_out=per_image)


def streamed(cfg: dict, split: str, per_image: dict, checkpoint: str | None = None) -> dict:
    s, source = weights_session(cfg, CPU, split, checkpoint)
    assert source is not None and source.streamed and len(s.bundle.val) == 0 and len(s.bundle.train) == 0
    return evaluate(s, split, per_image_out=per_image, source=source)


def same(a: dict, b: dict) -> None:
    """Every metric equal (bit for bit), but the process's peak memory."""
    a, b = dict(a), dict(b)
    a.pop("peak_memory_mb"), b.pop("peak_memory_mb")
    assert a == b


# ESTR's denoising evaluation (the fixture's config), and the defaults' conventions with a downsampling and per-sample noise.
OTHER = {
    "eval": {"batch_size": 3, "psnr": "image", "ssim": "skimage"},
    "degradation": [{"kind": "downsample", "scale": 2}, {"kind": "gaussian", "sigma": 0.05, "clip": True}],
    "ip": {"arch": "srresnet", "scale": 2, "weights": None},
}


@pytest.mark.parametrize("over", [{}, OTHER], ids=["estr-dn", "sr2"])
def test_streamed_evaluation_equals_the_in_memory_one(files: dict[str, Path], over: dict, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(files)
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) else v
    cache.clear_memory()
    decodes = cache.STATS.decodes
    got: dict = {}
    with caplog.at_level("INFO", logger="gradprom.eval"):
        result = streamed(cfg, "test", got)
    assert cache.STATS.decodes == decodes  # the data set was never decoded whole
    assert any("eval test: 15/15 images" in r.getMessage() and "images/s" in r.getMessage() for r in caplog.records)
    want: dict = {}
    expected = in_memory(cfg, "test", want)
    assert result["n"] == 15 and "fixed_enhanced_acc" in result and "ssim" in result
    same(result, expected)
    assert got.keys() == want.keys() and "psnr" in got and "fixed_enhanced_acc" in got
    for k in got:
        assert torch.equal(got[k], want[k]), k


def test_a_checkpoint_scores_the_same_streamed(files: dict[str, Path], tmp_path: Path) -> None:
    cfg = config(files)
    s = Session(cfg, CPU)
    pretrain(s, 0)
    with torch.no_grad():
        for p in s.vr.parameters():  # the co-trained VR differs from the fixed one
            p.mul_(0.9)
    ckpt = tmp_path / "last.pt"
    save_atomic(pack(s), str(ckpt))
    expected = evaluate(s, "val", limit=7)
    cfg["eval"]["limit"] = 7
    result = streamed(cfg, "val", {}, str(ckpt))
    assert result["n"] == 7 and result["fixed_enhanced_acc"] == expected["fixed_enhanced_acc"]
    same(result, expected)


def test_only_the_scored_images_are_read(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[Path] = []
    real = streaming.read_transformed
    monkeypatch.setattr(streaming, "read_transformed", lambda path, *a: read.append(path) or real(path, *a))
    cfg = config(files)
    cfg["eval"]["limit"] = 5
    assert streamed(cfg, "val", {})["n"] == 5
    assert len(read) == 5 and read == sorted(read)[:5]


def test_an_image_that_breaks_mid_stream_is_named(files: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(files["data"], data)
    corrupt = data / "val" / "c2" / "1.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:40])  # a truncated download
    with pytest.raises(DataError, match=f"{corrupt}: unreadable or corrupt image"):
        streamed(config(files, data), "val", {})
    corrupt.unlink()
    shutil.copy(files["data"] / "val" / "c2" / "1.jpg", corrupt)
    s, source = weights_session(config(files, data), CPU, "val", None)
    gone = data / "val" / "c3" / "0.png"
    gone.unlink()  # after the listing, before its batch
    with pytest.raises(DataError, match=f"{gone}: unreadable or corrupt image.*No such file"):
        evaluate(s, "val", source=source)


def test_what_a_streamed_evaluation_keeps_does_not_grow_with_the_images(files: dict[str, Path]) -> None:
    # Live tensors other than decoded images (uint8, some of them still being decoded ahead), counted before each batch of
    # one image: the per-image results go into tensors made once, so from the third batch on the count stays the same.
    import gc

    cfg = config(files)
    cfg["eval"]["batch_size"] = 1
    s, source = weights_session(cfg, CPU, "test", None)
    counts: list[int] = []

    def count() -> None:
        gc.collect()
        counts.append(sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor) and o.dtype != torch.uint8))

    # What lived before the evaluation is frozen: collecting and listing skip it (each pass over the whole test process
    # took a third of a second), and only what the evaluation made is counted, which is what may grow.
    gc.collect()
    gc.freeze()
    try:
        result = evaluate(s, "test", source=source, check=count)
    finally:
        gc.unfreeze()
    assert result["n"] == 15 and len(counts) == 15
    assert counts[2:] == [counts[2]] * 13, counts
