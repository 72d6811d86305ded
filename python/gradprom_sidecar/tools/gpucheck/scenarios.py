"""What gpu-check runs: the paper-scale scenarios (and their small ``--cpu`` twins), and the variants of each.

A scenario is a partial experiment config, resolved over the defaults as ``gradprom train`` resolves
it. A variant changes how a scenario's session computes: ``train.precision`` and
``train.channels_last`` (the GPU speed-ups, which must not change what is learnt), each measured against the fp32 row of its scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gradprom_sidecar.training.config import resolve

PAPER_SIZE, PAPER_BATCH = 224, 16  # ISIC 2018 at 224×224 RGB, the users' batch


@dataclass(frozen=True)
class Scenario:
    """One network pair on one task.

    :param name: short name (a table row).
    :param what: one line for the report.
    :param config: the partial config (data, degradation, networks, batch).
    """

    name: str
    what: str
    config: dict[str, Any]

    def resolved(self, device: str, train: dict[str, Any] | None = None) -> dict:
        """The full config, on ``device``, with ``train`` settings (a variant's) over the scenario's."""
        return resolve({**self.config, "device": device, "train": {**self.config.get("train", {}), **(train or {})}})


@dataclass(frozen=True)
class Variant:
    """A way of computing a scenario's step: ``train`` settings over the scenario's.

    :param name: short name (a table column); ``fp32`` is the baseline the others are compared with.
    :param train: ``train.precision`` and ``train.channels_last``.
    """

    name: str
    train: dict[str, Any] = field(default_factory=dict)


BASELINE = Variant("fp32", {"precision": "fp32", "channels_last": "off"})
VARIANTS = (
    BASELINE,
    Variant("fp32 channels_last", {"precision": "fp32", "channels_last": "on"}),
    Variant("bf16", {"precision": "bf16", "channels_last": "off"}),
    Variant("bf16 channels_last", {"precision": "bf16", "channels_last": "on"}),
    Variant("fp16", {"precision": "fp16", "channels_last": "off"}),
    Variant("fp16 channels_last", {"precision": "fp16", "channels_last": "on"}),
)
CPU_VARIANTS = (BASELINE, VARIANTS[2])  # --cpu checks the script: fp32 and bf16 only


def _data(size: int, channels: int) -> dict:
    return {"kind": "synthetic", "size": size, "channels": channels, "classes": 4, "counts": {"train": 64, "val": 16, "test": 16}}


def paper() -> list[Scenario]:
    """The three pairs of the paper, at 224×224 RGB, batch 16."""
    data = _data(PAPER_SIZE, 3)
    train = {"batch_size": PAPER_BATCH}
    vr50 = {"arch": "resnet50", "task": "classify", "pretrain_steps": 0}
    return [
        Scenario(
            "denoise",
            "SRResNet 64×16 + ResNet-50, Gaussian σ = 0.3",
            {"data": data, "ip": {"arch": "srresnet", "channels": 64, "blocks": 16}, "vr": vr50, "train": train},
        ),
        Scenario(
            "sr×4",
            "SRResNet ×4 (64×16) + ResNet-50, bicubic ×4",
            {
                "data": data,
                "degradation": [{"kind": "downsample", "scale": 4}],
                "ip": {"arch": "srresnet", "channels": 64, "blocks": 16, "scale": 4},
                "vr": vr50,
                "train": train,
            },
        ),
        Scenario(
            "segment",
            "UNet IP (32, 4 levels) + UNet segmenter (32, 4 levels), Gaussian σ = 0.3",
            {
                "data": data,
                "ip": {"arch": "unet", "channels": 32, "levels": 4},
                "vr": {"arch": "unet", "task": "segment", "pretrain_steps": 0, "kwargs": {"channels": 32, "depth": 4}},
                "train": train,
            },
        ),
    ]


def small() -> list[Scenario]:
    """The same three pairs at sizes a CPU runs in seconds (``--cpu``: checks the script, not the figures)."""
    data = _data(32, 3)
    train = {"batch_size": 4}
    vr = {"arch": "smallresnet", "task": "classify", "pretrain_steps": 0, "kwargs": {"widths": [8, 16]}}
    return [
        Scenario(
            "denoise",
            "SRResNet 8×2 + small ResNet, Gaussian σ = 0.3",
            {"data": data, "ip": {"channels": 8, "blocks": 2}, "vr": vr, "train": train},
        ),
        Scenario(
            "sr×4",
            "SRResNet ×4 (8×2) + small ResNet, bicubic ×4",
            {
                "data": data,
                "degradation": [{"kind": "downsample", "scale": 4}],
                "ip": {"channels": 8, "blocks": 2, "scale": 4},
                "vr": vr,
                "train": train,
            },
        ),
        Scenario(
            "segment",
            "UNet IP (8, 2 levels) + UNet segmenter (8, 2 levels)",
            {
                "data": data,
                "ip": {"arch": "unet", "channels": 8, "levels": 2},
                "vr": {"arch": "unet", "task": "segment", "pretrain_steps": 0, "kwargs": {"channels": 8, "depth": 2}},
                "train": train,
            },
        ),
    ]
