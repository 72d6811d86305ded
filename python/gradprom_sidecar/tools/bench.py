"""Python side of ``npm run bench``: in-process step timings, memcpy, a shared-region echo, pythonia echoes.

Not part of the sidecar (it registers no ops; the bench-only ops ``train.step`` and ``bench.lean``, which
runs :class:`LeanLoop`, are ``ops/bench.py``). ``scripts/bench.ts`` starts it as a worker:

    python -m gradprom_sidecar.tools.bench serve

and talks to it in JSON lines over stdin/stdout, one request and one reply at a time:

- ``{"cmd": "create", "name", "config", "pretrain"}``: build a :class:`Session` and pre-train VR.
- ``{"cmd": "step", "name", "kind"}``: one timed step; ``kind`` is ``ref`` (what ``reference.py``
  times: ``grads`` → ``policies.weights`` → ``apply``) or ``gradcosine`` (Du et al., arXiv
  1812.02224: one ``autograd.grad`` per loss with retained graphs, then a full backward).
- ``{"cmd": "memcpy", "bytes", "reps"}``: ``dst.copy_(src)`` times in ms.
- ``{"cmd": "region_echo", "endpoint", "dir", "numel", "nonce", "count"}``: serve ``count`` echoes
  through a shared region of vectors transport (:func:`region_echo`; ZeroMQ REQ/REP control messages).
- ``{"cmd": "quit"}``.

Each reply is ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Timings are taken here,
in-process, so the pipe never counts. ``echo_b64`` and ``echo_list`` are the pythonia comparison.
"""

from __future__ import annotations

import base64
import copy
import json
import platform
import sys
import time
from typing import Any

import torch

from gradprom_sidecar.tools import policies
from gradprom_sidecar.tools.reference import reference_step
from gradprom_sidecar.training import grads as G
from gradprom_sidecar.training.config import setting
from gradprom_sidecar.training.optim import make_optimizer
from gradprom_sidecar.training.pretrain import pretrain
from gradprom_sidecar.training.session import Session


def gradcosine_step(s: Session, policy_cfg: dict) -> float:
    """One step the GradCosine way: ``autograd.grad`` per loss (graphs retained), then a full backward.

    Same batch sampling, losses, gate and optimisers as :func:`reference_step`; the update is the
    same up to float rounding: θ.grad = ∇θ(L_IP + w·L_VR) with the gate's weight w, φ.grad = ∇φ L_VR.
    Supervised VR only (the benchmark's configuration).

    :param s: the session (its batch and learning-rate helpers are used as ``grads`` does).
    :param policy_cfg: the config's ``policy`` section (global granularity).
    :returns: the step time in ms.
    """
    t0 = time.perf_counter()
    theta = s.layout.params
    phi = [p for p in s.vr.parameters() if p.requires_grad]
    for p in phi:
        p.grad = None
    clean, target, x = s.draw_inputs()
    y_hat = s.ip(x)
    loss_ip = G.pixel_loss(y_hat, clean, s.loss_kind)
    loss_vr = G.task_loss(s.vr(y_hat), target)
    g_ip = torch.autograd.grad(loss_ip, theta, retain_graph=True)  # pass 1
    g_all = torch.autograd.grad(loss_vr, [*theta, *phi], retain_graph=True)  # pass 2
    flat_ip = torch.cat([g.reshape(-1) for g in g_ip])
    flat_vr = torch.cat([g.reshape(-1) for g in g_all[: len(theta)]])
    gram = G.gram(flat_ip, flat_vr, s.layout)  # host-device sync
    _, w_vr, _ = policies.weights(policy_cfg, gram)
    (loss_ip + w_vr[0] * loss_vr).backward()  # pass 3: the full backward, frees the graph
    for p, g in zip(phi, g_all[len(theta) :]):
        p.grad = g  # VR trains on its own loss, as in the two-pass step
    s.pipeline.set_lr(s.ip_optim, "train.ip_optim")
    s.ip_optim.step()
    if s.vr_optim is not None:
        s.pipeline.set_lr(s.vr_optim, "train.vr_optim")
        s.vr_optim.step()
    s.pipeline.zero_grads()
    s.pipeline.step += 1
    return (time.perf_counter() - t0) * 1000.0


