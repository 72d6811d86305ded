"""The pipelined GradProm step: :class:`PipelinedStep`, one per session (``Session.pipeline``).

A step is two backward passes, the work that does not wait for the policy, then the policy's
decision applied. ``train.advance`` pipelines it: step t's decision rides on the request for step
t+1's gradients, and after the reply VR's own update and the next batch run while TypeScript
decides. The session holds the data, networks and optimisers; this object holds the step's state
and moves it through the states its docstring draws.

Each part of a step is one method, named in :data:`PHASES`: gpu-check's step profile times the parts by
wrapping those methods on the object it profiles, so that a step nobody profiles calls no hook at all.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradprom_sidecar.training import grads as G
from gradprom_sidecar.training.config import setting
from gradprom_sidecar.training.descent import StepProbe
from gradprom_sidecar.training.device import to_device, to_host
from gradprom_sidecar.training.optim import set_lr
from gradprom_sidecar.training.precision import Precision

# Each part of a step, and the method of PipelinedStep whose call starts it (in the order a train.advance runs them:
# apply t, grads t+1, then what follows the reply). The policy, between the reply and the next request, is the caller's.
PHASES: dict[str, str] = {
    "merge": "form_update",
    "ip_step": "step_ip",
    "inputs": "take_inputs",
    "forward": "forward_losses",
    "backward": "backward_grads",
    "gram": "gram_stats",
    "readback": "read_back",
    "vr_step": "after_grads",
    "prefetch": "prefetch",
}


class StepHost(Protocol):
    """What the step reads from its session (``session.Session``; a rank of several overrides the hooks)."""

    config: dict
    mode: str
    loss_kind: str
    total_steps: int
    device: torch.device
    ip: nn.Module
    vr: nn.Module
    vr_params: list[nn.Parameter]
    precision: Precision
    layout: G.Layout
    buffers: G.GradBuffers
    probe: StepProbe

    @property
    def ip_optim(self) -> torch.optim.Optimizer: ...
    @property
    def vr_optim(self) -> torch.optim.Optimizer | None: ...

    def local(self, t: Tensor) -> Tensor: ...
    def average(self, tensors: list[Tensor]) -> None: ...
    def vr_forward(self, x: Tensor) -> Tensor: ...
    def take_inputs(self) -> tuple[Tensor, Tensor, Tensor]: ...
    def prefetch(self) -> None: ...


class PipelinedStep:
    """The step of one session, and its state: steps taken, steps skipped, the pending gradients, the last IP step's descent.

    States, read from ``pending``::

        idle        nothing pending                             (pending is None)
        computed    step t+1's gradients pending, VR not updated (pending.vr_stepped is False)
        vr_updated  the same, VR's own update made               (pending.vr_stepped is True)

    Transitions::

        idle       --grads()------> computed    the step's one host-device sync
        computed   --grads()------> computed    the unapplied gradients are dropped, new ones computed
        computed   --after_grads()> vr_updated  a finite step (a non-finite one stays computed); both draw the next inputs
        computed   --apply()------> idle        IP's update (and VR's, when not made yet); step += 1
        vr_updated --apply()------> idle        IP's update; step += 1
        computed   --skip()-------> idle        no update; skipped += 1
        vr_updated --skip()-------> idle        VR's update stands; skipped += 1
        vr_updated --grads()------> error       half-applied: its decision must come first (a checkpoint refuses it too)
        idle       --apply()/skip()> error      nothing pending

    ``train.advance`` runs apply | skip, grads, and (after its reply) after_grads; the reference loop runs grads,
    after_grads, then apply | skip. The skip count lives here and goes into checkpoints; TypeScript reads it from
    the replies. The inputs drawn ahead (``Session.prefetched``) stay with the session, whose RNG state they undo.

    :param host: the session whose networks, optimisers and inputs the step uses.
    """

    def __init__(self, host: StepHost) -> None:
        self.host = host
        self.step = 0  # IP steps taken
        self.skipped = 0  # decisions that were skips
        self.pending: G.StepGrads | None = None
        self.descent_measured: tuple[Tensor, float] | None = None  # the last IP step's [⟨g_IP, −Δθ⟩, ‖Δθ‖²] on the device, and ‖g_IP‖²
        self.descent_read: float | None = None  # the same step's cos(−g_IP, Δθ), once read back

    @property
    def state(self) -> str:
        """``idle``, ``computed`` or ``vr_updated`` (see the class docstring)."""
        if self.pending is None:
            return "idle"
        return "vr_updated" if self.pending.vr_stepped else "computed"

    def reset(self, step: int, skipped: int) -> None:
        """Back to idle at ``step`` with ``skipped`` skips (a restored checkpoint): nothing pending, no descent carried.

        :param step: steps taken.
        :param skipped: steps skipped.
        """
        self.step, self.skipped = step, skipped
        self.zero_grads()
        self.descent_measured = self.descent_read = None  # the descent of a step taken before the restore is not the restored run's

    # ----------------------------------------------------------------- gradients
    def grads(self, vectors: bool = False) -> G.StepGrads:
        """Run the two backward passes on the next batch; keep g_IP/g_VR pending until apply or skip.

        Losses and Gram (and with ``vectors`` both flat gradients) come to the host in one transfer:
        the step's only host-device sync.

        :param vectors: also return host copies of g_IP and g_VR (vectors transport).
        :raises RuntimeError: the pending step is half-applied (VR updated, its decision not given).
        """
        if self.state == "vr_updated":
            raise RuntimeError(f"step {self.step + 1} is half-applied (VR updated): give its decision before the next gradients")
        h = self.host
        self.pending = None
        for p in h.vr_params:
            p.grad = None
        clean, target, x = (h.local(t) for t in self.take_inputs())
        loss_ip, loss_vr = self.forward_losses(clean, target, x)
        g_ip, g_vr, losses = self.backward_grads(loss_ip, loss_vr)
        stats = self.gram_stats(losses, g_ip, g_vr)
        self.pending = self.read_back(stats, g_ip, g_vr, vectors)
        h.precision.update(self.pending.finite)  # fp16: an overflow (a non-finite step, skipped) backs the scale off
        return self.pending

    def take_inputs(self) -> tuple[Tensor, Tensor, Tensor]:
        """This step's inputs: the session's prefetched ones, or drawn now."""
        return self.host.take_inputs()

    def forward_losses(self, clean: Tensor, target: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """IP on the degraded input ``x``, VR on IP's output: L_IP against ``clean``, L_VR against ``target`` (float32)."""
        h = self.host
        amp = h.precision
        with amp.autocast():  # the losses in float32, from float32 copies of the outputs (fp32: the outputs)
            y_hat = h.ip(amp.memory_format(x))
            if h.mode == "unsupervised":
                with torch.no_grad():
                    target = F.softmax(h.vr(amp.memory_format(clean)).float(), dim=1)  # VR on the CLEAN image: the pseudo-label
            logits = h.vr_forward(y_hat)
        return G.pixel_loss(y_hat.float(), clean, h.loss_kind), G.task_loss(logits.float(), target)

    def backward_grads(self, loss_ip: Tensor, loss_vr: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The two backward passes: flat g_IP and g_VR of the global batch, and [L_IP, L_VR, VR's overflow flag]."""
        h = self.host
        amp = h.precision
        g_ip, g_vr = G.two_pass(amp.scaled(loss_ip), amp.scaled(loss_vr), h.buffers)  # fp16: one scale for both
        losses = torch.stack([loss_ip.detach(), loss_vr.detach(), amp.unscale(g_ip, g_vr, h.vr_params)])  # + VR's overflow flag
        h.average([g_ip, g_vr, losses])  # the global batch's gradients (several ranks)
        return g_ip, g_vr, losses

    def gram_stats(self, losses: Tensor, g_ip: Tensor, g_vr: Tensor) -> Tensor:
        """The step's numbers on the device, in one tensor: ``losses`` and the per-block Gram (``grads.step_stats``)."""
        return G.step_stats(losses, g_ip, g_vr, self.host.layout)

    def read_back(self, stats: Tensor, g_ip: Tensor, g_vr: Tensor, vectors: bool) -> G.StepGrads:
        """Bring ``stats`` (with the last IP step's descent, and with ``vectors`` both gradients) to the host at once."""
        measured = self.descent_measured  # the last IP step's descent, carried back with these numbers
        extra = [measured[0]] if measured is not None else []
        into = [None] * (1 + len(extra)) + list(self.host.buffers.host_vectors()) if vectors else []  # warm, reused every step
        host = to_host([stats, *extra, g_ip, g_vr] if vectors else [stats, *extra], into)  # host-device sync: the step's one
        if measured is not None:
            self.descent_read, self.descent_measured = StepProbe.cosine(host[1].tolist(), measured[1]), None
        return G.StepGrads.read(host[0], g_ip, g_vr, (host[-2], host[-1]) if vectors else None)

    # ----------------------------------------------------------------- after the reply
    def after_grads(self) -> None:
        """The work a step's reply does not wait for: VR's own update, and the next step's inputs.

        VR trains on its own loss whatever the policy decides for IP, so its update is made as soon
        as the step is known to be finite; the sidecar runs this after sending the gradients'
        reply (on a GPU the kernels run while TypeScript decides), the reference loop right after
        :meth:`grads`. A non-finite step updates nothing.
        """
        pend = self.require_pending("after_grads")
        if pend.finite and not pend.vr_stepped:
            self.step_vr(pend)
        self.prefetch()

    def prefetch(self) -> None:
        """Draw the next step's inputs now, on the session (which remembers the RNG state they came from)."""
        self.host.prefetch()

    def step_vr(self, pend: G.StepGrads) -> None:
        """VR's optimiser step on ∇φ L_VR of the pending step, at this step's learning rate.

        :param pend: the pending step (marked as VR-stepped).
        """
        h = self.host
        if h.vr_optim is not None:
            pend.lr_vr = self.set_lr(h.vr_optim, "train.vr_optim")
            h.vr_optim.step()
        for p in h.vr_params:
            p.grad = None
        pend.vr_stepped = True

    # ----------------------------------------------------------------- the decision
    def require_pending(self, op_name: str) -> G.StepGrads:
        """The pending gradients, or an error naming ``op_name`` when there are none.

        :param op_name: what needs them (train.advance, apply, skip).
        """
        if self.pending is None:
            raise RuntimeError(f"{op_name}: no pending gradients (call train.advance with next first)")
        return self.pending

    def expect_decision(self, given: bool, op_name: str) -> None:
        """Check that a decision comes exactly when a step is pending.

        :param given: whether the request carries a decision.
        :param op_name: the op, for messages.
        """
        if given:
            self.require_pending(op_name)
        elif self.pending is not None:
            raise RuntimeError(f"{op_name}: step {self.step + 1} is pending: give its decision (args.decision)")

    def apply(self, w_ip: list[float] | None = None, w_vr: list[float] | None = None, merged: Tensor | None = None) -> dict:
        """Set θ.grad from per-block weights or a merged vector, step both optimizers, zero grads.

        :param w_ip: per-block weights of g_IP (with ``w_vr``).
        :param w_vr: per-block weights of g_VR.
        :param merged: a flat float32 update (on the host) instead of weights.
        """
        pend = self.require_pending("apply")
        self.form_update(pend, w_ip, w_vr, merged)
        return self.step_ip(pend)

    def form_update(self, pend: G.StepGrads, w_ip: list[float] | None, w_vr: list[float] | None, merged: Tensor | None) -> None:
        """Point θ.grad at the update: the merged vector, g_IP itself (a closed gate), or the weights' merge of g_IP and g_VR."""
        h = self.host
        buf = h.buffers
        if merged is not None:
            buf.merged.copy_(to_device(merged, h.device))
            buf.point(buf.merged)
        elif all(w == 1.0 for w in w_ip or []) and not any(w_vr or []):
            buf.point(pend.g_ip)  # a closed gate: θ.grad = g_IP exactly, nothing to form
        else:
            G.merge_weights(pend.g_ip, pend.g_vr, h.layout, w_ip or [], w_vr or [], buf.merged)
            buf.point(buf.merged)

    def step_ip(self, pend: G.StepGrads) -> dict:
        """IP's optimiser step on θ.grad (its descent measured on the device), VR's if not made yet, grads zeroed; the step."""
        h = self.host
        lr_ip = self.set_lr(h.ip_optim, "train.ip_optim")
        h.probe.take()
        h.ip_optim.step()
        self.descent_measured, self.descent_read = (h.probe.measure(pend.g_ip), sum(pend.gram["ip_ip"])), None
        if not pend.vr_stepped:
            self.step_vr(pend)
        self.zero_grads()
        self.step += 1
        return {"step": self.step, "lr_ip": lr_ip, "lr_vr": pend.lr_vr}

    def ip_descent_actual(self) -> float:
        """cos(−g_IP, Δθ) of the last IP step (``descent``): read back with the next step's numbers when they
        followed, else now (one host-device sync); NaN when no IP step was taken since it was last asked for.
        """
        if self.descent_measured is not None:
            parts, ip_sq = self.descent_measured
            self.descent_read, self.descent_measured = StepProbe.cosine(parts.tolist(), ip_sq), None  # host-device sync
        value, self.descent_read = self.descent_read, None
        return math.nan if value is None else value

    def skip(self) -> dict:
        """Drop the pending gradients without an IP step.

        A non-finite step updates nothing; VR's update of a finite step stands once
        :meth:`after_grads` has made it (VR trains on its own loss whatever IP's policy decides).
        """
        self.require_pending("skip")
        self.zero_grads()
        self.skipped += 1
        return {"step": self.step, "skipped": self.skipped}

    def zero_grads(self) -> None:
        """Forget the pending gradients and every IP and VR ``.grad``."""
        self.pending = None
        for p in self.host.layout.params:
            p.grad = None
        for p in self.host.vr_params:
            p.grad = None

    def set_lr(self, optim: torch.optim.Optimizer, where: str) -> float:
        """Set ``optim``'s learning rate for the current step from its config section; return it.

        :param optim: the IP or VR optimiser.
        :param where: its section, ``train.ip_optim`` or ``train.vr_optim``.
        """
        return set_lr(optim, setting(self.host.config, where), self.step, self.host.total_steps, where)
