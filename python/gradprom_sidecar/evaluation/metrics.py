"""Metrics: image quality (PSNR, SSIM) per image, classification scores, segmentation Dice/IoU per image.

Everything runs under ``torch.no_grad``. Image metrics return an N-vector; classification metrics
return a Python float over the whole set.

Conventions (``eval.ssim``, ``eval.psnr`` in the config), so numbers can be compared with papers
that used others:

- SSIM ``skimage`` (default): see :data:`SSIM_CONVENTION`. ``pytorch_ssim``: the convention of the
  ``pytorch_ssim`` package ESTR bundles: the same 11×11 Gaussian window (σ 1.5) and constants, but
  zero padding (every pixel kept, windows at the border see zeros) and the mean over the whole map.
  On one image pair the two can differ by several hundredths.
- PSNR ``image`` (default): the mean over images of 10·log10(range² / MSE). ``batch``: ESTR's
  10·log10(range² / (MSE of the batch + 1e-9)) per batch of ``eval.batch_size`` consecutive images,
  averaged over batches weighted by their size (:func:`psnr_from_mse`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SSIM_CONVENTION = (
    "SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5 (truncated at 3.5 sigma), K1=0.01, "
    "K2=0.03, population covariance, mean over the valid region (5 px border cropped), per channel "
    "then averaged; x clamped to [0, data_range]; matches skimage structural_similarity("
    "gaussian_weights=True, sigma=1.5, use_sample_covariance=False)"
)


SSIM_CONVENTIONS = {
    "skimage": SSIM_CONVENTION,
    "pytorch_ssim": (
        "SSIM as pytorch_ssim computes it (ESTR's): 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, "
        "zero padding (same-size map), mean over the whole map (channels and pixels); x clamped to [0, data_range]"
    ),
}
PSNR_CONVENTIONS = {
    "image": "PSNR per image, 10*log10(range^2/MSE), averaged over images",
    "batch": (
        "PSNR per batch of eval.batch_size consecutive images, 10*log10(range^2/(batch MSE + 1e-9)), "
        "averaged over batches weighted by their size (ESTR's)"
    ),
}


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two N×C×H×W tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")


@torch.no_grad()
def mse(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean squared error per image (float64), ``x`` clamped to [0, data_range] first.

    :param x: N×C×H×W estimate.
    :param y: N×C×H×W reference.
    :param data_range: the value range (1.0 for [0, 1] images).
    """
    _check_pair(x, y)
    return (x.clamp(0.0, data_range).double() - y.double()).pow(2).mean(dim=(1, 2, 3))


