"""Control-plane helpers: weights conversion to safetensors (inspection is exercised through `gradprom inspect`)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from gradprom_sidecar.models.checkpoint import CheckpointError
from gradprom_sidecar.tools.introspect import convert_weights


def test_a_whole_pickled_model_becomes_a_plain_safetensors_file(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.PReLU())
    src = tmp_path / "model_sr_epoch_5.pth"
    torch.save(nn.DataParallel(net), src, _use_new_zipfile_serialization=False)
    r = convert_weights(str(src), str(tmp_path / "plain.safetensors"))
    assert r["tensors"] == len(net.state_dict()) and r["bytes"] > 0
    assert any("whole pickled model" in n for n in r["notes"])
    back = load_file(str(tmp_path / "plain.safetensors"))
    assert set(back) == set(net.state_dict())  # module. stripped (safetensors keeps no order)
    assert all(torch.equal(back[k], v) for k, v in net.state_dict().items())


def test_a_run_checkpoint_part_and_refusals(tmp_path: Path) -> None:
    torch.save({"ip": {"w": torch.ones(2)}, "vr": {"v": torch.zeros(3)}}, tmp_path / "run.pt")
    r = convert_weights(str(tmp_path / "run.pt"), str(tmp_path / "vr.safetensors"), "vr")
    assert r["notes"] == [] and list(load_file(str(tmp_path / "vr.safetensors"))) == ["v"]
    with pytest.raises(CheckpointError, match=r"\.safetensors"):
        convert_weights(str(tmp_path / "run.pt"), str(tmp_path / "vr.pt"), "vr")
    (tmp_path / "keep.safetensors").write_bytes(b"old")
    with pytest.raises(CheckpointError, match="absent.pt"):
        convert_weights(str(tmp_path / "absent.pt"), str(tmp_path / "keep.safetensors"))
    assert (tmp_path / "keep.safetensors").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.safetensors", "run.pt", "vr.safetensors"]  # no temporary left


def test_inspect_lists_a_whole_pickled_models_tensors(tmp_path: Path) -> None:
    from gradprom_sidecar.tools.introspect import inspect_checkpoint

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.PReLU())
    torch.save(nn.DataParallel(net), tmp_path / "whole.pth", _use_new_zipfile_serialization=False)
    info = inspect_checkpoint(str(tmp_path / "whole.pth"))
    assert [t["name"] for t in info["groups"]["weights"]["tensors"]] == ["0.weight", "0.bias", "1.weight"]
    torch.save({"w": torch.ones(1), "x": SimpleNamespace(lr=0.1)}, tmp_path / "other.pt")  # not a module: still refused
    with pytest.raises(CheckpointError, match="weights_only refuses"):
        inspect_checkpoint(str(tmp_path / "other.pt"))
