"""Degradations x = degrade(y): Gaussian noise, Poisson noise, bicubic downsampling and JPEG, composed in order.

Config: a list of steps, e.g. ``[{kind: "downsample", scale: 2}, {kind: "gaussian", sigma: 0.1}]``.

- ``{kind: "gaussian", sigma, clip, seeding}``: x = y + σ·n, NOT clipped in the default config (σ = 0.3 on
  [0, 1] images then scores ≈ 11.9 dB, PSNR clamping x); ``clip: true`` clamps to [0, 1].
  ``seeding`` says where an evaluation input's noise comes from (training always draws fresh noise):
  ``data-seed`` (the default), from sample i's generator under the evaluation seed (see below);
  ``per-index``, ESTR's evaluation rule: a CPU generator seeded with i alone
  (``torch.manual_seed(i)``), ``torch.randn(C, H, W) * σ`` added to the image, so the inputs are
  ESTR's own bit for bit (given the same clean image).
- ``{kind: "poisson", peak}``: x = Poisson(y·peak) / peak (rates below 0 are taken as 0).
- ``{kind: "downsample", scale: 2 | 4, method}``: bicubic with antialiasing; H and W must be divisible
  by the scale; the output is smaller. ``method: torch`` (the default) is
  ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)`` in float, no rounding (its
  kernel, a = −0.5, is PIL's); ``method: pil`` rounds the image to 8 bits and resizes it with PIL's
  ``Image.resize(BICUBIC)``, giving an 8-bit result, as ESTR made its ×4 inputs (torchvision's
  ``Resize`` on the 224 crop). An optional ``clip: true`` (not in the TypeScript schema) clamps the
  result to [0, 1].
- ``{kind: "jpeg", quality: 1..100}``: the image (clamped to [0, 1], rounded to 8 bits) saved as a
  JPEG of that quality with PIL's defaults (4:2:0 chroma subsampling for RGB) and decoded again, as
  ESTR made its deblocking inputs (quality 10). Deterministic.

Every field but downsample's ``clip`` and ``method`` and gaussian's ``seeding`` is required: the per-kind defaults are filled in
when the config is resolved (``config.resolve``); TypeScript always sends ``method`` and ``seeding``, and a
step without them reads as before the options existed (torch, data-seed).

The "degraded input" of an evaluation is brought back to full size by :meth:`Degradation.upsample`,
bicubic by the method of the last downsampling step.

Randomness: ``__call__`` draws from the caller's generator (training). ``seeded`` gives sample i
noise that depends only on (seed, index i) — drawn on the CPU from its own generator — so every
run, batch composition and device sees the same validation and test inputs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gradprom_sidecar.training.device import to_device

_MASK64 = (1 << 64) - 1
_REQUIRED = {"gaussian": ("sigma", "clip"), "poisson": ("peak",), "downsample": ("scale",), "jpeg": ("quality",)}
_OPTIONAL = {"gaussian": ("seeding",), "poisson": (), "downsample": ("clip", "method"), "jpeg": ()}
METHODS = ("torch", "pil")
SEEDINGS = ("data-seed", "per-index")
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


def _per_image_8bit(x: torch.Tensor, fn: Callable[[Image.Image], Image.Image]) -> torch.Tensor:
    """Apply a PIL operation to each image of an N×C×H×W batch (C 1 or 3), rounded to 8 bits first; result in [0, 1]."""
    n, c = x.shape[:2]
    if c not in (1, 3):
        raise ValueError(f"8-bit (PIL) degradations need 1 or 3 channels, got {c}")
    u8 = (x.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    outs = []
    for i in range(n):
        img = Image.fromarray(u8[i, :, :, 0] if c == 1 else u8[i], "L" if c == 1 else "RGB")
        arr = np.asarray(fn(img), dtype=np.float32) / 255.0
        outs.append(torch.from_numpy(arr.reshape(arr.shape[0], arr.shape[1], c)).permute(2, 0, 1))
    return torch.stack(outs).to(x.device, x.dtype)


def pil_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL bicubic resize of each image (8-bit, antialiased when shrinking), as torchvision's ``Resize`` does.

    :param x: N×C×H×W in [0, 1], C 1 or 3.
    :param size: (height, width) wanted.
    """
    return _per_image_8bit(x, lambda img: img.resize((size[1], size[0]), Image.Resampling.BICUBIC))


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image saved as a JPEG of ``quality`` (PIL defaults) and decoded again.

    :param x: N×C×H×W in [0, 1], C 1 or 3.
    :param quality: 1 (worst) .. 100.
    """

    def round_trip(img: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as out:
            return out.convert(img.mode)

    return _per_image_8bit(x, round_trip)


@dataclass(frozen=True)
class Step:
    """One validated degradation step."""

    kind: str
    value: float  # sigma, peak, scale or quality
    clip: bool = False
    method: str = "torch"  # downsample only: torch | pil
    seeding: str = "data-seed"  # gaussian only: data-seed | per-index (evaluation inputs)

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Apply this step to an N×C×H×W batch, drawing noise from ``generator``.

        :param generator: noise source; draws happen on its device and move to ``x``'s.
        """
        if self.kind == "gaussian":
            noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
            out = x + self.value * to_device(noise, x.device)  # from a host generator: pinned, non-blocking
        elif self.kind == "poisson":
            rate = (x.clamp(min=0.0) * self.value).to(generator.device)
            out = to_device(torch.poisson(rate, generator=generator) / self.value, x.device).to(x.dtype)
        elif self.kind == "jpeg":
            out = jpeg(x, int(self.value))
        else:
            s = int(self.value)
            h, w = x.shape[-2:]
            if h % s or w % s:
                raise ValueError(f"downsample: image size {h}x{w} is not divisible by scale {s}")
            if self.method == "pil":
                out = pil_resize(x, (h // s, w // s))
            else:
                out = F.interpolate(x, size=(h // s, w // s), mode="bicubic", align_corners=False, antialias=True)
        return out.clamp(0.0, 1.0) if self.clip else out


class Degradation:
    """A composed degradation; ``scale`` is the product of the downsample factors (1 if none)."""

    def __init__(self, steps: Sequence[Step]) -> None:
        """:param steps: validated steps, applied in order."""
        self.steps = list(steps)
        self.scale = 1
        self.upsample_method = "torch"
        for s in self.steps:
            if s.kind == "downsample":
                self.scale *= int(s.value)
                self.upsample_method = s.method

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

    def upsample(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """A degraded batch brought back to ``size`` (bicubic, by the last downsampling step's method) for scoring.

        :param x: N×C×h×w degraded images.
        :param size: the clean images' (H, W).
        """
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        if self.upsample_method == "pil":
            return pil_resize(x, size)
        return F.interpolate(x, size=size, mode="bicubic", align_corners=False)

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
        own = torch.Generator(device="cpu")  # per-index steps: seeded with the index alone, as ESTR seeds its noise
        outs = []
        for row, i in enumerate(idx):
            g.manual_seed(sample_seed(seed, i))
            x = clean[row : row + 1]
            for step in self.steps:
                x = step.apply(x, own.manual_seed(i) if step.seeding == "per-index" else g)
            outs.append(x)
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
            seeding = item.get("seeding", "data-seed")
            if seeding not in SEEDINGS:
                raise ValueError(f"{at}.seeding: expected data-seed or per-index, got {seeding!r}")
            steps.append(Step(kind, _number(item["sigma"], f"{at}.sigma"), clip, seeding=seeding))
        elif kind == "poisson":
            steps.append(Step(kind, _number(item["peak"], f"{at}.peak")))
        elif kind == "jpeg":
            quality = item["quality"]
            if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
                raise ValueError(f"{at}.quality: expected an integer 1..100, got {quality!r}")
            steps.append(Step(kind, float(quality)))
        else:
            scale = item["scale"]
            if isinstance(scale, bool) or scale not in (2, 4):
                raise ValueError(f"{at}.scale: expected 2 or 4, got {scale!r}")
            method = item.get("method", "torch")
            if method not in METHODS:
                raise ValueError(f"{at}.method: expected torch or pil, got {method!r}")
            steps.append(Step(kind, float(scale), clip, method))
    return Degradation(steps)
