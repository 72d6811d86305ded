"""The transfer table: rows and columns as ESTR's, the same test set and numbers as the ``eval`` op, specs checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from gradprom_sidecar.evaluation.cross_table import CLEAN, DEGRADED, ModelSpec, parse_specs, transfer_table
from gradprom_sidecar.evaluation.evaluate import evaluate
from gradprom_sidecar.models import build_ip, build_vr
from gradprom_sidecar.models.checkpoint import read_state_dict
from gradprom_sidecar.training.config import resolve
from gradprom_sidecar.training.pretrain import pretrain
from gradprom_sidecar.training.session import Session

CLASSES = 6


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny class-folder set (6 classes, 2 val images each) and weights files in several forms."""
    root = tmp_path_factory.mktemp("transfer")
    rng = np.random.default_rng(1)
    for split, count in (("train", 1), ("val", 2)):
        for c in range(CLASSES):
            (root / "data" / split / f"c{c}").mkdir(parents=True)
            for k in range(count):
                arr = rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)
                Image.fromarray(arr, "RGB").save(root / "data" / split / f"c{c}" / f"{k}.png")
    torch.manual_seed(5)
    ip = build_ip({**resolve({})["ip"], "arch": "estr_srresnet", "in_channels": 3, "scale": 1})
    for m in ip.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    torch.save(nn.DataParallel(ip), root / "ip_whole_legacy.pth", _use_new_zipfile_serialization=False)
    save_file(ip.state_dict(), str(root / "ip.safetensors"))
    other = build_ip({**resolve({})["ip"], "arch": "estr_srresnet", "in_channels": 3, "scale": 1})
    torch.save(other.state_dict(), root / "ip_other.pt")
    vr_cfg = {**resolve({})["vr"], "normalize": "imagenet"}
    torch.save(build_vr({**vr_cfg, "arch": "resnet18"}, 3, CLASSES).state_dict(), root / "r18.pth")
    torch.save(build_vr({**vr_cfg, "arch": "densenet121"}, 3, CLASSES).state_dict(), root / "d121.pth")
    return {
        k: root / v
        for k, v in {
            "data": "data",
            "whole": "ip_whole_legacy.pth",
            "st": "ip.safetensors",
            "other": "ip_other.pt",
            "r18": "r18.pth",
            "d121": "d121.pth",
        }.items()
    }


def config(files: dict[str, Path], **over: dict) -> dict:
    return resolve(
        {
            "device": "cpu",
            "data": {"kind": "imagefolder", "path": str(files["data"]), "size": 32, "resize": 36, "channels": 3},
            "degradation": [{"kind": "gaussian", "sigma": 0.1, "clip": True}],
            "ip": {"arch": "estr_srresnet"},
            "vr": {"arch": "resnet18", "normalize": "imagenet", "pretrain_steps": 0},
            "eval": {"batch_size": 5},
            **over,
        }
    )


def test_table_rows_columns_and_agreement_with_the_eval_op(files: dict[str, Path]) -> None:
    cfg = config(files, eval={"batch_size": 5, "psnr": "batch", "ssim": "pytorch_ssim"})
    ips = [
        ModelSpec("whole", "estr_srresnet", str(files["whole"])),
        ModelSpec("st", "estr_srresnet", str(files["st"])),
        ModelSpec("other", "estr_srresnet", str(files["other"])),
    ]
    vrs = [ModelSpec("r18", "resnet18", str(files["r18"])), ModelSpec("d121", "densenet121", str(files["d121"]))]
    t = transfer_table(cfg, ips, vrs, "test", None, torch.device("cpu"))
    assert t["n"] == 12 and t["topk"] == [1, 5] and t["num_classes"] == CLASSES
    assert [r["label"] for r in t["rows"]] == [CLEAN, DEGRADED, "whole", "st", "other"]
    assert [r["kind"] for r in t["rows"]] == ["clean", "degraded", "ip", "ip", "ip"]
    rows = {r["label"]: r for r in t["rows"]}
    assert rows[CLEAN]["psnr"] is None and rows[CLEAN]["ssim"] is None
    assert all(set(r["top1"]) == {"r18", "d121"} and set(r["top5"]) == {"r18", "d121"} for r in t["rows"])
    assert "zero padding" in t["ssim_convention"] and "per batch" in t["psnr_convention"]
    # The whole pickled legacy file and its safetensors copy are the same model: the same row.
    for key in ("psnr", "ssim", "top1", "top5"):
        assert rows["whole"][key] == rows["st"][key]
    assert rows["other"]["psnr"] != rows["whole"]["psnr"]
    # The same numbers as the eval op of a session holding that IP and VR (same degraded test set, same conventions).
    s = Session(
        {**cfg, "ip": {**cfg["ip"], "weights": str(files["whole"])}, "vr": {**cfg["vr"], "weights": str(files["r18"])}}, torch.device("cpu")
    )
    pretrain(s, 0)
    e = evaluate(s, "test")
    assert e["psnr"] == pytest.approx(rows["whole"]["psnr"], abs=1e-9) and e["ssim"] == pytest.approx(rows["whole"]["ssim"], abs=1e-9)
    assert e["psnr_degraded"] == pytest.approx(rows[DEGRADED]["psnr"], abs=1e-9)
    assert e["fixed_enhanced_acc"] == pytest.approx(rows["whole"]["top1"]["r18"])
    assert e["fixed_degraded_acc"] == pytest.approx(rows[DEGRADED]["top1"]["r18"])
    assert e["fixed_clean_acc"] == pytest.approx(rows[CLEAN]["top1"]["r18"])