class LeanLoop:
    """The floor of the "GPU-like short steps" section: the GradProm step as a user writes it in plain PyTorch.

    Its own copies of the session's networks (same architecture and starting weights), optimisers
    from the same config sections, the same training images, batch size and Gaussian σ, on the
    same device: draw a batch and its noise, forward, two ``autograd.grad`` passes, the dot
    products (one host sync for the gate), the merged ``.grad``, both optimiser steps. Nothing of
    the sidecar's step machinery (flat buffers, Gram per block, samplers, schedules) is used.

    :param s: the session to copy (supervised classification, one Gaussian degradation).
    """

    def __init__(self, s: Session) -> None:
        (deg,) = setting(s.config, "degradation")
        if deg["kind"] != "gaussian" or s.task != "classify" or s.mode != "supervised":
            raise ValueError("bench.lean: needs one Gaussian degradation and supervised classification")
        self.sigma, self.batch, self.device = float(deg["sigma"]), s.batch_size, s.device
        self.lam = float(setting(s.config, "policy.lambda"))
        self.ip, self.vr = copy.deepcopy(s.ip), copy.deepcopy(s.vr)
        self.theta = [p for p in self.ip.parameters() if p.requires_grad]
        self.phi = [p for p in self.vr.parameters() if p.requires_grad]
        self.opt_ip = make_optimizer(self.theta, setting(s.config, "train.ip_optim"), "train.ip_optim")
        self.opt_vr = make_optimizer(self.phi, setting(s.config, "train.vr_optim"), "train.vr_optim")
        images = s.bundle.train.images
        self.images = (images if images.is_floating_point() else images.float() / 255.0).to(s.device)
        self.labels = s.bundle.train.labels.to(s.device)
        self.generator = torch.Generator(s.device).manual_seed(s.seed)

    def step(self) -> float:
        """One step; its time in ms."""
        t0 = time.perf_counter()
        idx = torch.randint(len(self.images), (self.batch,), generator=self.generator, device=self.device)
        clean, target = self.images[idx], self.labels[idx]
        x = clean + self.sigma * torch.randn(clean.shape, generator=self.generator, device=self.device)
        y_hat = self.ip(x)
        loss_ip = torch.nn.functional.mse_loss(y_hat, clean)
        loss_vr = torch.nn.functional.cross_entropy(self.vr(y_hat), target)
        g_ip = torch.autograd.grad(loss_ip, self.theta, retain_graph=True)
        g_all = torch.autograd.grad(loss_vr, self.theta + self.phi)
        g_vr = g_all[: len(self.theta)]
        a, v = torch.cat([g.reshape(-1) for g in g_ip]), torch.cat([g.reshape(-1) for g in g_vr])
        cos = float(a.dot(v) / (a.norm() * v.norm() + 1e-12))  # host-device sync: the gate
        merged = torch._foreach_add(g_ip, g_vr, alpha=self.lam) if cos > 0 else g_ip
        for p, g in zip(self.theta + self.phi, [*merged, *g_all[len(self.theta) :]]):
            p.grad = g
        self.opt_ip.step()
        self.opt_vr.step()
        for p in self.theta + self.phi:
            p.grad = None
        return (time.perf_counter() - t0) * 1000.0


