"""GradProm's gradients: the IP parameter layout, the two-pass backward, the per-block Gram, applying a decision.

The two gradients of one step, both in IP-parameter space (θ):

    ŷ = IP(x);  L_IP = pixel_loss(ŷ, y);  L_VR = task_loss(VR(ŷ), c)
    pass 1: L_IP.backward(retain_graph=True)  → θ.grad = g_IP   (L_IP does not reach VR)
    pass 2: L_VR.backward()                   → θ.grad = g_VR,  φ.grad = ∇φ L_VR

Two backward passes, never a third (a third costs 1.3–1.5× the step, see CALIBRATION.md), and the
graph is freed by the second. Before each pass every IP ``p.grad`` is made a view into a
preallocated, zeroed flat float32 buffer: autograd accumulates into an existing ``.grad`` in place
(0 + g = g exactly), so the flat vectors come out with no copy at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Block",
    "Layout",
    "GradBuffers",
    "StepGrads",
    "pixel_loss",
    "task_loss",
    "two_pass",
    "gram",
    "apply_weights",
    "apply_vector",
    "merge_weights",
    "all_finite",
]


@dataclass(frozen=True)
class Block:
    """One IP parameter tensor inside the flat vector."""

    name: str
    shape: tuple[int, ...]
    numel: int
    offset: int


class Layout:
    """IP parameter blocks in ``named_parameters()`` order (trainable ones only), packed without gaps.

    :param module: the IP network.
    """

    def __init__(self, module: nn.Module) -> None:
        self.blocks: list[Block] = []
        self.params: list[nn.Parameter] = []
        offset = 0
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            self.blocks.append(Block(name, tuple(int(d) for d in p.shape), p.numel(), offset))
            self.params.append(p)
            offset += p.numel()
        self.numel = offset

    def __len__(self) -> int:
        return len(self.blocks)

    def to_dict(self) -> dict:
        """The layout as plain data (for the protocol): ``{blocks: [{name, shape, numel, offset}], numel}``."""
        return {
            "blocks": [{"name": b.name, "shape": list(b.shape), "numel": b.numel, "offset": b.offset} for b in self.blocks],
            "numel": self.numel,
        }

    def views(self, flat: Tensor) -> list[Tensor]:
        """Views of ``flat`` shaped like each block (no copy).

        :param flat: a contiguous vector of ``numel`` elements.
        """
        return [flat[b.offset : b.offset + b.numel].view(b.shape) for b in self.blocks]


class GradBuffers:
    """The preallocated flat float32 buffers of one session: g_IP, g_VR and the merged update.

    :param layout: the IP layout.
    :param device: where the IP parameters live.
    """

    def __init__(self, layout: Layout, device: torch.device) -> None:
        self.layout = layout
        self.g_ip = torch.zeros(layout.numel, dtype=torch.float32, device=device)
        self.g_vr = torch.zeros(layout.numel, dtype=torch.float32, device=device)
        self.merged = torch.zeros(layout.numel, dtype=torch.float32, device=device)

    def bind(self, flat: Tensor) -> None:
        """Zero ``flat`` and make every IP ``p.grad`` a view into it (autograd then accumulates there)."""
        flat.zero_()
        for p, v in zip(self.layout.params, self.layout.views(flat)):
            p.grad = v

    def unbind(self) -> None:
        """Detach the IP grads from the buffers (so nothing writes into them by accident)."""
        for p in self.layout.params:
            p.grad = None


@dataclass
class StepGrads:
    """The outcome of one two-pass backward; ``g_ip``/``g_vr`` are the session's buffers (not copies)."""

    loss_ip: float
    loss_vr: float
    g_ip: Tensor
    g_vr: Tensor
    gram: dict[str, list[float]]
    finite: bool


def pixel_loss(y_hat: Tensor, y: Tensor, kind: str = "mse") -> Tensor:
    """The IP loss: mean squared (``mse``) or absolute (``l1``) error against the clean image.

    :param y_hat: IP output, N×C×H×W.
    :param y: clean target of the same shape.
    :param kind: ``mse`` or ``l1``.
    """
    if y_hat.shape != y.shape:
        raise ValueError(f"pixel loss: IP output {tuple(y_hat.shape)} does not match the clean image {tuple(y.shape)} (check ip.scale)")
    if kind == "mse":
        return F.mse_loss(y_hat, y)
    if kind == "l1":
        return F.l1_loss(y_hat, y)
    raise ValueError(f"config.train.loss: expected mse or l1, got {kind!r}")


