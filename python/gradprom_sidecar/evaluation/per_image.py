"""Per-image results of an evaluation, for comparisons that bootstrap over test images.

Each value is named like the evaluation metric it averages to: the mean of ``psnr`` over the images
is the evaluation's ``psnr`` (with ``eval.psnr: image``, the default; under ESTR's ``batch`` convention
the per-image PSNRs are still per image), the mean of ``fixed_enhanced_acc`` (1 for a correct prediction, else 0)
its ``fixed_enhanced_acc``, the mean of ``fixed_enhanced_dice`` its Dice, and so on.
"""

from __future__ import annotations

import torch
from torch import Tensor

# The evaluation's per-image entries (see Session.evaluate) that a comparison reads, by metric name.
_QUALITY = ("ssim",)
_READERS = (("fixed", "enhanced"), ("cotrained", "enhanced"))


def per_image_results(raw: dict[str, Tensor], labels: Tensor | None, task: str) -> dict[str, Tensor]:
    """The per-image values of one evaluation, as float32 vectors in image order.

    :param raw: the evaluation's per-image tensors (``mse``, ``ssim``, ``score:<vr>:<input>``, ``iou:...``).
    :param labels: the class labels of the evaluated images (classification), else None.
    :param task: ``classify`` or ``segment``.
    """
    out = {k: raw[k].float() for k in _QUALITY if k in raw}
    if "mse" in raw:
        out["psnr"] = (10.0 * torch.log10(1.0 / raw["mse"].double())).float()  # data range 1; a perfect image: +inf
    for who, what in _READERS:
        score = raw.get(f"score:{who}:{what}")
        if score is None:
            continue
        if task == "segment":
            out[f"{who}_{what}_dice"] = score.float()
            out[f"{who}_{what}_iou"] = raw[f"iou:{who}:{what}"].float()
        else:
            if labels is None:
                raise ValueError("per-image accuracy needs the images' labels")
            out[f"{who}_{what}_acc"] = (score.cpu() == labels.cpu()).float()
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}
