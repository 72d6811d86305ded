"""Whole pickled models (``torch.save(model)``) read as data: both formats, nothing the file names imported or run.

The files are written here from classes that exist only inside this test (modules made on the fly
and removed before reading), as ESTR wrote its released models: a DataParallel-wrapped network.
"""

from __future__ import annotations

import builtins
import logging
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
import torch
from torch import nn

from gradprom_sidecar.models import build_ip, build_vr
from gradprom_sidecar.models.checkpoint import CheckpointError, load_weights, read_state_dict
from gradprom_sidecar.models.pickled import LEGACY_MAGIC, LEGACY_PROTOCOL, Recorded, load_restricted, read_pickled_model

FORMATS = {"legacy": False, "zip": True}  # torch.save's _use_new_zipfile_serialization
# The legacy writer cannot find source code for classes made from a string; it says so, harmlessly.
pytestmark = pytest.mark.filterwarnings("ignore:Couldn't retrieve source code")

# ESTR's network as its authors' own module defines it (names as in its files), written for this test.
ESTR_LIKE = """
import math
import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class UpsampleBLock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c * 4, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.prelu = nn.PReLU()

    def forward(self, x):
        return self.prelu(self.pixel_shuffle(self.conv(x)))


class ResNet(nn.Module):
    def __init__(self, upscale_factor, channel):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(channel, 64, 9, padding=4), nn.PReLU())
        self.block2, self.block3, self.block4, self.block5, self.block6 = (ResidualBlock(64) for _ in range(5))
        self.block7 = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.PReLU())
        ups = [UpsampleBLock(64) for _ in range(int(math.log(upscale_factor, 2)))]
        self.block8 = nn.Sequential(*ups, nn.Conv2d(64, 3, 9, padding=4))

    def forward(self, x):
        b1 = self.block1(x)
        b6 = self.block6(self.block5(self.block4(self.block3(self.block2(b1)))))
        return (torch.tanh(self.block8(b1 + self.block7(b6))) + 1) / 2
"""

# Objects whose unpickling would run code: a __reduce__ that writes a file, a module whose __setstate__ writes one and raises.
TRAPS = """
import builtins
from torch import nn

MARKS = []


class WritesOnLoad:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (builtins.exec, (f"open({self.path!r}, 'w').write('ran')",))


class RaisesOnLoad(nn.Module):
    def __init__(self, path):
        super().__init__()
        self.path = path
        self.scale = nn.Parameter(torch.ones(3))

    def __setstate__(self, state):
        open(state["path"], "w").write("ran")
        raise RuntimeError("__setstate__ of the file's own class ran")


import torch
"""


def make_module(name: str, source: str) -> types.ModuleType:
    """A module that exists only while this test holds it in sys.modules."""
    mod = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), mod.__dict__)
    sys.modules[name] = mod
    return mod


@pytest.fixture
def test_only_modules() -> Iterator[tuple[types.ModuleType, types.ModuleType]]:
    estr, traps = make_module("estr_model_sr_test_only", ESTR_LIKE), make_module("estr_traps_test_only", TRAPS)
    yield estr, traps
    sys.modules.pop(estr.__name__, None)
    sys.modules.pop(traps.__name__, None)


