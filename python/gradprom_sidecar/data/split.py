"""Splitting a data set by seed: the ``data.split`` fractions and the seeded, stratified splitter.

Both the image kinds (``data``) and the volume kinds (``volume``, split by subject) use them.
"""

from __future__ import annotations

import torch

from gradprom_sidecar.data.base import SPLITS
from gradprom_sidecar.data.synthetic import derive_seed
from gradprom_sidecar.training.config import setting


def split_fractions(cfg: dict) -> dict[str, float]:
    """The ``data.split`` fractions {train, val, test}, checked: each >= 0, summing to 1."""
    frac = setting(cfg, "split", "data")
    if not isinstance(frac, dict) or set(frac) != set(SPLITS) or any(not isinstance(v, (int, float)) or v < 0 for v in frac.values()):
        raise ValueError(f"data.split: expected {{train, val, test}} fractions >= 0, got {frac!r}")
    if abs(sum(frac.values()) - 1.0) > 1e-6:
        raise ValueError(f"data.split: fractions must sum to 1, got {sum(frac.values()):.6g}")
    return {k: float(v) for k, v in frac.items()}


def split_indices(n: int, labels: torch.Tensor | None, fractions: dict[str, float], seed: int) -> dict[str, torch.Tensor]:
    """Seeded, stratified assignment of ``n`` samples to train/val/test (sorted index tensors).

    Sizes are ``round(n × fraction)`` for val and test (at least 1 each when its fraction is > 0
    and ``n`` allows), train takes the rest. Stratification: each sample gets the key
    (rank within its class in a random order + 0.5) / class size, and samples are dealt out in key
    order, so every class is spread over the splits in about the split's proportions.

    :param n: number of samples.
    :param labels: N class indices to stratify by, or None.
    :param fractions: {train, val, test}, summing to 1.
    :param seed: the experiment seed.
    """
    g = torch.Generator().manual_seed(derive_seed(seed, "split"))
    perm = torch.randperm(n, generator=g)
    key = torch.empty(n, dtype=torch.float64)
    groups = labels[perm] if labels is not None else torch.zeros(n, dtype=torch.long)
    for c in torch.unique(groups):
        pos = (groups == c).nonzero().flatten()
        key[pos] = (torch.arange(len(pos), dtype=torch.float64) + 0.5) / len(pos)
    order = perm[torch.sort(key, stable=True).indices]
    sizes = {k: round(n * fractions[k]) for k in ("val", "test")}
    for k in ("val", "test"):
        if fractions[k] > 0 and sizes[k] == 0 and n >= 3:
            sizes[k] = 1
    sizes["train"] = n - sizes["val"] - sizes["test"]
    if sizes["train"] < 0:
        raise ValueError(f"data.split: {n} samples cannot be split as {fractions}")
    out, start = {}, 0
    for k in SPLITS:
        out[k] = torch.sort(order[start : start + sizes[k]]).values
        start += sizes[k]
    return out