def memcpy_ms(nbytes: int, reps: int) -> list[float]:
    """Times of copying ``nbytes`` between two preallocated, already touched CPU buffers.

    :param nbytes: bytes per copy (a multiple of 4).
    :param reps: timed copies (after one untimed).
    """
    src = torch.ones(nbytes // 4, dtype=torch.float32)
    dst = torch.zeros_like(src)
    dst.copy_(src)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def region_echo(endpoint: str, folder: str, numel: int, nonce: str, count: int) -> int:
    """Serve ``count`` echoes through a shared region (:class:`region.Region`, as vectors transport uses it), then return.

    The first request (``{}``) is answered with the region's description. Each later one,
    ``{seq, copy}``, names the merged decision TypeScript wrote; it is checked against the header
    (as ``train.advance`` does), with ``copy`` copied into the g_IP slot, and g_IP is published;
    the reply names the vectors' sequence number. In training nothing is copied on this side
    (autograd writes the g_IP slot, the optimiser reads the merged one where they lie), so the
    timed echoes leave ``copy`` false; a first echo with it true checks the bytes come back.

    :param endpoint: where to bind the REP socket.
    :param folder: a private (0700) folder for the region.
    :param numel: float32 elements per slot.
    :param nonce: 16 bytes, hex, for the header.
    :param count: echoes to answer (after the description).
    :returns: the number answered.
    """
    import zmq

    from gradprom_sidecar.wire.region import Region

    sock = zmq.Context.instance().socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    region = Region(folder, numel, bytes.fromhex(nonce))
    try:
        sock.recv()
        sock.send(json.dumps(region.describe()).encode())
        for _ in range(count):
            head = json.loads(sock.recv())
            merged = region.merged_slot(int(head["seq"]))  # checked against the header, as train.advance does
            if head.get("copy", True):
                region.g_ip.copy_(merged)
            sock.send(json.dumps({"seq": region.published()}).encode())
    finally:
        sock.close()
        region.close()
    return count


def echo_b64(data: str) -> str:
    """pythonia comparison: base64 float32 bytes in, the same tensor base64-encoded back.

    :param data: base64 of little-endian float32 values.
    """
    t = torch.frombuffer(bytearray(base64.b64decode(data)), dtype=torch.float32)
    return base64.b64encode(t.numpy().tobytes()).decode("ascii")


def echo_list(values: list[float]) -> list[float]:
    """pythonia comparison: a list of numbers in, through a float32 tensor, the list back.

    :param values: the vector as plain numbers.
    """
    return torch.tensor(values, dtype=torch.float32).tolist()


def _handle(req: dict[str, Any], sessions: dict[str, Session]) -> dict[str, Any]:
    cmd = req.get("cmd")
    if cmd == "create":
        t0 = time.perf_counter()
        s = Session(req["config"], torch.device("cpu"))
        pretrain(s, int(req.get("pretrain", 0)))
        sessions[req["name"]] = s
        return {"params": s.layout.numel, "ms": (time.perf_counter() - t0) * 1000.0}
    if cmd == "step":
        s = sessions[req["name"]]
        policy_cfg = setting(s.config, "policy")
        ms = reference_step(s, policy_cfg)[2] if req["kind"] == "ref" else gradcosine_step(s, policy_cfg)
        return {"ms": ms, "step": s.step}
    if cmd == "drop":
        sessions.pop(req["name"], None)
        return {}
    if cmd == "memcpy":
        return {"ms": memcpy_ms(int(req["bytes"]), int(req["reps"]))}
    if cmd == "region_echo":
        return {"served": region_echo(req["endpoint"], req["dir"], int(req["numel"]), req["nonce"], int(req["count"]))}
    if cmd == "info":
        import zmq

        return {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "pyzmq": zmq.__version__,
            "libzmq": zmq.zmq_version(),
        }
    raise ValueError(f"cmd: unknown command {cmd!r}")


def serve() -> int:
    """Answer JSON-line requests on stdin until ``quit`` or end of input."""
    sessions: dict[str, Session] = {}
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the reply channel
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        try:
            reply = {"ok": True, **_handle(req, sessions)}
        except Exception as exc:  # reported to the bench, which stops with it
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        print("usage: python -m gradprom_sidecar.tools.bench serve", file=sys.stderr)
        sys.exit(2)
    sys.exit(serve())
