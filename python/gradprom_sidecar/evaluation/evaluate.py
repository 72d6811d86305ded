"""Scoring a session on a split: image quality and recognition, the one evaluation path.

The ``eval`` op and the reference loop score everything (:data:`ALL_PAIRS`); VR pre-training
scores its fixed VR on clean validation images through the same code (``pairs`` =
``(("fixed", "clean"),)``), so the two numbers cannot drift apart.

Inputs are degraded per sample with seed ``data.seed + EVAL_SEED_OFFSET`` (``Degradation.seeded``),
never from the training generator: every run sees the same test set, and results do not depend on
how often one evaluates; the session's ``data.feed.Feed`` makes them once and keeps them. With
several ranks, each scores a contiguous share of the images (``Session.eval_range``) and the
per-image values are gathered before the means are taken.

``gradprom eval`` scores a file-based split without holding it: the ``eval.weights`` op gives a
session that holds no images and a streamed ``source`` (``streaming.open_source``), read batch by batch
and degraded exactly as the feed degrades held images, so the numbers are the same either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gradprom_sidecar.data.feed import EVAL_SEED_OFFSET as EVAL_SEED_OFFSET  # defined beside the Feed that uses it
from gradprom_sidecar.data.storage import to_unit
from gradprom_sidecar.evaluation import metrics as M
from gradprom_sidecar.evaluation.per_image import per_image_results
from gradprom_sidecar.evaluation.streaming import Progress, Source
from gradprom_sidecar.training.config import setting
from gradprom_sidecar.training.device import device_name, peak_memory_mb

if TYPE_CHECKING:
    from gradprom_sidecar.training.session import Session

# (which VR, which image): the fixed VR (trained on clean images, then frozen) and the co-trained VR,
# reading the clean image, the degraded input (upsampled to full size) or IP's output.
ALL_PAIRS = (("fixed", "clean"), ("fixed", "degraded"), ("fixed", "enhanced"), ("cotrained", "clean"), ("cotrained", "enhanced"))


@torch.no_grad()
def evaluate(
    s: Session,
    split_name: str,
    limit: int | None = None,
    pairs: tuple[tuple[str, str], ...] = ALL_PAIRS,
    per_image_out: dict[str, Tensor] | None = None,
    source: Source | None = None,
    check: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Image quality and recognition on a split, with per-sample seeded degradation.

    The degraded input is bicubic-upsampled to full size (when smaller) for its PSNR/SSIM and for
    the VRs; the enhanced image is IP's output clamped to [0, 1]. ``fixed_*`` keys are absent
    until VR pre-training has made the fixed VR. Quality keys (psnr, ssim and their ``_degraded``
    twins) come only when a pair reads the degraded or enhanced image. Both networks are back in
    their training modes afterwards.

    :param split_name: "val" or "test" (or "train").
    :param limit: the first ``limit`` images only (default ``eval.limit``; None there: all).
    :param pairs: which (VR, image) recognition scores to compute.
    :param per_image_out: when given, filled with the per-image values (``per_image.per_image_results``).
    :param source: the split read batch by batch (``streaming.open_source``; one process, classification) instead of the
        session's own data; progress lines go to the ``gradprom.eval`` logger.
    :param check: called before each batch (raises when the request was cancelled).
    :returns: ``{split, step, n, device, peak_memory_mb, ...}`` with ``<vr>_<image>_acc`` (plus ``_bacc``, ``_f1``, ``_auc`` for
        fixed/enhanced) when classifying, ``_dice`` and ``_iou`` when segmenting.
    """
    s.sync_for_eval()
    split = s.bundle.split(split_name)
    total, all_labels, size = (len(split), split.labels, s.bundle.size) if source is None else (source.n, source.labels, source.size)
    if limit is None:
        limit = setting(s.config, "eval.limit")
    n = total if limit is None else min(int(limit), total)
    bs = int(setting(s.config, "eval.batch_size"))
    seg = s.task == "segment"
    vrs = {"cotrained": s.vr, **({"fixed": s.fixed_vr} if s.fixed_vr is not None else {})}
    wanted = [w for w in pairs if w[0] in vrs]
    with_ip = any(what != "clean" for _, what in pairs)
    ssim_convention, psnr_convention = setting(s.config, "eval.ssim"), setting(s.config, "eval.psnr")
    do_ssim = size >= 11 or ssim_convention == "pytorch_ssim"
    amp = s.precision  # the forwards in train.precision and memory format; the metrics in float32
    lo, hi = s.eval_range(n)
    # This process's per-image values by name (mse, ssim and their _degraded twins, score:<vr>:<image> (preds or per-image
    # dice), iou:<vr>:<image>, probs), on the CPU, in image order.
    table = _Table(hi - lo)
    if source is None:
        inputs = _held(s, split_name, lo, hi, bs, with_ip)
    elif seg or (lo, hi) != (0, n):
        raise ValueError("a streamed evaluation scores classifiers in one process (segmentation and several ranks read held data)")
    else:
        inputs = _streamed(s, source, n, bs, with_ip)
    progress = Progress(n, f"eval {split_name}") if source is not None else None
    s.ip.eval()
    s.vr.eval()
    try:
        for start, end, clean, x in inputs:
            check()
            at = start - lo  # this batch's first row in the table
            images = {"clean": clean}
            if x is not None:
                with amp.autocast():
                    enhanced = s.ip(amp.memory_format(x))
                enhanced = enhanced.float().clamp_(0.0, 1.0)
                x = s.degradation.upsample(x, clean.shape[-2:])
                table.put("mse", at, M.mse(enhanced, clean))
                table.put("mse_degraded", at, M.mse(x, clean))
                if do_ssim:
                    table.put("ssim", at, M.ssim(enhanced, clean, convention=ssim_convention))
                    table.put("ssim_degraded", at, M.ssim(x, clean, convention=ssim_convention))
                images.update(degraded=x, enhanced=enhanced)
            truth = s.feed.eval_masks(split_name, start, end) if seg else all_labels[start:end]
            for who, what in wanted:
                with amp.autocast():
                    logits = vrs[who](amp.memory_format(images[what]))  # type: ignore[operator]
                logits = logits.float()
                if seg:
                    table.put(f"score:{who}:{what}", at, M.dice(logits, truth, s.num_classes))
                    table.put(f"iou:{who}:{what}", at, M.iou(logits, truth, s.num_classes))
                else:
                    table.put(f"score:{who}:{what}", at, logits.argmax(1))
                    if (who, what) == ("fixed", "enhanced"):
                        table.put("probs", at, F.softmax(logits.float(), dim=1))
            if progress is not None:
                progress.update(end)
    finally:
        inputs.close()  # a streamed source stops its decoding threads
        s.ip.train()
        s.vr.train(s.mode != "frozen")
    # Per-image results by name; with several processes, every process's share, in image order.
    per_image = s.gather_eval(table.columns)
    # What the run costs: the device it ran on and its peak memory so far (CUDA: allocated; CPU: peak RSS).
    out: dict[str, Any] = {
        "split": split_name,
        "step": s.step,
        "n": n,
        "device": device_name(s.device),
        "peak_memory_mb": peak_memory_mb(s.device),
    }
    for suffix in ("", "_degraded") if with_ip else ():
        mse = per_image.get(f"mse{suffix}")
        out[f"psnr{suffix}"] = math.nan if mse is None else M.psnr_from_mse(mse, psnr_convention, bs)  # a perfect image: +inf
        out[f"ssim{suffix}"] = float(per_image[f"ssim{suffix}"].mean()) if f"ssim{suffix}" in per_image else math.nan
    labels = all_labels[:n]
    if per_image_out is not None:
        per_image_out.update(per_image_results(per_image, labels, s.task))
    for who, what in wanted:
        key = f"{who}_{what}"
        pred = per_image.get(f"score:{who}:{what}")
        if pred is None:
            continue
        if seg:
            out[f"{key}_dice"] = float(pred.mean())
            out[f"{key}_iou"] = float(per_image[f"iou:{who}:{what}"].mean())
            continue
        out[f"{key}_acc"] = M.accuracy(pred, labels)
        if (who, what) == ("fixed", "enhanced"):
            out[f"{key}_bacc"] = M.balanced_accuracy(pred, labels)
            out[f"{key}_f1"] = M.macro_f1(pred, labels)
            out[f"{key}_auc"] = M.auc_ovr(per_image["probs"], labels)
    if with_ip:
        out["ssim_convention"] = M.SSIM_CONVENTIONS[ssim_convention]
        out["psnr_convention"] = M.PSNR_CONVENTIONS[psnr_convention]
    return out


