"""Who may talk to the sidecar and what it accepts: endpoints, message size, tokens, no pickle on the wire."""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import dealer, launch_sidecar, needs

msgpack = needs("msgpack")
zmq = needs("zmq")

# After the skip: these import pyzmq and msgpack.
import gradprom_sidecar  # noqa: E402
from gradprom_sidecar import PROTOCOL_VERSION, ops  # noqa: E402, F401  (importing ops registers echo)
from gradprom_sidecar.__main__ import check_endpoint, main  # noqa: E402
from gradprom_sidecar.wire import protocol  # noqa: E402
from gradprom_sidecar.wire.registry import Context, State  # noqa: E402
from gradprom_sidecar.wire.server import Job, Options, Server  # noqa: E402

TOKEN = "security-token"


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:0", "tcp://localhost:5555", "tcp://127.3.2.1:9"])
def test_loopback_tcp_is_accepted(endpoint: str) -> None:
    assert check_endpoint(endpoint) is None


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:0", "tcp://*:5555", "tcp://192.168.1.5:7", "tcp://example.org:80"])
def test_other_tcp_hosts_are_refused_unless_asked(endpoint: str) -> None:
    refused = check_endpoint(endpoint)
    assert refused is not None and "--allow-remote" in refused and endpoint in refused
    assert check_endpoint(endpoint, allow_remote=True) is None


def test_ipc_folder_must_be_private(tmp_path: Path) -> None:
    private, shared = tmp_path / "private", tmp_path / "shared"
    private.mkdir(mode=0o700)
    shared.mkdir()
    os.chmod(private, 0o700)
    os.chmod(shared, 0o755)
    assert check_endpoint(f"ipc://{private}/s.sock") is None
    refused = check_endpoint(f"ipc://{shared}/s.sock")
    assert refused is not None and "0700" in refused and "755" in refused
    assert "cannot use" in (check_endpoint(f"ipc://{tmp_path}/missing/s.sock") or "")
    assert "expected ipc:// or tcp://" in (check_endpoint("udp://127.0.0.1:1") or "")


def test_sidecar_refuses_to_start_on_a_public_address(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The sidecar's ``main`` in this process (a new one costs seconds of CPU; test_server's refusal without a token
    runs ``python -m gradprom_sidecar`` and sees the exit status 2 it returns)."""
    monkeypatch.setenv("GRADPROM_TOKEN", TOKEN)  # main takes it out of the environment; restored after
    assert main(["--endpoint", "tcp://0.0.0.0:0", "--device", "cpu"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_encode_refuses_frames_over_the_message_limit() -> None:
    with pytest.raises(protocol.FrameError, match=r"tensors\[1\]: 400 bytes exceeds the message limit of 64"):
        protocol.encode({"v": 1}, [torch.zeros(4), torch.zeros(100)], max_message=64)
    with pytest.raises(protocol.FrameError, match=r"header: \d+ bytes exceeds the message limit of 64"):
        protocol.encode({"v": 1, "big": "x" * 100}, [], max_message=64)
    assert len(protocol.encode({"v": 1}, [torch.zeros(100)], max_message=-1)) == 2


def test_an_oversized_reply_becomes_an_error_reply(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    server = Server(Options(f"ipc://{tmp_path}/s.sock", TOKEN, max_message=256), State(torch.device("cpu"), ["cpu"]))
    try:
        job = Job(b"peer", Context(server.state, 7), "echo", {}, [torch.zeros(100)])  # 400 bytes back
        reply = protocol.decode(server._run(job))
    finally:
        server.router.close(0)
        server.pull.close(0)
    assert reply.header["status"] == "error" and reply.header["id"] == 7
    assert reply.header["error"]["type"] == "FrameError" and "tensors[0]" in reply.header["error"]["message"]


@pytest.fixture(scope="module")
def small_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A sidecar that accepts frames of at most 4096 bytes, one for the module: each test leaves it serving (a dropped
    peer, refused tokens and inert pickles change nothing in it), and a sidecar costs seconds of CPU to start."""
    tmp_path = tmp_path_factory.mktemp("small-sidecar")
    os.chmod(tmp_path, 0o700)
    endpoint, proc = launch_sidecar(tmp_path, {"GRADPROM_TOKEN": TOKEN}, ["--max-message", "4096"])
    yield endpoint, proc
    proc.kill()
    proc.wait()


