"""Shared fixtures: a seeded RNG for every test, a device-aware tensor factory, a live sidecar (with or without bench ops)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Before torch loads (it reads the variable once): CPU tensors of 2 MB and more go on transparent huge pages. Filling
# fresh memory page by page was half the CPU time of the ImageNet-network tests (hundreds of MB each, and their files
# read back). The variable reaches the Python processes the tests start; it changes where memory lies, never a value.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import torch  # noqa: E402

if TYPE_CHECKING:
    import zmq

DEVICE = torch.device(os.environ.get("GRADPROM_TEST_DEVICE", "cpu"))
SIDECAR_TOKEN = "test-token"

if "OMP_NUM_THREADS" not in os.environ:
    # `npm test` runs this suite beside lint and the build: torch's OpenMP threads spin-wait for a core that another
    # process holds, which made the suite 5x slower under load (3 min with one thread, 15 with two). Tests are tiny.
    # The variable reaches the Python processes the tests start; the call, this one (torch is already imported).
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

if DEVICE.type == "cuda":
    # Bit-identity tests hold on CUDA only with deterministic kernels (where torch has them; a warning where not).
    torch.use_deterministic_algorithms(True, warn_only=True)


def needs(module: str) -> Any:
    """``module``, or a skip of the calling test (or test module) naming it when it cannot be imported.

    :param module: pyzmq's ``zmq``, ``msgpack`` or ``pydicom``: what a bare GPU machine may lack.
    """
    return pytest.importorskip(module, reason=f"{module} is not installed (a bare GPU machine has only PyTorch)")


def dot_approx(a: torch.Tensor, b: torch.Tensor) -> Any:
    """``float(a @ b)`` to float64 summation-order error, which is relative to ``‖a‖‖b‖``, not to the (possibly cancelled) sum.

    The fused Gram sums in another order than a dot product (and CUDA's reductions in another than the CPU's).

    :param a: a float64 vector.
    :param b: another, of its length.
    """
    return pytest.approx(float(a @ b), rel=1e-12, abs=1e-12 * float(a.norm() * b.norm()) + 1e-300)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data caches go to a folder of this test run, never the user's ~/.cache (sidecars started here inherit it)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.fixture
def device() -> torch.device:
    return DEVICE


def randn(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A random tensor on the test device."""
    return torch.randn(*shape, dtype=dtype, device=DEVICE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a slower case (seconds, not minutes)")


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[tuple[zmq.Socket, subprocess.Popen[str]]]:
    """A real sidecar on an ipc endpoint (token ``SIDECAR_TOKEN``) and a DEALER connected to it."""
    yield from start_sidecar(tmp_path, {})


@pytest.fixture
def bench_sidecar(tmp_path: Path) -> Iterator[tuple[zmq.Socket, subprocess.Popen[str]]]:
    """:func:`sidecar` started as ``npm run bench`` starts it: with the bench-only ops (GRADPROM_BENCH_OPS=1)."""
    yield from start_sidecar(tmp_path, {"GRADPROM_BENCH_OPS": "1"})


def start_sidecar(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[zmq.Socket, subprocess.Popen[str]]]:
    """Start a sidecar with ``env`` added to the environment, yield it with a connected DEALER, then kill it.

    Its stderr goes to a file, not a pipe: a fuzz run logs more than a pipe holds unread.
    """
    zmq = needs("zmq")
    endpoint = f"ipc://{tmp_path}/s.sock"
    log = tmp_path / "sidecar.stderr"
    base = {k: v for k, v in os.environ.items() if k != "GRADPROM_BENCH_OPS"}
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gradprom_sidecar", "--endpoint", endpoint, "--device", "cpu"],
            env={**base, "GRADPROM_TOKEN": SIDECAR_TOKEN, "OMP_NUM_THREADS": "1", **env},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("GRADPROM_READY "), log.read_text() or line
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    yield sock, proc
    sock.close()
    proc.kill()
    proc.wait()
