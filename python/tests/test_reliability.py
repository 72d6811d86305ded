"""A process killed inside a checkpoint write keeps the previous checkpoint; Ctrl-C belongs to the sidecar's parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import needs
from helpers import signal_pending, wait_for

from gradprom_sidecar import PROTOCOL_VERSION
from gradprom_sidecar.models.checkpoint import load_checkpoint


def _save_then_die(path: Path, where: str) -> None:
    """In a forked child: save checkpoint A, then die by SIGKILL while saving B at ``where``. Never returns."""
    try:
        from gradprom_sidecar.models import checkpoint

        checkpoint.save_atomic({"step": 1, "w": torch.ones(1000)}, path)

        def die(*args: object, **kwargs: object) -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        if where == "before-rename":  # the temporary file is written and fsynced
            checkpoint.os = type("Os", (), {"__getattr__": lambda self, n: getattr(os, n), "replace": die})()  # type: ignore[assignment]
        else:  # mid-write: half the bytes are out

            def half(obj: object, f: Any, *args: object, **kwargs: object) -> None:
                f.write(b"PK\x03\x04" + b"\0" * 4096)
                f.flush()
                die()

            checkpoint.torch.save = half  # type: ignore[assignment]  # the child's torch only
        checkpoint.save_atomic({"step": 2, "w": torch.zeros(1000)}, path)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(1)  # not killed where it should have been: the parent sees exit status 1


@pytest.mark.parametrize("where", ["mid-write", "before-rename"])
def test_a_kill_inside_save_atomic_keeps_the_previous_checkpoint(tmp_path: Path, where: str) -> None:
    """The writer is a fork of this process (a new interpreter would spend seconds importing torch again)."""
    path = tmp_path / "last.pt"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _save_then_die(path, where)

    def reaped() -> tuple[int, int] | None:
        got, status = os.waitpid(pid, os.WNOHANG)
        return (got, status) if got else None

    try:
        _, status = wait_for(reaped, "the writer to die", timeout=120)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"wait status {status}"
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
