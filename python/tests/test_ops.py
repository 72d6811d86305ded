"""The op list (gradprom_sidecar.ops): one place names every op, and the bench-only and test-only ops stay out of production."""

from __future__ import annotations

import json
import subprocess
import sys

import extra_ops

from gradprom_sidecar import ops
from gradprom_sidecar.wire.registry import ALL_RANKS, HANDLERS, IO_OPS


def test_the_list_in_ops_is_what_the_modules_register() -> None:
    listed = [name for names in ops.OPS.values() for name in names]
    assert len(listed) == len(set(listed))
    assert set(listed) == HANDLERS.keys() - set(extra_ops.EXTRA_OPS)  # the tests' own ops are registered here, from the test tree
    for module, names in ops.OPS.items():
        for name in names:
            assert HANDLERS[name].__module__ == f"gradprom_sidecar.ops.{module}", name
    for name in extra_ops.EXTRA_OPS:
        assert HANDLERS[name].__module__ == "extra_ops", name
    assert not IO_OPS & HANDLERS.keys() and ALL_RANKS <= HANDLERS.keys()


def test_production_registers_no_test_only_op() -> None:
    """What the sidecar serves: ``gradprom_sidecar.ops`` imported alone (a fresh interpreter: this one holds the tests' ops)."""
    code = (
        "import json, gradprom_sidecar.ops as o; from gradprom_sidecar.wire.registry import HANDLERS; "
        "print(json.dumps([sorted(HANDLERS), sorted(n for ns in o.OPS.values() for n in ns)]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    served, listed = json.loads(r.stdout)
    assert served == listed
    assert not {"train.grads", "train.apply", "train.skip", "data.describe"} & set(served)
    assert "train.advance" in served


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
