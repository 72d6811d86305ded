"""Shared fixtures: a seeded RNG for every test, a device-aware tensor factory, a live sidecar (with or without bench ops)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
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
    """A real sidecar of the test's own on an ipc endpoint (token ``SIDECAR_TOKEN``) and a DEALER connected to it."""
    yield from start_sidecar(tmp_path, {})


@pytest.fixture
def bench_sidecar(tmp_path: Path) -> Iterator[tuple[zmq.Socket, subprocess.Popen[str]]]:
    """:func:`sidecar` started as ``npm run bench`` starts it: with the bench-only ops (GRADPROM_BENCH_OPS=1)."""
    yield from start_sidecar(tmp_path, {"GRADPROM_BENCH_OPS": "1"})


@pytest.fixture(scope="session")
def _shared_sidecar_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    tmp = tmp_path_factory.mktemp("shared-sidecar")
    # Set here, not by _cache_home: a session fixture starts before the test's own fixtures.
    endpoint, proc = launch_sidecar(tmp, {"XDG_CACHE_HOME": str(tmp_path_factory.getbasetemp() / "xdg-cache")})
    yield endpoint, proc
    proc.kill()
    proc.wait()


@pytest.fixture
def shared_sidecar(_shared_sidecar_process: tuple[str, subprocess.Popen[str]]) -> Iterator[tuple[zmq.Socket, subprocess.Popen[str]]]:
    """:func:`sidecar`, one process for every test that leaves it as it found it: alive and idle (no shutdown, no
    signal, nothing left running; a session it made may stay). Each sidecar costs seconds of CPU, mostly importing
    torch. The test gets a DEALER of its own; afterwards the sidecar must still answer and be idle."""
    endpoint, proc = _shared_sidecar_process
    sock = dealer(endpoint)
    yield sock, proc
    sock.close()
    assert proc.poll() is None, "a test ended the shared sidecar: it needs the `sidecar` fixture"
    assert not busy_for(endpoint, 30.0), "a test left work running in the shared sidecar"


def busy_for(endpoint: str, timeout: float) -> bool:
    """True if the sidecar at ``endpoint`` still runs an op after ``timeout`` seconds of asking (a ping every 50 ms)."""
    import time

    msgpack = needs("msgpack")
    from gradprom_sidecar import PROTOCOL_VERSION

    sock, deadline = dealer(endpoint), time.monotonic() + timeout
    try:
        for rid in range(1, 1_000_000):
            sock.send_multipart([msgpack.packb({"v": PROTOCOL_VERSION, "token": SIDECAR_TOKEN, "id": rid, "op": "ping", "args": {}})])
            if not msgpack.unpackb(sock.recv_multipart()[0])["result"]["busy"]:
                return False
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return True
    finally:
        sock.close()


def dealer(endpoint: str, timeout_ms: int = 10_000) -> zmq.Socket:
    """A DEALER connected to ``endpoint`` (receive timeout ``timeout_ms``, no linger)."""
    zmq = needs("zmq")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def launch_sidecar(tmp_path: Path, env: dict[str, str], args: Sequence[str] = ()) -> tuple[str, subprocess.Popen[str]]:
    """Start a sidecar on ``ipc://{tmp_path}/s.sock`` with ``env`` added to the environment and ``args`` to its command
    line; its endpoint and process once ready.

    Its stderr goes to a file, not a pipe: a fuzz run logs more than a pipe holds unread.
    """
    needs("zmq")
    endpoint = f"ipc://{tmp_path}/s.sock"
    log = tmp_path / "sidecar.stderr"
    base = {k: v for k, v in os.environ.items() if k != "GRADPROM_BENCH_OPS"}
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gradprom_sidecar", "--endpoint", endpoint, "--device", "cpu", *args],
            env={**base, "GRADPROM_TOKEN": SIDECAR_TOKEN, "OMP_NUM_THREADS": "1", **env},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("GRADPROM_READY "):
        proc.kill()
        proc.wait()
        raise AssertionError(log.read_text() or line)
    return endpoint, proc


def start_sidecar(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[zmq.Socket, subprocess.Popen[str]]]:
    """Start a sidecar with ``env`` added to the environment, yield it with a connected DEALER, then kill it."""
    endpoint, proc = launch_sidecar(tmp_path, env)
    sock = dealer(endpoint)
    yield sock, proc
    sock.close()
    proc.kill()
    proc.wait()
