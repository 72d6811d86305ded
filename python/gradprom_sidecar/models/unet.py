"""A small UNet, used twice: as an IP enhancer (residual) and as a VR segmenter (logits).

Blocks are conv3×3–GroupNorm–ReLU twice; GroupNorm keeps small batches and
eval mode consistent. Images whose size is not a multiple of
2^(depth−1) are reflect-padded up to one and the output is cropped back, so
any H×W works.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradprom_sidecar.training.config import setting


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
        nn.GroupNorm(gcd(8, cout), cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.GroupNorm(gcd(8, cout), cout),
        nn.ReLU(inplace=True),
    )


@dataclass
class UNetConfig:
    """Settings of :class:`UNet`.

    :param in_channels: image channels.
    :param out_channels: output channels (image channels for IP, classes for segmentation).
    :param channels: width of the first level; each level down doubles it.
    :param depth: number of resolution levels (depth − 1 poolings).
    """

    in_channels: int = 1
    out_channels: int = 1
    channels: int = 32
    depth: int = 3


class UNet(nn.Module):
    """N×in×H×W → N×out×H×W (no final activation)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        if cfg.depth < 1:
            raise ValueError(f"unet depth must be at least 1, got {cfg.depth}")
        self.config = cfg
        widths = [cfg.channels * 2**i for i in range(cfg.depth)]
        self.down = nn.ModuleList()
        prev = cfg.in_channels
        for w in widths:
            self.down.append(_conv_block(prev, w))
            prev = w
        self.up = nn.ModuleList()  # transposed conv ×2 halving the width
        self.merge = nn.ModuleList()  # conv block over [upsampled, skip]
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(prev, w, 2, 2))
            self.merge.append(_conv_block(2 * w, w))
            prev = w
        self.head = nn.Conv2d(prev, cfg.out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = 2 ** (self.config.depth - 1)
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            # Reflect needs pad < size; replicate covers tiny images.
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        skips: list[Tensor] = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)  # level i: N×c·2^i×H/2^i×W/2^i
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottom level feeds the decoder directly
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))  # one level up
        return self.head(x)[..., :h, :w]  # → N×out×H×W


class UNetEnhancer(nn.Module):
    """IP use: output = base + UNet(base), base = input upsampled to full size (bicubic).

    Not clamped, for the same gradient reasons as SRResNet. The head starts at
    a tenth of its usual scale so an untrained network is near the identity.

    :param cfg: the UNet settings (out_channels = in_channels).
    :param scale: 1, 2 or 4.
    """

    def __init__(self, cfg: UNetConfig, scale: int = 1) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"unet scale must be 1, 2 or 4, got {scale}")
        self.scale = scale
        self.unet = UNet(cfg)
        self.unet.head.weight.data.mul_(0.1)
        nn.init.zeros_(self.unet.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return x + self.unet(x)  # N×C×H×W


class UNetSegmenter(nn.Module):
    """VR use: N×C×H×W image → N×num_classes×H×W logits.

    Binary segmentation is num_classes = 2 (background, foreground) trained
    with cross-entropy over the class dimension against an N×H×W integer mask;
    argmax over dim 1 gives the predicted mask.

    :param cfg: the UNet settings (out_channels = num_classes).
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.unet = UNet(cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.unet(x)


def build_ip(cfg: dict) -> UNetEnhancer:
    """Make the IP UNet from a config dict (``in_channels``, ``scale``, ``channels``, ``levels``, all required).

    Its resolution levels are ``ip.levels`` (``ip.depth`` counts dncnn's layers, 17 by default).

    :param cfg: the IP section of the config.
    """
    c = int(setting(cfg, "in_channels", "ip"))
    ucfg = UNetConfig(c, c, int(setting(cfg, "channels", "ip")), int(setting(cfg, "levels", "ip")))
    return UNetEnhancer(ucfg, int(setting(cfg, "scale", "ip")))


def build_vr(cfg: dict, in_channels: int, num_classes: int) -> UNetSegmenter:
    """Make the segmenter from a config dict (``channels``, ``depth``).

    The VR section has no width or depth fields: they come from ``vr.kwargs`` (merged into ``cfg``)
    or are the network's own (:class:`UNetConfig`).

    :param cfg: the VR section of the config, with its kwargs.
    :param in_channels: image channels.
    :param num_classes: classes per pixel (2 for binary).
    """
    if num_classes < 2:
        raise ValueError(f"unet segmenter needs num_classes >= 2 (binary = 2 with cross-entropy), got {num_classes}")
    own = UNetConfig()
    return UNetSegmenter(UNetConfig(in_channels, num_classes, int(cfg.get("channels", own.channels)), int(cfg.get("depth", own.depth))))
