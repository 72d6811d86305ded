"""Every operation the sidecar serves, in one place; the handlers live in one module per subject.

I/O ops, answered by the server's I/O thread (``server.py``) and never queued behind compute:
``hello``, ``ping``, ``cancel``, ``shutdown``.

Compute ops run one at a time on the compute thread; those registered ``all_ranks`` run on every
rank under torch.distributed (``distributed.RankGroup.run``). :data:`OPS` lists them by module,
and a test holds it to what the modules register. The bench-only ops are not here: they live in
``tools.bench_ops`` and are registered only when the sidecar starts with ``GRADPROM_BENCH_OPS=1``.
Nor are the test-only ops (the step's parts on their own: ``train.grads``, ``train.apply``,
``train.skip``; and ``data.describe``): python/tests/extra_ops.py registers them for the tests.

A handler takes ``(ctx, args, tensors)`` and returns ``(result, tensors)``; it reads its
arguments with ``registry.require`` and raises errors that name the argument (``args.split``,
``tensors[0].shape``) or the config field (``config.vr.mode``).
"""

from __future__ import annotations

from gradprom_sidecar.ops import (  # noqa: F401  (importing registers the ops)
    checkpoint,
    cross_table,
    enhance,
    evaluate,
    health,
    session,
    train,
    vectors,
)

OPS: dict[str, tuple[str, ...]] = {
    "health": ("echo", "sleep"),
    "session": ("session.create", "vr.pretrain"),
    "train": ("train.advance",),
    "evaluate": ("eval", "eval.weights"),
    "enhance": ("enhance", "enhance.files"),
    "checkpoint": ("checkpoint.save", "checkpoint.load"),
    "cross_table": ("eval.transfer",),
    "vectors": ("vectors.region",),
}
