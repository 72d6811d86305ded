"""Networks: output shapes, torchvision key compatibility, input adaptation, plugins."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from gradprom_sidecar.models import IP_REGISTRY, VR_REGISTRY, build_ip, build_vr, count_params
from gradprom_sidecar.models.checkpoint import CheckpointError, load_weights, save_atomic
from gradprom_sidecar.models.imagenet import load_torchvision

FIXTURES = Path(__file__).parent / "fixtures"
# Small widths keep the shape tests fast on CPU; the architecture is the same.
SMALL_IP = {
    "srresnet": {"channels": 16, "blocks": 2},
    "unet": {"channels": 8, "levels": 3},
    "dncnn": {"channels": 16, "depth": 5},
}


def ip(arch: str, **fields: object) -> dict:
    """An IP section as the session hands it to ``build_ip``: 1 channel, scale 1, no kwargs, ``fields`` over them."""
    return {"arch": arch, "in_channels": 1, "scale": 1, "kwargs": {}, "plugin_path": None, **fields}


def vr(arch: str, **fields: object) -> dict:
    """A VR section for ``build_vr``: classify, no kwargs, and ImageNet normalisation for the resnets (which
    their builder used when it still had defaults of its own), ``fields`` over them."""
    normalize = "imagenet" if arch.startswith("resnet") else "none"
    return {"arch": arch, "task": "classify", "normalize": normalize, "weights_channels": None, "kwargs": {}, "plugin_path": None, **fields}


def read_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """The checked-in torchvision key list: ``name<TAB>shape`` per line, empty shape = scalar."""
    rows = []
    for line in (FIXTURES / f"torchvision_{name}_keys.txt").read_text().splitlines():
        key, shape = line.split("\t")
        rows.append((key, tuple(int(s) for s in shape.split(",")) if shape else ()))
    return rows


@pytest.mark.parametrize("arch", ["srresnet", "unet"])
@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_ip_output_shape(arch: str, scale: int, channels: int) -> None:
    net = build_ip(ip(arch, in_channels=channels, scale=scale, batch_norm=True, **SMALL_IP[arch]))
    x = torch.rand(2, channels, 12, 10)
    y = net(x)
    assert y.shape == (2, channels, 12 * scale, 10 * scale)
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("channels", [1, 3])
def test_dncnn_shape_and_residual(channels: int) -> None:
    net = build_ip(ip("dncnn", in_channels=channels, batch_norm=True, **SMALL_IP["dncnn"]))
    x = torch.rand(2, channels, 16, 16)
    assert net(x).shape == x.shape


def test_dncnn_rejects_scale() -> None:
    with pytest.raises(ValueError, match="scale 2"):
        build_ip(ip("dncnn", scale=2))


@pytest.mark.parametrize("arch", ["srresnet", "unet", "dncnn"])
def test_ip_starts_near_identity(arch: str) -> None:
    # Global residual output: an untrained IP barely changes its input (documented choice).
    net = build_ip(ip(arch, batch_norm=False, **SMALL_IP[arch])).eval()
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert (net(x) - x).abs().mean() < 0.2


def test_srresnet_batch_norm_and_scale_validation() -> None:
    net = build_ip(ip("srresnet", blocks=1, channels=8, batch_norm=True))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    plain = build_ip(ip("srresnet", blocks=1, channels=8, batch_norm=False))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    with pytest.raises(ValueError, match="scale"):
        build_ip(ip("srresnet", scale=3, blocks=1, channels=8, batch_norm=True))


def test_builders_have_no_defaults_of_their_own() -> None:
    # The defaults are src/config/defaults.ts's, resolved before a builder runs: a missing field is named, not filled.
    with pytest.raises(ValueError, match=r"config\.ip\.batch_norm: required"):
        build_ip(ip("srresnet", blocks=1, channels=8))
    with pytest.raises(ValueError, match=r"config\.ip\.depth: required"):
        build_ip(ip("dncnn", channels=8, batch_norm=False))
    with pytest.raises(ValueError, match=r"config\.ip\.levels: required"):
        build_ip(ip("unet", channels=8, depth=17))  # dncnn's depth is not the UNet's
    with pytest.raises(ValueError, match=r"config\.vr\.normalize: required"):
        build_vr({k: v for k, v in vr("resnet18").items() if k != "normalize"}, 3, 4)
    with pytest.raises(ValueError, match=r"config\.vr\.kwargs: required"):
        build_vr({k: v for k, v in vr("smallresnet").items() if k != "kwargs"}, 1, 4)


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "smallresnet"])
@pytest.mark.parametrize("channels", [1, 3])
def test_vr_logits_shape(arch: str, channels: int) -> None:
    net = build_vr(vr(arch), channels, 5)
    assert net(torch.rand(2, channels, 64, 64)).shape == (2, 5)


@pytest.mark.parametrize("size", [(32, 32), (30, 27)])
def test_segment_output_shape(size: tuple[int, int]) -> None:
    net = build_vr(vr("unet", task="segment", channels=8), 3, 2)
    assert net(torch.rand(2, 3, *size)).shape == (2, 2, *size)


def test_task_arch_consistency() -> None:
    with pytest.raises(ValueError, match="classifier"):
        build_vr(vr("resnet18", task="segment"), 1, 2)
    with pytest.raises(ValueError, match="num_classes"):
        build_vr(vr("unet", task="segment"), 1, 1)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_keys_match_torchvision(name: str, tmp_path: Path) -> None:
    expected = read_keys(name)
    net = build_vr(vr(name), 3, 1000)
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == expected
    # A torchvision-shaped file (random tensors) loads strictly, gray input included.
    sd = {k: (torch.tensor(7) if not s else torch.randn(s)) for k, s in expected}
    save_atomic(sd, tmp_path / "tv.pth")
    gray = build_vr(vr(name), 1, 1000)
    report = load_weights(gray, tmp_path / "tv.pth", strict=True)
    assert report.ok and report.loaded == len(expected)
    assert torch.equal(gray.state_dict()["conv1.weight"], sd["conv1.weight"])


def test_normalize_adds_no_keys() -> None:
    a = build_vr(vr("resnet18", normalize="imagenet"), 3, 10)
    b = build_vr(vr("resnet18", normalize="none"), 3, 10)
    assert list(a.state_dict()) == list(b.state_dict())
    with pytest.raises(ValueError, match="normalize"):
        build_vr(vr("resnet18", normalize="zscore"), 3, 10)


def test_gray_input_replicated_to_three_channels() -> None:
    gray_net = build_vr(vr("resnet18"), 1, 4).eval()
    rgb_net = build_vr(vr("resnet18"), 3, 4).eval()
    rgb_net.load_state_dict(gray_net.state_dict())
    assert gray_net.conv1.weight.shape[1] == 3
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(gray_net(x), rgb_net(x.repeat(1, 3, 1, 1)), atol=1e-5)
    one = build_vr(vr("resnet18", weights_channels=1), 1, 4)
    assert one.conv1.weight.shape == (64, 1, 7, 7)


def test_load_torchvision_keeps_own_fc(tmp_path: Path) -> None:
    sd = {k: (torch.tensor(0) if not s else torch.randn(s)) for k, s in read_keys("resnet18")}
    torch.save(sd, tmp_path / "tv.pth")
    net = build_vr(vr("resnet18", weights_channels=1), 1, 4)
    skipped = load_torchvision(net, tmp_path / "tv.pth")
    assert skipped == ["fc.weight", "fc.bias"]
    assert torch.allclose(net.conv1.weight, sd["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(net.layer4[1].bn2.running_var, sd["layer4.1.bn2.running_var"])


def test_param_counts() -> None:
    assert count_params(build_vr(vr("resnet18"), 3, 1000)) == 11_689_512
    assert count_params(build_vr(vr("resnet50"), 3, 1000)) == 25_557_032
    assert count_params(build_vr(vr("smallresnet"), 1, 4)) == 77_364
    small = build_ip(ip("srresnet", channels=32, blocks=4, batch_norm=False))
    assert 80_000 < count_params(small) < 95_000
    big = build_ip(ip("srresnet", in_channels=3, scale=4, channels=64, blocks=16, batch_norm=True))  # the paper's SRResNet
    assert 1_000_000 < count_params(big) < 2_000_000


def test_smallresnet_widths() -> None:
    net = build_vr(vr("smallresnet", kwargs={"widths": [8, 16]}), 3, 2)
    assert net(torch.rand(1, 3, 32, 32)).shape == (1, 2)
    assert net.fc.in_features == 16


def test_unknown_arch_lists_known() -> None:
    with pytest.raises(ValueError, match="srresnet") as e:
        build_ip(ip("edsr"))
    assert all(name in str(e.value) for name in IP_REGISTRY)
    with pytest.raises(ValueError) as e:
        build_vr(vr("vgg"), 1, 2)
    assert all(name in str(e.value) for name in VR_REGISTRY)


PLUGIN = """
import torch.nn as nn
import torch.nn.functional as F

