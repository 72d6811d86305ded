"""What the torchvision-compatible classifiers share: the input adapter, their settings, and loading ImageNet weights.

The classifiers (:mod:`.resnet`, :mod:`.densenet`, :mod:`.vgg`) mirror torchvision's module trees, so
a published torchvision checkpoint loads with no name mapping. Input handling (channel replication,
normalisation) lives in :class:`InputAdapter`, whose buffers are non-persistent so it adds no
state_dict keys. Each classifier class names its first conv and its head (``FIRST_CONV``,
``HEAD``), which is all :func:`load_torchvision` needs to fit ImageNet weights to another class
count or to one input channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from gradprom_sidecar.training.config import setting

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_CHANNELS = 3  # first-conv input channels of torchvision's (ImageNet) weights


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


@dataclass
class ImageNetConfig:
    """Settings every torchvision-compatible classifier takes.

    :param in_channels: channels of the incoming image (1 or 3).
    :param num_classes: outputs of the head.
    :param weights_channels: input channels of the first conv (3 so ImageNet weights fit).
    :param normalize: ``"imagenet"`` or ``"none"``.
    """

    in_channels: int = 3
    num_classes: int = 1000
    weights_channels: int = TORCHVISION_CHANNELS
    normalize: str = "imagenet"


def imagenet_config(cfg: dict, in_channels: int, num_classes: int) -> ImageNetConfig:
    """The shared settings from the VR section (``weights_channels``, ``normalize``, both required).

    ``weights_channels`` null means the torchvision layout, a 3-channel first conv (ImageNet weights fit it).

    :param cfg: the VR section of the config.
    :param in_channels: channels of the images it will read.
    :param num_classes: number of classes.
    """
    channels = setting(cfg, "weights_channels", "vr")
    return ImageNetConfig(
        in_channels=in_channels,
        num_classes=num_classes,
        weights_channels=TORCHVISION_CHANNELS if channels is None else int(channels),
        normalize=str(setting(cfg, "normalize", "vr")),
    )


class TorchvisionClassifier(nn.Module):
    """Base of the torchvision-compatible classifiers: where the first conv and the head are, by state-dict name."""

    FIRST_CONV: ClassVar[str]
    HEAD: ClassVar[tuple[str, ...]]
    arch: str

    @staticmethod
    def upgrade_keys(sd: dict[str, Tensor]) -> dict[str, Tensor]:
        """Rename keys of older torchvision checkpoints to today's names (none by default).

        :param sd: the file's state dict.
        """
        return sd


# torchvision's first DenseNet checkpoints name a layer's parts "norm.1", "conv.2", ...; today's are "norm1", "conv2".
_OLD_DENSE_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12])\.(weight|bias|running_mean|running_var)$")


def upgrade_dense_keys(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """``…denselayerN.norm.1.weight`` → ``…denselayerN.norm1.weight`` (the names torchvision's ImageNet DenseNet files use).

    :param sd: the file's state dict.
    """
    return {_OLD_DENSE_KEY.sub(r"\1\2.\3", k): v for k, v in sd.items()}


def load_torchvision(model: TorchvisionClassifier, path: str | Path, part: str | None = None) -> list[str]:
    """Load torchvision ImageNet weights, keeping our head when the class count differs.

    Names already match (after :meth:`TorchvisionClassifier.upgrade_keys`), so no other mapping is
    needed; two shapes may legitimately differ: the head (another class count) is left at its
    initialisation, and a 3-channel first conv is summed over its input channels for a 1-channel
    conv (equivalent on gray images replicated to 3 channels).

    :param model: the network to fill.
    :param path: a torchvision checkpoint (.pth / .safetensors), or any file :func:`..checkpoint.read_state_dict` reads.
    :param part: the sub-network to take from a run checkpoint, e.g. ``"vr"``.
    :returns: the names left at their initialisation.
    """
    from gradprom_sidecar.models.checkpoint import CheckpointError, read_state_dict

    sd = model.upgrade_keys(read_state_dict(path, part=part))
    own = model.state_dict()
    skipped: list[str] = []
    w = sd.get(model.FIRST_CONV)
    if w is not None and w.dim() == 4 and w.shape[1] == 3 and own[model.FIRST_CONV].shape[1] == 1:
        sd[model.FIRST_CONV] = w.sum(dim=1, keepdim=True)
    for name in model.HEAD:
        if name in sd and sd[name].shape != own[name].shape:
            del sd[name]
            skipped.append(name)
    mismatched = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    if mismatched:
        raise CheckpointError(f"{path}: not a torchvision {model.arch} checkpoint: shapes differ for {mismatched[:10]}")
    result = model.load_state_dict(sd, strict=False)
    problems = [k for k in result.missing_keys if k not in skipped] + list(result.unexpected_keys)
    if problems:
        raise CheckpointError(f"{path}: not a torchvision {model.arch} checkpoint: {problems[:10]}")
    return skipped