@torch.no_grad()
def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image: 10·log10(range² / MSE).

    ``x`` (the estimate) is clamped to [0, data_range] first, as it would be when saved or shown;
    ``y`` is the reference. Identical images give +inf.

    :param x: N×C×H×W estimate.
    :param y: N×C×H×W reference.
    :param data_range: the value range (1.0 for [0, 1] images).
    """
    return (10.0 * torch.log10(data_range**2 / mse(x, y, data_range))).float()


def psnr_from_mse(per_image_mse: torch.Tensor, convention: str, batch_size: int, data_range: float = 1.0) -> float:
    """One PSNR for a set, from its per-image MSEs, by :data:`PSNR_CONVENTIONS` (NaN for an empty set).

    :param per_image_mse: N MSEs, in image order.
    :param convention: ``"image"`` (mean of per-image PSNRs; a perfect image gives +inf) or
        ``"batch"`` (ESTR's: per consecutive batch of ``batch_size``, weighted by batch size).
    :param batch_size: images per batch (``eval.batch_size``), for ``"batch"``.
    :param data_range: the value range.
    """
    m = per_image_mse.double().cpu()
    if not m.numel():
        return math.nan
    if convention == "image":
        return float((10.0 * torch.log10(data_range**2 / m)).mean())
    if convention != "batch":
        raise ValueError(f"PSNR convention: expected one of {', '.join(PSNR_CONVENTIONS)}, got {convention!r}")
    total = 0.0
    for start in range(0, m.numel(), batch_size):
        part = m[start : start + batch_size]
        total += len(part) * 10.0 * math.log10(data_range**2 / (float(part.mean()) + 1e-9))
    return total / m.numel()


def _gaussian_window(sigma: float = 1.5, radius: int = 5, device: torch.device | None = None) -> torch.Tensor:
    """The normalised 1-D Gaussian taps, radius = int(3.5σ + 0.5) = 5 as in scipy's gaussian_filter."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    w = torch.exp(-(t**2) / (2 * sigma**2))
    return w / w.sum()


@torch.no_grad()
def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, convention: str = "skimage") -> torch.Tensor:
    """SSIM per image (see :data:`SSIM_CONVENTIONS`).

    ``skimage``: filtering with a valid (unpadded) separable convolution equals skimage's
    reflect-padded filtering followed by its crop of (11 - 1) // 2 = 5 border pixels: every kept
    pixel's window lies inside the image. ``pytorch_ssim``: the same window with 5 pixels of zero
    padding, every pixel kept. Computed in float64 so the variance terms do not cancel badly.

    :param x: N×C×H×W estimate (clamped to [0, data_range]).
    :param y: N×C×H×W reference.
    :param data_range: the value range.
    :param convention: ``"skimage"`` or ``"pytorch_ssim"``.
    :raises ValueError: an unknown convention, or images smaller than 11×11 under ``skimage``.
    """
    _check_pair(x, y)
    if convention not in SSIM_CONVENTIONS:
        raise ValueError(f"SSIM convention: expected one of {', '.join(SSIM_CONVENTIONS)}, got {convention!r}")
    n, c, h, w = x.shape
    if convention == "skimage" and (h < 11 or w < 11):
        raise ValueError(f"ssim: images must be at least 11x11, got {h}x{w}")
    dtype = torch.float32 if x.device.type == "mps" else torch.float64
    taps = [float(t) for t in _gaussian_window()]
    pad = 5 if convention == "pytorch_ssim" else 0

    def along(z: torch.Tensor, dim: int) -> torch.Tensor:
        # The 11 taps as shifted multiply-adds: on the CPU, conv2d in float64 unfolds each image 11 times over (slow, and
        # hundreds of MB a batch at 224 px); this reads each value 11 times in place.
        if pad:
            z = F.pad(z, (pad, pad) if dim == -1 else (0, 0, pad, pad))  # zero padding to full size
        out = z.size(dim) - 10
        acc = z.narrow(dim, 0, out) * taps[0]
        for k in range(1, 11):
            acc.add_(z.narrow(dim, k, out), alpha=taps[k])
        return acc

    def filt(z: torch.Tensor) -> torch.Tensor:
        return along(along(z, -2), -1)  # valid region, or zero-padded to full size

    a = x.clamp(0.0, data_range).to(dtype).reshape(n * c, 1, h, w)
    b = y.to(dtype).reshape(n * c, 1, h, w)
    ux, uy = filt(a), filt(b)
    vx = filt(a * a) - ux * ux
    vy = filt(b * b) - uy * uy
    vxy = filt(a * b) - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).view(n, c).mean(dim=1).float()


@torch.no_grad()
def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per sample, whether the label is among the ``k`` highest scores (a bool N-vector).

    :param logits: N×K scores, K >= k.
    :param labels: N class indices.
    :param k: how many of the best scores count.
    """
    top = logits.topk(k, dim=1).indices
    return (top == labels.to(top.device).view(-1, 1)).any(dim=1)


def _pred(logits_or_pred: torch.Tensor) -> torch.Tensor:
    """Class predictions from N×K scores (argmax) or N indices."""
    return logits_or_pred.argmax(dim=1) if logits_or_pred.dim() == 2 else logits_or_pred.long()


@torch.no_grad()
def accuracy(logits_or_pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of correct predictions.

    :param logits_or_pred: N×K scores or N class indices.
    :param labels: N class indices.
    """
    pred = _pred(logits_or_pred)
    return float((pred == labels).float().mean()) if labels.numel() else math.nan


