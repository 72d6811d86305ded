"""A process killed inside a checkpoint write keeps the previous checkpoint; Ctrl-C belongs to the sidecar's parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import needs
from helpers import signal_pending, wait_for

from gradprom_sidecar import PROTOCOL_VERSION
from gradprom_sidecar.models.checkpoint import load_checkpoint

# A child that saves checkpoint A, then dies by SIGKILL while saving B at the given point.
_CHILD = textwrap.dedent(
    """
    import os, signal, sys, torch
    from gradprom_sidecar.models import checkpoint
    path, where = sys.argv[1], sys.argv[2]
    checkpoint.save_atomic({"step": 1, "w": torch.ones(1000)}, path)
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if where == "before-rename":  # the temporary file is written and fsynced
        checkpoint.os = type("Os", (), {"__getattr__": lambda self, n: getattr(os, n), "replace": die})()
    else:  # mid-write: half the bytes are out
        real_save = torch.save
        def half(obj, f, *a, **k):
            f.write(b"PK\\x03\\x04" + b"\\0" * 4096)
            f.flush()
            die()
        checkpoint.torch.save = half
    checkpoint.save_atomic({"step": 2, "w": torch.zeros(1000)}, path)
    """
)


@pytest.mark.parametrize("where", ["mid-write", "before-rename"])
def test_a_kill_inside_save_atomic_keeps_the_previous_checkpoint(tmp_path: Path, where: str) -> None:
    path = tmp_path / "last.pt"
    r = subprocess.run([sys.executable, "-c", _CHILD, str(path), where], capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 1 and torch.equal(ckpt["w"], torch.ones(1000))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.pt.") and leftovers[0].endswith(".tmp")


def test_sidecar_with_a_parent_ignores_ctrl_c_but_not_sigterm(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group; the parent (which finishes the step and checkpoints) decides."""
    zmq, msgpack = needs("zmq"), needs("msgpack")
    endpoint = f"ipc://{tmp_path}/s.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradprom_sidecar", "--endpoint", endpoint, "--device", "cpu", "--parent-pid", str(os.getpid())],
        env={**os.environ, "GRADPROM_TOKEN": "t"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("GRADPROM_READY ")
        proc.send_signal(signal.SIGINT)
        # Once delivered, an unignored SIGINT would raise in the main thread before it could answer the ping.
        wait_for(lambda: not signal_pending(proc.pid, signal.SIGINT), "the SIGINT to be delivered")
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.RCVTIMEO, 10_000)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send_multipart([msgpack.packb({"v": PROTOCOL_VERSION, "token": "t", "id": 1, "op": "ping", "args": {}})])
        assert msgpack.unpackb(sock.recv_multipart()[0])["result"]["pid"] == proc.pid
        assert proc.poll() is None
        sock.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