class _Table:
    """Per-image values by name, each written batch by batch into one CPU tensor made at its first batch.

    One tensor per name, not a list of small per-batch ones: those stayed alive among each batch's freed working memory,
    and in a process with decoding threads the allocator's heap then kept growing with the number of batches.

    :param rows: the images this process scores.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.columns: dict[str, Tensor] = {}

    def put(self, name: str, at: int, values: Tensor) -> None:
        """Write one batch's values (first dimension: its images) at row ``at``."""
        column = self.columns.get(name)
        if column is None:
            column = self.columns[name] = torch.empty((self.rows, *values.shape[1:]), dtype=values.dtype)
        column[at : at + len(values)] = values


Inputs = Generator[tuple[int, int, Tensor, Tensor | None], None, None]  # (start, end, clean, degraded or None), on the session's device


def _held(s: Session, split_name: str, lo: int, hi: int, bs: int, with_ip: bool) -> Inputs:
    """The session's own images ``[lo, hi)`` by batch, their degraded inputs kept by its feed after the first evaluation."""
    for start in range(lo, hi, bs):
        end = min(hi, start + bs)
        clean = s.feed.eval_clean(split_name, start, end)
        yield start, end, clean, s.feed.eval_degraded(split_name, start, end) if with_ip else None  # seeded per sample


def _streamed(s: Session, source: Source, n: int, bs: int, with_ip: bool) -> Inputs:
    """The first ``n`` images of ``source`` by batch, degraded as the feed degrades held ones (on the CPU, the same seed)."""
    for start, end, stored in source.batches(n, bs):
        clean = to_unit(stored)
        x = s.degradation.seeded(clean, range(start, end), s.feed.eval_seed).to(s.device) if with_ip else None
        yield start, end, clean.to(s.device), x


def clean_score(s: Session, split_name: str) -> float:
    """The fixed VR's accuracy (classify) or mean Dice (segment) on every clean image of a split (NaN when empty).

    :param s: the session (its fixed VR must exist).
    :param split_name: "val" usually.
    """
    n = len(s.bundle.split(split_name))
    scores = evaluate(s, split_name, limit=n, pairs=(("fixed", "clean"),))
    return float(scores.get("fixed_clean_dice" if s.task == "segment" else "fixed_clean_acc", math.nan))
