"""Checkpoints: safe reading, mismatch reports, prefix stripping, atomic writes."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from gradprom_sidecar.models import checkpoint as ckpt
from gradprom_sidecar.models.checkpoint import CheckpointError, load_checkpoint, load_weights, read_state_dict, save_atomic


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


class Custom:
    """A class weights_only must refuse to rebuild."""

    def __init__(self) -> None:
        self.x = 1


def test_round_trip_model_optimizer_rng(tmp_path: Path) -> None:
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 1, 3, 3)).sum().backward()
    opt.step()
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": 12,
        "seed": 3,
        "config": {"ip": {"arch": "srresnet", "scale": 2}, "lambda": 0.5, "tags": ["a", None, True]},
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    }
    path = tmp_path / "run" / "ckpt.pt"
    save_atomic(state, path)
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temp files left
    back = load_checkpoint(path)
    assert back["step"] == 12 and back["config"] == state["config"]
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    random.setstate(back["rng"]["python"])
    fresh = tiny()
    fresh.load_state_dict(back["model"])
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    fresh_opt.load_state_dict(back["optimizer"])
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    # A {"model": state_dict} training checkpoint also serves as a weights file.
    assert load_weights(tiny(), path).ok


def test_mismatch_report(tmp_path: Path) -> None:
    sd = tiny().state_dict()
    del sd["1.running_mean"]
    sd["extra.weight"] = torch.zeros(3)
    sd["3.weight"] = torch.zeros(5, 4)
    path = tmp_path / "w.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as e:
        load_weights(tiny(), path)
    msg = str(e.value)
    assert str(path) in msg
    assert "1 missing keys: 1.running_mean" in msg
    assert "1 unexpected keys: extra.weight" in msg
    assert "3.weight (checkpoint [5, 4] vs model [2, 4])" in msg
    model = tiny()
    before = model.state_dict()["3.weight"].clone()
    report = load_weights(model, path, strict=False)
    assert not report.ok
    assert report.missing == ["1.running_mean"] and report.unexpected == ["extra.weight"]
    assert report.mismatched == [("3.weight", (5, 4), (2, 4))]
    assert torch.equal(model.state_dict()["3.weight"], before)  # skipped, not half-copied
    assert torch.equal(model.state_dict()["0.weight"], sd["0.weight"])


def test_mismatch_message_truncates(tmp_path: Path) -> None:
    torch.save({f"k{i}": torch.zeros(1) for i in range(15)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"15 unexpected keys: .*\(\+5 more\)"):
        load_weights(tiny(), tmp_path / "w.pt")


def test_prefix_stripping(tmp_path: Path) -> None:
    sd = tiny().state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pth")
    assert list(read_state_dict(tmp_path / "ddp.pth")) == list(sd)
    assert load_weights(tiny(), tmp_path / "ddp.pth").ok
    # Not every key has it: nothing is stripped automatically.
    torch.save({"module.a": torch.zeros(1), "b": torch.zeros(1)}, tmp_path / "mixed.pt")
    assert set(read_state_dict(tmp_path / "mixed.pt")) == {"module.a", "b"}
    # Explicit prefix selects and strips exactly that.
    torch.save({f"vr.{k}": v for k, v in sd.items()} | {"ip.x": torch.zeros(1)}, tmp_path / "both.pt")
    assert list(read_state_dict(tmp_path / "both.pt", prefix="vr.")) == list(sd)
    with pytest.raises(CheckpointError, match="prefix"):
        read_state_dict(tmp_path / "both.pt", prefix="nope.")


def test_safetensors(tmp_path: Path) -> None:
    sd = {k: v.contiguous() for k, v in tiny().state_dict().items()}
    save_file(sd, str(tmp_path / "w.safetensors"))
    model = tiny()
    assert load_weights(model, tmp_path / "w.safetensors").ok
    assert torch.equal(model.state_dict()["0.weight"], sd["0.weight"])
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00garbage")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        read_state_dict(tmp_path / "bad.safetensors")


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    save_atomic({"model": tiny().state_dict()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="cut.pt"):
        read_state_dict(path)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.pt")


def test_pickled_custom_object_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": tiny().state_dict(), "extra": Custom()}, path)
    for reader in (load_checkpoint, read_state_dict):
        with pytest.raises(CheckpointError) as e:
            reader(path)
        assert "evil.pt" in str(e.value) and "weights_only refuses" in str(e.value)
        assert "Custom" in str(e.value)
    with open(tmp_path / "plain.pkl.pt", "wb") as f:
        pickle.dump(Custom(), f, protocol=2)
    with pytest.raises(CheckpointError, match="plain.pkl.pt"):
        load_checkpoint(tmp_path / "plain.pkl.pt")


def test_save_refuses_custom_objects(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint\['extra'\].*Custom"):
        save_atomic({"extra": Custom()}, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    save_atomic({"step": 1}, path)
    real_save = torch.save

    def partial_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        f.write(b"PK\x03\x04 partial bytes")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", partial_save)
    with pytest.raises(CheckpointError, match="disk full"):
        save_atomic({"step": 2}, path)
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_not_a_state_dict(tmp_path: Path) -> None:
    torch.save({"step": 3, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(CheckpointError, match="not a state dict"):
        read_state_dict(tmp_path / "meta.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tmp_path / "list.pt")