def _confusion(pred: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """K×K counts, rows = true class, columns = predicted class."""
    return torch.bincount(labels * k + pred, minlength=k * k).view(k, k).double()


@torch.no_grad()
def balanced_accuracy(logits_or_pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean per-class recall over the classes present in ``labels``.

    :param logits_or_pred: N×K scores or N class indices.
    :param labels: N class indices.
    """
    pred, labels = _pred(logits_or_pred).cpu(), labels.long().cpu()
    if not labels.numel():
        return math.nan
    k = int(max(pred.max(), labels.max())) + 1
    cm = _confusion(pred, labels, k)
    support = cm.sum(1)
    present = support > 0
    return float((cm.diag()[present] / support[present]).mean())


@torch.no_grad()
def macro_f1(logits_or_pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Unweighted mean F1 over the classes present in ``labels`` or in the predictions.

    A class that is predicted but never true has F1 = 0 and counts (as in scikit-learn's default).

    :param logits_or_pred: N×K scores or N class indices.
    :param labels: N class indices.
    """
    pred, labels = _pred(logits_or_pred).cpu(), labels.long().cpu()
    if not labels.numel():
        return math.nan
    k = int(max(pred.max(), labels.max())) + 1
    cm = _confusion(pred, labels, k)
    tp, support, predicted = cm.diag(), cm.sum(1), cm.sum(0)
    present = (support + predicted) > 0
    f1 = 2 * tp / (support + predicted).clamp(min=1)
    return float(f1[present].mean())


def _average_ranks(scores: torch.Tensor) -> torch.Tensor:
    """1-based ranks of ``scores`` with ties given their average rank."""
    sorted_s, order = torch.sort(scores)
    _, inverse, counts = torch.unique_consecutive(sorted_s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1) / 2  # mean of ranks (end - count + 1) .. end
    ranks = torch.empty(scores.shape, dtype=torch.float64)
    ranks[order] = avg[inverse]
    return ranks


@torch.no_grad()
def auc_ovr(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """One-vs-rest macro ROC AUC via the rank statistic (Mann-Whitney U), ties counted half.

    AUC_c = (sum of positives' ranks − P(P+1)/2) / (P·Q) with average ranks for ties. Classes with no
    positive (absent from ``labels``) or no negative sample are skipped; the result is the mean over
    the rest, or NaN when none is left.

    :param probs: N×K scores (probabilities or any per-class score).
    :param labels: N class indices.
    """
    probs, labels = probs.double().cpu(), labels.long().cpu()
    aucs = []
    for c in range(probs.shape[1]):
        pos = labels == c
        p, q = int(pos.sum()), int((~pos).sum())
        if p == 0 or q == 0:
            continue
        ranks = _average_ranks(probs[:, c])
        aucs.append((float(ranks[pos].sum()) - p * (p + 1) / 2) / (p * q))
    return sum(aucs) / len(aucs) if aucs else math.nan


def _overlap(pred_mask: torch.Tensor, true_mask: torch.Tensor, num_classes: int, iou: bool) -> torch.Tensor:
    if pred_mask.dim() == 4:
        pred_mask = pred_mask.argmax(dim=1)
    if pred_mask.shape != true_mask.shape or pred_mask.dim() != 3:
        raise ValueError(f"expected N×H×W masks of one shape, got {tuple(pred_mask.shape)} and {tuple(true_mask.shape)}")
    if num_classes < 2:
        raise ValueError(f"num_classes: expected >= 2 (background plus foreground), got {num_classes}")
    scores = []
    for c in range(1, num_classes):
        p, t = pred_mask == c, true_mask == c
        inter = (p & t).sum(dim=(1, 2)).double()
        sp, st = p.sum(dim=(1, 2)).double(), t.sum(dim=(1, 2)).double()
        denom = (sp + st - inter) if iou else (sp + st)
        num = inter if iou else 2 * inter
        # Both empty: nothing to find and nothing found, a perfect score by convention.
        scores.append(torch.where(denom > 0, num / denom.clamp(min=1), torch.ones_like(denom)))
    return torch.stack(scores, dim=1).mean(dim=1).float()


@torch.no_grad()
def dice(pred_mask: torch.Tensor, true_mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Dice per image, averaged over the foreground classes 1..K-1.

    For a class empty in both prediction and truth the score is 1.0; empty in only one, 0.0.

    :param pred_mask: N×H×W class indices, or N×K×H×W scores (argmax taken).
    :param true_mask: N×H×W class indices.
    :param num_classes: K, including background (2 for binary).
    """
    return _overlap(pred_mask, true_mask, num_classes, iou=False)


@torch.no_grad()
def iou(pred_mask: torch.Tensor, true_mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Intersection over union (Jaccard) per image, averaged over the foreground classes 1..K-1.

    Empty-mask convention as in :func:`dice`.

    :param pred_mask: N×H×W class indices, or N×K×H×W scores (argmax taken).
    :param true_mask: N×H×W class indices.
    :param num_classes: K, including background.
    """
    return _overlap(pred_mask, true_mask, num_classes, iou=True)
