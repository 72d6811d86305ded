"""How a session computes: autocast precision, fp16's loss scale, memory format, cuDNN and determinism modes.

``train.channels_last`` puts the inputs of IP and VR in channels_last; the convolutions carry that
layout through the activations. The parameters stay contiguous: their ``.grad`` are views into the
flat buffers (contiguous), and autograd's layout contract wants a parameter and its gradient alike.

``train.precision`` (fp32 | bf16 | fp16) puts the forward passes of IP and VR under
``torch.autocast`` (training, VR pre-training, evaluation). The losses are taken in float32 from
float32 copies of the outputs, the parameters stay float32, so both backward passes deliver
float32 parameter gradients into the flat buffers and the Gram stays float64 (see ``grads``).

fp16 needs a loss scale (its gradients underflow otherwise). Both losses of a step are scaled by
the same factor (:class:`LossScaler`, one per session); after the two backward passes the flat
g_IP/g_VR and VR's own gradients are unscaled by hand on the device, so the Gram, the cosine and
the gate see true gradients and the update reaches the optimiser unscaled. torch's
``GradScaler.step``/``update`` assume one optimiser step per scaled backward and read their
found-inf flags with their own host-device syncs; here the overflow flag of VR's gradients rides
in the step's stats (an overflow in g_IP or g_VR shows in their Gram) and comes back with the
step's one sync, and the scale is updated on the host from the step's finiteness. A step that
overflowed is non-finite: nothing is updated, the policy skips it (a counted, logged skip) and
the scale backs off. The scale follows ``GradScaler``'s defaults (2^16, ×0.5 on overflow, ×2
after 2000 finite steps in a row) and is in checkpoints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from gradprom_sidecar.training.config import setting, setting_in

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class LossScaler:
    """fp16's loss scale, shared by both losses of a step, held on the host (no sync to read or update it)."""

    INIT = 2.0**16
    GROWTH = 2.0
    BACKOFF = 0.5
    INTERVAL = 2000  # finite steps in a row before the scale grows

    def __init__(self) -> None:
        self.scale = self.INIT
        self.growth_tracker = 0  # finite steps since the last change
        self.overflows = 0  # steps that overflowed (skipped), over the whole run

    def unscale(self, flats: Sequence[Tensor], others: Sequence[nn.Parameter], found: Tensor) -> None:
        """Divide the flat gradients and the ``.grad`` of ``others`` by the scale, in place on the device.

        :param flats: the flat g_IP and g_VR (their overflow shows in their Gram).
        :param others: VR's parameters; ``found`` becomes 1 when one of their gradients is not finite.
        :param found: a zeroed float32 one-element tensor on the device.
        """
        inv = 1.0 / self.scale  # a power of two: exact
        for g in flats:
            g.mul_(inv)
        grads = [p.grad for p in others if p.grad is not None]
        if grads:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.full((), inv, device=found.device))

    def update(self, finite: bool) -> None:
        """Back off after an overflow (a non-finite step), grow after :attr:`INTERVAL` finite steps in a row.

        :param finite: whether the step's losses and gradients were finite.
        """
        if not finite:
            self.scale *= self.BACKOFF
            self.growth_tracker = 0
            self.overflows += 1
            return
        self.growth_tracker += 1
        if self.growth_tracker == self.INTERVAL:
            self.scale *= self.GROWTH
            self.growth_tracker = 0

    def state_dict(self) -> dict:
        """The scale, the finite steps since its last change and the overflow count (for checkpoints)."""
        return {"scale": self.scale, "growth_tracker": self.growth_tracker, "overflows": self.overflows}

    def load_state_dict(self, state: dict) -> None:
        """Put back a :meth:`state_dict`.

        :param state: what :meth:`state_dict` returned.
        :raises ValueError: a missing or bad entry.
        """
        scale = float(state["scale"])
        if not (scale > 0 and scale != float("inf")):
            raise ValueError(f"scaler.scale: expected a positive finite number, got {scale}")
        self.scale, self.growth_tracker, self.overflows = scale, int(state["growth_tracker"]), int(state["overflows"])


class Precision:
    """A session's precision and memory format, from ``train.precision`` and ``train.channels_last``.

    :param config: the resolved config.
    :param device: the session's device.
    """

    def __init__(self, config: dict, device: torch.device) -> None:
        self.name = setting_in(config, "train.precision", tuple(PRECISIONS))
        self.dtype = PRECISIONS[self.name]
        self.device_type = device.type
        self.scaler = LossScaler() if self.name == "fp16" else None
        mode = setting_in(config, "train.channels_last", ("auto", "on", "off"))
        self.channels_last = mode == "on" or (mode == "auto" and device.type == "cuda")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward passes' context: ``torch.autocast`` in bf16/fp16, nothing in fp32."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield

    def scaled(self, loss: Tensor) -> Tensor:
        """``loss`` times the loss scale (fp16), else ``loss`` itself.

        :param loss: a float32 loss.
        """
        return loss if self.scaler is None else loss * self.scaler.scale

    def unscale(self, g_ip: Tensor, g_vr: Tensor, vr_params: Sequence[nn.Parameter]) -> Tensor:
        """Unscale a step's gradients (fp16); the overflow flag of VR's gradients, a float32 scalar on the device (0: none).

        :param g_ip: flat g_IP.
        :param g_vr: flat g_VR.
        :param vr_params: VR's parameters (their ``.grad`` hold ∇φ L_VR).
        """
        found = torch.zeros(1, dtype=torch.float32, device=g_ip.device)
        if self.scaler is not None:
            self.scaler.unscale((g_ip, g_vr), vr_params, found)
        return found[0]

    def update(self, finite: bool) -> None:
        """Tell the loss scale whether the step was finite (fp16; nothing otherwise).

        :param finite: the step's finiteness, read back with its numbers.
        """
        if self.scaler is not None:
            self.scaler.update(finite)

    def memory_format(self, t: Tensor) -> Tensor:
        """``t`` (an N×C×H×W batch) in channels_last when that is on, else as it is."""
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last and t.dim() == 4 else t

    def describe(self) -> dict:
        """``{precision, channels_last, loss_scale}`` (the scale only in fp16)."""
        out: dict = {"precision": self.name, "channels_last": self.channels_last}
        if self.scaler is not None:
            out["loss_scale"] = self.scaler.scale
        return out


def set_backend_modes(config: dict, device: torch.device) -> None:
    """Set cuDNN's and PyTorch's process-wide modes from ``train.deterministic``.

    Off (the default): ``cudnn.benchmark`` on CUDA (fastest kernels for fixed shapes, picked per
    run, so not reproducible bit for bit). On: benchmark off, ``cudnn.deterministic`` and
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` (an op with no deterministic
    kernel warns instead of failing); cuBLAS gets the workspace setting it needs when unset.
    Deterministic algorithms, once on in a process, stay on (cuDNN's modes follow them).

    :param config: the resolved config.
    :param device: the session's device.
    """
    # NNPACK is an optional CPU convolution path picked per shape; on CPUs it does not support, each
    # attempt prints a C++ warning to stderr. Off, every CPU runs the same kernels and stderr stays clean.
    torch.backends.nnpack.set_flags(False)
    deterministic = bool(setting(config, "train.deterministic"))
    if deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    # Never switched off here: a process that asked for deterministic kernels (the test suite on CUDA) keeps them.
    strict = torch.are_deterministic_algorithms_enabled()
    torch.backends.cudnn.benchmark = device.type == "cuda" and not strict
    torch.backends.cudnn.deterministic = strict