class Enhancer(nn.Module):
    def __init__(self, in_channels, scale, width=4):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.width = width

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=self.scale) if self.scale > 1 else x)

class Classifier(nn.Module):
    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))

NotAModule = int
"""


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    pkg = tmp_path / "gp_test_plugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(PLUGIN)
    return tmp_path


def test_plugin_ip_and_vr(plugin_dir: Path) -> None:
    enhancer = build_ip(ip("gp_test_plugins.nets:Enhancer", plugin_path=str(plugin_dir), in_channels=3, scale=2, kwargs={"width": 9}))
    assert enhancer.width == 9 and enhancer(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)
    classifier = build_vr(vr("gp_test_plugins.nets:Classifier", plugin_path=str(plugin_dir)), 3, 7)
    assert classifier(torch.rand(2, 3, 8, 8)).shape == (2, 7)


@pytest.mark.parametrize(
    ("arch", "problem"),
    [
        ("gp_no_such_module:Net", "not found"),
        ("gp_test_plugins.nets:Missing", "no attribute"),
        ("gp_test_plugins.nets:NotAModule", "not an nn.Module"),
        ("gp_test_plugins.nets:", "module.path:ClassName"),
    ],
)
def test_plugin_errors(plugin_dir: Path, arch: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as e:
        build_vr(vr(arch, plugin_path=str(plugin_dir)), 1, 2)
    assert repr(arch) in str(e.value)


def test_plugin_constructor_error(plugin_dir: Path) -> None:
    with pytest.raises(ValueError, match="constructor failed"):
        build_ip(ip("gp_test_plugins.nets:Enhancer", plugin_path=str(plugin_dir), kwargs={"bogus": 1}))


# The three recognizers ESTR's transfer table adds; key lists pinned from torchvision's architecture definitions.
TABLE_VRS = {"resnet101": 44_549_160, "densenet121": 7_978_856, "vgg16_bn": 138_365_992}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TABLE_VRS))
def test_table_recognizers_match_torchvision(name: str, tmp_path: Path) -> None:
    expected = read_keys(name)
    # Names, shapes, the parameter count and the forward's shape need no values: built and run on the meta device.
    # (Its first use imports torch._dynamo, which the first optimizer of the run has already imported.)
    with torch.device("meta"):
        net = build_vr(vr(name), 3, 1000).eval()
        assert net(torch.rand(2, 3, 64, 64)).shape == (2, 1000)
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == expected
    assert count_params(net) == TABLE_VRS[name]  # torchvision's published parameter counts
    # A torchvision-shaped file fits a 5-class gray network: the head stays at its initialisation, the first conv
    # is summed over RGB, everything else is copied unchanged. Its values (in [1e-4, 0.02], positive for running_var)
    # differ within each tensor and, rolled, between tensors of one shape: linspace, as drawing VGG's 138 M takes seconds.
    sd = {k: torch.tensor(7) if not s else torch.linspace(1e-4, 0.02, math.prod(s)).roll(i).reshape(s) for i, (k, s) in enumerate(expected)}
    save_atomic(sd, tmp_path / "tv.pth")
    gray = build_vr(vr(name, weights_channels=1), 1, 5).eval()
    assert load_torchvision(gray, tmp_path / "tv.pth") == list(gray.HEAD)
    own = gray.state_dict()
    assert torch.allclose(own[gray.FIRST_CONV], sd[gray.FIRST_CONV].sum(1, keepdim=True))
    assert all(torch.equal(own[k], v) for k, v in sd.items() if k != gray.FIRST_CONV and k not in gray.HEAD)
    del sd
    # State dict round trip: a network whose every saved tensor is NaN (or -1) loaded strictly computes the same logits.
    # A copy of the gray one with its values wiped, not another build: initialising VGG's 138 M parameters takes seconds.
    save_atomic(own, tmp_path / "own.pth")
    again = copy.deepcopy(gray)
    for t in again.state_dict().values():
        t.fill_(float("nan") if t.is_floating_point() else -1)
    assert not {t.data_ptr() for t in own.values()} & {t.data_ptr() for t in again.state_dict().values()}  # wiped a copy
    assert load_weights(again, tmp_path / "own.pth", strict=True).ok
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert gray(x).shape == (2, 5) and torch.equal(gray(x), again(x))


def test_densenet_reads_torchvision_first_release_names(tmp_path: Path) -> None:
    # torchvision's ImageNet DenseNet file names a layer's parts "norm.1", "conv.2", ..., and predates num_batches_tracked.
    net = build_vr(vr("densenet121"), 3, 1000)
    old = {
        k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v.clone()
        for k, v in net.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    save_atomic(old, tmp_path / "densenet121-old.pth")
    fresh = build_vr(vr("densenet121"), 3, 1000)
    assert load_torchvision(fresh, tmp_path / "densenet121-old.pth") == []
    assert torch.equal(
        fresh.state_dict()["features.denseblock4.denselayer16.conv2.weight"],
        net.state_dict()["features.denseblock4.denselayer16.conv2.weight"],
    )


def test_torchvision_loader_names_the_arch_on_a_foreign_file(tmp_path: Path) -> None:
    save_atomic(build_vr(vr("resnet18"), 3, 1000).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match="densenet121"):
        load_torchvision(build_vr(vr("densenet121"), 3, 1000), tmp_path / "r18.pth")


def estr_keys(scale: int) -> list[tuple[str, tuple[int, ...]]]:
    """ESTR's SRResNet names and shapes, written out from its description, not from our module (so that a slip in both cannot agree)."""
    keys = [("block1.0.weight", (64, 3, 9, 9)), ("block1.0.bias", (64,)), ("block1.1.weight", (1,))]
    for b in range(2, 7):
        for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
            keys += [(f"block{b}.{conv}.weight", (64, 64, 3, 3)), (f"block{b}.{conv}.bias", (64,))]
            keys += [(f"block{b}.{bn}.{n}", (64,)) for n in ("weight", "bias", "running_mean", "running_var")]
            keys += [(f"block{b}.{bn}.num_batches_tracked", ())]
            if conv == "conv1":
                keys += [(f"block{b}.prelu.weight", (1,))]
    keys += [("block7.0.weight", (64, 64, 3, 3)), ("block7.0.bias", (64,)), ("block7.1.weight", (1,))]
    ups = {1: 0, 2: 1, 4: 2}[scale]
    for u in range(ups):
        keys += [(f"block8.{u}.conv.weight", (256, 64, 3, 3)), (f"block8.{u}.conv.bias", (256,)), (f"block8.{u}.prelu.weight", (1,))]
    return keys + [(f"block8.{ups}.weight", (3, 64, 9, 9)), (f"block8.{ups}.bias", (3,))]


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_estr_srresnet_names_shapes_and_output(scale: int) -> None:
    net = build_ip(ip("estr_srresnet", in_channels=3, scale=scale, residual=False)).eval()
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == estr_keys(scale)
    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        y = net(x)
        z = net.block8(net.block1(x) + net.block7(net.block6(net.block5(net.block4(net.block3(net.block2(net.block1(x))))))))
    assert y.shape == (2, 3, 12 * scale, 10 * scale)
    assert torch.allclose(y, (torch.tanh(z) + 1) / 2)  # ESTR's output map, in (0, 1)


def test_estr_srresnet_residual_variant() -> None:
    plain = build_ip(ip("estr_srresnet", in_channels=3, residual=False)).eval()
    residual = build_ip(ip("estr_srresnet", in_channels=3, residual=True)).eval()
    residual.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(residual(x), (x - plain(x)).clamp(0, 1))
    with pytest.raises(ValueError, match="scale 1"):
        build_ip(ip("estr_srresnet", in_channels=3, scale=4, residual=True))
    with pytest.raises(ValueError, match=r"config\.ip\.residual: required"):
        build_ip(ip("estr_srresnet", in_channels=3))
