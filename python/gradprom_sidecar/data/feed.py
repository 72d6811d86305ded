"""Batches and evaluation inputs where the compute is: where a session's splits live, and how a batch is made.

Placement, decided once per session from ``data.device_cache`` (auto | on | off):

- ``host`` (every CPU session): the splits stay as they are; nothing to move.
- ``device`` (CUDA; ``on``, or ``auto`` when the splits and the cached val/test inputs take at
  most :data:`DEVICE_CACHE_FRACTION` of the free device memory): the splits are copied to the
  device once, and a batch is gathered there. The batch's indices go up in one non-blocking copy
  from pinned memory: no host–device sync.
- ``pinned`` (CUDA; ``off``, or ``auto`` when they do not fit): the splits stay in host memory
  as they are (pageable). A batch is gathered on the host into one of two pinned staging buffers
  and copied non-blocking on a side stream; the session names the next batch (``Sampler.peek``) as soon as it has the
  current one, so that copy runs while the current step computes.

A training batch: the stored images (uint8, uint16 or float32: ``base``) gathered, flipped
(``augment``, on the device, from the generator the session gives), then converted to float32 in
[0, 1] (``to_unit``); the target is the labels (int64) or the masks (uint8 → int64).

Evaluation inputs: clean images per range of a split, and the degraded inputs, which are seeded
per sample (``Degradation.seeded``) and so the same at every evaluation: computed once per
session and range, then kept beside the data (on the device when the data is there, pinned
otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradprom_sidecar.data import augment
from gradprom_sidecar.data.base import SPLITS, DataBundle, Split
from gradprom_sidecar.data.degrade import Degradation
from gradprom_sidecar.data.storage import gatherable, stored, to_unit

EVAL_SEED_OFFSET = 7919  # validation/test degradation seed = data seed + this
DEVICE_CACHE_FRACTION = 0.25  # auto: the device holds the splits when they take at most this share of its free memory
MODES = ("auto", "on", "off")


def placement(device: torch.device, mode: str, need_bytes: int) -> str:
    """Where a session's splits live: "host" (CPU), "device" or "pinned" (CUDA), see the module docstring.

    :param device: the session's device.
    :param mode: ``data.device_cache``.
    :param need_bytes: the splits plus the cached evaluation inputs.
    """
    if mode not in MODES:
        raise ValueError(f"config.data.device_cache: expected one of {', '.join(MODES)}, got {mode!r}")
    if device.type == "cpu":
        return "host"
    if device.type != "cuda":
        return "device"  # no pinned memory or side streams to use elsewhere
    if mode != "auto":
        return "device" if mode == "on" else "pinned"
    free, _ = torch.cuda.mem_get_info(device)
    return "device" if need_bytes <= DEVICE_CACHE_FRACTION * free else "pinned"


@dataclass
class _Placed:
    """One split where it lives: images as a ``gatherable`` view of their storage dtype."""

    images: Tensor
    dtype: torch.dtype
    labels: Tensor
    masks: Tensor | None


@dataclass
class _Slot:
    """A pinned staging buffer for one batch, and the event of the copy that last read it."""

    tensors: tuple[Tensor, Tensor, Tensor | None]
    done: torch.cuda.Event


class Feed:
    """A session's data on its device: training batches and evaluation inputs.

    :param bundle: the data set (host, compact).
    :param device: the session's device.
    :param mode: ``data.device_cache``.
    :param degradation: the session's degradation (for the evaluation inputs).
    :param eval_seed: the evaluation degradation seed (``data.seed + EVAL_SEED_OFFSET``).
    """

    def __init__(self, bundle: DataBundle, device: torch.device, mode: str, degradation: Degradation, eval_seed: int) -> None:
        self.bundle, self.device, self.degradation, self.eval_seed = bundle, device, degradation, eval_seed
        side = bundle.size // degradation.scale
        eval_bytes = 4 * bundle.channels * side * side * (len(bundle.val) + len(bundle.test))
        self.where = placement(device, mode, bundle.nbytes() + eval_bytes)
        self.splits = {name: self._place(bundle.split(name)) for name in SPLITS}
        self._eval: dict[tuple[str, int, int], Tensor] = {}
        self._ahead: tuple[Tensor, tuple[Tensor, Tensor, Tensor | None], torch.cuda.Event] | None = None
        if self.where == "pinned":
            self._stream = torch.cuda.Stream(device)
            self._slots: list[_Slot | None] = [None, None]
            self._next_slot = 0

    def _place(self, split: Split) -> _Placed:
        images = gatherable(split.images)
        if self.where == "device":
            move = lambda t: t.to(self.device)  # noqa: E731
        else:
            # "pinned" too: batches are staged through the pinned slots, so the splits stay pageable (pinning them whole
            # would page-lock up to twice their size: the caching host allocator rounds up to powers of two).
            move = lambda t: t  # noqa: E731
        return _Placed(move(images), split.images.dtype, move(split.labels), None if split.masks is None else move(split.masks))

    def describe(self) -> dict:
        """Placement, storage dtype and bytes, for ``session.create``'s ``data.storage``."""
        return {
            "placement": self.where,
            "dtype": str(self.bundle.train.images.dtype).removeprefix("torch."),
            "bytes": self.bundle.nbytes(),
        }

    # ----------------------------------------------------------------- training batches
    def train_batch(
        self, idx: Tensor, generator: torch.Generator, flip: bool, segment: bool, crop: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Clean float32 images in [0, 1] and the target (labels, or masks when ``segment``) of train samples ``idx``, on the device.

        :param idx: train sample indices (CPU, int64).
        :param generator: draws the flips (on its own device).
        :param flip: random horizontal flips (``data.augment.flip``).
        :param segment: the target is the masks.
        :param crop: the side of a random crop per sample (``data.augment.crop``), or None.
        """
        images, labels, masks = self._gather(idx)
        if flip or crop is not None:
            images, masks = augment(images, masks, generator, flip, crop)
        clean = to_unit(stored(images, self.splits["train"].dtype))
        target = masks.long() if segment else labels  # type: ignore[union-attr]
        return clean, target

    def prefetch(self, idx: Tensor | None) -> None:
        """Start copying the train samples ``idx`` to the device (pinned placement only; None: nothing to start).

        :param idx: the next batch's indices, when known without drawing (``Sampler.peek``).
        """
        if self.where != "pinned" or idx is None:
            return
        if self._ahead is not None and torch.equal(self._ahead[0], idx):
            return
        self._ahead = (idx.clone(), *self._start(idx))

    def _gather(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        st = self.splits["train"]
        if self.where != "pinned":
            # index_select, not st.images[i]: on the CPU it gathers uint8 rows ~10x faster (same values).
            i = idx.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else idx.to(self.device)
            return tuple(None if t is None else torch.index_select(t, 0, i) for t in (st.images, st.labels, st.masks))  # type: ignore[return-value]
        ahead = self._ahead
        self._ahead = None
        tensors, done = ahead[1:] if ahead is not None and torch.equal(ahead[0], idx) else self._start(idx)
        current = torch.cuda.current_stream(self.device)
        current.wait_event(done)
        for t in tensors:
            if t is not None:
                t.record_stream(current)  # made on the side stream, used on this one
        return tensors

    def _start(self, idx: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor | None], torch.cuda.Event]:
        """Gather ``idx`` on the host into a pinned slot and copy it to the device on the side stream."""
        st = self.splits["train"]
        n = int(idx.numel())
        slot = self._slots[self._next_slot]
        if slot is None or slot.tensors[0].shape[0] != n:
            staging = (
                torch.empty((n, *st.images.shape[1:]), dtype=st.images.dtype, pin_memory=True),
                torch.empty((n,), dtype=st.labels.dtype, pin_memory=True),
                None if st.masks is None else torch.empty((n, *st.masks.shape[1:]), dtype=st.masks.dtype, pin_memory=True),
            )
            slot = _Slot(staging, torch.cuda.Event())
            self._slots[self._next_slot] = slot
        else:
            slot.done.synchronize()  # the copy that last read this slot is over before the host writes it again
        self._next_slot ^= 1
        host = slot.tensors
        torch.index_select(st.images, 0, idx, out=host[0])
        torch.index_select(st.labels, 0, idx, out=host[1])
        if st.masks is not None:
            torch.index_select(st.masks, 0, idx, out=host[2])
        with torch.cuda.stream(self._stream):
            dev = tuple(None if t is None else t.to(self.device, non_blocking=True) for t in host)
            slot.done.record(self._stream)
        return dev, slot.done  # type: ignore[return-value]

    # ----------------------------------------------------------------- evaluation inputs
    def eval_clean(self, name: str, start: int, end: int) -> Tensor:
        """Clean float32 images ``[start, end)`` of a split, on the device.

        :param start: first image.
        :param end: one past the last.
        """
        st = self.splits[name]
        images = st.images[start:end].to(self.device)  # from pageable memory: a copy that waits (evaluation only)
        return to_unit(stored(images, st.dtype))

    def eval_masks(self, name: str, start: int, end: int) -> Tensor:
        """Masks ``[start, end)`` of a split as int64 class maps, on the device.

        :param name: the split (it must have masks).
        :param start: first image.
        :param end: one past the last.
        """
        masks = self.splits[name].masks
        if masks is None:
            raise ValueError(f"split {name!r} has no masks")
        return masks[start:end].to(self.device).long()

    def eval_degraded(self, name: str, start: int, end: int) -> Tensor:
        """The degraded inputs of images ``[start, end)``: seeded per sample, computed once, then kept.

        Each call returns a copy, so a network that writes to its input cannot change the kept ones.

        :param start: first image.
        :param end: one past the last.
        """
        key = (name, start, end)
        x = self._eval.get(key)
        if x is None:
            clean = to_unit(self.bundle.split(name).images[start:end])
            x = self.degradation.seeded(clean, range(start, end), self.eval_seed)  # drawn on the CPU: the same on every device
            x = x.to(self.device) if self.where == "device" else x.pin_memory() if self.where == "pinned" else x
            self._eval[key] = x
        return x.to(self.device, non_blocking=True) if self.where == "pinned" else x.clone()
