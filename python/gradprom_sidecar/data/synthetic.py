"""The built-in data set: seeded lesion-like images whose class is a fine texture inside the lesion.

Each image is a soft-edged ellipse ("lesion") on a shaded background. Position, size, rotation,
background level and linear gradient, and lesion contrast are drawn independently of the class, so
the only class signal is the texture inside the lesion (amplitude 0.12-0.2, period 3.5-5 px, random
phase, orientation jitter of ±0.25 rad) — the kind of detail that noise destroys and a plain MSE
denoiser smooths away. The mask is the ellipse (1 inside, 0 outside).

Classes, in order: 0 smooth, 1 horizontal stripes, 2 vertical stripes, 3 dots, 4 diagonal stripes
(/), 5 diagonal stripes (\\), 6 checker; classes 7 and up repeat families 1-6 at a coarser period
(×1.6 per round: 5.6-8 px, then 9-12.8 px, ...), so any K >= 2 is supported and the first four are
always the calibrated set.
"""

from __future__ import annotations

import hashlib
import math

import torch

from gradprom_sidecar.data.base import Split

# Texture families: (kind, stripe angle of the wave vector in radians).
_FAMILIES: list[tuple[str, float]] = [
    ("smooth", 0.0),
    ("stripes", math.pi / 2),  # horizontal lines: intensity varies along y
    ("stripes", 0.0),  # vertical lines: intensity varies along x
    ("dots", 0.0),
    ("stripes", math.pi / 4),
    ("stripes", 3 * math.pi / 4),
    ("checker", 0.0),
]
_KIND_CODE = {"smooth": 0, "stripes": 1, "dots": 2, "checker": 3}
_NAMES = ["smooth", "h-stripes", "v-stripes", "dots", "diag-stripes", "antidiag-stripes", "checker"]


def class_table(classes: int) -> list[tuple[str, float, float, str]]:
    """(kind, wave angle, period multiplier, name) for each of ``classes`` classes.

    :param classes: K >= 2.
    """
    out = []
    for k in range(classes):
        if k < len(_FAMILIES):
            kind, angle = _FAMILIES[k]
            out.append((kind, angle, 1.0, _NAMES[k]))
        else:
            j = k - len(_FAMILIES)
            fam, rnd = 1 + j % 6, 1 + j // 6
            kind, angle = _FAMILIES[fam]
            out.append((kind, angle, 1.6**rnd, f"{_NAMES[fam]}-x{rnd + 1}"))
    return out


def class_names(classes: int) -> list[str]:
    """The class names for K classes.

    :param classes: K >= 2.
    """
    return [row[3] for row in class_table(classes)]


def derive_seed(seed: int, tag: str) -> int:
    """A 63-bit seed from (seed, tag); distinct tags give unrelated streams.

    :param seed: the experiment seed.
    :param tag: e.g. "train", "val", "test".
    """
    digest = hashlib.sha256(f"gradprom-synthetic:{seed}:{tag}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _u(col: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Map U(0,1) draws to U(lo, hi), shaped N×1×1 for broadcasting over pixels."""
    return (lo + (hi - lo) * col).view(-1, 1, 1)


def generate(n: int, size: int, channels: int, classes: int, seed: int, start: int = 0) -> Split:
    """Generate ``n`` balanced, seeded samples (same arguments give identical bytes).

    :param n: number of samples.
    :param size: image side in px.
    :param channels: 1 (gray) or 3 (RGB: random tints of lesion and background; the texture is
        added equally to every channel so it stays class-defining).
    :param classes: K >= 2.
    :param seed: the stream's seed (use :func:`derive_seed` per split).
    :param start: first index used in the sample names ("synthetic-000123").
    """
    g = torch.Generator().manual_seed(seed)
    # Balanced labels, in random order.
    labels = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    p = torch.rand(n, 13, generator=g)
    tints = torch.rand(n, 6, generator=g)

    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    xs, ys = xs[None], ys[None]  # 1×S×S

    # Lesion geometry (independent of the class).
    cx, cy = _u(p[:, 0], 0.35, 0.65) * size, _u(p[:, 1], 0.35, 0.65) * size
    a = _u(p[:, 2], 0.20, 0.34) * size
    b = a * _u(p[:, 3], 0.6, 1.0)
    theta = _u(p[:, 4], 0.0, math.pi)
    dx, dy = xs - cx, ys - cy
    u = dx * torch.cos(theta) + dy * torch.sin(theta)
    v = -dx * torch.sin(theta) + dy * torch.cos(theta)
    r = torch.sqrt((u / a) ** 2 + (v / b) ** 2)
    edge = _u(p[:, 5], 0.6, 1.2)  # soft edge width, px
    alpha = torch.sigmoid((1.0 - r) * torch.sqrt(a * b) / edge)
    masks = (r < 1.0).to(torch.uint8)

    # Background: level plus a linear gradient; lesion: darker by a random contrast.
    level = _u(p[:, 6], 0.6, 0.9)
    gx, gy = _u(p[:, 7], -0.2, 0.2), _u(p[:, 8], -0.2, 0.2)
    bg = level + gx * (xs / size - 0.5) + gy * (ys / size - 0.5)
    contrast = _u(p[:, 9], 0.15, 0.35)

    # Texture: the class. Coordinates are image axes (not lesion axes) rotated by a small jitter,
    # so "horizontal" means horizontal in the image whatever the lesion's rotation.
    table = class_table(classes)
    kind = torch.tensor([_KIND_CODE[row[0]] for row in table])[labels].view(-1, 1, 1)
    angle = torch.tensor([row[1] for row in table])[labels].view(-1, 1, 1)
    period = torch.tensor([row[2] for row in table])[labels].view(-1, 1, 1) * _u(p[:, 10], 3.5, 5.0)
    amp = _u(p[:, 11], 0.12, 0.2)
    jitter = _u(p[:, 12], -0.25, 0.25)
    phase = torch.rand(n, 2, generator=g) * (2 * math.pi)
    ph1, ph2 = phase[:, :1, None], phase[:, 1:, None]
    k = 2 * math.pi / period
    xr = dx * torch.cos(jitter) + dy * torch.sin(jitter)
    yr = -dx * torch.sin(jitter) + dy * torch.cos(jitter)
    gamma = angle + jitter
    stripes = torch.cos(k * (dx * torch.cos(gamma) + dy * torch.sin(gamma)) + ph1)
    ca, cb = torch.cos(k * xr + ph1), torch.cos(k * yr + ph2)
    dots = 2 * ((1 + ca) * (1 + cb) / 4) - 0.5  # peaks on a lattice; zero mean, peak-to-peak 2
    checker = ca * cb
    texture = torch.where(kind == 1, stripes, torch.where(kind == 2, dots, torch.where(kind == 3, checker, 0.0)))
    texture = amp * texture

    if channels == 1:
        img = (bg + alpha * (texture - contrast))[:, None]
    else:
        bg_tint = (0.75 + 0.4 * tints[:, :3]).view(-1, 3, 1, 1)
        lesion_tint = (0.6 + 0.8 * tints[:, 3:]).view(-1, 3, 1, 1)
        img = bg[:, None] * bg_tint + alpha[:, None] * (texture[:, None] - contrast[:, None] * lesion_tint)
    images = img.clamp_(0.0, 1.0).contiguous()
    names = [f"synthetic-{start + i:06d}" for i in range(n)]
    return Split(images=images, labels=labels.long(), masks=masks, names=names)
