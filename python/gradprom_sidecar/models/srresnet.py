"""SRResNet (SRGAN / ESTR style) image-enhancement network.

Output choice: global residual learning. The network predicts a correction
that is added to ``base``, the input upsampled to the output size (identity
at scale 1, bicubic otherwise). No final activation and no clamp: a clamp or
sigmoid would flatten gradients at the ends of [0,1], and both GradProm's
gradient comparison and the pixel loss want them; metrics clamp instead.
The tail conv starts at a tenth of its usual scale so that an untrained
network begins close to the identity / bicubic baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from gradprom_sidecar.training.config import setting


class ResidualBlock(nn.Module):
    """conv3×3–BN–PReLU–conv3×3–BN with an identity skip.

    :param channels: feature width.
    :param batch_norm: use BatchNorm (False drops it; small CPU runs).
    """

    def __init__(self, channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        # With BN the conv bias is redundant (BN has its own shift).
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=not batch_norm)
        self.bn1 = nn.BatchNorm2d(channels) if batch_norm else nn.Identity()
        self.act = nn.PReLU(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=not batch_norm)
        self.bn2 = nn.BatchNorm2d(channels) if batch_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class UpsampleBlock(nn.Module):
    """conv3×3 to 4C channels, PixelShuffle ×2, PReLU: N×C×H×W → N×C×2H×2W.

    :param channels: feature width.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.shuffle(self.conv(x)))


@dataclass
class SRResNetConfig:
    """Settings of :class:`SRResNet`.

    :param in_channels: image channels (1 or 3); the output has the same.
    :param channels: feature width.
    :param blocks: number of residual blocks.
    :param batch_norm: BatchNorm in the blocks and after them.
    :param scale: upsampling factor, 1, 2 or 4.
    """

    in_channels: int = 1
    channels: int = 64
    blocks: int = 16
    batch_norm: bool = True
    scale: int = 1


class SRResNet(nn.Module):
    """Degraded N×C×h×w image → enhanced N×C×(h·scale)×(w·scale) image (not clamped)."""

    def __init__(self, cfg: SRResNetConfig) -> None:
        super().__init__()
        if cfg.scale not in (1, 2, 4):
            raise ValueError(f"srresnet scale must be 1, 2 or 4, got {cfg.scale}")
        self.config = cfg
        c = cfg.channels
        self.head = nn.Sequential(nn.Conv2d(cfg.in_channels, c, 9, 1, 4), nn.PReLU(c))
        self.body = nn.Sequential(*[ResidualBlock(c, cfg.batch_norm) for _ in range(cfg.blocks)])
        self.body_tail = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=not cfg.batch_norm),
            nn.BatchNorm2d(c) if cfg.batch_norm else nn.Identity(),
        )
        n_up = {1: 0, 2: 1, 4: 2}[cfg.scale]
        self.upsample = nn.Sequential(*[UpsampleBlock(c) for _ in range(n_up)])
        self.tail = nn.Conv2d(c, cfg.in_channels, 9, 1, 4)
        self.tail.weight.data.mul_(0.1)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: Tensor) -> Tensor:
        s = self.config.scale
        base = x if s == 1 else F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)
        feat = self.head(x)  # N×C×h×w → N×c×h×w
        feat = feat + self.body_tail(self.body(feat))  # global skip over the blocks
        feat = self.upsample(feat)  # → N×c×(h·s)×(w·s)
        return base + self.tail(feat)  # → N×C×(h·s)×(w·s)


def build(cfg: dict) -> SRResNet:
    """Make an :class:`SRResNet` from the IP section of the config.

    :param cfg: keys ``in_channels``, ``scale``, ``channels``, ``blocks``, ``batch_norm``, all required
        (the config's defaults are resolved before this is called).
    """
    return SRResNet(
        SRResNetConfig(
            in_channels=int(setting(cfg, "in_channels", "ip")),
            channels=int(setting(cfg, "channels", "ip")),
            blocks=int(setting(cfg, "blocks", "ip")),
            batch_norm=bool(setting(cfg, "batch_norm", "ip")),
            scale=int(setting(cfg, "scale", "ip")),
        )
    )
