"""The training session: one experiment's data, networks, optimisers and RNG, and the GradProm step.

One session per sidecar, held in ``ctx.state.session``. Its step is ``step.PipelinedStep``
(``Session.pipeline``, by composition): two backward passes, VR's own update and the next inputs
after the reply, the policy's decision applied; it holds the step count, the skip count and the
pending gradients. The session gives it what it reads: networks, optimisers, buffers, and the
inputs (:meth:`Session.take_inputs`, :meth:`Session.prefetch`). Around it: ``pretrain`` trains
its VR on clean images, ``evaluate`` scores a session, ``enhance`` runs its IP on images and
files, ``snapshot`` packs it into a checkpoint and restores it, ``ops/`` serves it on the wire,
``distributed.DistributedSession`` computes a rank's share of it.

Randomness: ``torch.manual_seed(seed)`` before the networks are built (their initialisation); a
CPU ``torch.Generator`` seeded with ``seed`` drives batch sampling (an epoch-wise permutation of the
train indices, the same on every device). Flips and training noise come from ``draws``: on CUDA
with ``data.rng: device`` (the default) a generator on the device seeded with ``seed``, so they are
drawn where they are used; on the CPU, or with ``data.rng: host``, the sampling generator itself,
drawn on the CPU and copied, so a CUDA run with ``rng: host`` sees exactly a CPU run's batches,
flips and noise. The data set is built from the DATA seed (``data.seed``), and evaluation
degrades its inputs from that seed too (see ``evaluate``), so runs with different training seeds
share one data set and one degraded test set. Inputs drawn ahead (:meth:`Session.prefetch`) keep
the state they were drawn from, so a checkpoint records the RNG as if they had not been drawn.

Data: ``data.cache.load_data`` (decoded once per sidecar, and kept on disk for the next one) and
``data.feed.Feed`` (the splits on the device, or pinned with the next batch copied ahead).

The config must be resolved (``config.resolve``; TypeScript always sends it so): every value is
read with ``config.setting``, and a missing one is an error naming ``config.<path>``.
"""

from __future__ import annotations

import copy
from functools import cached_property

import torch
from torch import Tensor, nn

from gradprom_sidecar.data.cache import Loaded, load_data
from gradprom_sidecar.data.degrade import build_degradation
from gradprom_sidecar.data.feed import EVAL_SEED_OFFSET, Feed
from gradprom_sidecar.models import SEGMENTERS, build_ip, build_vr, count_params, load_ip_weights, load_vr_weights, resolve_ip_shape
from gradprom_sidecar.models.checkpoint import CheckpointError
from gradprom_sidecar.training import grads as G
from gradprom_sidecar.training.config import setting, setting_in
from gradprom_sidecar.training.descent import StepProbe
from gradprom_sidecar.training.optim import Sampler, make_optimizer, optimizer_settings
from gradprom_sidecar.training.precision import Precision, set_backend_modes
from gradprom_sidecar.training.step import PipelinedStep

PRETRAIN_SEED_OFFSET = 104729  # VR pre-training draws from its own generator, seeded seed + this
MODES = ("supervised", "unsupervised", "frozen")


def frozen_copy(vr: nn.Module) -> nn.Module:
    """A copy of ``vr`` that never trains: no gradients, evaluation mode.

    :param vr: the network to copy.
    """
    fixed = copy.deepcopy(vr)
    fixed.requires_grad_(False)
    fixed.eval()
    for p in fixed.parameters():
        p.grad = None
    return fixed


def _arch_error(e: ValueError, where: str) -> ValueError:
    """A builder's error, named by ``config.<where>.arch`` unless it already names its field."""
    return ValueError(str(e) if str(e).startswith("config.") else f"config.{where}.arch: {e}")


