"""Streaming an evaluation split from its files: batch by batch, decoded by a few threads, never all in memory.

An evaluation reads each image once, so a file-based split (``imagefolder``, ``imagenet-val``) is
listed, not loaded: the files are decoded by up to :data:`DECODE_WORKERS` threads (no more than the cores) (PIL releases the GIL
while it decodes), at most :data:`AHEAD` batches ahead of the one being scored. Each image goes
through the loader's own ``read_transformed`` and the batch through ``stack_images``, so a batch is
the same uint8 tensor the in-memory split holds at those indices: the numbers cannot differ.
Memory: about (AHEAD + 1) batches of decoded images, whatever the split's size.

The ``eval`` op of a session scores the split the session holds; ``gradprom eval`` (the ``eval.weights``
op) and the transfer table open the split here instead (:func:`open_source`), so a file-based one is
never decoded whole: a session built for such an evaluation holds :func:`empty_bundle` as its data.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gradprom_sidecar.data.base import DataBundle, Split
from gradprom_sidecar.data.imagefolder import list_imagefolder, read_transformed
from gradprom_sidecar.data.storage import stack_images
from gradprom_sidecar.training.config import setting
from gradprom_sidecar.training.device import peak_memory_mb

log = logging.getLogger("gradprom.eval")

STREAMED_KINDS = ("imagefolder", "imagenet-val")
PROGRESS_EVERY_S = 10.0
DECODE_WORKERS = 4  # threads decoding JPEGs; more buys little beyond the cores
AHEAD = 2  # batches decoded ahead of the one being scored


@dataclass(frozen=True)
class Listing:
    """An evaluation split as files: each image's file and class in split order, and how to read one."""

    files: list[Path]
    labels: Tensor  # int64, one per file
    class_names: list[str]
    channels: int
    size: int
    resize: int | None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def read(self, index: int) -> Tensor:
        """Image ``index`` as C×size×size uint8, as the in-memory loader stores it."""
        return read_transformed(self.files[index], self.resize, self.size, self.channels)


def streams(data_cfg: dict) -> bool:
    """Whether an evaluation of this data section streams from files (see the module docstring).

    :param data_cfg: the config's data section.
    """
    return setting(data_cfg, "kind", "data") in STREAMED_KINDS


def list_split(data_cfg: dict, split_name: str) -> Listing:
    """The files of an evaluation split, in the order and with the classes the in-memory loader gives.

    :param data_cfg: the config's data section (a kind in :data:`STREAMED_KINDS`).
    :param split_name: "val" or "test".
    """
    kind = setting(data_cfg, "kind", "data")
    size, channels = int(setting(data_cfg, "size", "data")), int(setting(data_cfg, "channels", "data"))
    if kind == "imagenet-val":
        from gradprom_sidecar.data.imagenet_val import list_imagenet_val

        found = list_imagenet_val(data_cfg)
        files, labels, classes = found.files, found.labels, found.classes
    elif kind == "imagefolder":
        files, labels, classes = list_imagefolder(data_cfg, split_name)
    else:
        raise ValueError(f"config.data.kind: {kind!r} is not read from files one by one (streamed kinds: {', '.join(STREAMED_KINDS)})")
    resize = setting(data_cfg, "resize", "data")
    return Listing(files, torch.tensor(labels, dtype=torch.long), classes, channels, size, None if resize is None else int(resize))


def batches(
    listing: Listing, n: int, batch_size: int, workers: int = DECODE_WORKERS, ahead: int = AHEAD
) -> Iterator[tuple[int, int, Tensor]]:
    """``(start, end, images)`` for the first ``n`` images in order, ``images`` stored (uint8) as the in-memory split holds them.

    :param listing: the split.
    :param n: how many images.
    :param batch_size: images per batch (the last may be smaller).
    :param workers: decoding threads.
    :param ahead: batches decoded ahead of the one returned.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 1, batch_size)), thread_name_prefix="decode")
    pending: deque[tuple[int, int, list[Future[Tensor]]]] = deque()
    starts = iter(range(0, n, batch_size))

    def submit() -> None:
        start = next(starts, None)
        if start is not None:
            end = min(n, start + batch_size)
            pending.append((start, end, [pool.submit(listing.read, i) for i in range(start, end)]))

    try:
        for _ in range(ahead + 1):
            submit()
        while pending:
            start, end, futures = pending.popleft()
            submit()
            yield start, end, stack_images([f.result() for f in futures])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class Source:
    """An evaluation split however it is held: ``batches`` gives stored images in order, from files or from memory."""

    n: int
    labels: Tensor
    num_classes: int
    class_names: list[str]
    channels: int
    size: int
    streamed: bool
    batches: Callable[[int, int], Iterator[tuple[int, int, Tensor]]]  # (n, batch_size) -> (start, end, images)


def open_source(data_cfg: dict, seed: int, split_name: str) -> Source:
    """A file-based split streamed (:func:`list_split`), any other from the sidecar's in-memory data (``cache.load_data``).

    :param data_cfg: the config's data section.
    :param seed: the data seed.
    :param split_name: "val" or "test".
    """
    if streams(data_cfg):
        ls = list_split(data_cfg, split_name)
        return Source(
            len(ls.files), ls.labels, ls.num_classes, ls.class_names, ls.channels, ls.size, True, lambda n, bs: batches(ls, n, bs)
        )
    from gradprom_sidecar.data.cache import load_data

    bundle = load_data(data_cfg, seed).bundle  # decoded once per sidecar, like a session's
    split = bundle.split(split_name)

    def in_memory(n: int, bs: int) -> Iterator[tuple[int, int, Tensor]]:
        for start in range(0, n, bs):
            yield start, min(n, start + bs), split.images[start : min(n, start + bs)]

    return Source(len(split), split.labels, bundle.num_classes, list(bundle.class_names), bundle.channels, bundle.size, False, in_memory)


def empty_bundle(source: Source) -> DataBundle:
    """A data set of no images with the source's classes, channels and side: what a session builds its networks from when its
    evaluation streams (its train split is empty, so it cannot train).

    :param source: the evaluation split.
    """

    def empty() -> Split:
        return Split(
            torch.empty((0, source.channels, source.size, source.size), dtype=torch.uint8), torch.empty(0, dtype=torch.long), None, []
        )

    return DataBundle(empty(), empty(), empty(), source.num_classes, source.channels, source.size, list(source.class_names))


class Progress:
    """Progress lines (images done, images per second, peak memory) on the ``gradprom.eval`` logger, at most every few seconds.

    :param n: images in all.
    :param what: names the work in each line.
    :param every_s: seconds between lines (the last image always gets one).
    """

    def __init__(self, n: int, what: str, every_s: float = PROGRESS_EVERY_S) -> None:
        self.n, self.what, self.every_s = n, what, every_s
        self.t0 = self.last = time.monotonic()

    def update(self, done: int) -> None:
        """Log a line when ``every_s`` has passed since the last one, or at the end.

        :param done: images scored so far.
        """
        now = time.monotonic()
        if done < self.n and now - self.last < self.every_s:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        log.info("%s: %d/%d images, %.1f images/s, peak memory %.0f MB", self.what, done, self.n, rate, peak_memory_mb(torch.device("cpu")))
