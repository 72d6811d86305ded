"""DnCNN (Zhang et al. 2017) denoiser: residual noise prediction, output = x − noise.

Scale must be 1: DnCNN has no upsampling path, and silently bicubic-upsampling
the input would make a "DnCNN super-resolver" that is really bicubic plus a
denoiser, so a scale other than 1 is a ValueError (use srresnet or unet).
The output is not clamped (gradients at the ends of [0,1]; metrics clamp).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from gradprom_sidecar.training.config import setting


@dataclass
class DnCNNConfig:
    """Settings of :class:`DnCNN`.

    :param in_channels: image channels (1 or 3).
    :param depth: number of conv layers (first + middle + last).
    :param channels: feature width.
    :param batch_norm: BatchNorm in the middle layers.
    """

    in_channels: int = 1
    depth: int = 17
    channels: int = 64
    batch_norm: bool = True


class DnCNN(nn.Module):
    """Noisy N×C×H×W image → denoised N×C×H×W image."""

    def __init__(self, cfg: DnCNNConfig) -> None:
        super().__init__()
        if cfg.depth < 2:
            raise ValueError(f"dncnn depth must be at least 2, got {cfg.depth}")
        self.config = cfg
        c = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, c, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(cfg.depth - 2):
            layers += [nn.Conv2d(c, c, 3, 1, 1, bias=not cfg.batch_norm)]
            if cfg.batch_norm:
                layers += [nn.BatchNorm2d(c)]
            layers += [nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(c, cfg.in_channels, 3, 1, 1)]
        self.layers = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # Start near the identity: the predicted noise begins small.
        last = self.layers[-1]
        assert isinstance(last, nn.Conv2d)
        last.weight.data.mul_(0.1)

    def forward(self, x: Tensor) -> Tensor:
        return x - self.layers(x)  # N×C×H×W − predicted noise N×C×H×W


def build(cfg: dict) -> DnCNN:
    """Make a :class:`DnCNN` from the IP section of the config.

    :param cfg: keys ``in_channels``, ``scale`` (must be 1), ``depth``, ``channels``, ``batch_norm``, all required.
    """
    scale = int(setting(cfg, "scale", "ip"))
    if scale != 1:
        raise ValueError(f"dncnn only denoises (scale 1), got scale {scale}; use srresnet or unet for super-resolution")
    return DnCNN(
        DnCNNConfig(
            in_channels=int(setting(cfg, "in_channels", "ip")),
            depth=int(setting(cfg, "depth", "ip")),
            channels=int(setting(cfg, "channels", "ip")),
            batch_norm=bool(setting(cfg, "batch_norm", "ip")),
        )
    )
