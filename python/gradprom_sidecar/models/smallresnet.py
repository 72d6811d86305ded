"""A small ResNet classifier for CPU runs and tests (~77k parameters at 1 channel, 4 classes).

GroupNorm instead of BatchNorm: GradProm differentiates VR's loss with
respect to IP's parameters on small batches, and GroupNorm behaves the same
in train and eval mode and does not depend on the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd

import torch
from torch import Tensor, nn

from gradprom_sidecar.models.imagenet import InputAdapter
from gradprom_sidecar.training.config import setting


def _norm(channels: int) -> nn.GroupNorm:
    # Up to 8 groups, always dividing the channel count.
    return nn.GroupNorm(gcd(8, channels), channels)


class SmallBlock(nn.Module):
    """conv3×3–GN–ReLU–conv3×3–GN plus a (projected when needed) skip.

    :param inplanes: input channels.
    :param planes: output channels.
    :param stride: stride of the first conv (2 halves H and W).
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = _norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), _norm(planes))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


@dataclass
class SmallResNetConfig:
    """Settings of :class:`SmallResNet`.

    :param in_channels: image channels.
    :param num_classes: outputs of ``fc``.
    :param widths: channels of the three stages (stride 2 at stages 2 and 3).
    :param normalize: ``"none"`` (default) or ``"imagenet"``.
    """

    in_channels: int = 1
    num_classes: int = 4
    widths: tuple[int, ...] = field(default=(16, 32, 64))
    normalize: str = "none"


class SmallResNet(nn.Module):
    """N×C×H×W image in [0,1] → N×num_classes logits."""

    def __init__(self, cfg: SmallResNetConfig) -> None:
        super().__init__()
        if len(cfg.widths) < 1:
            raise ValueError("smallresnet widths must list at least one stage")
        self.config = cfg
        self.adapter = InputAdapter(cfg.in_channels, cfg.in_channels, cfg.normalize)
        w0 = cfg.widths[0]
        self.conv1 = nn.Conv2d(cfg.in_channels, w0, 3, 1, 1, bias=False)
        self.bn1 = _norm(w0)
        self.relu = nn.ReLU(inplace=True)
        stages: list[nn.Module] = []
        prev = w0
        for i, width in enumerate(cfg.widths):
            stages.append(SmallBlock(prev, width, stride=1 if i == 0 else 2))
            prev = width
        self.layers = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(prev, cfg.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.adapter(x)
        x = self.relu(self.bn1(self.conv1(x)))  # → N×w0×H×W
        x = self.layers(x)  # → N×w_last×H/4×W/4 (three stages)
        return self.fc(torch.flatten(self.avgpool(x), 1))  # → N×num_classes


def build(cfg: dict, in_channels: int, num_classes: int) -> SmallResNet:
    """Make a :class:`SmallResNet` from a config dict (``normalize``, required; ``widths`` from ``vr.kwargs``).

    :param cfg: the VR section of the config, with its kwargs (``widths`` is no config field: without
        it the network's own widths apply).
    :param in_channels: image channels.
    :param num_classes: number of classes.
    """
    widths = tuple(int(w) for w in cfg.get("widths", SmallResNetConfig.widths))
    return SmallResNet(SmallResNetConfig(in_channels, num_classes, widths, str(setting(cfg, "normalize", "vr"))))
