"""ESTR's processing network (Liu et al., "Transferable Recognition-Aware Image Processing"), as ESTR trains it.

ESTR's SRResNet comes from a public SRGAN implementation and differs from :mod:`.srresnet` in ways
that matter for loading its released weights, so it is its own arch, ``estr_srresnet``, with ESTR's
parameter names:

- ``block1``: 9×9 conv (in_channels → 64, bias) then a PReLU with ONE shared parameter;
- ``block2`` … ``block6``: residual blocks ``conv1``–``bn1``–``prelu``–``conv2``–``bn2`` (convs with
  bias, one PReLU parameter), output x + branch;
- ``block7``: 3×3 conv 64 → 64 (bias) then a one-parameter PReLU, no BatchNorm;
- ``block8``: log2(scale) upsampling blocks (``conv`` 64 → 256, pixel shuffle ×2, ``prelu``), then
  the final 9×9 conv 64 → in_channels as its last item;
- output ``(tanh(z) + 1) / 2`` with ``z = block8(block1_out + block7_out)``: always in (0, 1). ESTR's
  "residual" variant (``ip.residual: true``) returns ``clamp(x − (tanh(z) + 1) / 2, 0, 1)`` instead
  (scale 1 only: it subtracts from the input).

Width (64) and depth (5 blocks) are ESTR's and fixed: ``ip.channels`` and ``ip.blocks`` do not apply.
ESTR's weights are 3-channel; a 1-channel build is offered for gray data but no released file fits it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradprom_sidecar.training.config import setting

WIDTH = 64  # ESTR's feature width
RESIDUAL_BLOCKS = 5  # block2 .. block6


class ResidualBlock(nn.Module):
    """conv3×3–BN–PReLU–conv3×3–BN (convs with bias, one PReLU parameter) plus the input.

    :param channels: feature width.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class UpsampleBlock(nn.Module):
    """conv3×3 to 4C, pixel shuffle ×2, one-parameter PReLU: N×C×H×W → N×C×2H×2W.

    :param channels: feature width.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.prelu = nn.PReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.prelu(self.pixel_shuffle(self.conv(x)))


@dataclass
class ESTRConfig:
    """Settings of :class:`ESTRSRResNet`.

    :param in_channels: image channels (3 for ESTR's weights); the output has the same.
    :param scale: upsampling factor, 1, 2 or 4 (ESTR: 4 for super-resolution, 1 for denoising and JPEG).
    :param residual: ESTR's residual variant, ``clamp(x − out, 0, 1)`` (scale 1 only).
    """

    in_channels: int = 3
    scale: int = 4
    residual: bool = False


class ESTRSRResNet(nn.Module):
    """Degraded N×C×h×w image → N×C×(h·scale)×(w·scale) image in (0, 1)."""

    def __init__(self, cfg: ESTRConfig) -> None:
        super().__init__()
        if cfg.scale not in (1, 2, 4):
            raise ValueError(f"estr_srresnet scale must be 1, 2 or 4, got {cfg.scale}")
        if cfg.residual and cfg.scale != 1:
            raise ValueError(f"estr_srresnet residual variant subtracts from its input, so it needs scale 1, got {cfg.scale}")
        self.config = cfg
        c = WIDTH
        self.block1 = nn.Sequential(nn.Conv2d(cfg.in_channels, c, 9, padding=4), nn.PReLU())
        # block2..block6 as attributes, not a list: their names are what ESTR's weights hold.
        for i in range(RESIDUAL_BLOCKS):
            self.add_module(f"block{i + 2}", ResidualBlock(c))
        self.block7 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.PReLU())
        ups: list[nn.Module] = [UpsampleBlock(c) for _ in range(int(math.log2(cfg.scale)))]
        self.block8 = nn.Sequential(*ups, nn.Conv2d(c, cfg.in_channels, 9, padding=4))

    def forward(self, x: Tensor) -> Tensor:
        head = self.block1(x)  # N×C×h×w → N×64×h×w
        feat = head
        for i in range(RESIDUAL_BLOCKS):
            feat = getattr(self, f"block{i + 2}")(feat)
        z = self.block8(head + self.block7(feat))  # → N×C×(h·s)×(w·s)
        out = (torch.tanh(z) + 1) / 2
        return (x - out).clamp(0.0, 1.0) if self.config.residual else out


def build(cfg: dict) -> ESTRSRResNet:
    """Make an :class:`ESTRSRResNet` from the IP section of the config.

    :param cfg: keys ``in_channels``, ``scale`` and ``residual``, all required.
    """
    return ESTRSRResNet(
        ESTRConfig(
            in_channels=int(setting(cfg, "in_channels", "ip")),
            scale=int(setting(cfg, "scale", "ip")),
            residual=bool(setting(cfg, "residual", "ip")),
        )
    )