def test_top5_only_with_five_classes_and_limit(files: dict[str, Path]) -> None:
    cfg = config(
        files, data={"kind": "imagefolder", "path": str(files["data"]), "size": 32, "resize": 36, "channels": 3, "max_per_class": 1}
    )
    t = transfer_table(
        cfg,
        [ModelSpec("st", "estr_srresnet", str(files["st"]))],
        [ModelSpec("r18", "resnet18", str(files["r18"]))],
        "val",
        4,
        torch.device("cpu"),
    )
    assert t["n"] == 4 and "top5" in t["rows"][0]
    assert read_state_dict(files["whole"]).keys() == read_state_dict(files["st"]).keys()


def test_bad_specs_and_weights_are_named(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"args\.ips\[0\]"):
        parse_specs([{"label": "a", "arch": "estr_srresnet"}], "ips")
    with pytest.raises(ValueError, match="unique"):
        parse_specs([{"label": "a", "arch": "x", "weights": "w"}] * 2, "vrs")
    with pytest.raises(ValueError, match="non-empty"):
        parse_specs([], "vrs")
    cfg = config(files)
    wrong = [ModelSpec("wrong", "srresnet", str(files["st"]))]  # ESTR's weights in our srresnet: names differ
    with pytest.raises(ValueError, match=r"IP 'wrong' \(srresnet:.*ip\.safetensors\).*missing keys"):
        transfer_table(cfg, wrong, [ModelSpec("r18", "resnet18", str(files["r18"]))], "val", None, torch.device("cpu"))
    with pytest.raises(ValueError, match="classifiers"):
        transfer_table(
            cfg,
            [ModelSpec("st", "estr_srresnet", str(files["st"]))],
            [ModelSpec("u", "unet", str(files["r18"]))],
            "val",
            None,
            torch.device("cpu"),
        )


def test_streamed_table_equals_the_in_memory_one(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gradprom_sidecar.data import build_data
    from gradprom_sidecar.evaluation import streaming

    cfg = config(
        files,
        degradation=[{"kind": "gaussian", "sigma": 0.1, "clip": True, "seeding": "per-index"}],
        eval={"batch_size": 5, "psnr": "batch", "ssim": "pytorch_ssim"},
    )
    # The streamed batches are the in-memory split's stored images, in order.
    listing = streaming.list_split(cfg["data"], "val")
    held = build_data(cfg["data"], 0).val
    got = list(streaming.batches(listing, len(listing.files), 5, workers=3, ahead=1))
    assert [(a, b) for a, b, _ in got] == [(0, 5), (5, 10), (10, 12)]
    assert torch.equal(torch.cat([x for _, _, x in got]), held.images) and torch.equal(listing.labels, held.labels)
    ips = [ModelSpec("whole", "estr_srresnet", str(files["whole"]))]
    vrs = [ModelSpec("r18", "resnet18", str(files["r18"]))]
    with caplog.at_level("INFO", logger="gradprom.eval"):
        streamed = transfer_table(cfg, ips, vrs, "val", None, torch.device("cpu"))
    assert any("transfer table: 12/12 images" in r.getMessage() and "images/s" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(streaming, "STREAMED_KINDS", ())
    in_memory = transfer_table(cfg, ips, vrs, "val", None, torch.device("cpu"))
    assert streamed.pop("streamed") is True and in_memory.pop("streamed") is False
    assert streamed == in_memory


def test_an_ip_whose_weights_upscale_is_refused_where_the_degradation_does_not_downsample(files: dict[str, Path], tmp_path: Path) -> None:
    sr4 = tmp_path / "sr4.pth"
    torch.save(build_ip({**resolve({})["ip"], "arch": "estr_srresnet", "in_channels": 3, "scale": 4}).state_dict(), sr4)
    cfg = config(files)
    cfg["ip"]["scale"] = None  # left to the weights
    with pytest.raises(ValueError, match=r"IP 'sr4' \(estr_srresnet:.*sr4\.pth\): upscales x4, but the degradation downsamples x1"):
        transfer_table(
            cfg,
            [ModelSpec("sr4", "estr_srresnet", str(sr4))],
            [ModelSpec("r18", "resnet18", str(files["r18"]))],
            "val",
            None,
            torch.device("cpu"),
        )
