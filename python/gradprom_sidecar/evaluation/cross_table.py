"""The transfer table: several processing models (IP) read by several recognizers (VR), as in ESTR's tables.

Rows are the clean image, the degraded input (brought back to full size by ``Degradation.upsample``)
and each IP's output (clamped to [0, 1]); columns are the VRs; a cell holds top-1 accuracy, and
top-5 when there are at least 5 classes. Each row also gets PSNR and SSIM against the clean image,
by the config's conventions (``eval.psnr``, ``eval.ssim``; see ``metrics``).

One pass over the split, streamed from its files for a file-based kind (``evaluation.streaming``), so
ImageNet's val split never sits in memory whole: each batch is degraded once, per image, from the seed the ``eval`` op uses
(``data.seed + evaluate.EVAL_SEED_OFFSET``), so a table row and the ``eval`` op score the same
test set; every IP enhances it and every VR reads every row. Networks are built from the config's
``ip``/``vr`` sections with the arch of each spec, and filled by ``models.load_ip_weights`` /
``models.load_vr_weights`` (so ESTR's whole pickled models and torchvision's ImageNet files load as
in a session). No session is made and none is changed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradprom_sidecar.data import to_unit
from gradprom_sidecar.data.degrade import build_degradation
from gradprom_sidecar.evaluation import metrics as M
from gradprom_sidecar.evaluation.evaluate import EVAL_SEED_OFFSET
from gradprom_sidecar.evaluation.streaming import Progress, open_source
from gradprom_sidecar.models import SEGMENTERS, build_ip, build_vr, load_ip_weights, load_vr_weights, resolve_ip_shape
from gradprom_sidecar.models.checkpoint import CheckpointError
from gradprom_sidecar.training.config import setting, setting_in

log = logging.getLogger("gradprom.transfer")

CLEAN, DEGRADED = "clean", "degraded input"
TOP5_MIN_CLASSES = 5


@dataclass(frozen=True)
class ModelSpec:
    """One processing model or recognizer of the table.

    :param label: its row or column name (unique in its list).
    :param arch: a built-in arch name.
    """

    label: str
    arch: str
    weights: str


def parse_specs(items: Any, where: str) -> list[ModelSpec]:
    """``[{label, arch, weights}, ...]`` from an op's args, checked; errors name ``args.<where>[i]``.

    :param where: ``ips`` or ``vrs``.
    """
    if not isinstance(items, list) or not items:
        raise ValueError(f"args.{where}: expected a non-empty list of {{label, arch, weights}}")
    specs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item[k] for k in ("label", "arch", "weights")):
            raise ValueError(f"args.{where}[{i}]: expected {{label, arch, weights}} strings, got {item!r}")
        specs.append(ModelSpec(item["label"], item["arch"], item["weights"]))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels) or {CLEAN, DEGRADED} & set(labels):
        raise ValueError(f"args.{where}: labels must be unique and not {CLEAN!r} or {DEGRADED!r}, got {labels}")
    return specs


def _build(spec: ModelSpec, where: str, make: Callable[[], nn.Module], load: Callable[[nn.Module, str], Any]) -> tuple[nn.Module, Any]:
    """A network from ``make``, filled from ``spec.weights``; errors name the spec."""
    try:
        net = make()
        return net, load(net, spec.weights)
    except (ValueError, CheckpointError) as e:
        raise ValueError(f"{where} {spec.label!r} ({spec.arch}:{spec.weights}): {e}") from e


def _ip(ip_cfg: dict, spec: ModelSpec, scale: int) -> nn.Module:
    """An IP of ``spec``'s arch, its null shape fields read from its weights; its scale must be the degradation's."""
    cfg = resolve_ip_shape({**ip_cfg, "arch": spec.arch}, spec.weights, scale)
    if int(cfg["scale"]) != scale:
        raise ValueError(f"upscales x{cfg['scale']}, but the degradation downsamples x{scale}")
    return build_ip(cfg)


@torch.no_grad()
def transfer_table(
    config: dict,
    ips: list[ModelSpec],
    vrs: list[ModelSpec],
    split_name: str,
    limit: int | None,
    device: torch.device,
    check: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Score every IP (and the clean and degraded images) with every VR on a split.

    :param config: the resolved config (data, degradation, ip and vr sections, eval conventions).
    :param ips: the processing models (rows).
    :param vrs: the recognizers (columns).
    :param split_name: "val" or "test".
    :param limit: the first ``limit`` images only (None: ``eval.limit``, None there: all).
    :param device: where the networks run.
    :param check: called before each batch (raises when the request was cancelled).
    :returns: ``{split, n, num_classes, topk, ssim_convention, psnr_convention, recognizers, rows}``.
    """
    if setting_in(config, "vr.task", ("classify", "segment")) != "classify" or any(v.arch in SEGMENTERS for v in vrs):
        raise ValueError("config.vr.task: the transfer table scores classifiers (top-1/top-5); segmenters have no columns here")
    data_seed = int(setting(config, "data.seed"))
    degradation = build_degradation(setting(config, "degradation"))
    bs = int(setting(config, "eval.batch_size"))
    source = open_source(setting(config, "data"), data_seed, split_name)
    limit = setting(config, "eval.limit") if limit is None else limit
    n = source.n if limit is None else min(int(limit), source.n)
    ssim_conv, psnr_conv = setting(config, "eval.ssim"), setting(config, "eval.psnr")
    topk = (1, 5) if source.num_classes >= TOP5_MIN_CLASSES else (1,)
    ip_cfg = {**setting(config, "ip"), "in_channels": source.channels}
    ip_nets = {s.label: _build(s, "IP", lambda s=s: _ip(ip_cfg, s, degradation.scale), load_ip_weights)[0].to(device).eval() for s in ips}
    vr_nets: dict[str, nn.Module] = {}
    left_at_init: dict[str, list[str]] = {}
    for s in vrs:
        net, skipped = _build(
            s, "VR", lambda s=s: build_vr({**setting(config, "vr"), "arch": s.arch}, source.channels, source.num_classes), load_vr_weights
        )
        vr_nets[s.label], left_at_init[s.label] = net.to(device).eval(), list(skipped)
    rows = [CLEAN, DEGRADED, *ip_nets]
    mse: dict[str, list[Tensor]] = {r: [] for r in rows[1:]}
    ssim: dict[str, list[Tensor]] = {r: [] for r in rows[1:]}
    hits: dict[tuple[str, str, int], list[Tensor]] = {(r, v, k): [] for r in rows for v in vr_nets for k in topk}
    do_ssim = ssim_conv == "pytorch_ssim" or source.size >= 11
    progress = Progress(n, "transfer table")
    for start, end, stored in source.batches(n, bs):
        check()
        clean_cpu = to_unit(stored)
        clean = clean_cpu.to(device)
        x = degradation.seeded(clean_cpu, range(start, end), data_seed + EVAL_SEED_OFFSET).to(device)
        images = {CLEAN: clean, DEGRADED: degradation.upsample(x, tuple(clean.shape[-2:]))}
        images.update({label: net(x).clamp_(0.0, 1.0) for label, net in ip_nets.items()})
        labels = source.labels[start:end].to(device)
        for row, img in images.items():
            if row != CLEAN:
                mse[row].append(M.mse(img, clean).cpu())
                if do_ssim:
                    ssim[row].append(M.ssim(img, clean, convention=ssim_conv).cpu())
            for vr_label, vr in vr_nets.items():
                logits = vr(img)
                for k in topk:
                    hits[(row, vr_label, k)].append(M.topk_correct(logits, labels, k).cpu())
        progress.update(end)
    return {
        "split": split_name,
        "n": n,
        "streamed": source.streamed,
        "num_classes": source.num_classes,
        "topk": list(topk),
        "ssim_convention": M.SSIM_CONVENTIONS[ssim_conv],
        "psnr_convention": M.PSNR_CONVENTIONS[psnr_conv],
        "recognizers": [{"label": s.label, "arch": s.arch, "weights": s.weights, "left_at_init": left_at_init[s.label]} for s in vrs],
        "rows": [_row(r, ips, mse, ssim, hits, vr_nets, topk, psnr_conv, bs) for r in rows],
    }


