"""ResNet-18/34/50 classifiers whose state_dict matches torchvision's exactly.

The module tree mirrors torchvision's ``ResNet`` (``conv1``, ``bn1``,
``layer1..4``, ``fc``; ``BasicBlock``/``Bottleneck`` with
``conv1/bn1/conv2/bn2[/conv3/bn3]`` and ``downsample.0/.1``; the bottleneck
stride sits on ``conv2``, i.e. "v1.5"), so a published torchvision
checkpoint loads with ``strict=True`` and no name mapping. Input handling
(channel replication, normalisation) lives in :class:`InputAdapter`, whose
buffers are non-persistent so it adds no state_dict keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..config import at

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_CHANNELS = 3  # conv1 input channels of torchvision's (ImageNet) weights


class InputAdapter(nn.Module):
    """Maps an N×C×H×W image in [0,1] to what the first conv expects.

    Gray → 3 channels replicates the channel (how gray images are fed to
    ImageNet weights); 3 → 1 averages the channels. ``normalize="imagenet"``
    then applies the ImageNet mean/std (their channel averages for a 1-channel
    conv). Buffers are non-persistent: checkpoints stay torchvision-shaped.

    :param in_channels: channels of the incoming image.
    :param out_channels: channels the first conv expects.
    :param normalize: ``"imagenet"`` or ``"none"``.
    """

    def __init__(self, in_channels: int, out_channels: int, normalize: str = "imagenet") -> None:
        super().__init__()
        if normalize not in ("imagenet", "none"):
            raise ValueError(f"normalize must be 'imagenet' or 'none', got {normalize!r}")
        if in_channels != out_channels and (in_channels, out_channels) not in ((1, 3), (3, 1)):
            raise ValueError(f"cannot adapt a {in_channels}-channel image to a {out_channels}-channel conv")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.normalize = normalize
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        if out_channels != 3:
            # A 1-channel (or other) conv: one shared statistic, the ImageNet average.
            mean, std = mean.mean().repeat(out_channels), std.mean().repeat(out_channels)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}")
        if self.in_channels == 1 and self.out_channels == 3:
            x = x.expand(-1, 3, -1, -1)  # N×1×H×W → N×3×H×W (a view, no copy)
        elif self.in_channels == 3 and self.out_channels == 1:
            x = x.mean(dim=1, keepdim=True)  # N×3×H×W → N×1×H×W
        if self.normalize == "imagenet":
            x = (x - self.mean) / self.std
        return x


class BasicBlock(nn.Module):
    """Two 3×3 convs with a skip (ResNet-18/34). Attribute names are torchvision's."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided, v1.5) → 1×1 ×4 with a skip (ResNet-50)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# depth → (block type, blocks per stage), as in torchvision.
_SPECS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


@dataclass
class ResNetConfig:
    """Settings of a torchvision-compatible ResNet classifier.

    :param depth: 18, 34 or 50.
    :param in_channels: channels of the incoming image (1 or 3).
    :param num_classes: outputs of ``fc``.
    :param weights_channels: input channels of ``conv1`` (3 so ImageNet weights fit).
    :param normalize: ``"imagenet"`` or ``"none"``.
    """

    depth: int = 50
    in_channels: int = 3
    num_classes: int = 1000
    weights_channels: int = TORCHVISION_CHANNELS
    normalize: str = "imagenet"


class ResNet(nn.Module):
    """A ResNet classifier: N×C×H×W image in [0,1] → N×num_classes logits.

    :param cfg: the network's settings.
    """

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        if cfg.depth not in _SPECS:
            raise ValueError(f"resnet depth must be one of {sorted(_SPECS)}, got {cfg.depth}")
        self.config = cfg
        block, layers = _SPECS[cfg.depth]
        self.adapter = InputAdapter(cfg.in_channels, cfg.weights_channels, cfg.normalize)
        self.inplanes = 64
        self.conv1 = nn.Conv2d(cfg.weights_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1)
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, cfg.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # Projection shortcut; names downsample.0 (conv) / downsample.1 (bn) as torchvision.
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.adapter(x)  # N×C×H×W → N×3×H×W (normalised)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # → N×64×H/4×W/4
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # → N×512e×H/32×W/32
        x = torch.flatten(self.avgpool(x), 1)  # → N×512e
        return self.fc(x)  # → N×num_classes


def load_torchvision(model: ResNet, path: str | Path) -> list[str]:
    """Load torchvision ImageNet weights, keeping our ``fc`` when the class count differs.

    Names already match, so no mapping is needed; two shapes may legitimately
    differ: ``fc`` (another class count) is left at its initialisation, and a
    3-channel ``conv1`` is summed over its input channels for a 1-channel conv
    (equivalent on gray images replicated to 3 channels).

    :param model: the network to fill.
    :param path: a torchvision checkpoint (.pth / .safetensors).
    :returns: the names left at their initialisation.
    """
    from ..checkpoint import CheckpointError, read_state_dict

    sd = read_state_dict(path)
    own = model.state_dict()
    skipped: list[str] = []
    w = sd.get("conv1.weight")
    if w is not None and w.shape[1] == 3 and own["conv1.weight"].shape[1] == 1:
        sd["conv1.weight"] = w.sum(dim=1, keepdim=True)
    for name in ("fc.weight", "fc.bias"):
        if name in sd and sd[name].shape != own[name].shape:
            del sd[name]
            skipped.append(name)
    result = model.load_state_dict(sd, strict=False)
    problems = [k for k in result.missing_keys if k not in skipped] + list(result.unexpected_keys)
    if problems:
        raise CheckpointError(f"{path}: not a torchvision resnet{model.config.depth} checkpoint: {problems[:10]}")
    return skipped


def build(cfg: dict, in_channels: int, num_classes: int, depth: int) -> ResNet:
    """Make a ResNet from an experiment-config dict (``weights_channels``, ``normalize``, both required).

    ``weights_channels`` null means the torchvision layout, a 3-channel ``conv1`` (ImageNet weights fit it).

    :param cfg: the VR section of the config.
    :param in_channels: channels of the images it will read.
    :param num_classes: number of classes.
    :param depth: 18, 34 or 50.
    """
    channels = at(cfg, "weights_channels", "vr")
    return ResNet(
        ResNetConfig(
            depth=depth,
            in_channels=in_channels,
            num_classes=num_classes,
            weights_channels=TORCHVISION_CHANNELS if channels is None else int(channels),
            normalize=str(at(cfg, "normalize", "vr")),
        )
    )
