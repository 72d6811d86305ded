"""The Lemma's descent property, measured on every step: does IP's update ever point against g_IP?

GradProm's claim is that the VR term never pulls IP's update against IP's own loss. Two cosines per
step, both positive when the update descends IP's loss:

- ``ip_descent`` = cos(g_IP, g), g the merged gradient handed to the optimizer. From the per-block
  Gram and the weights (g_b = w_ip[b]·g_IP_b + w_vr[b]·g_VR_b), in float64, summed in block order::

      ⟨g_IP, g⟩ = Σ_b w_ip[b]·‖g_IP_b‖² + w_vr[b]·⟨g_IP_b, g_VR_b⟩
      ‖g‖²      = Σ_b w_ip[b]²·‖g_IP_b‖² + 2·w_ip[b]·w_vr[b]·⟨g_IP_b, g_VR_b⟩ + w_vr[b]²·‖g_VR_b‖²

  the same arithmetic as TypeScript's ``src/train/descent.ts``, so the two agree to the last bit.
- ``ip_descent_actual`` = cos(−g_IP, Δθ), Δθ the change the optimizer really made to θ. With plain
  SGD it equals ``ip_descent``; Adam preconditions and carries momentum, so it can differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gradprom_sidecar.training.grads import Layout, cosine, gram_tensor


def ip_descent(gram: dict[str, list[float]], w_ip: Sequence[float], w_vr: Sequence[float]) -> float:
    """cos(g_IP, g) of the merged update from the per-block Gram and weights (0 when either is zero).

    :param gram: ``{ip_ip, vr_vr, ip_vr}`` per block.
    :param w_ip: the weight of g_IP per block.
    :param w_vr: the weight of g_VR per block.
    """
    aa_b, bb_b, ab_b = gram["ip_ip"], gram["vr_vr"], gram["ip_vr"]
    aa = dot = sq = 0.0
    for b in range(len(aa_b)):
        wi, wv = float(w_ip[b]), float(w_vr[b])
        aa += aa_b[b]
        dot += wi * aa_b[b] + wv * ab_b[b]
        sq += wi * wi * aa_b[b] + 2 * wi * wv * ab_b[b] + wv * wv * bb_b[b]
    return cosine(dot, aa, max(0.0, sq))  # rounding can take a zero ‖g‖² a hair below 0


class StepProbe:
    """θ before the optimizer step, kept in one preallocated flat buffer, to measure the step taken.

    The measurement stays on the device (:meth:`measure`) until the step's one host-device sync
    carries it back (the next step's readback, see ``step``); :meth:`cosine` turns it into the value.

    :param layout: the IP layout (its parameters, in flat order).
    :param device: where the parameters live.
    """

    def __init__(self, layout: Layout, device: torch.device) -> None:
        self.layout = layout
        self.before = torch.zeros(layout.numel, dtype=torch.float32, device=device)
        self.views = layout.views(self.before)

    @torch.no_grad()
    def take(self) -> None:
        """Copy θ into the buffer (call just before ``optimizer.step()``)."""
        torch._foreach_copy_(self.views, [p.detach() for p in self.layout.params])

    @torch.no_grad()
    def measure(self, g_ip: Tensor) -> Tensor:
        """``[⟨g_IP, −Δθ⟩, ‖Δθ‖²]`` (float64, on the device) for the step since :meth:`take`; no host-device sync.

        :param g_ip: flat g_IP of the step (its buffer is overwritten by the next step: measure first).
        """
        torch._foreach_sub_(self.views, [p.detach() for p in self.layout.params])  # θ_before − θ_after = −Δθ
        _, sq, dot = gram_tensor(g_ip, self.before, self.layout).sum(1)  # the Gram's float64 passes, summed over blocks
        return torch.stack([dot, sq])

    @staticmethod
    def cosine(parts: list[float], ip_sq: float) -> float:
        """cos(−g_IP, Δθ) = cos(g_IP, −Δθ) from :meth:`measure`'s numbers read back.

        :param parts: ``[⟨g_IP, −Δθ⟩, ‖Δθ‖²]``.
        :param ip_sq: ‖g_IP‖² (the Gram's, so it is not recomputed).
        """
        return cosine(parts[0], ip_sq, parts[1])
