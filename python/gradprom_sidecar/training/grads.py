"""GradProm's gradients: the IP parameter layout, the two-pass backward, the per-block Gram, applying a decision.

The two gradients of one step, both in IP-parameter space (θ):

    ŷ = IP(x);  L_IP = pixel_loss(ŷ, y);  L_VR = task_loss(VR(ŷ), c)
    pass 1: L_IP.backward(retain_graph=True)  → θ.grad = g_IP   (L_IP does not reach VR)
    pass 2: L_VR.backward()                   → θ.grad = g_VR,  φ.grad = ∇φ L_VR

Two backward passes, never a third (a third would cost 1.3–1.5× the step), and the
graph is freed by the second. Before each pass every IP ``p.grad`` is made a view into a
preallocated, zeroed flat float32 buffer: autograd accumulates into an existing ``.grad`` in place
(0 + g = g exactly), so the flat vectors come out with no copy at all.

The Gram and the merge are a fixed number of tensor operations whatever the number of blocks
(:class:`Segments`): the flat vector is read as rows of :data:`ROW` elements; a row inside one block
is reduced (or weighted) as a row, and the few elements of rows that straddle a block boundary
are handled one by one. The passes go :data:`CHUNK` elements at a time in float64, so nothing
full-length is ever float64 (at 25 M parameters that fresh memory would cost most of the step).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradprom_sidecar.training.device import to_device

__all__ = [
    "Block",
    "Layout",
    "Segments",
    "GradBuffers",
    "StepGrads",
    "pixel_loss",
    "task_loss",
    "two_pass",
    "gram_tensor",
    "gram",
    "step_stats",
    "merge_weights",
    "all_finite",
    "cosine",
]

ROW = 256  # elements per row of the segment reductions: a block of k elements has at most 2 partial rows
CHUNK = {"cpu": 1 << 18, "cuda": 1 << 21}  # elements per float64 pass (CPU: cache-sized; GPU: few launches)
COS_EPS = 1e-12  # in the cosine's denominator, as in src/policy


def cosine(dot: float, aa: float, bb: float) -> float:
    """cos = dot / (‖a‖‖b‖ + eps) from ``dot`` = a·b and the squared norms ``aa``, ``bb``, clamped to [-1, 1].

    0 when either squared norm is not positive (a zero-norm gradient is never aligned). The
    TypeScript policies compute it in the same float64 order (src/policy).
    """
    if not aa > 0 or not bb > 0:
        return 0.0
    na, nb = math.sqrt(aa), math.sqrt(bb)
    den = na * nb
    c = dot / (den + COS_EPS) if math.isfinite(den) else dot / na / nb
    return max(-1.0, min(1.0, c))


@dataclass(frozen=True)
class Block:
    """One IP parameter tensor inside the flat vector."""

    name: str
    shape: tuple[int, ...]
    numel: int
    offset: int


class Layout:
    """IP parameter blocks in ``named_parameters()`` order (trainable ones only), packed without gaps."""

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
        self._segments: dict[torch.device, Segments] = {}

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

    def segments(self, device: torch.device) -> Segments:
        """The block index tensors on ``device``, built on first use.

        :param device: where the flat vectors live.
        """
        if device not in self._segments:
            self._segments[device] = Segments(self, device)
        return self._segments[device]


class Segments:
    """Which block each part of the flat vector belongs to, in the form the fused Gram and merge read.

    Row ``r`` holds elements ``[r·ROW, (r+1)·ROW)``. ``row_block[r]`` is its block when the whole row
    lies in one block, else ``n`` (a spare column, dropped). ``loose`` lists every element of the
    other rows and of the tail after the last whole row; ``loose_block`` gives their blocks.
    That is at most ``2·ROW`` elements per block, whatever the block sizes. The float64 passes
    work in buffers made once (fresh memory on every step would cost page faults on the CPU).

    :param layout: the IP layout.
    :param device: where the flat vectors live.
    """

    def __init__(self, layout: Layout, device: torch.device) -> None:
        n, numel = len(layout), layout.numel
        self.n, self.rows = n, numel // ROW
        self.chunk = CHUNK.get(device.type, CHUNK["cuda"])
        ends = torch.tensor([b.offset + b.numel for b in layout.blocks], dtype=torch.long)
        first = torch.arange(self.rows, dtype=torch.long) * ROW
        b_first = torch.searchsorted(ends, first, right=True)
        whole = b_first == torch.searchsorted(ends, first + (ROW - 1), right=True)
        split_rows = (~whole).nonzero().flatten()
        loose = torch.cat([(split_rows[:, None] * ROW + torch.arange(ROW)).flatten(), torch.arange(self.rows * ROW, numel)])
        row_block = torch.where(whole, b_first, torch.full_like(b_first, n))
        loose_block = torch.searchsorted(ends, loose, right=True)
        self.row_block, self.loose, self.loose_block = row_block.to(device), loose.to(device), loose_block.to(device)
        # Each pass's Gram sums go to their blocks as runs of equal labels (a block's rows are consecutive), summed run by
        # run in a fixed order: no atomics, so a repeated or resumed CUDA run gets the same bits. Column n may repeat.
        self.runs = [self._runs(row_block[s // ROW : min(self.rows * ROW, s + self.chunk) // ROW], device) for s in self._starts()]
        self.loose_runs = self._runs(loose_block, device)
        width = max(min(self.chunk, self.rows * ROW), loose.numel())
        self.work = torch.empty(3, width, dtype=torch.float64, device=device)  # g_IP, g_VR, products
        self.gathered = torch.empty(2, loose.numel(), dtype=torch.float32, device=device)

    def _starts(self) -> range:
        return range(0, self.rows * ROW, self.chunk)

    @staticmethod
    def _runs(labels: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
        """``(ids, lengths)`` of the runs of equal labels, on ``device`` (made once, on the host)."""
        ids, lengths = torch.unique_consecutive(labels, return_counts=True)
        return ids.to(device), lengths.to(device)

    def block_sums(self, sums: Tensor, start: int) -> tuple[Tensor, Tensor]:
        """A pass's per-row sums ``[k, rows]`` summed per block: ``(block ids, [k, ids])``, in a fixed order.

        :param sums: per-row sums of the pass that began at ``start``.
        :param start: the pass's ``start`` (-1: the loose elements).
        """
        ids, lengths = self.loose_runs if start < 0 else self.runs[start // self.chunk]
        return ids, torch.segment_reduce(sums.t(), "sum", lengths=lengths, axis=0).t()

    def passes(self, g_ip: Tensor, g_vr: Tensor) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor, int]]:
        """The passes over two flat vectors: ``(x, y, scratch, blocks, start)`` each.

        ``x`` and ``y`` are that part of g_IP and g_VR as float64 rows (in the work buffers: each
        pass overwrites the last), ``scratch`` a buffer of their shape, ``blocks`` each row's block;
        ``start`` is the first element of the whole rows, or -1 for the loose elements (rows of 1).
        """
        for start in self._starts():
            k = min(self.rows * ROW, start + self.chunk) - start
            x, y, p = (self.work[i, :k].view(-1, ROW) for i in range(3))
            x.copy_(g_ip[start : start + k].view(-1, ROW))
            y.copy_(g_vr[start : start + k].view(-1, ROW))
            yield x, y, p, self.row_block[start // ROW : (start + k) // ROW], start
        e = self.loose.numel()
        if e:
            torch.index_select(g_ip, 0, self.loose, out=self.gathered[0])
            torch.index_select(g_vr, 0, self.loose, out=self.gathered[1])
            x, y, p = (self.work[i, :e].view(-1, 1) for i in range(3))
            x.copy_(self.gathered[0].view(-1, 1))
            y.copy_(self.gathered[1].view(-1, 1))
            yield x, y, p, self.loose_block, -1

    def write(self, flat: Tensor, part: Tensor, start: int) -> None:
        """Put a pass's result ``part`` (float64, the shape of its ``x``) into ``flat`` (float32) where it came from."""
        if start < 0:
            flat.index_copy_(0, self.loose, part.view(-1).to(flat.dtype))
        else:
            flat[start : start + part.numel()].view(-1, ROW).copy_(part)


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
        self.host: tuple[Tensor, Tensor] | None = None  # where host copies of g_IP/g_VR go (see host_vectors)
        # Made once: binding a buffer is then only p.grad assignments (no slicing per step).
        self._views = {id(t): layout.views(t) for t in (self.g_ip, self.g_vr, self.merged)}

    def place(self, g_ip: Tensor, g_vr: Tensor, merged: Tensor) -> None:
        """Keep the vectors in ``g_ip``, ``g_vr``, ``merged`` from now on (host slots of a shared region).

        On the CPU the three buffers move there (contents copied), so autograd writes straight into
        them; on CUDA the buffers stay on the device and the first two become :meth:`host_vectors`.

        :param g_ip: a float32 host tensor of ``numel`` elements (likewise the others).
        :param g_vr: see ``g_ip``.
        :param merged: see ``g_ip``; on CUDA a merged decision is read from it.
        """
        if self.g_ip.device.type != "cpu":
            self.host = (g_ip, g_vr)
            return
        for new, old in ((g_ip, self.g_ip), (g_vr, self.g_vr), (merged, self.merged)):
            new.copy_(old)
        self.g_ip, self.g_vr, self.merged = g_ip, g_vr, merged
        self._views = {id(t): self.layout.views(t) for t in (g_ip, g_vr, merged)}
        self.host = None

    def host_vectors(self) -> tuple[Tensor, Tensor]:
        """The host tensors the vectors are read back into, the same every step (warm memory, nothing cloned).

        On the CPU the buffers themselves (no copy: they stay as they are until the next step's
        gradients); on CUDA the pinned slots given to :meth:`place`, else a pinned pair made once.
        """
        if self.g_ip.device.type == "cpu":
            return self.g_ip, self.g_vr
        if self.host is None:
            self.host = (torch.empty_like(self.g_ip, device="cpu").pin_memory(), torch.empty_like(self.g_vr, device="cpu").pin_memory())
        return self.host

    def bind(self, flat: Tensor) -> None:
        """Zero ``flat`` (one of the buffers) and make every IP ``p.grad`` a view into it (autograd then accumulates there)."""
        flat.zero_()
        self.point(flat)

    def point(self, flat: Tensor) -> None:
        """Make every IP ``p.grad`` a view into ``flat``, one of the buffers (as it is: the optimiser reads it).

        :param flat: ``g_ip``, ``g_vr`` or ``merged``.
        """
        for p, v in zip(self.layout.params, self._views[id(flat)]):
            p.grad = v

    def unbind(self) -> None:
        """Detach the IP grads from the buffers (so nothing writes into them by accident)."""
        for p in self.layout.params:
            p.grad = None


