"""The training session (models, data, optimizers, RNG) and the compute ops that drive it.

One session per sidecar, held in ``ctx.state.session``. A step is ``train.grads`` (two backward
passes, see ``grads``) followed by ``train.apply`` (the policy's decision) or ``train.skip``.

Randomness: ``torch.manual_seed(seed)`` before the networks are built (their initialisation); a
CPU ``torch.Generator`` seeded with ``seed`` drives batch sampling (an epoch-wise permutation of the
train indices), augmentation and training noise, drawn on the CPU so a seeded run sees the same
batches on every device. The data set is built from the DATA seed (``data.seed``), and validation
and test inputs are degraded per sample with seed ``data.seed + 7919``, so runs with different
training seeds share one data set and one degraded test set, and evaluation never touches the
training generator (results do not depend on how often one evaluates).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import grads as G
from . import metrics as M
from .checkpoint import CheckpointError, load_checkpoint, load_weights, save_atomic
from .data import augment, build_data
from .degrade import build_degradation
from .descent import StepProbe
from .models import SEGMENTERS, build_ip, build_vr, count_params
from .per_image import per_image_results
from .registry import Context, Result, op, require

CHECKPOINT_FORMAT = "gradprom-checkpoint"
CHECKPOINT_VERSION = 1
EVAL_SEED_OFFSET = 7919  # validation/test degradation seed = data seed + this
PRETRAIN_SEED_OFFSET = 104729  # VR pre-training draws from its own generator, seeded seed + this
MODES = ("supervised", "unsupervised", "frozen")


def cfg_get(cfg: dict, path: str) -> Any:
    """``cfg`` at a dotted path; a missing key is a ValueError naming ``config.<path>``.

    :param cfg: the resolved config.
    :param path: e.g. ``"train.ip_optim.lr"``.
    """
    node: Any = cfg
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"config.{path}: required")
        node = node[part]
    return node


def _choice(cfg: dict, path: str, allowed: tuple[str, ...]) -> str:
    value = cfg_get(cfg, path)
    if value not in allowed:
        raise ValueError(f"config.{path}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def lr_factor(o: dict, step: int, total: int) -> float:
    """The learning-rate multiplier at ``step``: linear warm-up, then constant, cosine or step decay.

    :param o: an optimizer section (schedule, step_size, gamma, warmup_steps).
    :param step: optimisation steps taken so far.
    :param total: ``train.steps`` (the cosine's length, warm-up included).
    """
    warm = int(o.get("warmup_steps") or 0)
    f = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
    t = max(0, step - warm)
    kind = o.get("schedule", "constant")
    if kind == "cosine":
        span = max(1, total - warm)
        f *= 0.5 * (1.0 + math.cos(math.pi * min(t, span) / span))
    elif kind == "step":
        f *= float(o.get("gamma", 0.5)) ** (t // max(1, int(o.get("step_size") or 1)))
    elif kind != "constant":
        raise ValueError(f"schedule: expected constant, cosine or step, got {kind!r}")
    return f


def make_optimizer(params: list[nn.Parameter], o: dict, where: str) -> torch.optim.Optimizer:
    """Adam (beta1 = momentum) or SGD from an optimizer section; errors name ``config.<where>``.

    :param params: the parameters to optimise.
    :param o: the section (name, lr, momentum, weight_decay, ...).
    :param where: its dotted path, e.g. ``train.ip_optim``.
    """
    name = o.get("name")
    lr, mom, wd = float(o.get("lr", 1e-3)), float(o.get("momentum", 0.9)), float(o.get("weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(mom, 0.999), weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd)
    raise ValueError(f"config.{where}.name: expected adam or sgd, got {name!r}")


class Sampler:
    """Epoch-wise random permutation of ``n`` indices, served ``batch`` at a time (the last partial batch is dropped).

    :param n: number of samples.
    :param batch: batch size (capped at ``n``).
    :param generator: the source of the permutations.
    """

    def __init__(self, n: int, batch: int, generator: torch.Generator) -> None:
        self.n, self.batch, self.generator = n, max(1, min(batch, n)), generator
        self.perm = torch.empty(0, dtype=torch.long)
        self.pos = 0

    def next(self) -> Tensor:
        """The next batch of indices (a new permutation when the current one has too few left)."""
        if self.pos + self.batch > self.perm.numel():
            self.perm = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return idx

    def state(self) -> dict:
        return {"perm": self.perm.clone(), "pos": self.pos}

    def load(self, state: dict) -> None:
        self.perm, self.pos = state["perm"].clone().long(), int(state["pos"])


def _state_cpu(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _clean(section: dict, where: str) -> dict:
    """A model section for the builders: null values dropped (each network's own defaults apply), and
    for a built-in arch the ``kwargs`` merged in (e.g. ``vr.kwargs.widths`` for smallresnet; a plugin
    gets them as constructor arguments instead)."""
    out = {k: v for k, v in section.items() if v is not None}
    kwargs = out.get("kwargs") or {}
    if kwargs and ":" not in str(out.get("arch", "")):
        if not isinstance(kwargs, dict):
            raise ValueError(f"config.{where}.kwargs: expected a mapping, got {type(kwargs).__name__}")
        out.update(kwargs)
    return out


class Session:
    """Everything one experiment holds on the sidecar.

    :param config: the resolved experiment config.
    :param device: where the networks live.
    :param load_model_weights: load ``ip.weights``/``vr.weights`` (False when a checkpoint follows).
    """

    def __init__(self, config: dict, device: torch.device, load_model_weights: bool = True) -> None:
        self.config = config
        self.device = device
        self.seed = int(cfg_get(config, "seed"))
        data_cfg = cfg_get(config, "data")
        self.data_seed = int(data_cfg.get("seed") or 0)
        self.bundle = build_data(data_cfg, self.data_seed)
        self.degradation = build_degradation(cfg_get(config, "degradation"))
        ip_cfg, vr_cfg = cfg_get(config, "ip"), cfg_get(config, "vr")
        self.task = _choice(config, "vr.task", ("classify", "segment"))
        self.mode = _choice(config, "vr.mode", MODES)
        self.loss_kind = _choice(config, "train.loss", ("mse", "l1"))
        scale = int(ip_cfg.get("scale") or 1)
        if scale != self.degradation.scale:
            raise ValueError(f"config.ip.scale: {scale} does not match the degradation's total downsampling (x{self.degradation.scale})")
        if self.bundle.size % self.degradation.scale:
            raise ValueError(f"config.data.size: {self.bundle.size} is not divisible by the downsampling x{self.degradation.scale}")
        self.num_classes = self._task_classes(vr_cfg)
        self.flip = bool((data_cfg.get("augment") or {}).get("flip", False))
        self.batch_size = int(cfg_get(config, "train.batch_size"))
        self.total_steps = int(cfg_get(config, "train.steps"))

        torch.manual_seed(self.seed)
        try:
            self.ip = build_ip({**_clean(ip_cfg, "ip"), "in_channels": self.bundle.channels, "scale": scale}).to(device)
        except ValueError as e:
            raise ValueError(f"config.ip.arch: {e}") from e
        self.vr = self._build_vr()
        self.vr_left_at_init: list[str] = []  # resnet fc left at init when torchvision weights have another class count
        if load_model_weights:
            self._load_weights(ip_cfg, vr_cfg)
        self.ip.train()
        self.fixed_vr: nn.Module | None = None
        self.layout = G.Layout(self.ip)
        self.buffers = G.GradBuffers(self.layout, device)
        self.probe = StepProbe(self.layout, device)  # θ before each IP step, for ip_descent_actual
        if self.mode == "frozen":
            self.vr.requires_grad_(False)
            self.vr.eval()  # frozen also means fixed normalisation statistics
        else:
            self.vr.train()
        self.ip_optim = make_optimizer(self.layout.params, cfg_get(config, "train.ip_optim"), "train.ip_optim")
        self.vr_optim = (
            None
            if self.mode == "frozen"
            else make_optimizer([p for p in self.vr.parameters() if p.requires_grad], cfg_get(config, "train.vr_optim"), "train.vr_optim")
        )
        self.generator = torch.Generator().manual_seed(self.seed)
        self.pretrain_generator = torch.Generator().manual_seed(self.seed + PRETRAIN_SEED_OFFSET)
        self.sampler = Sampler(len(self.bundle.train), self.batch_size, self.generator)
        self.step = 0
        self.skipped = 0
        self.pending: G.StepGrads | None = None
        self.last_per_image: dict[str, Tensor] = {}  # the last evaluation's per-image results

    # ----------------------------------------------------------------- building
    def _task_classes(self, vr_cfg: dict) -> int:
        b = self.bundle
        if self.task == "classify":
            if vr_cfg.get("arch") in SEGMENTERS:
                raise ValueError(f"config.vr.arch: {vr_cfg.get('arch')!r} is a segmenter; vr.task 'classify' needs a classifier")
            return b.num_classes
        splits = [b.train, b.val, b.test]
        if any(s.masks is None for s in splits):
            raise ValueError("config.vr.task: 'segment' needs masks, but this data set has none (set data.masks_dir)")
        if not b.has_labels:
            return b.num_classes
        # A labelled set with masks (e.g. synthetic): the mask's own classes, background included.
        return max(2, max(int(s.masks.max()) for s in splits if len(s)) + 1)

    def _build_vr(self) -> nn.Module:
        try:
            return build_vr(_clean(cfg_get(self.config, "vr"), "vr"), self.bundle.channels, self.num_classes).to(self.device)
        except ValueError as e:
            raise ValueError(f"config.vr.arch: {e}") from e

    def _load_weights(self, ip_cfg: dict, vr_cfg: dict) -> None:
        if ip_cfg.get("weights"):
            try:
                load_weights(self.ip, ip_cfg["weights"], strict=True, part="ip")
            except CheckpointError as e:
                raise ValueError(f"config.ip.weights: {e}") from e
        if vr_cfg.get("weights"):
            try:
                if str(vr_cfg.get("arch", "")).startswith("resnet"):
                    from .models.resnet import load_torchvision

                    self.vr_left_at_init = load_torchvision(self.vr, vr_cfg["weights"])  # type: ignore[arg-type]
                else:
                    load_weights(self.vr, vr_cfg["weights"], strict=True, part="vr")
            except CheckpointError as e:
                raise ValueError(f"config.vr.weights: {e}") from e

    def describe(self) -> dict:
        """The ``session.create`` result."""
        b = self.bundle
        return {
            "layout": self.layout.to_dict(),
            "ip_params": count_params(self.ip),
            "vr_params": count_params(self.vr),
            "device": str(self.device),
            "data": {
                "train": len(b.train),
                "val": len(b.val),
                "test": len(b.test),
                "num_classes": b.num_classes,
                "task_classes": self.num_classes,
                "channels": b.channels,
                "size": b.size,
                "class_names": list(b.class_names),
            },
        }

    # ----------------------------------------------------------------- batches
    def _batch(self, idx: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Clean images and the supervised target (labels or masks) of train samples ``idx``, augmented."""
        split = self.bundle.train
        clean, masks = split.images[idx], (split.masks[idx] if split.masks is not None else None)
        if self.flip:
            clean, masks = augment(clean, masks, generator)
        target = masks if self.task == "segment" else split.labels[idx]
        return clean.to(self.device), target.to(self.device)  # type: ignore[union-attr]

    # ----------------------------------------------------------------- VR pre-training
    def pretrain(self, steps: int, check: Callable[[], None] = lambda: None) -> dict:
        """Train VR on clean train images, then keep a frozen copy as the fixed evaluation VR.

        :param steps: optimisation steps (0: the fixed VR is a copy of the current VR).
        :param check: called before each step (raises when the request was cancelled).
        """
        vr_cfg = cfg_get(self.config, "vr")
        losses: list[Tensor] = []
        if steps > 0:
            self.vr.requires_grad_(True)
            self.vr.train()
            opt = torch.optim.Adam(self.vr.parameters(), lr=float(vr_cfg.get("pretrain_lr", 1e-3)))
            sampler = Sampler(len(self.bundle.train), self.batch_size, self.pretrain_generator)
            for _ in range(steps):
                check()
                clean, target = self._batch(sampler.next(), self.pretrain_generator)
                clean, target = self._local(clean), self._local(target)
                loss = G.task_loss(self._vr_forward(clean), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.detach())
            self.vr.zero_grad(set_to_none=True)
            if self.mode == "frozen":
                self.vr.requires_grad_(False)
                self.vr.eval()
        self.fixed_vr = self._frozen_copy(self.vr)
        tail = math.nan
        if losses:
            mean = torch.stack(losses[-20:]).mean()
            self._average([mean])
            tail = mean.item()  # host-device sync
        score = self._clean_score(self.fixed_vr, "val")
        return {"loss": tail, "accuracy": score, "steps": steps}

    @staticmethod
    def _frozen_copy(vr: nn.Module) -> nn.Module:
        fixed = copy.deepcopy(vr)
        fixed.requires_grad_(False)
        fixed.eval()
        for p in fixed.parameters():
            p.grad = None
        return fixed

    @torch.no_grad()
    def _clean_score(self, model: nn.Module, split_name: str) -> float:
        """Accuracy (classify) or mean Dice (segment) of ``model`` on clean images of a split."""
        split = self.bundle.split(split_name)
        if len(split) == 0:
            return math.nan
        was = model.training
        model.eval()
        bs = int(cfg_get(self.config, "eval.batch_size"))
        hits: list[Tensor] = []
        for s in range(0, len(split), bs):
            logits = model(split.images[s : s + bs].to(self.device))
            if self.task == "segment":
                hits.append(M.dice(logits, split.masks[s : s + bs].to(self.device), self.num_classes).cpu())  # type: ignore[index]
            else:
                hits.append((logits.argmax(1).cpu() == split.labels[s : s + bs]).float())
        model.train(was)
        return float(torch.cat(hits).mean())

    # ----------------------------------------------------------------- hooks (distributed.DistributedSession)
    # One process computes the whole batch; a rank of several overrides these to take its share.
    def _local(self, t: Tensor) -> Tensor:
        """This process's share of a global batch (all of it)."""
        return t

    def _average(self, tensors: list[Tensor]) -> None:
        """Average tensors over the processes, in place (one process: nothing to do)."""

    def _vr_forward(self, x: Tensor) -> Tensor:
        """VR's forward pass for training (a rank of several goes through DistributedDataParallel)."""
        return self.vr(x)

    def _eval_range(self, n: int) -> tuple[int, int]:
        """The images ``[start, end)`` of the first ``n`` this process evaluates (all of them)."""
        return 0, n

    def _gather_eval(self, parts: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-image results of every process, concatenated in image order (one process: its own)."""
        return parts

    # ----------------------------------------------------------------- training steps
    def grads(self) -> G.StepGrads:
        """Sample a batch, run the two backward passes, keep g_IP/g_VR pending until apply or skip."""
        self.pending = None
        for p in self.vr.parameters():
            p.grad = None
        idx = self.sampler.next()
        clean, target = self._batch(idx, self.generator)
        x = self.degradation(clean, self.generator)  # drawn for the whole batch, so a slice matches one process
        clean, target, x = self._local(clean), self._local(target), self._local(x)
        y_hat = self.ip(x)
        loss_ip = G.pixel_loss(y_hat, clean, self.loss_kind)
        if self.mode == "unsupervised":
            with torch.no_grad():
                target = F.softmax(self.vr(clean), dim=1)  # VR on the CLEAN image: the pseudo-label
        loss_vr = G.task_loss(self._vr_forward(y_hat), target)
        g_ip, g_vr = G.two_pass(loss_ip, loss_vr, self.buffers)
        losses = torch.stack([loss_ip.detach(), loss_vr.detach()])
        self._average([g_ip, g_vr, losses])  # the global batch's gradients (several ranks)
        gram = G.gram(g_ip, g_vr, self.layout)  # host-device sync
        li, lv = losses.tolist()
        finite = G.all_finite(li, lv, gram["ip_ip"], gram["vr_vr"], gram["ip_vr"])
        self.pending = G.StepGrads(li, lv, g_ip, g_vr, gram, finite)
        return self.pending

    def _require_pending(self, op_name: str) -> G.StepGrads:
        if self.pending is None:
            raise RuntimeError(f"{op_name}: no pending gradients (call train.grads first)")
        return self.pending

    def apply(self, w_ip: list[float] | None = None, w_vr: list[float] | None = None, merged: Tensor | None = None) -> dict:
        """Set θ.grad from per-block weights or a merged vector, step both optimizers, zero grads.

        :param w_ip: per-block weights of g_IP (with ``w_vr``).
        :param w_vr: per-block weights of g_VR.
        :param merged: a flat float32 update instead of weights.
        """
        pend = self._require_pending("train.apply")
        if merged is not None:
            self.buffers.merged.copy_(merged.to(self.device))
            G.apply_vector(self.layout.params, self.layout, self.buffers.merged)
        else:
            G.apply_weights(self.layout.params, self.layout, pend.g_ip, pend.g_vr, w_ip or [], w_vr or [], self.buffers.merged)
        lr_ip = self._set_lr(self.ip_optim, "train.ip_optim")
        self.probe.take()
        self.ip_optim.step()
        ip_descent_actual = self.probe.descent(pend.g_ip, sum(pend.gram["ip_ip"]))  # host-device sync
        lr_vr = 0.0
        if self.vr_optim is not None:
            lr_vr = self._set_lr(self.vr_optim, "train.vr_optim")
            self.vr_optim.step()
        self._zero()
        self.step += 1
        return {"step": self.step, "lr_ip": lr_ip, "lr_vr": lr_vr, "ip_descent_actual": ip_descent_actual}

    def skip(self) -> dict:
        """Drop the pending gradients without a step (a non-finite step)."""
        self._require_pending("train.skip")
        self._zero()
        self.skipped += 1
        return {"step": self.step, "skipped": self.skipped}

    def _zero(self) -> None:
        self.pending = None
        for p in self.layout.params:
            p.grad = None
        for p in self.vr.parameters():
            p.grad = None

    def _set_lr(self, optim: torch.optim.Optimizer, where: str) -> float:
        o = cfg_get(self.config, where)
        lr = float(o.get("lr", 1e-3)) * lr_factor(o, self.step, self.total_steps)
        for group in optim.param_groups:
            group["lr"] = lr
        return lr

    # ----------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, split_name: str, limit: int | None = None) -> dict:
        """Image quality and recognition on a split, with per-sample seeded degradation.

        The degraded input is bicubic-upsampled to full size (when smaller) for its PSNR/SSIM and
        for the VRs; the enhanced image is IP's output clamped to [0, 1]. ``fixed_*`` keys are
        absent until VR pre-training has made the fixed VR.

        :param split_name: "val" or "test" (or "train").
        :param limit: the first ``limit`` images only (default ``eval.limit``; None: all).
        """
        split = self.bundle.split(split_name)
        if limit is None:
            limit = cfg_get(self.config, "eval.limit")
        n = len(split) if limit is None else min(int(limit), len(split))
        bs = int(cfg_get(self.config, "eval.batch_size"))
        seg = self.task == "segment"
        vrs = {"cotrained": self.vr, **({"fixed": self.fixed_vr} if self.fixed_vr is not None else {})}
        wanted = [("fixed", "clean"), ("fixed", "degraded"), ("fixed", "enhanced"), ("cotrained", "clean"), ("cotrained", "enhanced")]
        wanted = [w for w in wanted if w[0] in vrs]
        quality: dict[str, list[Tensor]] = {k: [] for k in ("psnr", "ssim", "psnr_degraded", "ssim_degraded")}
        scores: dict[tuple[str, str], list[Tensor]] = {w: [] for w in wanted}  # preds or per-image dice
        ious: dict[tuple[str, str], list[Tensor]] = {w: [] for w in wanted}
        probs: list[Tensor] = []
        do_ssim = self.bundle.size >= 11
        self.ip.eval()
        self.vr.eval()
        lo, hi = self._eval_range(n)
        try:
            for s in range(lo, hi, bs):
                e = min(hi, s + bs)
                clean_cpu = split.images[s:e]
                x = self.degradation.seeded(clean_cpu, range(s, e), self.data_seed + EVAL_SEED_OFFSET).to(self.device)
                clean = clean_cpu.to(self.device)
                enhanced = self.ip(x).clamp_(0.0, 1.0)
                if x.shape[-2:] != clean.shape[-2:]:
                    x = F.interpolate(x, size=clean.shape[-2:], mode="bicubic", align_corners=False)
                quality["psnr"].append(M.psnr(enhanced, clean).cpu())
                quality["psnr_degraded"].append(M.psnr(x, clean).cpu())
                if do_ssim:
                    quality["ssim"].append(M.ssim(enhanced, clean).cpu())
                    quality["ssim_degraded"].append(M.ssim(x, clean).cpu())
                images = {"clean": clean, "degraded": x, "enhanced": enhanced}
                truth = split.masks[s:e].to(self.device) if seg else split.labels[s:e]  # type: ignore[index]
                for who, what in wanted:
                    logits = vrs[who](images[what])  # type: ignore[operator]
                    if seg:
                        scores[(who, what)].append(M.dice(logits, truth, self.num_classes).cpu())
                        ious[(who, what)].append(M.iou(logits, truth, self.num_classes).cpu())
                    else:
                        scores[(who, what)].append(logits.argmax(1).cpu())
                        if (who, what) == ("fixed", "enhanced"):
                            probs.append(F.softmax(logits.float(), dim=1).cpu())
        finally:
            self.ip.train()
            self.vr.train(self.mode != "frozen")
        # Per-image results by name; with several processes, every process's share, in image order.
        per_image = {k: torch.cat(v) for k, v in quality.items() if v}
        per_image.update({f"score:{w[0]}:{w[1]}": torch.cat(v) for w, v in scores.items() if v})
        per_image.update({f"iou:{w[0]}:{w[1]}": torch.cat(v) for w, v in ious.items() if v})
        if probs:
            per_image["probs"] = torch.cat(probs)
        per_image = self._gather_eval(per_image)
        self.last_per_image = per_image  # for the eval op's per_image reply
        out: dict[str, Any] = {"split": split_name, "step": self.step, "n": n}
        for k in quality:
            out[k] = float(per_image[k].mean()) if k in per_image else math.nan  # psnr of a perfect image is +inf
        labels = split.labels[:n]
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
        out["ssim_convention"] = M.SSIM_CONVENTION
        return out

    @torch.no_grad()
    def enhance(self, images: Tensor) -> Tensor:
        """IP's output for N×C×h×w images in [0, 1], clamped to [0, 1], on the CPU.

        :param images: the degraded images.
        """
        c = self.bundle.channels
        if images.dim() != 4 or images.shape[1] != c:
            raise ValueError(f"tensors[0].shape: expected N×{c}×H×W images, got {list(images.shape)}")
        bs = int(cfg_get(self.config, "eval.batch_size"))
        self.ip.eval()
        try:
            outs = [self.ip(images[s : s + bs].float().to(self.device)).clamp_(0.0, 1.0).cpu() for s in range(0, images.shape[0], bs)]
        finally:
            self.ip.train()
        if not outs:
            s = self.degradation.scale
            return images.new_zeros(0, c, images.shape[2] * s, images.shape[3] * s)
        return torch.cat(outs)

    # ----------------------------------------------------------------- checkpoints
    def checkpoint(self, extra: Any = None) -> dict:
        """Everything needed to continue bit-identically (CPU tensors and plain containers only)."""
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "pretrain_generator": self.pretrain_generator.get_state(),
        }
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        sched = {"step": self.step, "total": self.total_steps}
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.config,
            "step": self.step,
            "skipped": self.skipped,
            "seed": self.seed,
            "ip": _state_cpu(self.ip),
            "vr": _state_cpu(self.vr),
            "fixed_vr": _state_cpu(self.fixed_vr) if self.fixed_vr is not None else None,
            "ip_optim": self.ip_optim.state_dict(),
            "vr_optim": self.vr_optim.state_dict() if self.vr_optim is not None else None,
            "ip_sched": dict(sched),
            "vr_sched": dict(sched),
            "rng": rng,
            "sampler": self.sampler.state(),
            "extra": extra,
        }

    def restore(self, ckpt: dict, path: str) -> None:
        """Load a :meth:`checkpoint` dict into this session; errors name ``path`` and the part."""
        if ckpt.get("format") != CHECKPOINT_FORMAT or ckpt.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{path}: not a gradprom checkpoint v{CHECKPOINT_VERSION} (format {ckpt.get('format')!r}, version {ckpt.get('version')!r})"
            )
        try:
            self.ip.load_state_dict(ckpt["ip"])
            self.vr.load_state_dict(ckpt["vr"])
            if ckpt.get("fixed_vr") is not None:
                fixed = self._build_vr()
                fixed.load_state_dict(ckpt["fixed_vr"])
                self.fixed_vr = self._frozen_copy(fixed)
            else:
                self.fixed_vr = None
            self.ip_optim.load_state_dict(ckpt["ip_optim"])
            if self.vr_optim is not None and ckpt.get("vr_optim") is not None:
                self.vr_optim.load_state_dict(ckpt["vr_optim"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(f"{path}: does not fit this session's models: {e}") from e
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["generator"])
        if "pretrain_generator" in rng:
            self.pretrain_generator.set_state(rng["pretrain_generator"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.sampler.load(ckpt["sampler"])
        self.step, self.skipped = int(ckpt["step"]), int(ckpt["skipped"])
        self._zero()


# --------------------------------------------------------------------- enhancing files
def _read_dicom(path: Path, window: dict | None) -> tuple[Any, Tensor, tuple[float, float, float, float, bool]]:
    """A grayscale DICOM as F×1×H×W in [0, 1], windowed like the data module's reader; plus how to undo it."""
    import numpy as np
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        arr = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception as e:  # pydicom raises many types for a bad file
        raise ValueError(f"{path}: unreadable DICOM file or pixel data ({e})") from e
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        raise ValueError(f"{path}: colour DICOM (SamplesPerPixel {ds.SamplesPerPixel}) is not supported by enhance.files")
    frames = arr if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 else arr[None]
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    values = frames * slope + intercept
    from .data.dicom import _first

    c = window["center"] if window else _first(ds, "WindowCenter")
    w = window["width"] if window else _first(ds, "WindowWidth")
    if c is not None and w is not None and float(w) > 0:
        lo, hi = float(c) - float(w) / 2, float(c) + float(w) / 2
    else:
        lo, hi = float(values.min()), float(values.max())
    x = np.clip((values - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(values)
    mono1 = str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1"
    if mono1:
        x = 1.0 - x
    return ds, torch.from_numpy(x).float()[:, None], (lo, hi, slope, intercept, mono1)


def _write_dicom(ds: Any, out: Tensor, undo: tuple[float, float, float, float, bool], dest: Path, src: Path) -> None:
    """Write IP's output (F×1×H×W in [0, 1]) as ``ds``'s new pixel data, in its stored range and dtype."""
    import numpy as np
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    lo, hi, slope, intercept, mono1 = undo
    v = out[:, 0].double().numpy()
    if mono1:
        v = 1.0 - v
    stored = ((lo + v * (hi - lo)) - intercept) / slope
    dtype = np.asarray(ds.pixel_array).dtype
    bits = int(getattr(ds, "BitsStored", np.iinfo(dtype).bits if dtype.kind in "iu" else 16))
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    stored = np.clip(np.rint(stored), low, high).astype(dtype)
    if int(getattr(ds, "NumberOfFrames", 1) or 1) <= 1:
        stored = stored[0]
    try:
        ds.set_pixel_data(stored, str(ds.PhotometricInterpretation), bits)
    except Exception:  # older pydicom without set_pixel_data: write uncompressed by hand
        ds.PixelData = stored.tobytes()
        ds.Rows, ds.Columns = int(stored.shape[-2]), int(stored.shape[-1])
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    uid = generate_uid()  # a derived image is a new instance; everything else is kept
    ds.SOPInstanceUID = uid
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.DerivationDescription = f"gradprom enhance.files from {src.name}"
    try:
        ds.save_as(dest, enforce_file_format=True)
    except TypeError:
        ds.save_as(dest, write_like_original=False)


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
        return head[128:132] == b"DICM"
    except OSError:
        return False


def enhance_files(session: Session, inputs: list[str], out_dir: str, check: Callable[[], None] = lambda: None) -> list[str]:
    """Enhance image files with IP at their own size: PNG out for PNG/JPEG/..., DICOM out for DICOM.

    Images are read as the data module reads them (8/16-bit, gray or colour, converted to the data
    set's channel count) but not resized; PNGs are written 8-bit (16-bit for 16-bit input). DICOM
    is windowed like the data module's reader (``data.window``, else the file's window, else
    min-max; MONOCHROME1 inverted); the output maps [0, 1] back through the window to the stored
    range and dtype, keeps the input's metadata and gets a new SOPInstanceUID. Values outside the
    window come back clipped to it.

    :param session: the session whose IP enhances.
    :param inputs: file paths.
    :param out_dir: output folder (created); an output never overwrites its input.
    :param check: called between files (cancellation).
    :returns: the written paths.
    """
    import numpy as np
    from PIL import Image

    from .data.base import _to_float_array, to_channels

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    channels = session.bundle.channels
    window = cfg_get(session.config, "data").get("window")
    written: list[str] = []
    taken: set[str] = set()
    for raw in inputs:
        check()
        src = Path(raw).expanduser()
        if not src.is_file():
            raise ValueError(f"{src}: no such file (args.inputs)")
        dicom = _is_dicom(src)
        stem, suffix = src.stem, (".dcm" if dicom else ".png")
        name, k = stem + suffix, 1
        while name in taken:
            name, k = f"{stem}-{k}{suffix}", k + 1
        taken.add(name)
        dest = out / name
        if dest.resolve() == src.resolve():
            raise ValueError(f"{src}: the output would overwrite the input (choose another out_dir)")
        if dicom:
            ds, frames, undo = _read_dicom(src, window)
            result = session.enhance(to_channels_batch(frames, channels))
            _write_dicom(ds, result.mean(dim=1, keepdim=True) if channels != 1 else result, undo, dest, src)
        else:
            try:
                with Image.open(src) as img:
                    sixteen = img.mode in ("I;16", "I;16B", "I;16L", "I")
                    arr = _to_float_array(img)
            except Exception as e:
                raise ValueError(f"{src}: unreadable or corrupt image ({e})") from e
            x = to_channels(torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1), channels)
            y = session.enhance(x[None].float())[0].permute(1, 2, 0).numpy()
            if sixteen and channels == 1:
                Image.fromarray(np.rint(y[..., 0] * 65535).astype(np.uint16)).save(dest)
            else:
                y8 = np.rint(y * 255).astype(np.uint8)
                Image.fromarray(np.ascontiguousarray(y8[..., 0] if channels == 1 else y8)).save(dest)
        written.append(str(dest))
    return written


def to_channels_batch(x: Tensor, channels: int) -> Tensor:
    """N×1×H×W gray images as N×``channels``×H×W (repeated)."""
    return x if channels == 1 else x.expand(-1, channels, -1, -1).contiguous()


# --------------------------------------------------------------------- ops
def _new_session(ctx: Context, config: dict, load_model_weights: bool = True) -> Session:
    """A session for this process: a plain one, or a rank's share of a distributed one."""
    if ctx.state.dist is not None:
        return ctx.state.dist.new_session(config, ctx.state.device, load_model_weights)
    return Session(config, ctx.state.device, load_model_weights)


def session_of(ctx: Context) -> Session:
    if ctx.state.session is None:
        raise RuntimeError("no session: call session.create (or checkpoint.load) first")
    return ctx.state.session


@op("session.create", all_ranks=True)
def session_create(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Build data, models, optimizers and RNG from the resolved config (replacing any session)."""
    config = require(args, "config", dict)
    ctx.state.session = None  # free the old one first
    ctx.state.session = _new_session(ctx, config)
    return ctx.state.session.describe(), []


@op("vr.pretrain", all_ranks=True)
def vr_pretrain(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    steps = require(args, "steps", int)
    if steps < 0:
        raise ValueError(f"args.steps: expected >= 0, got {steps}")
    return session_of(ctx).pretrain(steps, ctx.check_cancelled), []


@op("train.grads", all_ranks=True)
def train_grads(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    transport = args.get("transport", "gram")
    if transport not in ("gram", "vectors"):
        raise ValueError(f"args.transport: expected gram or vectors, got {transport!r}")
    s = session_of(ctx)
    g = s.grads()
    result = {"step": s.step, "loss_ip": g.loss_ip, "loss_vr": g.loss_vr, "finite": g.finite, "gram": g.gram}
    out = [g.g_ip.detach().cpu().clone(), g.g_vr.detach().cpu().clone()] if transport == "vectors" else []
    return result, out


def _weights_arg(weights: Any, key: str, n: int) -> list[float]:
    if not isinstance(weights, dict) or key not in weights:
        raise ValueError(f"args.weights.{key}: required (one weight per block)")
    w = weights[key]
    if not isinstance(w, (list, tuple)):
        raise ValueError(f"args.weights.{key}: expected a list of {n} numbers, got {type(w).__name__}")
    if len(w) != n:
        raise ValueError(f"args.weights.{key}: expected {n} blocks, got {len(w)}")
    out = []
    for i, v in enumerate(w):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"args.weights.{key}[{i}]: expected a finite number, got {v!r}")
        out.append(float(v))
    return out


@op("train.apply", all_ranks=True)
def train_apply(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Apply per-block weights (``args.weights``) or a merged vector (``tensors[0]``)."""
    s = session_of(ctx)
    s._require_pending("train.apply")
    n = len(s.layout)
    if "weights" in args and args["weights"] is not None:
        if tensors:
            raise ValueError("train.apply: give either args.weights or a merged tensor, not both")
        w_ip = _weights_arg(args["weights"], "ip", n)
        w_vr = _weights_arg(args["weights"], "vr", n)
        return s.apply(w_ip, w_vr), []
    if len(tensors) != 1:
        raise ValueError(f"train.apply: expected args.weights or exactly one merged tensor, got {len(tensors)} tensors")
    merged = tensors[0]
    if merged.dtype != torch.float32:
        raise ValueError(f"tensors[0].dtype: expected float32, got {str(merged.dtype).removeprefix('torch.')}")
    if merged.dim() != 1 or merged.numel() != s.layout.numel:
        raise ValueError(f"tensors[0].shape: expected [{s.layout.numel}], got {list(merged.shape)}")
    if not bool(torch.isfinite(merged).all()):
        raise ValueError("tensors[0]: the merged vector is not finite")
    return s.apply(merged=merged), []


@op("train.skip", all_ranks=True)
def train_skip(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    return session_of(ctx).skip(), []


@op("eval", all_ranks=True)
def eval_op(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    split = require(args, "split", str)
    if split not in ("train", "val", "test"):
        raise ValueError(f"args.split: expected val or test (or train), got {split!r}")
    limit = args.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"args.limit: expected a positive integer or null, got {limit!r}")
    s = session_of(ctx)
    result = s.evaluate(split, limit)
    if not args.get("per_image"):
        return result, []
    # The per-image values, one float32 tensor each, named in result.per_image (for bootstraps over images).
    table = per_image_results(s.last_per_image, s.bundle.split(split).labels[: result["n"]], s.task)
    return {**result, "per_image": list(table)}, list(table.values())


@op("enhance")
def enhance_op(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    if len(tensors) != 1:
        raise ValueError(f"enhance: expected one tensor of images, got {len(tensors)}")
    return {}, [session_of(ctx).enhance(tensors[0])]


@op("enhance.files")
def enhance_files_op(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    inputs = require(args, "inputs", list)
    out_dir = require(args, "out_dir", str)
    if not all(isinstance(p, str) for p in inputs):
        raise ValueError("args.inputs: expected a list of file paths")
    return {"written": enhance_files(session_of(ctx), inputs, out_dir, ctx.check_cancelled)}, []


@op("checkpoint.save")
def checkpoint_save(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    path = require(args, "path", str)
    s = session_of(ctx)
    save_atomic(s.checkpoint(args.get("extra")), path)
    return {"path": path, "bytes": Path(path).stat().st_size}, []


@op("checkpoint.load", all_ranks=True)
def checkpoint_load(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Restore a checkpoint; with no session yet, build one from the checkpoint's own config."""
    path = require(args, "path", str)
    ckpt = ctx.state.dist.load_checkpoint(path) if ctx.state.dist is not None else load_checkpoint(path)
    if not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"{path}: not a gradprom checkpoint (no config)")
    if ctx.state.session is None:
        ctx.state.session = _new_session(ctx, ckpt["config"], load_model_weights=False)
    s = ctx.state.session
    s.restore(ckpt, path)
    return {"step": s.step, "skipped": s.skipped, "extra": ckpt.get("extra"), "config": s.config}, []


@op("data.describe")
def data_describe(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    s = session_of(ctx)
    out = s.bundle.describe()
    split = args.get("split")
    if split is not None:
        if split not in out:
            raise ValueError(f"args.split: expected train, val or test, got {split!r}")
        out = {split: out[split]}
    b = s.bundle
    out.update({"num_classes": b.num_classes, "channels": b.channels, "size": b.size, "class_names": list(b.class_names)})
    return out, []
