"""Scale-out on torch.distributed: N sidecar ranks compute one global training step together.

Rank 0 is the sidecar TypeScript talks to; ranks 1..N-1 are workers that open no socket of ours.
They find each other through the environment torchrun sets (MASTER_ADDR, MASTER_PORT, RANK,
WORLD_SIZE, LOCAL_RANK), whoever started them: TypeScript on one machine, torchrun on several.

- Rank 0 runs every op registered with ``all_ranks=True`` on all ranks: it broadcasts the op's
  name, args and tensors (``broadcast_object_list``: inside torch.distributed, never on our wire),
  then runs it itself. Workers loop on those broadcasts. So TypeScript's decision reaches every
  rank and every rank applies the same update.
- Batches: every rank draws the same GLOBAL batch (the same seeded sampler, augmentation and
  noise as one process), then keeps its contiguous 1/N slice. Losses are means over the batch,
  so the average of the N slice gradients is the one-process gradient, to float rounding.
- Gradients: VR is wrapped in DistributedDataParallel (its reducer averages ∇φ L_VR during the
  second backward pass, the only one that reaches VR). IP is not: DDP averages the first backward
  pass after a forward only (a second one through the same forward stays local, silently), and
  GradProm takes two from one forward, g_IP and g_VR. The two flat IP buffers are all-reduced
  explicitly instead (one collective each, no copies), so the Gram that rank 0 sends is the Gram
  of the global gradients.
- BatchNorm normalises with each rank's own slice (as DDP does): a BN network's 2-rank step is
  not the 1-process step. Before an evaluation rank 0's buffers are broadcast, so all ranks
  evaluate the same model.
- Evaluation: each rank scores a contiguous share of the images; per-image values are gathered
  and the metrics computed over all of them. Checkpoints are written by rank 0 alone and hold no
  per-rank state, so a run resumes on any number of ranks.
- Failure: a worker whose op raises prints ``GRADPROM_RANK_FAILED {json}`` on stderr and exits
  with ``EXIT_OP_FAILED``; a failed op on rank 0 marks the group out of step and refuses further
  all-rank ops. Either way the run ends; TypeScript names the rank and stops the others.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import math
import os
import socket
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gradprom_sidecar.models.checkpoint import CheckpointError, load_checkpoint
from gradprom_sidecar.training.session import Session
from gradprom_sidecar.wire.registry import ALL_RANKS, HANDLERS, Context, Result, State

log = logging.getLogger("gradprom.distributed")

EXIT_OP_FAILED = 3  # a worker's op raised (its traceback is on stderr)
EXIT_LOST = 4  # a worker lost contact with rank 0
RANK_FAILED = "GRADPROM_RANK_FAILED "  # the last stderr line of a worker whose op raised
_EXIT = "__exit__"  # the command that ends the workers' loop
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class RankGroupError(RuntimeError):
    """The ranks are no longer in step (an all-rank op failed); the sidecar must be restarted."""


@dataclass(frozen=True)
class RankEnv:
    """Where this process stands in the group, read from torchrun's environment variables."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int


def rank_env(environ: Mapping[str, str] | None = None) -> RankEnv:
    """Read RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; errors name the variable.

    :param environ: the environment (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    missing = [k for k in _ENV if not env.get(k)]
    if missing:
        raise ValueError(
            f"torch.distributed environment incomplete: {', '.join(missing)} not set (torchrun sets them; so does gradprom for --nproc)"
        )

    def integer(key: str, low: int, high: int) -> int:
        try:
            value = int(env[key])
        except ValueError:
            raise ValueError(f"{key}: expected an integer, got {env[key]!r}") from None
        if not low <= value <= high:
            raise ValueError(f"{key}: expected {low}..{high}, got {value}")
        return value

    world = integer("WORLD_SIZE", 1, 1 << 20)
    return RankEnv(
        integer("RANK", 0, world - 1), world, integer("LOCAL_RANK", 0, world - 1), env["MASTER_ADDR"], integer("MASTER_PORT", 1, 65535)
    )


def rank_device(spec: str, local_rank: int) -> torch.device:
    """This rank's device: ``auto``/``cuda`` mean ``cuda:LOCAL_RANK`` when CUDA is present.

    :param spec: the ``--device`` flag (auto | cpu | cuda | cuda:N).
    :param local_rank: the rank's index on its machine.
    """
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if spec in ("auto", "cuda"):
        if not torch.cuda.is_available():
            raise SystemExit(f"gradprom sidecar: device {spec!r} requested but CUDA is not available (torch {torch.__version__})")
        if local_rank >= torch.cuda.device_count():
            raise SystemExit(f"gradprom sidecar: LOCAL_RANK {local_rank} has no GPU (this machine has {torch.cuda.device_count()})")
        return torch.device("cuda", local_rank)
    # cuda:N would put every rank of the machine on one GPU, which NCCL refuses.
    raise SystemExit(f"gradprom sidecar: device {spec!r} pins one GPU; with several ranks use auto or cuda (rank r uses cuda:LOCAL_RANK)")


def exit_now(code: int) -> NoReturn:
    """End this process at once with ``code``.

    A group left without ``destroy_process_group`` (a peer gone, ranks out of step) can abort in
    torch's C++ teardown (std::terminate) and turn the exit code into SIGABRT.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _loopback_ip(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


