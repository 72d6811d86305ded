"""The op list (gradprom_sidecar.ops): one place names every op, and the bench-only op stays out of production."""

from __future__ import annotations

from gradprom_sidecar import ops
from gradprom_sidecar.registry import ALL_RANKS, HANDLERS, IO_OPS


def test_the_list_in_ops_is_what_the_modules_register() -> None:
    listed = [name for names in ops.OPS.values() for name in names]
    assert len(listed) == len(set(listed))
    assert set(listed) == HANDLERS.keys()  # the production set: no train.step
    for module, names in ops.OPS.items():
        for name in names:
            assert HANDLERS[name].__module__ == f"gradprom_sidecar.ops.{module}", name
    assert not IO_OPS & HANDLERS.keys() and ALL_RANKS <= HANDLERS.keys()


def test_bench_ops_are_listed_apart() -> None:
    bench = {name for names in ops.BENCH_OPS.values() for name in names}
    assert bench == {"train.step", "bench.lean"} and not bench & HANDLERS.keys()
    assert ops.BENCH_ENV == "GRADPROM_BENCH_OPS"