def save(obj: object, path: Path, zip_format: bool) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    return path


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("scale", [1, 4])
def test_estr_style_file_loads_into_estr_srresnet(test_only_modules: tuple, tmp_path: Path, fmt: str, scale: int) -> None:
    estr, _ = test_only_modules
    net = estr.ResNet(upscale_factor=scale, channel=3)
    for m in net.modules():  # non-trivial BatchNorm statistics, so buffers matter
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5), m.num_batches_tracked.fill_(17)
    path = save(nn.DataParallel(net), tmp_path / f"model_sr_{fmt}.pth", FORMATS[fmt])
    sys.modules.pop(estr.__name__)  # the class is gone: reading must not need it
    ours = build_ip({"arch": "estr_srresnet", "in_channels": 3, "scale": scale, "residual": False, "kwargs": {}})
    report = load_weights(ours, path, strict=True)
    assert report.ok and report.loaded == len(net.state_dict())
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), net.eval()(x))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_nothing_named_in_the_file_runs(test_only_modules: tuple, tmp_path: Path, fmt: str) -> None:
    estr, traps = test_only_modules
    marks = {name: tmp_path / f"{name}.ran" for name in ("reduce", "setstate")}
    net = estr.ResNet(upscale_factor=1, channel=3)
    net.block1.note = traps.WritesOnLoad(str(marks["reduce"]))  # a plain attribute of the first child (unpickled first)
    net.extra = traps.RaisesOnLoad(str(marks["setstate"]))  # the last child, a submodule with a parameter
    path = save(nn.DataParallel(net), tmp_path / f"trapped_{fmt}.pth", FORMATS[fmt])

    # Teeth: an ordinary load runs both traps.
    with pytest.raises(RuntimeError, match="__setstate__ of the file's own class ran"):
        torch.load(path, weights_only=False)
    assert all(m.exists() for m in marks.values())
    for m in marks.values():
        m.unlink()

    # Read while the classes are importable (nothing is looked up), and again once they are gone.
    for present in (True, False):
        if not present:
            sys.modules.pop(traps.__name__), sys.modules.pop(estr.__name__)
        sd = read_state_dict(path)
        assert not any(m.exists() for m in marks.values()), "a name in the file was run"
        assert sd["extra.scale"].tolist() == [1.0, 1.0, 1.0]
        assert set(sd) == set(net.state_dict())
        assert torch.equal(sd["block7.0.weight"], net.block7[0].weight.detach())
    # What the traps became: recorded names and arguments, never called.
    graph = load_restricted(path)
    inner = graph.state["_modules"]["module"]
    note = inner.state["_modules"]["block1"].state["note"]
    assert isinstance(note, Recorded) and note.name == "exec" and note.module in ("builtins", "__builtin__")  # protocol 2 says __builtin__
    assert "open(" in note.args[0]
    assert inner.state["_modules"]["extra"].name == "RaisesOnLoad"
    assert builtins.exec is not note  # sanity: the stand-in is not the builtin


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_module_prefix_stripped_and_non_persistent_buffers_skipped(tmp_path: Path, fmt: str) -> None:
    vr = build_vr(
        {"arch": "resnet18", "task": "classify", "normalize": "imagenet", "weights_channels": None, "kwargs": {}, "plugin_path": None}, 3, 4
    )
    path = save(nn.DataParallel(vr), tmp_path / f"vr_{fmt}.pth", FORMATS[fmt])
    sd = read_state_dict(path)
    assert list(sd) == list(vr.state_dict())  # same names, same order; the adapter's mean/std are not persistent
    raw = read_pickled_model(path)
    assert raw is not None and all(k.startswith("module.") for k in raw)


def test_a_pickled_module_under_a_wrapper_key(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Linear(3, 2))
    path = save({"epoch": 5, "model": net}, tmp_path / "wrapped.pt", True)
    assert torch.equal(read_state_dict(path)["0.weight"], net[0].weight.detach())


def test_the_log_says_how_the_file_was_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = save(nn.Linear(2, 2), tmp_path / "whole.pt", False)
    with caplog.at_level(logging.WARNING, logger="gradprom.weights"):
        read_state_dict(path)
    assert "whole pickled model" in caplog.text and "gradprom convert" in caplog.text and str(path) in caplog.text


def test_not_a_module_stays_refused(tmp_path: Path) -> None:
    path = save({"weights": torch.ones(2), "args": types.SimpleNamespace(lr=0.1)}, tmp_path / "namespace.pt", False)
    with pytest.raises(CheckpointError, match="weights_only refuses") as e:
        read_state_dict(path)
    assert "namespace.pt" in str(e.value)
    assert read_pickled_model(path) is None
    with pytest.raises(CheckpointError, match="weights_only refuses"):  # a module without tensors gives nothing to load
        read_state_dict(save(nn.ReLU(), tmp_path / "relu.pt", True))


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_legacy_file_is_named(tmp_path: Path, cut: float) -> None:
    path = save(nn.Conv2d(3, 8, 3), tmp_path / "cut.pth", False)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match="cut.pth"):
        read_state_dict(path)


class _Storage:
    """Pickled as a persistent id, as torch.save writes a storage."""


class _LegacyWriter(pickle.Pickler):
    def __init__(self, f: BinaryIO, numel: int) -> None:
        super().__init__(f, protocol=2)
        self.numel = numel

    def persistent_id(self, obj: object) -> tuple | None:
        return ("storage", torch.FloatStorage, "0", "cpu", self.numel, None) if isinstance(obj, _Storage) else None


def test_storage_larger_than_the_file_is_refused_before_allocating(tmp_path: Path) -> None:
    # A legacy stream whose one storage declares 2**40 float32 elements (4 TiB): no such allocation may be tried.
    path = tmp_path / "big.pth"
    with open(path, "wb") as f:
        for head in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}):
            pickle.dump(head, f, protocol=2)
        _LegacyWriter(f, 2**40).dump({"weight": _Storage()})
        pickle.dump(["0"], f, protocol=2)
    with pytest.raises(ValueError, match="more bytes than the file holds"):
        load_restricted(path)
