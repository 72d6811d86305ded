"""Every operation the sidecar serves, in one place; the handlers live in one module per subject.

I/O ops, answered by the server's I/O thread (``server.py``) and never queued behind compute:
``hello``, ``ping``, ``cancel``, ``shutdown``.

Compute ops run one at a time on the compute thread; those registered ``all_ranks`` run on every
rank under torch.distributed (``distributed.RankGroup.run``). :data:`OPS` lists them by module,
and a test holds it to what the modules register. ``train.step`` and ``bench.lean`` (:data:`BENCH_OPS`)
are not part of the production sidecar: they are registered only when the sidecar starts with
``GRADPROM_BENCH_OPS=1`` (``npm run bench`` times the bridge against them).

A handler takes ``(ctx, args, tensors)`` and returns ``(result, tensors)``; it reads its
arguments with ``registry.require`` and raises errors that name the argument (``args.split``,
``tensors[0].shape``) or the config field (``config.vr.mode``).
"""

from __future__ import annotations

from ..registry import HANDLERS, register
from . import bridge, checkpoint, enhance, evaluate, session, train, transfer, vectors  # noqa: F401  (importing registers the ops)

BENCH_ENV = "GRADPROM_BENCH_OPS"

OPS: dict[str, tuple[str, ...]] = {
    "bridge": ("echo", "sleep"),
    "session": ("session.create", "vr.pretrain", "data.describe"),
    "train": ("train.advance", "train.grads", "train.apply", "train.skip"),
    "evaluate": ("eval",),
    "enhance": ("enhance", "enhance.files"),
    "checkpoint": ("checkpoint.save", "checkpoint.load"),
    "transfer": ("eval.transfer",),
    "vectors": ("vectors.region",),
}
BENCH_OPS: dict[str, tuple[str, ...]] = {"bench": ("train.step", "bench.lean")}


def register_bench_ops() -> None:
    """Register the bench-only ops (``train.step``, ``bench.lean``); a second call does nothing."""
    from .bench import bench_lean, train_step

    if "train.step" not in HANDLERS:
        register("train.step", train_step, all_ranks=True)
        register("bench.lean", bench_lean)
