"""(c) The step profile: ms per step by phase, peak memory, host-device syncs per step, one scenario at a time.

The step is production's: the ``train.advance`` op as the sidecar serves it, less the round trip
(:class:`AdvanceLoop`): the policy decides on the last reply's Gram, the op applies that decision,
computes the next gradients (reading the last IP step's descent back with them), and its deferred
work (VR's update, the next batch) runs after, as the server runs it after sending the reply.
Each phase starts with a method of the session's step (``step.PHASES``), wrapped for the timed steps on
this session's step alone (:func:`marking`) so that production's step carries no hook; the policy's phase
is this loop's own. On CUDA a CUDA event is recorded at each start, so a phase's time is what the
GPU spent from reaching its start to reaching the next one (idle time waiting for the host
included), on the CPU it is wall time. Syncs are counted with
``torch.cuda.set_sync_debug_mode("warn")``: every synchronising call torch makes warns, and the
warning names the line of gradprom that made it. A step whose decision is a skip (an fp16 overflow)
is counted on its own and kept out of the medians: it has no merge and no IP step.
"""

from __future__ import annotations

import resource
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from gradprom_sidecar.tools import policies
from gradprom_sidecar.tools.gpucheck.scenarios import Scenario, Variant
from gradprom_sidecar.training.config import setting
from gradprom_sidecar.training.device import SyncCount
from gradprom_sidecar.training.pretrain import pretrain
from gradprom_sidecar.training.session import Session
from gradprom_sidecar.training.step import PHASES, PipelinedStep
from gradprom_sidecar.wire.registry import HANDLERS, Context, State

# The phases in the report's order: the session's own (``step.PHASES``) and the policy's.
STEP_PHASES = ("inputs", "forward", "backward", "gram", "readback", "vr_step", "prefetch", "policy", "merge", "ip_step")


@contextmanager
def marking(s: PipelinedStep, mark: Callable[[str], None]) -> Iterator[None]:
    """While inside, each part of ``s``'s step calls ``mark(phase)`` as it starts: the methods of ``step.PHASES`` are
    wrapped on this one session's step (instance attributes), and unwrapped on the way out."""

    def wrapped(phase: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def marked(*args: Any, **kwargs: Any) -> Any:
            mark(phase)
            return method(*args, **kwargs)

        return marked

    for phase, name in PHASES.items():
        setattr(s, name, wrapped(phase, getattr(s, name)))
    try:
        yield
    finally:
        for name in PHASES.values():
            vars(s).pop(name, None)


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
    skipped: int = 0  # timed steps whose decision was a skip (fp16 overflow): out of the medians


class AdvanceLoop:
    """Production's step in this process: ``train.advance`` with the policy's decision, then its deferred work.

    :param s: the session (made current in a private :class:`State`).
    :param policy_cfg: the config's ``policy`` section.
    """

    def __init__(self, s: Session, policy_cfg: dict) -> None:
        import gradprom_sidecar.ops  # noqa: F401  (registers the ops)

        self.state = State(device=s.device, devices=[str(s.device)], session=s)
        self.s, self.policy_cfg = s, policy_cfg
        self.last: dict | None = None  # the last reply's ``next``: the pending step's numbers

    def step(self, mark: Callable[[str], None] | None = None) -> tuple[float | None, bool]:
        """One ``train.advance`` (decision for the pending step, gradients of the next) and its deferred work.

        :param mark: told when the policy's phase starts (the session's own phases: :func:`marking`).
        :returns: the decided step's gate (None when skipped or none was pending), and whether it was a skip.
        """
        decision: dict | None = None
        gate, skipped = None, False
        if self.last is not None:
            if mark is not None:
                mark("policy")
            if self.last["finite"]:
                w_ip, w_vr, tel = policies.weights(self.policy_cfg, self.last["gram"])
                decision, gate = {"kind": "weights", "ip": w_ip, "vr": w_vr}, tel["gate"]
            else:
                decision, skipped = {"kind": "skip"}, True
        ctx = Context(self.state, request_id=1)
        result, _ = HANDLERS["train.advance"](ctx, {"decision": decision, "next": True, "transport": "gram"}, [])
        ctx.run_deferred()  # the server runs it after sending the reply
        self.last = result["next"]
        return gate, skipped


def _timed_step(loop: AdvanceLoop, clock: PhaseClock, gates: list[float | None]) -> tuple[float, bool]:
    """One production step with its phases marked, its gate appended to ``gates``; its host wall time (ms), and if skipped."""
    clock.begin()
    with marking(loop.s.pipeline, clock.mark):
        t0 = time.perf_counter()
        gate, skipped = loop.step(clock.mark)
        gates.append(gate)
        clock.mark("end")
        wall = (time.perf_counter() - t0) * 1000.0
    return wall, skipped


def _where(filename: str, lineno: int) -> str:
    """``package/file.py:line`` for a file of gradprom, else the path as it is."""
    marker = "gradprom_sidecar/"
    return f"{filename[filename.index(marker) + len(marker) :] if marker in filename else filename}:{lineno}"


def _count_syncs(loop: AdvanceLoop, steps: int) -> tuple[float, float, list[str]]:
    """Syncs per step that torch flags (all kinds), and those of gradprom's own read-back, over ``steps`` steps.

    :returns: the two rates, and each flagged kind with the file:line that made it and how often per step.
    """
    if loop.s.device.type != "cuda":
        return float("nan"), float("nan"), []
    own = SyncCount.count
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                loop.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    flagged = [w for w in caught if "synchroniz" in str(w.message).lower()]
    sites = Counter(f"{str(w.message).splitlines()[0]} at {_where(w.filename, w.lineno)}" for w in flagged)
    return len(flagged) / steps, (SyncCount.count - own) / steps, [f"{k} ({n / steps:g} per step)" for k, n in sorted(sites.items())]


def profile(scenario: Scenario, variant: Variant, device: torch.device, warmup: int, steps: int) -> ProfileResult:
    """Build the scenario's session on ``device`` and measure ``steps`` steps after ``warmup``.

    :param scenario: the networks and data.
    :param variant: how to compute (precision, memory format).
    :param warmup: untimed steps first (cuDNN autotuning, allocator warm-up).
    :param steps: timed steps.
    """
    config = scenario.resolved(str(device), variant.train)
    s = Session(config, device)
    pretrain(s, 0)  # the fixed VR: a copy (the step's cost does not depend on pre-training)
    policy_cfg = setting(config, "policy")
    loop = AdvanceLoop(s, policy_cfg)
    gates: list[float | None] = []  # same seed, same inputs: comparable step by step with the fp32 row
    for _ in range(warmup):
        gates.append(loop.step()[0])
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    clock = PhaseClock(device)
    timed = [_timed_step(loop, clock, gates) for _ in range(steps)]
    kept = [i for i, (_, skipped) in enumerate(timed) if not skipped] or list(range(len(timed)))  # all skipped: say so, below
    per_step = [d for i, d in enumerate(clock.durations()) if i in kept]
    walls = [timed[i][0] for i in kept]
    phases = {p: statistics.median(d.get(p, 0.0) for d in per_step) for p in STEP_PHASES if any(p in d for d in per_step)}
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device) / 2**20, "CUDA, max allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"
    syncs, own, kinds = _count_syncs(loop, min(steps, 5))
    return ProfileResult(
        scenario.name,
        variant.name,
        scenario.what,
        s.layout.numel,
        sum(p.numel() for p in s.vr.parameters()),
        len(kept),
        statistics.median(walls),
        phases,
        peak,
        kind,
        syncs,
        own,
        kinds,
        gates,
        sum(sk for _, sk in timed),
    )