def _req(op: str, rid: int, token: str = TOKEN, **kw: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "token": token, "id": rid, "op": op, "args": {}, **kw}


def _call(sock: zmq.Socket, frames: list[bytes]) -> dict[str, Any]:
    sock.send_multipart(frames)
    return msgpack.unpackb(sock.recv_multipart()[0])


def test_an_oversized_message_is_dropped_before_allocation_and_serving_goes_on(small_sidecar: Any) -> None:
    endpoint, proc = small_sidecar
    sock = dealer(endpoint, 1500)
    head = msgpack.packb({**_req("echo", 1), "tensors": [{"dtype": "uint8", "shape": [8192]}]})
    sock.send_multipart([head, b"\0" * 8192])
    with pytest.raises(zmq.Again):  # libzmq drops the peer on the frame's size prefix: nothing is decoded, nothing answered
        sock.recv_multipart()
    sock.close()
    fresh = dealer(endpoint, 10_000)
    small = msgpack.packb({**_req("echo", 2), "tensors": [{"dtype": "uint8", "shape": [1024]}]})
    assert _call(fresh, [small, b"\1" * 1024])["status"] == "ok"
    assert _call(fresh, [msgpack.packb(_req("ping", 3))])["result"]["pid"] == proc.pid
    fresh.close()


def test_the_token_is_checked_on_every_message(small_sidecar: Any) -> None:
    endpoint, _ = small_sidecar
    sock = dealer(endpoint, 10_000)
    assert _call(sock, [msgpack.packb(_req("hello", 1))])["status"] == "ok"
    for rid, token in enumerate([TOKEN[:-1], TOKEN + "x", "", TOKEN.upper()], start=2):
        r = _call(sock, [msgpack.packb(_req("ping", rid, token))])
        assert r["status"] == "error" and r["error"]["type"] == "AuthError"
    assert _call(sock, [msgpack.packb(_req("ping", 9))])["status"] == "ok"
    sock.close()


class _Boom:
    """Unpickling this would create a file: proof that nothing was unpickled when the file is absent."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.marker,))


def test_pickles_on_the_wire_stay_inert_bytes(small_sidecar: Any, tmp_path: Path) -> None:
    endpoint, _ = small_sidecar
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Boom(str(marker)))
    sock = dealer(endpoint, 10_000)
    head = {
        **_req("echo", 1),
        "args": {"blob": payload, "ext": msgpack.ExtType(1, payload)},
        "tensors": [{"dtype": "uint8", "shape": [len(payload)]}],
    }
    r = _call(sock, [msgpack.packb(head), payload])
    assert r["status"] == "ok"
    for op in ("checkpoint.load", "session.create"):
        _call(sock, [msgpack.packb({**_req(op, 2), "args": {"path": payload, "config": payload}})])
    sock.close()
    assert not marker.exists()


def test_no_wire_module_can_unpickle() -> None:
    """The modules that read messages import no pickle-like loader and give msgpack no object hooks."""
    root = Path(gradprom_sidecar.__file__).parent
    for name in ("wire/protocol.py", "wire/server.py", "wire/registry.py", "wire/region.py", "__main__.py"):
        tree = ast.parse((root / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                assert not {"pickle", "dill", "marshal", "shelve", "cloudpickle"} & set(names), f"{name} imports {names}"
            if isinstance(node, ast.keyword):
                assert node.arg not in ("ext_hook", "object_hook", "object_pairs_hook"), f"{name} passes {node.arg} to msgpack"
