"""Degradations x = degrade(y): Gaussian noise, Poisson noise and bicubic downsampling, composed in order.

Config: a list of steps, e.g. ``[{kind: "downsample", scale: 2}, {kind: "gaussian", sigma: 0.1}]``.

- ``{kind: "gaussian", sigma, clip}``: x = y + σ·n, NOT clipped in the default config (σ = 0.3 on
  [0, 1] images then scores ≈ 11.9 dB, PSNR clamping x); ``clip: true`` clamps to [0, 1].
- ``{kind: "poisson", peak}``: x = Poisson(y·peak) / peak (rates below 0 are taken as 0).
- ``{kind: "downsample", scale: 2 | 4}``: bicubic with antialiasing (``torch.nn.functional.interpolate``);
  H and W must be divisible by the scale; the output is smaller. An optional ``clip: true`` (not in
  the TypeScript schema) clamps it to [0, 1].

Every field but downsample's ``clip`` is required: the per-kind defaults are filled in when the
config is resolved (``config.resolve``).

Randomness: ``__call__`` draws from the caller's generator (training). ``seeded`` gives sample i
noise that depends only on (seed, index i) — drawn on the CPU from its own generator — so every
run, batch composition and device sees the same validation and test inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_MASK64 = (1 << 64) - 1
_REQUIRED = {"gaussian": ("sigma", "clip"), "poisson": ("peak",), "downsample": ("scale",)}
_OPTIONAL = {"gaussian": (), "poisson": (), "downsample": ("clip",)}
_FIELDS = {k: {"kind", *_REQUIRED[k], *_OPTIONAL[k]} for k in _REQUIRED}


def _splitmix64(x: int) -> int:
    """One round of SplitMix64: a well-mixed 64-bit value from ``x`` (for per-sample seeds)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_seed(seed: int, index: int) -> int:
    """The generator seed of sample ``index`` under ``seed`` (63 bits, for ``manual_seed``).

    :param seed: the evaluation seed.
    :param index: the sample's index in its split.
    """
    return _splitmix64(_splitmix64(seed & _MASK64) ^ (index & _MASK64)) >> 1


@dataclass(frozen=True)
class Step:
    """One validated degradation step."""

    kind: str
    value: float  # sigma, peak or scale
    clip: bool = False

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Apply this step to an N×C×H×W batch, drawing noise from ``generator``.

        :param x: the batch.
        :param generator: noise source; draws happen on its device and move to ``x``'s.
        """
        if self.kind == "gaussian":
            noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
            out = x + self.value * noise.to(x.device)
        elif self.kind == "poisson":
            rate = (x.clamp(min=0.0) * self.value).to(generator.device)
            out = (torch.poisson(rate, generator=generator) / self.value).to(x.device, x.dtype)
        else:
            s = int(self.value)
            h, w = x.shape[-2:]
            if h % s or w % s:
                raise ValueError(f"downsample: image size {h}x{w} is not divisible by scale {s}")
            out = F.interpolate(x, size=(h // s, w // s), mode="bicubic", align_corners=False, antialias=True)
        return out.clamp(0.0, 1.0) if self.clip else out


class Degradation:
    """A composed degradation; ``scale`` is the product of the downsample factors (1 if none)."""

    def __init__(self, steps: Sequence[Step]) -> None:
        """:param steps: validated steps, applied in order."""
        self.steps = list(steps)
        self.scale = 1
        for s in self.steps:
            if s.kind == "downsample":
                self.scale *= int(s.value)

    def __repr__(self) -> str:
        return f"Degradation({self.steps!r})"

    def __call__(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Degrade a batch with fresh randomness (training).

        :param clean: N×C×H×W in [0, 1].
        :param generator: the training generator.
        """
        x = clean
        for step in self.steps:
            x = step.apply(x, generator)
        return x

    def seeded(self, clean: torch.Tensor, indices: Sequence[int], seed: int) -> torch.Tensor:
        """Degrade a batch so that sample i's randomness depends only on (seed, indices[i]).

        :param clean: N×C×H×W in [0, 1].
        :param indices: each sample's index in its split (N of them).
        :param seed: the evaluation seed.
        """
        idx = [int(i) for i in indices]
        if len(idx) != clean.shape[0]:
            raise ValueError(f"seeded: {len(idx)} indices for a batch of {clean.shape[0]}")
        if not self.steps or clean.shape[0] == 0:
            return clean
        g = torch.Generator(device="cpu")
        outs = []
        for row, i in enumerate(idx):
            g.manual_seed(sample_seed(seed, i))
            outs.append(self(clean[row : row + 1], g))
        return torch.cat(outs)


def _number(value: object, where: str, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{where}: must be > 0")
    return float(value)


def build_degradation(cfg: list[dict] | None) -> Degradation:
    """Validate a degradation list and build it.

    :param cfg: the steps (an empty list or None is the identity).
    :raises ValueError: naming the index and field, e.g. ``degradation[1].sigma: must be > 0``.
    """
    if cfg is None:
        return Degradation([])
    if not isinstance(cfg, (list, tuple)):
        raise ValueError(f"degradation: expected a list of steps, got {type(cfg).__name__}")
    steps = []
    for i, item in enumerate(cfg):
        at = f"degradation[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{at}: expected an object with a kind, got {item!r}")
        kind = item.get("kind")
        if kind not in _FIELDS:
            raise ValueError(f"{at}.kind: expected one of {', '.join(_FIELDS)}, got {kind!r}")
        unknown = sorted(set(item) - _FIELDS[kind])
        if unknown:
            raise ValueError(f"{at}.{unknown[0]}: unknown field for kind {kind!r}")
        for name in _REQUIRED[kind]:
            if name not in item:
                raise ValueError(f"{at}.{name}: required")
        clip = item.get("clip", False)  # required for gaussian (checked above); downsample's optional extra
        if not isinstance(clip, bool):
            raise ValueError(f"{at}.clip: expected true or false, got {clip!r}")
        if kind == "gaussian":
            steps.append(Step(kind, _number(item["sigma"], f"{at}.sigma"), clip))
        elif kind == "poisson":
            steps.append(Step(kind, _number(item["peak"], f"{at}.peak")))
        else:
            scale = item["scale"]
            if isinstance(scale, bool) or scale not in (2, 4):
                raise ValueError(f"{at}.scale: expected 2 or 4, got {scale!r}")
            steps.append(Step(kind, float(scale), clip))
    return Degradation(steps)