class Session:
    """Everything one experiment holds on the sidecar.

    :param config: the resolved experiment config.
    :param device: where the networks live.
    :param load_model_weights: load ``ip.weights``/``vr.weights`` (False when a checkpoint follows).
    :param data: the data, when the caller has it (default: ``load_data`` of ``config.data``); an evaluation that streams its
        split passes one that holds no images (``evaluation.streaming.empty_bundle``).
    """

    def __init__(self, config: dict, device: torch.device, load_model_weights: bool = True, data: Loaded | None = None) -> None:
        self.config = config
        self.device = device
        self.seed = int(setting(config, "seed"))
        self.data_seed = int(setting(config, "data.seed"))
        self.data = load_data(setting(config, "data"), self.data_seed) if data is None else data
        self.bundle = self.data.bundle
        self.degradation = build_degradation(setting(config, "degradation"))
        self.task = setting_in(config, "vr.task", ("classify", "segment"))
        self.mode = setting_in(config, "vr.mode", MODES)
        self.loss_kind = setting_in(config, "train.loss", ("mse", "l1"))
        # ip.scale null: the weights' scale, else the degradation's; no degradation (enhance): any scale.
        ip_cfg = resolve_ip_shape(
            {**setting(config, "ip"), "in_channels": self.bundle.channels}, setting(config, "ip.weights"), self.degradation.scale
        )
        scale = self.ip_scale = int(ip_cfg["scale"])
        if self.degradation.steps and scale != self.degradation.scale:
            raise ValueError(f"config.ip.scale: {scale} does not match the degradation's total downsampling (x{self.degradation.scale})")
        if self.bundle.size % self.degradation.scale:
            raise ValueError(f"config.data.size: {self.bundle.size} is not divisible by the downsampling x{self.degradation.scale}")
        self.num_classes = self._task_classes()
        self.flip = bool(setting(config, "data.augment.flip"))
        self.crop = self.bundle.size if setting(config, "data.augment.crop") else None  # train images kept larger, cropped per batch
        self.batch_size = int(setting(config, "train.batch_size"))
        self.total_steps = int(setting(config, "train.steps"))

        set_backend_modes(config, device)
        self.precision = Precision(config, device)  # autocast, fp16's loss scale, channels_last inputs (``precision``)
        torch.manual_seed(self.seed)
        try:
            self.ip = build_ip(ip_cfg).to(device)
        except ValueError as e:
            raise _arch_error(e, "ip") from e
        self.vr = self.build_vr()
        self.vr_params = list(self.vr.parameters())  # walked every step: the module tree once
        self.vr_left_at_init: list[str] = []  # resnet fc left at init when torchvision weights have another class count
        if load_model_weights:
            self._load_weights()
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
        # The optimisers are made on first use (below); their sections are checked now.
        optimizer_settings(setting(config, "train.ip_optim"), "train.ip_optim")
        self._vr_trained: list[nn.Parameter] | None = None  # what VR's optimiser updates; None: frozen, no optimiser
        if self.mode != "frozen":
            optimizer_settings(setting(config, "train.vr_optim"), "train.vr_optim")
            self._vr_trained = [p for p in self.vr.parameters() if p.requires_grad]
        self.feed = Feed(
            self.bundle,
            device,
            setting_in(config, "data.device_cache", ("auto", "on", "off")),
            self.degradation,
            self.data_seed + EVAL_SEED_OFFSET,
        )
        self.generator = torch.Generator().manual_seed(self.seed)
        self.pretrain_generator = torch.Generator().manual_seed(self.seed + PRETRAIN_SEED_OFFSET)
        self.draws = self._draw_generator(self.generator, self.seed)
        self.pretrain_draws = self._draw_generator(self.pretrain_generator, self.seed + PRETRAIN_SEED_OFFSET)
        self.sampler = Sampler(len(self.bundle.train), self.batch_size, self.generator)
        self.prefetched: tuple[tuple[Tensor, Tensor, Tensor], dict] | None = None  # (inputs, RNG state before them)
        self.pipeline = PipelinedStep(self)  # the step and its state: steps taken, skips, pending gradients

    @property
    def step(self) -> int:
        """IP steps taken (the pipeline's count)."""
        return self.pipeline.step

    # torch.optim's first optimiser imports torch._dynamo, about 1.4 s of CPU: a session that only evaluates or enhances
    # never makes one.
    @cached_property
    def ip_optim(self) -> torch.optim.Optimizer:
        """IP's optimiser (``train.ip_optim``), made on first use."""
        return make_optimizer(self.layout.params, setting(self.config, "train.ip_optim"), "train.ip_optim")

    @cached_property
    def vr_optim(self) -> torch.optim.Optimizer | None:
        """VR's optimiser (``train.vr_optim``), made on first use; None when VR is frozen."""
        if self._vr_trained is None:
            return None
        return make_optimizer(self._vr_trained, setting(self.config, "train.vr_optim"), "train.vr_optim")

    # ----------------------------------------------------------------- building
    def _task_classes(self) -> int:
        b = self.bundle
        if self.task == "classify":
            arch = setting(self.config, "vr.arch")
            if arch in SEGMENTERS:
                raise ValueError(f"config.vr.arch: {arch!r} is a segmenter; vr.task 'classify' needs a classifier")
            return b.num_classes
        splits = [b.train, b.val, b.test]
        if any(s.masks is None for s in splits):
            raise ValueError("config.vr.task: 'segment' needs masks, but this data set has none (set data.masks_dir)")
        if not b.has_labels:
            return b.num_classes
        # A labelled set with masks (e.g. synthetic): the mask's own classes, background included.
        return max(2, max(int(s.masks.max()) for s in splits if len(s)) + 1)

    def _draw_generator(self, host: torch.Generator, seed: int) -> torch.Generator:
        """The generator flips and noise are drawn from: ``host`` on the CPU or with ``data.rng: host``, else one on the device."""
        if setting_in(self.config, "data.rng", ("device", "host")) == "host" or self.device.type == "cpu":
            return host
        return torch.Generator(device=self.device).manual_seed(seed)

    def build_vr(self) -> nn.Module:
        """A fresh VR network from ``config.vr`` on this session's device (untrained)."""
        try:
            return build_vr(setting(self.config, "vr"), self.bundle.channels, self.num_classes).to(self.device)
        except ValueError as e:
            raise _arch_error(e, "vr") from e

    def _load_weights(self) -> None:
        ip_weights, vr_weights = setting(self.config, "ip.weights"), setting(self.config, "vr.weights")
        if ip_weights:
            try:
                load_ip_weights(self.ip, ip_weights)
            except CheckpointError as e:
                raise ValueError(f"config.ip.weights: {e}") from e
        if vr_weights:
            try:
                self.vr_left_at_init = load_vr_weights(self.vr, vr_weights)
            except CheckpointError as e:
                raise ValueError(f"config.vr.weights: {e}") from e

    def describe(self) -> dict:
        """The ``session.create`` result: IP's block layout, parameter counts, device, data set."""
        b = self.bundle
        return {
            "layout": self.layout.to_dict(),
            "ip_params": count_params(self.ip),
            "vr_params": count_params(self.vr),
            "device": str(self.device),
            **self.precision.describe(),
            "data": {
                "train": len(b.train),
                "val": len(b.val),
                "test": len(b.test),
                "num_classes": b.num_classes,
                "task_classes": self.num_classes,
                "channels": b.channels,
                "size": b.size,
                "class_names": list(b.class_names),
                "storage": {
                    **self.feed.describe(),
                    "rng": "host" if self.draws is self.generator else "device",
                    "cache": self.data.describe(),
                },
            },
        }

    # ----------------------------------------------------------------- batches
    def batch(self, idx: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Clean images (float32 in [0, 1]) and the supervised target (labels or masks) of train samples ``idx``, augmented, on the device.

        :param idx: train sample indices.
        :param generator: draws the augmentation (``draws`` or ``pretrain_draws``).
        """
        return self.feed.train_batch(idx, generator, self.flip, self.task == "segment", self.crop)

    # ----------------------------------------------------------------- hooks (distributed.DistributedSession)
    # One process computes the whole batch; a rank of several overrides these to take its share.
    def local(self, t: Tensor) -> Tensor:
        """This process's share of a global batch (all of it)."""
        return t

    def average(self, tensors: list[Tensor]) -> None:
        """Average tensors over the processes, in place (one process: nothing to do)."""

    def vr_forward(self, x: Tensor) -> Tensor:
        """VR's forward pass for training (a rank of several goes through DistributedDataParallel)."""
        return self.vr(x)

    def eval_range(self, n: int) -> tuple[int, int]:
        """The images ``[start, end)`` of the first ``n`` this process evaluates (all of them)."""
        return 0, n

    def gather_eval(self, parts: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-image results of every process, concatenated in image order (one process: its own)."""
        return parts

    def sync_for_eval(self) -> None:
        """Make every process evaluate the same networks (one process: nothing to do)."""

    # ----------------------------------------------------------------- training inputs
    def draw_inputs(self) -> tuple[Tensor, Tensor, Tensor]:
        """The next training batch, drawn now: clean images, target and degraded input, for the whole global batch.

        The batch after it starts on its way to the device (pinned placement) once this one is made.
        """
        clean, target = self.batch(self.sampler.next(), self.draws)
        x = self.degradation(clean, self.draws)  # drawn for the whole batch, so a slice matches one process
        self.feed.prefetch(self.sampler.peek())
        return clean, target, x

    def input_rng_state(self) -> dict:
        """The state of everything :meth:`draw_inputs` draws from (for checkpoints, and to undo a prefetch)."""
        state = {"generator": self.generator.get_state(), "sampler": self.sampler.state()}
        if self.draws is not self.generator:  # flips and noise drawn on the device (data.rng: device on CUDA)
            state["draws"] = self.draws.get_state()
        return state

    def set_input_rng_state(self, state: dict) -> None:
        """Put back an :meth:`input_rng_state` (any prefetched inputs are dropped).

        :param state: what :meth:`input_rng_state` returned.
        """
        self.generator.set_state(state["generator"])
        self.sampler.load(state["sampler"])
        if "draws" in state and self.draws is not self.generator:
            self.draws.set_state(state["draws"])
        self.prefetched = None

    def prefetch(self) -> None:
        """Draw the next step's inputs now (while TypeScript decides), remembering the state they were drawn from."""
        if self.prefetched is None:
            before = self.input_rng_state()
            self.prefetched = (self.draw_inputs(), before)

    def use_inputs(self, clean: Tensor, target: Tensor, x: Tensor) -> None:
        """Make the next step's inputs these (moved to this device), not drawn: two devices fed alike (gpu-check).

        :param clean: clean images of the global batch.
        :param target: labels or masks.
        :param x: the degraded input.
        """
        self.prefetched = ((clean.to(self.device), target.to(self.device), x.to(self.device)), self.input_rng_state())

    def take_inputs(self) -> tuple[Tensor, Tensor, Tensor]:
        """This step's inputs: the prefetched ones, or drawn now."""
        if self.prefetched is None:
            return self.draw_inputs()
        inputs, self.prefetched = self.prefetched[0], None
        return inputs