@dataclass
class StepGrads:
    """The outcome of one two-pass backward; ``g_ip``/``g_vr`` are the session's buffers (not copies).

    ``host`` holds host copies of g_IP and g_VR when they were asked for (vectors transport).
    ``vr_stepped`` is set once VR's own update for this step has been made (``PipelinedStep.after_grads``).
    """

    loss_ip: float
    loss_vr: float
    g_ip: Tensor
    g_vr: Tensor
    gram: dict[str, list[float]]
    finite: bool
    host: tuple[Tensor, Tensor] | None = None
    vr_stepped: bool = False
    lr_vr: float = 0.0

    @staticmethod
    def read(stats: Tensor, g_ip: Tensor, g_vr: Tensor, host: tuple[Tensor, Tensor] | None = None) -> StepGrads:
        """Unpack :func:`step_stats` read back to the host.

        :param stats: ``[loss_ip, loss_vr, overflow, ip_ip…, vr_vr…, ip_vr…]`` float64 on the host (overflow:
            fp16's flag for VR's own gradients, 0 when none; a step that overflowed is not finite).
        :param g_ip: flat g_IP (device).
        :param g_vr: flat g_VR (device).
        :param host: host copies of the two vectors, if made.
        """
        values = stats.tolist()
        n = (len(values) - 3) // 3
        li, lv, overflow = values[:3]
        gram = {"ip_ip": values[3 : 3 + n], "vr_vr": values[3 + n : 3 + 2 * n], "ip_vr": values[3 + 2 * n :]}
        finite = overflow == 0 and all_finite(li, lv, gram["ip_ip"], gram["vr_vr"], gram["ip_vr"])
        return StepGrads(li, lv, g_ip, g_vr, gram, finite, host)


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


