"""ResNet-18/34/50/101 classifiers whose state_dict matches torchvision's exactly.

The module tree mirrors torchvision's ``ResNet`` (``conv1``, ``bn1``,
``layer1..4``, ``fc``; ``BasicBlock``/``Bottleneck`` with
``conv1/bn1/conv2/bn2[/conv3/bn3]`` and ``downsample.0/.1``; the bottleneck
stride sits on ``conv2``, i.e. "v1.5"), so a published torchvision
checkpoint loads with ``strict=True`` and no name mapping. Input handling
lives in :class:`.imagenet.InputAdapter`, which adds no state_dict keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradprom_sidecar.models.imagenet import TORCHVISION_CHANNELS, InputAdapter, TorchvisionClassifier, imagenet_config


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
    101: (Bottleneck, (3, 4, 23, 3)),
}


@dataclass
class ResNetConfig:
    """Settings of a torchvision-compatible ResNet classifier.

    :param depth: 18, 34, 50 or 101.
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


class ResNet(TorchvisionClassifier):
    """A ResNet classifier: N×C×H×W image in [0,1] → N×num_classes logits."""

    FIRST_CONV = "conv1.weight"
    HEAD = ("fc.weight", "fc.bias")

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        self.arch = f"resnet{cfg.depth}"
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


def build(cfg: dict, in_channels: int, num_classes: int, depth: int) -> ResNet:
    """Make a ResNet from the VR section of the config (``weights_channels``, ``normalize``, both required).

    :param cfg: the VR section of the config.
    :param in_channels: channels of the images it will read.
    :param num_classes: number of classes.
    :param depth: 18, 34, 50 or 101.
    """
    shared = imagenet_config(cfg, in_channels, num_classes)
    return ResNet(ResNetConfig(depth, shared.in_channels, shared.num_classes, shared.weights_channels, shared.normalize))