class RankGroup:
    """This process's membership of the group, and the collectives the session uses.

    :param backend: ``gloo`` (CPU) or ``nccl`` (CUDA).
    :param device: this rank's device.
    :param timeout_s: how long a collective (and the start-up rendezvous) may wait for a peer.
    """

    def __init__(self, env: RankEnv, backend: str, device: torch.device, timeout_s: float) -> None:
        if backend not in ("gloo", "nccl"):
            raise ValueError(f"--dist-backend: expected gloo or nccl, got {backend!r}")
        if backend == "nccl" and device.type != "cuda":
            raise SystemExit(f"gradprom sidecar: backend nccl needs CUDA devices, this rank got {device} (use gloo on CPU)")
        self.env, self.backend, self.device = env, backend, device
        self.rank, self.world_size = env.rank, env.world_size
        self.broken: str | None = None
        if device.type == "cuda":
            torch.cuda.set_device(device)
        timeout = datetime.timedelta(seconds=timeout_s)
        store = self._loopback_store(timeout)
        if store is not None:
            dist.init_process_group(backend, store=store, rank=env.rank, world_size=env.world_size, timeout=timeout)
        else:
            dist.init_process_group(backend, init_method="env://", rank=env.rank, world_size=env.world_size, timeout=timeout)
        log.info(
            "rank %d of %d joined (%s, %s, local rank %d, pid %d)", self.rank, self.world_size, backend, device, env.local_rank, os.getpid()
        )

    def _loopback_store(self, timeout: datetime.timedelta) -> dist.TCPStore | None:
        """On one machine, the rendezvous store listens on the loopback address only.

        ``env://`` would have rank 0 listen on every interface; gradprom's own sidecar listens on
        loopback only, so rank 0 binds the socket itself and hands it to the store, and the other
        ranks connect to it the same way (both sides explicit: ``env://`` keys its entries under
        another prefix). Under torchrun (its agent hosts the store) or with a routable
        MASTER_ADDR, torch's own ``env://`` path is used.
        """
        addr, port = self.env.master_addr, self.env.master_port
        if not _loopback_ip(addr) or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            return None
        if self.rank > 0:
            return dist.TCPStore(addr, port, self.world_size, False, timeout)
        sock = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((addr, port))
        except OSError as e:
            sock.close()
            raise SystemExit(
                f"gradprom sidecar: cannot listen on MASTER_ADDR {addr} port {port} ({e.strerror}); choose another distributed.master_port"
            ) from None
        sock.listen(self.world_size)
        store = dist.TCPStore(addr, port, self.world_size, True, timeout, wait_for_workers=False, master_listen_fd=sock.fileno())
        sock.detach()  # the store owns the fd now (it closes it); Python must not close it under the store
        return store

    # ----------------------------------------------------------------- rank 0: driving the others
    def run(self, op_name: str, ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
        """Run a compute op on rank 0, first on every rank when it is an all-rank op."""
        handler = HANDLERS[op_name]
        if op_name not in ALL_RANKS:
            return handler(ctx, args, tensors)
        if self.broken is not None:
            raise RankGroupError(f"the {self.world_size} ranks are out of step since {self.broken}; restart the sidecar")
        try:
            dist.broadcast_object_list([(op_name, args, tensors)], src=0)
            return handler(ctx, args, tensors)
        except BaseException as e:
            # The workers may be anywhere inside this op (or gone): no later collective can be trusted.
            self.broken = f"'{op_name}' failed on rank 0 ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            raise

    def close(self) -> None:
        """Rank 0: tell the workers to exit, then leave the group (or end the process, out of step)."""
        if self.broken is not None:
            exit_now(0)
        try:
            dist.broadcast_object_list([(_EXIT, {}, [])], src=0)
        except Exception as e:  # a worker already gone: TypeScript stops the rest
            log.warning("could not tell the workers to exit: %s", e)
            exit_now(0)
        dist.destroy_process_group()

    # ----------------------------------------------------------------- workers
    def serve(self, state: State) -> NoReturn:
        """Workers: run the ops rank 0 broadcasts until told to exit, then end the process.

        The process ends with 0 once rank 0 says so; on a failure at once, with
        ``EXIT_OP_FAILED`` (an op raised) or ``EXIT_LOST`` (rank 0 is gone).

        :param state: this rank's state (device, session).
        """
        while True:
            box: list[Any] = [None]
            try:
                dist.broadcast_object_list(box, src=0)
            except Exception as e:
                log.error("rank %d lost contact with rank 0: %s", self.rank, str(e).splitlines()[0] if str(e) else type(e).__name__)
                exit_now(EXIT_LOST)
            op_name, args, tensors = box[0]
            if op_name == _EXIT:
                dist.destroy_process_group()
                # Even after a clean destroy, the interpreter's teardown can hit std::terminate (SIGABRT) while
                # rank 0, which hosts the store, exits at the same moment: seen with a torchrun-started node.
                exit_now(0)
            try:
                ctx = Context(state, request_id=0)
                HANDLERS[op_name](ctx, args, tensors)
                ctx.run_deferred()  # no reply to send first: the work rank 0 defers past its reply runs now
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                report = {"rank": self.rank, "op": op_name, "type": type(e).__name__, "message": str(e)}
                print(RANK_FAILED + json.dumps(report), file=sys.stderr, flush=True)
                exit_now(EXIT_OP_FAILED)

    # ----------------------------------------------------------------- collectives for the session
    def average(self, tensors: list[Tensor]) -> None:
        """Replace each tensor by its mean over the ranks, in place (all_reduce SUM then divide: gloo has no AVG).

        :param tensors: same shapes on every rank (the flat g_IP, g_VR buffers; the losses).
        """
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            t.div_(self.world_size)

    def broadcast_state(self, module: nn.Module, buffers_only: bool = False) -> None:
        """Give every rank rank 0's parameters and buffers (or buffers alone).

        :param module: a network, the same on every rank.
        :param buffers_only: leave the parameters (equal on every rank once training runs in step).
        """
        with torch.no_grad():
            for t in module.buffers() if buffers_only else module.state_dict().values():
                dist.broadcast(t, src=0)

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank.

        :param obj: a picklable value (small: per-image evaluation results).
        """
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def load_checkpoint(self, path: str) -> dict:
        """Rank 0 reads the checkpoint and sends it to the others (their disks need not hold it).

        :param path: the file, on rank 0's machine.
        :raises CheckpointError: on every rank alike, when rank 0 cannot read it.
        """
        box: list[Any] = [None]
        if self.rank == 0:
            try:
                box[0] = load_checkpoint(path)
            except CheckpointError as e:
                box[0] = e  # every rank raises the same error, in step
        dist.broadcast_object_list(box, src=0)
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    def new_session(self, config: dict, device: torch.device, load_model_weights: bool = True) -> Session:
        """A session that computes its share of each global batch; see :class:`DistributedSession`.

        :param config: the resolved experiment config.
        :param device: this rank's device.
        :param load_model_weights: load ``ip.weights``/``vr.weights`` (False when a checkpoint follows).
        """
        return DistributedSession(config, device, self, load_model_weights)


class DistributedSession(Session):
    """A :class:`Session` on one rank: the global batch is sliced, gradients and metrics are combined.

    :param config: the resolved experiment config.
    :param device: this rank's device.
    :param load_model_weights: load ``ip.weights``/``vr.weights``.
    """

    def __init__(self, config: dict, device: torch.device, group: RankGroup, load_model_weights: bool = True) -> None:
        self.group = group
        super().__init__(config, device, load_model_weights)
        world, batch = group.world_size, self.sampler.batch
        if batch % world:
            raise ValueError(
                f"config.train.batch_size: {batch} images per step cannot be split evenly over {world} ranks "
                f"(distributed.nproc x nodes); use a multiple of {world}"
            )
        # Same seed, same networks; this makes it so even for a nondeterministic initialisation.
        group.broadcast_state(self.ip)
        group.broadcast_state(self.vr)
        self._vr_ddp: nn.parallel.DistributedDataParallel | None = None

    def local(self, t: Tensor) -> Tensor:
        per = t.shape[0] // self.group.world_size
        return t[self.group.rank * per : (self.group.rank + 1) * per]

    def average(self, tensors: list[Tensor]) -> None:
        self.group.average(tensors)

    def vr_forward(self, x: Tensor) -> Tensor:
        if not any(p.requires_grad for p in self.vr.parameters()):
            return self.vr(x)  # frozen VR: nothing to reduce
        if self._vr_ddp is None:  # made on first use: a frozen VR becomes trainable for its pre-training
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._vr_ddp = nn.parallel.DistributedDataParallel(self.vr, device_ids=ids)
        return self._vr_ddp(x)

    def eval_range(self, n: int) -> tuple[int, int]:
        per = math.ceil(n / self.group.world_size)
        return min(n, self.group.rank * per), min(n, (self.group.rank + 1) * per)

    def gather_eval(self, parts: dict[str, Tensor]) -> dict[str, Tensor]:
        gathered = self.group.gather(parts)  # rank order = image order (contiguous shares)
        keys = dict.fromkeys(k for g in gathered for k in g)  # a rank with no images sends none
        return {k: torch.cat([g[k] for g in gathered if k in g]) for k in keys}

    def sync_for_eval(self) -> None:
        # BatchNorm statistics drift apart per rank; evaluate everywhere with rank 0's (the checkpointed ones).
        self.group.broadcast_state(self.ip, buffers_only=True)
        self.group.broadcast_state(self.vr, buffers_only=True)
