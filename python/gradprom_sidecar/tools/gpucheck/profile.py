"""(c) The step profile: ms per step by phase, peak memory, host-device syncs per step, one scenario at a time.

The step is the in-process reference step (``reference.reference_step``: grads → after_grads →
policy → apply, the operations ``train.advance`` runs for the TypeScript trainer, less the round
trip). The session announces each phase (``Session.on_phase``); on CUDA a CUDA event is recorded
there, so a phase's time is what the GPU spent from reaching its start to reaching the next one
(idle time waiting for the host included), on the CPU it is wall time. Syncs are counted with
``torch.cuda.set_sync_debug_mode("warn")``: every synchronising call torch makes warns once.
"""

from __future__ import annotations

import resource
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from gradprom_sidecar.tools.gpucheck.scenarios import Scenario, Variant
from gradprom_sidecar.tools.reference import reference_step
from gradprom_sidecar.training.config import at
from gradprom_sidecar.training.device import SyncCount
from gradprom_sidecar.training.session import Session

STEP_PHASES = ("inputs", "forward", "backward", "gram", "readback", "vr_step", "prefetch", "policy", "merge", "ip_step")


class PhaseClock:
    """Timestamps of the phases of each step: CUDA events on a GPU, ``perf_counter`` on the CPU.

    :param device: the session's device.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.steps: list[list[tuple[str, Any]]] = []

    def begin(self) -> None:
        """Start a step."""
        self.steps.append([])

    def mark(self, name: str) -> None:
        """Phase ``name`` starts now (``end``: the step is over)."""
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.steps[-1].append((name, ev))
        else:
            self.steps[-1].append((name, time.perf_counter()))

    def durations(self) -> list[dict[str, float]]:
        """Per step, ms per phase (a phase's time runs to the next mark); waits for the device once."""
        if self.cuda:
            torch.cuda.synchronize()
        out = []
        for marks in self.steps:
            d: dict[str, float] = {}
            for (name, a), (_, b) in zip(marks, marks[1:]):
                d[name] = d.get(name, 0.0) + (a.elapsed_time(b) if self.cuda else (b - a) * 1000.0)
            out.append(d)
        return out


@dataclass
class ProfileResult:
    """What one scenario × variant measured."""

    scenario: str
    variant: str
    what: str
    ip_params: int
    vr_params: int
    steps: int
    wall_ms: float
    phases_ms: dict[str, float]
    peak_mib: float
    peak_kind: str
    syncs_per_step: float
    own_syncs_per_step: float
    sync_kinds: list[str] = field(default_factory=list)
    gates: list[float | None] = field(default_factory=list)  # every step's gate (warm-up and timed), None when skipped


def _timed_step(s: Session, policy_cfg: dict, clock: PhaseClock, gates: list[float | None]) -> float:
    """One reference step with its phases marked, its gate appended to ``gates``; its host wall time (ms)."""
    clock.begin()
    s.on_phase = clock.mark
    t0 = time.perf_counter()
    try:
        gates.append(reference_step(s, policy_cfg)[1]["gate"])
    finally:
        s.on_phase = None
    clock.mark("end")
    return (time.perf_counter() - t0) * 1000.0


def _count_syncs(s: Session, policy_cfg: dict, steps: int) -> tuple[float, float, list[str]]:
    """Syncs per step that torch flags (all kinds), and those of gradprom's own read-back, over ``steps`` steps."""
    if s.device.type != "cuda":
        return float("nan"), float("nan"), []
    own = SyncCount.count
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                reference_step(s, policy_cfg)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    flagged = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
    return len(flagged) / steps, (SyncCount.count - own) / steps, sorted(set(flagged))


def profile(scenario: Scenario, variant: Variant, device: torch.device, warmup: int, steps: int) -> ProfileResult:
    """Build the scenario's session on ``device`` and measure ``steps`` steps after ``warmup``.

    :param scenario: the networks and data.
    :param variant: how to compute (precision, memory format).
    :param warmup: untimed steps first (cuDNN autotuning, allocator warm-up).
    :param steps: timed steps.
    """
    config = scenario.resolved(str(device), variant.train)
    s = Session(config, device)
    s.pretrain(0)  # the fixed VR: a copy (the step's cost does not depend on pre-training)
    policy_cfg = at(config, "policy")
    gates: list[float | None] = []  # same seed, same inputs: comparable step by step with the fp32 row
    for _ in range(warmup):
        gates.append(reference_step(s, policy_cfg)[1]["gate"])
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    clock = PhaseClock(device)
    walls = [_timed_step(s, policy_cfg, clock, gates) for _ in range(steps)]
    per_step = clock.durations()
    phases = {p: statistics.median(d.get(p, 0.0) for d in per_step) for p in STEP_PHASES if any(p in d for d in per_step)}
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device) / 2**20, "CUDA, max allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"
    syncs, own, kinds = _count_syncs(s, policy_cfg, min(steps, 5))
    return ProfileResult(
        scenario.name,
        variant.name,
        scenario.what,
        s.layout.numel,
        sum(p.numel() for p in s.vr.parameters()),
        steps,
        statistics.median(walls),
        phases,
        peak,
        kind,
        syncs,
        own,
        kinds,
        gates,
    )
