"""DenseNet-121 classifier whose state_dict matches torchvision's ``densenet121`` exactly.

The module tree mirrors torchvision's (``features.conv0``/``norm0``, ``features.denseblockB.denselayerL``
with ``norm1``/``conv1``/``norm2``/``conv2``, ``features.transitionB`` with ``norm``/``conv``,
``features.norm5``, ``classifier``), so today's torchvision checkpoints load with no name mapping;
torchvision's ImageNet file itself still uses the first release's names (``norm.1``, ``conv.2``), which
:meth:`DenseNet.upgrade_keys` renames, as torchvision's own loader does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradprom_sidecar.models.imagenet import ImageNetConfig, InputAdapter, TorchvisionClassifier, imagenet_config, upgrade_dense_keys

GROWTH = 32  # channels each layer adds
BN_SIZE = 4  # bottleneck width, in multiples of GROWTH
INIT_FEATURES = 64
BLOCKS_121 = (6, 12, 24, 16)  # layers per dense block


class DenseLayer(nn.Module):
    """BN–ReLU–conv1×1 (to 4·growth) –BN–ReLU–conv3×3 (to growth) over the concatenated earlier features.

    :param in_features: channels of the concatenated input.
    """

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_features, BN_SIZE * GROWTH, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(BN_SIZE * GROWTH)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(BN_SIZE * GROWTH, GROWTH, 3, padding=1, bias=False)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = torch.cat(features, 1)  # N×in_features×H×W
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))  # → N×GROWTH×H×W


class DenseBlock(nn.ModuleDict):
    """``layers`` dense layers named ``denselayer1..``; each reads every earlier output: N×C×H×W → N×(C + layers·growth)×H×W.

    :param layers: number of dense layers.
    :param in_features: channels of the block's input.
    """

    def __init__(self, layers: int, in_features: int) -> None:
        super().__init__({f"denselayer{i + 1}": DenseLayer(in_features + i * GROWTH) for i in range(layers)})

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN–ReLU–conv1×1 halving the channels, then 2×2 average pooling.

    :param in_features: channels in.
    """

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(in_features))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(in_features, in_features // 2, 1, bias=False))
        self.add_module("pool", nn.AvgPool2d(2, 2))


class DenseNet(TorchvisionClassifier):
    """DenseNet-121: N×C×H×W image in [0,1] → N×num_classes logits.

    :param cfg: the shared classifier settings.
    """

    FIRST_CONV = "features.conv0.weight"
    HEAD = ("classifier.weight", "classifier.bias")

    def __init__(self, cfg: ImageNetConfig) -> None:
        super().__init__()
        self.arch = "densenet121"
        self.config = cfg
        self.adapter = InputAdapter(cfg.in_channels, cfg.weights_channels, cfg.normalize)
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(cfg.weights_channels, INIT_FEATURES, 7, 2, 3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(INIT_FEATURES))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        width = INIT_FEATURES
        for i, layers in enumerate(BLOCKS_121):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(layers, width))
            width += layers * GROWTH
            if i != len(BLOCKS_121) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(width))
                width //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(width))
        self.classifier = nn.Linear(width, cfg.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    upgrade_keys = staticmethod(upgrade_dense_keys)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.adapter(x))  # → N×1024×H/32×W/32
        x = F.adaptive_avg_pool2d(F.relu(x), 1)  # → N×1024×1×1
        return self.classifier(torch.flatten(x, 1))  # → N×num_classes


def build(cfg: dict, in_channels: int, num_classes: int) -> DenseNet:
    """Make a DenseNet-121 from the VR section of the config (``weights_channels``, ``normalize``, both required).

    :param cfg: the VR section of the config.
    :param in_channels: channels of the images it will read.
    :param num_classes: number of classes.
    """
    return DenseNet(imagenet_config(cfg, in_channels, num_classes))
