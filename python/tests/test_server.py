"""The ROUTER loop, driven by a raw DEALER: token, version, liveness while busy, shutdown.

Tests that leave the sidecar alive and idle share one (``shared_sidecar``); shutdown has its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import SIDECAR_TOKEN, needs
from helpers import wait_for

from gradprom_sidecar import PROTOCOL_VERSION  # noqa: E402

zmq = needs("zmq")
msgpack = needs("msgpack")

TOKEN = SIDECAR_TOKEN


def call(sock: zmq.Socket, header: dict[str, Any], *frames: bytes) -> dict[str, Any]:
    sock.send_multipart([msgpack.packb(header), *frames])
    return msgpack.unpackb(sock.recv_multipart()[0])


def req(op: str, rid: int = 1, **kw: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "token": TOKEN, "id": rid, "op": op, "args": {}, **kw}


def test_hello_reports_versions(shared_sidecar: Any) -> None:
    sock, proc = shared_sidecar
    r = call(sock, req("hello"))
    assert r["status"] == "ok" and r["result"]["protocol"] == PROTOCOL_VERSION and r["result"]["pid"] == proc.pid


def test_wrong_version_is_refused_and_serving_continues(shared_sidecar: Any) -> None:
    sock, _ = shared_sidecar
    r = call(sock, {**req("ping"), "v": PROTOCOL_VERSION + 1})
    assert r["status"] == "error" and r["error"]["type"] == "ProtocolVersionError"
    assert "protocol version" in r["error"]["message"]
    assert call(sock, req("ping", 2))["status"] == "ok"


def test_wrong_token_and_unknown_op(shared_sidecar: Any) -> None:
    sock, _ = shared_sidecar
    assert call(sock, {**req("ping"), "token": "x"})["error"]["type"] == "AuthError"
    r = call(sock, req("no.such.op"))
    assert r["error"]["type"] == "UnknownOp" and "header.op" in r["error"]["message"]
    for bad, kind in (({"a": 1}, "dict"), (["ping"], "list"), (None, "NoneType")):  # unhashable ones once stopped the I/O thread
        r = call(sock, {**req("ping"), "op": bad})
        assert r["error"] == {**r["error"], "type": "FrameError", "message": f"header.op: expected a string, got {kind}"}
    assert call(sock, req("ping", 2))["status"] == "ok"


def test_ping_answers_while_compute_is_busy(shared_sidecar: Any) -> None:
    sock, _ = shared_sidecar
    sock.send_multipart([msgpack.packb(req("sleep", 1, args={"seconds": 60}))])
    pings = iter(range(2, 10_000))

    def busy_ping() -> dict[str, Any] | None:
        rid = next(pings)
        r = call(sock, req("ping", rid))
        # A ping queued behind the sleep would be answered only after it: the first reply would be the sleep's.
        assert r["id"] == rid, r
        return r if r["result"]["busy"] else None

    r = wait_for(busy_ping, "a ping to find the sleep running")
    assert r["result"]["op"] == "sleep"
    assert call(sock, req("cancel", 999, args={"id": 1}))["result"]["cancelled"]  # the shared sidecar is left idle


def test_ping_reports_how_far_pretraining_has_got(shared_sidecar: Any) -> None:
    from helpers import tiny_config

    sock, _ = shared_sidecar
    sock.setsockopt(zmq.RCVTIMEO, 120_000)  # building the session takes seconds on a loaded machine
    assert call(sock, req("session.create", 1, args={"config": tiny_config()}))["status"] == "ok"
    assert call(sock, req("ping", 2))["result"]["progress"] is None  # idle
    sock.send_multipart([msgpack.packb(req("vr.pretrain", 3, args={"steps": 100_000}))])
    seen: list[int] = []
    pings = iter(range(10, 100_000))

    def progressed() -> bool:
        p = call(sock, req("ping", next(pings)))["result"]["progress"]
        if p is not None:
            assert p["what"] == "pretraining VR" and p["total"] == 100_000
            seen.append(p["done"])
        return len(seen) >= 2 and seen[-1] > seen[0]

    wait_for(progressed, "pretraining progress to advance", timeout=60)
    assert call(sock, req("cancel", 999, args={"id": 3}))["result"]["cancelled"]
    assert len(seen) >= 2 and seen == sorted(seen) and seen[-1] > seen[0], seen


def test_shutdown_exits_cleanly(sidecar: Any) -> None:
    sock, proc = sidecar
    assert call(sock, req("shutdown"))["status"] == "ok"
    assert proc.wait(timeout=10) == 0


def test_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRADPROM_TOKEN"}
    r = subprocess.run(
        [sys.executable, "-m", "gradprom_sidecar", "--endpoint", f"ipc://{tmp_path}/x.sock"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "GRADPROM_TOKEN" in r.stderr


def test_work_deferred_past_a_reply_runs_after_it_and_a_failure_reaches_the_next_op(tmp_path: Path) -> None:
    import torch

    from gradprom_sidecar import ops  # noqa: F401  (registers echo)
    from gradprom_sidecar.wire.registry import Context, State
    from gradprom_sidecar.wire.server import Job, Options, Server

    state = State(device=torch.device("cpu"), devices=["cpu"], session="a session")
    server = Server(Options(endpoint=f"ipc://{tmp_path}/d.sock", token=TOKEN), state)
    try:
        ran: list[str] = []
        ok = Job(b"id", Context(state, 1), "echo", {}, [])
        ok.ctx.defer(lambda: ran.append("deferred"))
        assert msgpack.unpackb(server._run(ok)[0])["status"] == "ok" and ran == []  # not before the reply
        server._after_reply(ok)
        assert ran == ["deferred"] and state.session == "a session"

        def fail() -> None:
            raise MemoryError("out of device memory")

        bad = Job(b"id", Context(state, 2), "echo", {}, [])
        bad.ctx.defer(fail)
        server._run(bad)
        server._after_reply(bad)
        assert state.session is None  # its state is unknown: dropped
        nxt = msgpack.unpackb(server._run(Job(b"id", Context(state, 3), "echo", {}, []))[0])
        assert nxt["status"] == "error" and "the work after the reply to echo failed (MemoryError" in nxt["error"]["message"]
        assert msgpack.unpackb(server._run(Job(b"id", Context(state, 4), "echo", {}, []))[0])["status"] == "ok"
    finally:
        server.router.close(linger=0)
        server.pull.close(linger=0)
