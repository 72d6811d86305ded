"""The op list (gradprom_sidecar.ops): one place names every op, and the bench-only op stays out of production."""

from __future__ import annotations

from gradprom_sidecar import ops
from gradprom_sidecar.wire.registry import ALL_RANKS, HANDLERS, IO_OPS


def test_the_list_in_ops_is_what_the_modules_register() -> None:
    listed = [name for names in ops.OPS.values() for name in names]
    assert len(listed) == len(set(listed))
    assert set(listed) == HANDLERS.keys()  # the production set: no train.step
    for module, names in ops.OPS.items():
        for name in names:
            assert HANDLERS[name].__module__ == f"gradprom_sidecar.ops.{module}", name
    assert not IO_OPS & HANDLERS.keys() and ALL_RANKS <= HANDLERS.keys()


def test_bench_ops_stay_out_of_production_until_the_bench_registers_them() -> None:
    from gradprom_sidecar.tools import bench_ops

    assert not set(bench_ops.BENCH_OPS) & HANDLERS.keys()
    bench_ops.register()
    try:
        assert set(bench_ops.BENCH_OPS) <= HANDLERS.keys()
        assert HANDLERS["train.step"].__module__ == "gradprom_sidecar.tools.bench_ops"
    finally:
        for name in bench_ops.BENCH_OPS:
            HANDLERS.pop(name, None)
            ALL_RANKS.discard(name)