def _mean(parts: list[Tensor]) -> float:
    """The mean of per-image values (float32, as the ``eval`` op takes it), NaN with none."""
    return float(torch.cat(parts).float().mean()) if parts and sum(p.numel() for p in parts) else math.nan


def _row(
    row: str,
    ips: list[ModelSpec],
    mse: dict[str, list[Tensor]],
    ssim: dict[str, list[Tensor]],
    hits: dict[tuple[str, str, int], list[Tensor]],
    vr_nets: dict[str, nn.Module],
    topk: tuple[int, ...],
    psnr_conv: str,
    bs: int,
) -> dict[str, Any]:
    """One row of the table: what it is, its image quality (None for the clean row), and its cells."""
    spec = next((s for s in ips if s.label == row), None)
    out: dict[str, Any] = {"label": row, "kind": "ip" if spec else ("clean" if row == CLEAN else "degraded")}
    if spec:
        out.update(arch=spec.arch, weights=spec.weights)
    quality = row != CLEAN and bool(mse[row])
    out["psnr"] = M.psnr_from_mse(torch.cat(mse[row]), psnr_conv, bs) if quality else None
    out["ssim"] = _mean(ssim[row]) if quality and ssim[row] else None
    for k in topk:
        out[f"top{k}"] = {v: _mean(hits[(row, v, k)]) for v in vr_nets}
    return out
