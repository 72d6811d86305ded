"""VGG-16 with BatchNorm whose state_dict matches torchvision's ``vgg16_bn`` exactly.

The module tree mirrors torchvision's: ``features`` is one Sequential of conv3×3–BN–ReLU triples and
max-pools (so the convs sit at indices 0, 3, 7, 10, 14, …), ``avgpool`` pools to 7×7, and
``classifier`` is Linear–ReLU–Dropout–Linear–ReLU–Dropout–Linear (``classifier.0``, ``.3``, ``.6``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradprom_sidecar.models.imagenet import ImageNetConfig, InputAdapter, TorchvisionClassifier, imagenet_config

# Configuration "D" of Simonyan & Zisserman: output channels per conv, "M" for a 2×2 max-pool.
VGG16: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
HIDDEN = 4096
POOLED = 7  # the classifier reads 512×7×7 whatever the input size


class VGG(TorchvisionClassifier):
    """VGG-16-BN: N×C×H×W image in [0,1] → N×num_classes logits.

    :param cfg: the shared classifier settings.
    """

    FIRST_CONV = "features.0.weight"
    HEAD = ("classifier.6.weight", "classifier.6.bias")

    def __init__(self, cfg: ImageNetConfig) -> None:
        super().__init__()
        self.arch = "vgg16_bn"
        self.config = cfg
        self.adapter = InputAdapter(cfg.in_channels, cfg.weights_channels, cfg.normalize)
        layers: list[nn.Module] = []
        width = cfg.weights_channels
        for item in VGG16:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(width, int(item), 3, padding=1), nn.BatchNorm2d(int(item)), nn.ReLU(inplace=True)]
                width = int(item)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(POOLED)
        self.classifier = nn.Sequential(
            nn.Linear(width * POOLED * POOLED, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(HIDDEN, cfg.num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(self.adapter(x)))  # → N×512×7×7
        return self.classifier(torch.flatten(x, 1))  # → N×num_classes


def build(cfg: dict, in_channels: int, num_classes: int) -> VGG:
    """Make a VGG-16-BN from the VR section of the config (``weights_channels``, ``normalize``, both required).

    :param cfg: the VR section of the config.
    :param in_channels: channels of the images it will read.
    :param num_classes: number of classes.
    """
    return VGG(imagenet_config(cfg, in_channels, num_classes))
