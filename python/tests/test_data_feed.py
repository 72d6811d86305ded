"""Batches and evaluation inputs on the device (gradprom_sidecar.data.feed), compact storage, device draws.

Runs on the test device (GRADPROM_TEST_DEVICE); the cases that compare CUDA placements with each
other or with the CPU need CUDA and are skipped elsewhere (scripts/gpu-check runs them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DEVICE
from helpers import call, make, new_state, step, tiny_config

from gradprom_sidecar.data import augment, to_unit
from gradprom_sidecar.data.base import DataBundle, Split
from gradprom_sidecar.data.degrade import build_degradation
from gradprom_sidecar.data.feed import DEVICE_CACHE_FRACTION, Feed, placement
from gradprom_sidecar.data.storage import quantize, stack_images
from gradprom_sidecar.training.optim import Sampler
from gradprom_sidecar.training.session import Session

cuda_only = pytest.mark.skipif(DEVICE.type != "cuda", reason="compares CUDA placements (run with GRADPROM_TEST_DEVICE=cuda)")


def stored_bundle(dtype: torch.dtype, n: int = 24, size: int = 8, masks: bool = True) -> DataBundle:
    """A bundle whose images are stored as ``dtype`` (uint8, uint16 or float32), with masks."""
    g = torch.Generator().manual_seed(1)
    depth = {torch.uint8: 8, torch.uint16: 16, torch.float32: None}[dtype]

    def split(k: int, start: int) -> Split:
        images = quantize(torch.rand(k, 3, size, size, generator=g), depth)
        m = (torch.rand(k, size, size, generator=g) > 0.5).to(torch.uint8) if masks else None
        return Split(images, torch.arange(k) % 3, m, [f"s{start + i}" for i in range(k)])

    return DataBundle(split(n, 0), split(6, n), split(10, n + 6), 3, 3, size, ["a", "b", "c"])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.float32])
def test_a_batch_is_the_stored_images_flipped_and_scaled_to_unit(dtype: torch.dtype) -> None:
    b = stored_bundle(dtype)
    feed = Feed(b, DEVICE, "auto", build_degradation([]), 0)
    idx = torch.tensor([5, 0, 17, 5, 9])
    gen = torch.Generator(device=DEVICE).manual_seed(4)
    clean, target = feed.train_batch(idx, gen, flip=True, segment=True)
    scale = {torch.uint8: 255.0, torch.uint16: 65535.0, torch.float32: 1.0}[dtype]
    expect = b.train.images[idx].to(torch.float32) / scale  # a uint8 level k is k/255 in float32, as before
    flips = torch.rand(5, generator=torch.Generator(device=DEVICE).manual_seed(4), device=DEVICE) < 0.5
    expect = torch.where(flips.cpu().view(-1, 1, 1, 1), expect.flip(-1), expect)
    masks = torch.where(flips.cpu().view(-1, 1, 1), b.train.masks[idx].flip(-1), b.train.masks[idx])  # type: ignore[index]
    assert clean.dtype == torch.float32 and clean.device.type == DEVICE.type and torch.equal(clean.cpu(), expect)
    assert target.dtype == torch.int64 and torch.equal(target.cpu(), masks.long())
    assert 0 < int(flips.sum()) < 5  # both branches taken
    _, labels = feed.train_batch(idx, gen, flip=False, segment=False)
    assert torch.equal(labels.cpu(), b.train.labels[idx])


def test_stack_images_keeps_the_narrowest_exact_storage() -> None:
    u8 = torch.tensor([[[0, 128, 255]]], dtype=torch.uint8)
    u16 = torch.tensor([[[0, 1000, 65535]]], dtype=torch.int32).to(torch.uint16)
    f = torch.tensor([[[0.0, 0.25, 1.0]]])
    assert stack_images([u8, u8]).dtype == torch.uint8
    mixed = stack_images([u8, u16])
    assert mixed.dtype == torch.uint16 and torch.equal(to_unit(mixed[0]), to_unit(u8))  # 257·k / 65535 == k / 255 exactly
    assert stack_images([u8, f]).dtype == torch.float32 and torch.equal(stack_images([u8, f])[0], to_unit(u8))
    with pytest.raises(ValueError, match="uint8, uint16 or float32"):
        stack_images([f.double()])
    with pytest.raises(ValueError, match=r"Split.masks: class values must lie in 0\.\.255"):
        Split(f[None], torch.zeros(1, dtype=torch.long), torch.full((1, 1, 3), 300), ["x"])


def test_evaluation_inputs_are_seeded_per_sample_computed_once_and_kept() -> None:
    b = stored_bundle(torch.uint8)
    deg = build_degradation([{"kind": "gaussian", "sigma": 0.3, "clip": False}])
    feed = Feed(b, DEVICE, "auto", deg, 7919)
    calls: list[int] = []
    real = deg.seeded
    deg.seeded = lambda *a, **k: calls.append(1) or real(*a, **k)  # type: ignore[method-assign]
    first = feed.eval_degraded("test", 2, 7)
    expect = real(to_unit(b.test.images[2:7]), range(2, 7), 7919)
    assert torch.equal(first.cpu(), expect) and len(calls) == 1
    first.add_(1.0)  # a network writing to its input
    again = feed.eval_degraded("test", 2, 7)
    assert torch.equal(again.cpu(), expect) and len(calls) == 1  # kept, and not changed through the copy handed out
    assert torch.equal(feed.eval_clean("test", 2, 7).cpu(), to_unit(b.test.images[2:7]))
    assert torch.equal(feed.eval_masks("test", 2, 7).cpu(), b.test.masks[2:7].long())  # type: ignore[index]


def test_placement_rule() -> None:
    assert placement(torch.device("cpu"), "on", 10**12) == "host"  # nothing to move on the CPU
    cuda = torch.device("cuda")
    assert placement(cuda, "on", 10**15) == "device" and placement(cuda, "off", 1) == "pinned"
    with pytest.raises(ValueError, match="config.data.device_cache"):
        placement(cuda, "sometimes", 1)


def test_auto_placement_takes_the_device_when_the_data_fits_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    free = 8 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * 2**30))
    cuda = torch.device("cuda")
    assert placement(cuda, "auto", int(DEVICE_CACHE_FRACTION * free)) == "device"
    assert placement(cuda, "auto", int(DEVICE_CACHE_FRACTION * free) + 1) == "pinned"


def test_sampler_peek_names_the_next_batch_without_drawing() -> None:
    g = torch.Generator().manual_seed(0)
    s = Sampler(10, 4, g)
    assert s.peek() is None  # no permutation yet: next() must draw one
    first = s.next()
    state = g.get_state()
    ahead = s.peek()
    assert ahead is not None and torch.equal(g.get_state(), state)  # peeking draws nothing
    assert torch.equal(s.next(), ahead)
    assert s.peek() is None  # 2 left of 10: the next batch comes from a new permutation
    assert not torch.equal(first, s.next())


def test_session_storage_is_reported_and_batches_come_from_the_feed() -> None:
    state, s = make(tiny_config(data={"augment": {"flip": True, "crop": False}}))
    storage = state.session.describe()["data"]["storage"]
    assert storage["dtype"] == "float32"  # the synthetic set stays float32 (figures unchanged)
    assert storage["placement"] == ("host" if DEVICE.type == "cpu" else storage["placement"])
    assert storage["rng"] == ("host" if DEVICE.type == "cpu" else "device")
    assert storage["bytes"] == s.bundle.nbytes() > 0
    assert s.bundle.train.masks is not None and s.bundle.train.masks.dtype == torch.uint8
    for _ in range(3):
        step(state)


def test_rng_host_and_device_are_one_stream_on_the_cpu() -> None:
    """On the CPU both settings draw from the sampling generator: a run does not depend on data.rng there."""
    if DEVICE.type != "cpu":
        pytest.skip("on CUDA the two settings draw from different generators by design")
    results = []
    for rng in ("device", "host"):
        state, _ = make(tiny_config(data={"rng": rng, "augment": {"flip": True, "crop": False}}))
        results.append([step(state)["loss_ip"] for _ in range(3)])
    assert results[0] == results[1]


@cuda_only
def test_cuda_placements_give_the_same_batches_and_steps() -> None:
    runs = {}
    for mode in ("on", "off"):
        state = new_state()
        cfg = tiny_config(data={"device_cache": mode, "augment": {"flip": True, "crop": False}})
        call(state, "session.create", {"config": cfg})
        call(state, "vr.pretrain", {"steps": 2})
        assert state.session.feed.where == ("device" if mode == "on" else "pinned")
        runs[mode] = ([step(state)["loss_ip"] for _ in range(8)], call(state, "eval", {"split": "test"})[0])
    assert runs["on"] == runs["off"]


@cuda_only
def test_cuda_with_rng_host_sees_the_cpu_batches() -> None:
    cfg = tiny_config(data={"rng": "host", "augment": {"flip": True, "crop": False}})
    cpu, cuda = Session(cfg, torch.device("cpu")), Session(cfg, DEVICE)
    for _ in range(7):  # crosses an epoch boundary
        a, b = cpu.draw_inputs(), cuda.draw_inputs()
        assert torch.equal(a[0], b[0].cpu()) and torch.equal(a[1], b[1].cpu())
        assert torch.allclose(a[2], b[2].cpu(), atol=1e-6)  # the same noise; the add may fuse differently on the GPU


def test_augment_flips_uint16_storage() -> None:
    b = stored_bundle(torch.uint16)
    x, m = augment(b.train.images, b.train.masks, torch.Generator().manual_seed(3))
    assert x.dtype == torch.uint16 and torch.equal(to_unit(x), augment(to_unit(b.train.images), None, torch.Generator().manual_seed(3))[0])


def test_resume_with_flips_and_device_draws_is_bit_identical(tmp_path: Path) -> None:
    """Flips, masks and noise continue from a checkpoint as if never interrupted (on CUDA: the device generator's state too)."""
    cfg = tiny_config(data={"augment": {"flip": True, "crop": False}})
    state, _ = make(cfg)
    for _ in range(4):
        step(state)
    path = tmp_path / "ckpt.pt"
    call(state, "checkpoint.save", {"path": str(path)})
    straight = [step(state) for _ in range(4)]  # crosses the epoch boundary (48 / 8 = 6 batches)
    resumed = new_state()
    call(resumed, "checkpoint.load", {"path": str(path)})
    assert [step(resumed) for _ in range(4)] == straight


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
def test_every_stored_level_becomes_the_float32_division_exactly_on_the_test_device(dtype: torch.dtype) -> None:
    """All 256 (65536) levels: k / 255 (k / 65535) correctly rounded, the CPU's division, bit for bit on the test device too.

    CUDA's division by a Python number is a multiplication by its reciprocal, one ulp off for 126 of the 256 8-bit levels;
    with it a ``data.rng: host`` CUDA run would not see the CPU run's batches.
    """
    top = 255 if dtype == torch.uint8 else 65535
    levels = torch.arange(top + 1, dtype=torch.int32).to(dtype)
    want = torch.from_numpy(np.arange(top + 1, dtype=np.float32) / np.float32(top))  # IEEE float32 division
    got = to_unit(levels.to(DEVICE)).cpu()
    assert got.dtype == torch.float32 and torch.equal(got, want)


def test_the_pinned_placement_leaves_the_splits_pageable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches go through pinned staging slots; pinning whole splits would page-lock up to twice their size."""

    def refuse(self: torch.Tensor, *args: object) -> torch.Tensor:
        raise AssertionError("a whole split pinned")

    feed = Feed.__new__(Feed)
    feed.where, feed.device = "pinned", torch.device("cpu")
    split = Split(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), None, [str(i) for i in range(4)])
    monkeypatch.setattr(torch.Tensor, "pin_memory", refuse)
    placed = feed._place(split)
    assert placed.images.data_ptr() == split.images.data_ptr() and placed.labels.data_ptr() == split.labels.data_ptr()


@cuda_only
@pytest.mark.parametrize("cache", ["on", "off"])
def test_host_generator_draws_reach_the_device_without_a_sync(cache: str) -> None:
    """``data.rng: host``: flips, crops and noise drawn on the host go up pinned and non-blocking (no sync per step)."""
    _, s = make(tiny_config(data={"rng": "host", "device_cache": cache, "augment": {"flip": True, "crop": False}}), pretrain=0)
    s.draw_inputs()  # first use: one-time copies (the divisor of to_unit, staging slots)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            s.draw_inputs()
    finally:
        torch.cuda.set_sync_debug_mode("default")