def gram_tensor(g_ip: Tensor, g_vr: Tensor, layout: Layout) -> Tensor:
    """Per-block Gram of two flat gradients on their device, float64 throughout: ``[3, blocks]`` rows ip_ip, vr_vr, ip_vr.

    A float32 product is exact in float64, so each entry is the float64 dot product up to the
    order of summation, which is fixed: the same inputs give the same bits on every run (CUDA too). No host-device sync: the caller reads it back with the step's other numbers.

    :param g_ip: flat g_IP (contiguous).
    :param g_vr: flat g_VR (contiguous).
    :param layout: the block layout.
    """
    seg = layout.segments(g_ip.device)
    out = torch.zeros(3, seg.n + 1, dtype=torch.float64, device=g_ip.device)  # column n: rows that straddle blocks
    for x, y, p, _, start in seg.passes(g_ip, g_vr):
        sums = [torch.mul(x, x, out=p).sum(1), torch.mul(y, y, out=p).sum(1), torch.mul(x, y, out=p).sum(1)]
        ids, per_block = seg.block_sums(torch.stack(sums), start)
        out[:, ids] += per_block  # each block once per pass (column n, dropped, may repeat): no accumulation races
    return out[:, : seg.n]


def gram(g_ip: Tensor, g_vr: Tensor, layout: Layout) -> dict[str, list[float]]:
    """:func:`gram_tensor` read back as Python floats (one host-device sync).

    :param g_ip: flat g_IP.
    :param g_vr: flat g_VR.
    :param layout: the block layout.
    :returns: ``{ip_ip, vr_vr, ip_vr}``, one Python float per block each.
    """
    ip_ip, vr_vr, ip_vr = gram_tensor(g_ip, g_vr, layout).tolist()  # host-device sync
    return {"ip_ip": ip_ip, "vr_vr": vr_vr, "ip_vr": ip_vr}