def task_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy for class labels (N), masks (N×H×W) or soft targets (same shape as ``logits``).

    :param logits: N×K or N×K×H×W.
    :param target: integer labels/masks, or probabilities over dim 1 (unsupervised mode).
    """
    return F.cross_entropy(logits, target)


def two_pass(loss_ip: Tensor, loss_vr: Tensor, buffers: GradBuffers) -> tuple[Tensor, Tensor]:
    """Run the two backward passes; afterwards the IP grads are unbound and the VR grads hold ∇φ L_VR.

    The VR parameters' ``.grad`` must be None (or zero) on entry; L_IP never reaches them.

    :param loss_ip: the pixel loss (its graph shares IP's forward with ``loss_vr``).
    :param loss_vr: the task loss on VR(IP(x)).
    :param buffers: the flat buffers that receive g_IP and g_VR.
    :returns: (g_IP, g_VR), the buffers themselves.
    """
    buffers.bind(buffers.g_ip)
    loss_ip.backward(retain_graph=True)  # pass 1: IP grads only
    buffers.bind(buffers.g_vr)
    loss_vr.backward()  # pass 2: IP grads = g_VR, VR grads = ∇φ L_VR; frees the graph
    buffers.unbind()
    return buffers.g_ip, buffers.g_vr


def gram(g_ip: Tensor, g_vr: Tensor, layout: Layout) -> dict[str, list[float]]:
    """Per-block Gram of the two flat gradients, accumulated in float64.

    Nothing larger than one block's float64 copy is built; the per-block results are gathered into
    one small tensor and read back with a single host-device sync.

    :param g_ip: flat g_IP.
    :param g_vr: flat g_VR.
    :param layout: the block layout.
    :returns: ``{ip_ip, vr_vr, ip_vr}``, one Python float per block each.
    """
    out = torch.empty(3, len(layout), dtype=torch.float64, device=g_ip.device)
    for i, b in enumerate(layout.blocks):
        a = g_ip[b.offset : b.offset + b.numel].double()
        v = g_vr[b.offset : b.offset + b.numel].double()
        out[0, i] = torch.dot(a, a)
        out[1, i] = torch.dot(v, v)
        out[2, i] = torch.dot(a, v)
    ip_ip, vr_vr, ip_vr = out.tolist()  # host-device sync
    return {"ip_ip": ip_ip, "vr_vr": vr_vr, "ip_vr": ip_vr}


def all_finite(*values: float | Iterable[float]) -> bool:
    """True when every number (or every number of every list) is finite.

    A flat vector is finite exactly when its squared norm is (float32 squares cannot overflow
    float64), so the Gram's diagonal stands in for the vectors.
    """
    for v in values:
        items = [v] if isinstance(v, (int, float)) else v
        if not all(math.isfinite(x) for x in items):
            return False
    return True


def merge_weights(
    g_ip: Tensor, g_vr: Tensor, layout: Layout, w_ip: Sequence[float], w_vr: Sequence[float], out: Tensor | None = None
) -> Tensor:
    """θ.grad_b = w_ip[b]·g_IP_b + w_vr[b]·g_VR_b, in float64 arithmetic with a float32 result.

    Weights (1, 0) give g_IP bit for bit, the same arithmetic as the TypeScript ``applyDecision``.
    Block by block, like :func:`gram`: full-length float64 temporaries would be fresh memory of
    several times the model's size on every step (at 25 M parameters, most of the step's time).

    :param g_ip: flat g_IP.
    :param g_vr: flat g_VR.
    :param layout: the block layout.
    :param w_ip: one weight per block.
    :param w_vr: one weight per block.
    :param out: optional float32 buffer for the result.
    """
    if len(w_ip) != len(layout) or len(w_vr) != len(layout):
        raise ValueError(f"weights: expected {len(layout)} per block, got {len(w_ip)} (IP) and {len(w_vr)} (VR)")
    merged = torch.empty_like(g_ip) if out is None else out
    for b, wi, wv in zip(layout.blocks, w_ip, w_vr):
        s = slice(b.offset, b.offset + b.numel)
        if wi == 1.0 and wv == 0.0:
            merged[s].copy_(g_ip[s])  # exact: x·1 + y·0 = x for the finite gradients that reach a step
        else:
            # Two products, then the sum (no fused multiply-add): the rounding TypeScript's float64 gives.
            merged[s].copy_(g_ip[s].double().mul_(float(wi)).add_(g_vr[s].double().mul_(float(wv))))
    return merged


def apply_vector(params: Sequence[nn.Parameter], layout: Layout, merged: Tensor) -> None:
    """Set each IP parameter's grad to its block of ``merged`` (a view: keep ``merged`` alive until the step).

    :param params: the layout's parameters, in layout order.
    :param layout: the block layout.
    :param merged: flat float32 update on the parameters' device.
    """
    if merged.numel() != layout.numel:
        raise ValueError(f"merged vector: expected {layout.numel} elements, got {merged.numel()}")
    for p, v in zip(params, layout.views(merged)):
        p.grad = v


def apply_weights(
    params: Sequence[nn.Parameter],
    layout: Layout,
    g_ip: Tensor,
    g_vr: Tensor,
    w_ip: Sequence[float],
    w_vr: Sequence[float],
    out: Tensor | None = None,
) -> Tensor:
    """Form the merged update from per-block weights and set it as the IP grads.

    :param params: the layout's parameters.
    :param layout: the block layout.
    :param g_ip: flat g_IP.
    :param g_vr: flat g_VR.
    :param w_ip: one weight per block.
    :param w_vr: one weight per block.
    :param out: optional float32 buffer for the merged vector.
    :returns: the merged vector (the grads are views into it).
    """
    merged = merge_weights(g_ip, g_vr, layout, w_ip, w_vr, out)
    apply_vector(params, layout, merged)
    return merged