def step_stats(losses: Tensor, g_ip: Tensor, g_vr: Tensor, layout: Layout) -> Tensor:
    """Everything the policy needs of a step in one small float64 tensor: ``[loss_ip, loss_vr, overflow, Gram rows…]``.

    Read back with one transfer and unpacked by :meth:`StepGrads.read`; its finiteness is the step's
    (a flat vector is finite exactly when its squared norm is).

    :param losses: ``[L_IP, L_VR, overflow]`` (overflow: fp16's flag for VR's own gradients, see ``precision``).
    :param g_ip: flat g_IP.
    :param g_vr: flat g_VR.
    :param layout: the block layout.
    """
    return torch.cat([losses.detach().double(), gram_tensor(g_ip, g_vr, layout).flatten()])


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

    Two products, then the sum (no fused multiply-add): the rounding TypeScript's float64 gives, so
    weights (1, 0) give g_IP bit for bit, as the TypeScript ``applyDecision`` does. The weights
    reach the device in one non-blocking copy; the passes are those of :func:`gram_tensor`.

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
    seg = layout.segments(g_ip.device)
    # The spare column n weighs the rows that straddle blocks with 0; the loose pass then writes them.
    w = to_device(torch.tensor([[*w_ip, 0.0], [*w_vr, 0.0]], dtype=torch.float64), g_ip.device)
    for x, y, _, blocks, start in seg.passes(g_ip, g_vr):
        x.mul_(w[0, blocks].unsqueeze(1)).add_(y.mul_(w[1, blocks].unsqueeze(1)))
        seg.write(merged, x, start)
    return merged
