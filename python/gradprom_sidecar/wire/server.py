"""The ROUTER loop: an I/O thread owns the socket, compute runs on the main thread.

hello, ping, cancel and shutdown are answered by the I/O thread, so liveness
never waits behind a long training step. Compute replies come back to the
I/O thread over an inproc PUSH/PULL pair (a zmq socket belongs to one thread).
"""

from __future__ import annotations

import hmac
import logging
import os
import platform
import queue
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Any

import torch
import zmq

from gradprom_sidecar import PROTOCOL_VERSION
from gradprom_sidecar.wire import protocol
from gradprom_sidecar.wire.registry import HANDLERS, IO_OPS, Cancelled, Context, State

log = logging.getLogger("gradprom.server")


@dataclass
class Options:
    endpoint: str
    token: str
    max_header: int = protocol.DEFAULT_MAX_HEADER
    max_message: int = (
        protocol.DEFAULT_MAX_MESSAGE
    )  # bytes per frame, both ways; libzmq enforces it on receipt before allocation; -1 = none


@dataclass
class Job:
    identity: bytes
    ctx: Context
    op: str
    args: dict[str, Any]
    tensors: list[torch.Tensor]


_STOP = None  # queue sentinel
# How long a thread that wants the GIL waits for the one holding it (Python's default: 5 ms). The reply a compute op
# pushes is sent on by the I/O thread while the compute thread already runs the work deferred past it (VR's update,
# the next batch: Python-heavy); at 5 ms that forwarding could wait a whole interval, at GPU step times a sizeable share.
SWITCH_INTERVAL_S = 0.0005
# How long the compute thread waits for the I/O thread to send a reply on before it runs the op's deferred work. Without
# the wait the I/O thread competes for the GIL (and a core) with that work, and the reply can leave only after most of
# it, so TypeScript decides late and the next request finds the compute thread idle. Bounded: a slow I/O thread delays
# the deferred work by at most this, never the reply.
FORWARD_WAIT_S = 0.05


def error_header(request_id: Any, exc_type: str, message: str, tb: str = "") -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "id": request_id,
        "status": "error",
        "error": {"type": exc_type, "message": message, "traceback": tb},
    }


class Server:
    def __init__(self, opts: Options, state: State) -> None:
        self.opts = opts
        self.state = state
        self.zctx = zmq.Context.instance()
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.running: Job | None = None
        self.pending: dict[int, Context] = {}  # queued or running, by request id
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.forwarded = threading.Event()  # set by the I/O thread once it has sent the replies the compute thread pushed
        self.reply_addr = f"inproc://gradprom-replies-{id(self)}"
        self.router = self.zctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.MAXMSGSIZE, opts.max_message)
        self.router.bind(opts.endpoint)
        self.endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.pull = self.zctx.socket(zmq.PULL)
        self.pull.bind(self.reply_addr)

    # ---- I/O thread -------------------------------------------------------
    def io_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.pull, zmq.POLLIN)
        while not self.stopping.is_set():
            events = dict(poller.poll(100))
            if self.pull in events:
                while True:
                    try:
                        frames = self.pull.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self.router.send_multipart([f.buffer for f in frames], copy=False)
                self.forwarded.set()
            if self.router in events:
                while True:
                    try:
                        frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._on_request(frames)
        self.jobs.put(_STOP)

    def _on_request(self, frames: list[zmq.Frame]) -> None:
        identity = frames[0].bytes
        body = [f.buffer for f in frames[1:]]
        try:
            msg = protocol.decode(body, self.opts.max_header)
        except protocol.FrameError as exc:
            log.warning("refused a malformed message: %s", exc)
            self._reply_error(identity, _peek_id(body), "FrameError", str(exc))
            return
        h = msg.header
        rid = h.get("id")
        if not isinstance(h.get("token"), str) or not hmac.compare_digest(h["token"].encode(), self.opts.token.encode()):
            log.warning("refused a message with a wrong or missing token (id %r)", rid)
            self._reply_error(identity, rid, "AuthError", "wrong or missing session token")
            return
        try:
            protocol.check_version(h)
        except protocol.FrameError as exc:
            log.warning("refused: %s", exc)
            self._reply_error(identity, rid, "ProtocolVersionError", str(exc))
            return
        op_name, args = h.get("op"), h.get("args", {})
        if not isinstance(rid, int) or isinstance(rid, bool):
            self._reply_error(identity, None, "FrameError", f"header.id: expected an integer, got {rid!r}")
            return
        if not isinstance(args, dict):
            self._reply_error(identity, rid, "FrameError", "header.args: expected a map")
            return
        if not isinstance(op_name, str):  # a map or list would not even hash: checked before any lookup
            self._reply_error(identity, rid, "FrameError", f"header.op: expected a string, got {type(op_name).__name__}")
            return
        if op_name in IO_OPS:
            self._io_op(identity, rid, op_name, args)
        elif op_name in HANDLERS:
            ctx = Context(self.state, rid)
            with self.lock:
                self.pending[rid] = ctx
            self.jobs.put(Job(identity, ctx, op_name, args, msg.tensors))
        else:
            known = ", ".join(sorted(IO_OPS | HANDLERS.keys()))
            self._reply_error(identity, rid, "UnknownOp", f"header.op: unknown operation {op_name!r} (known: {known})")

    def _io_op(self, identity: bytes, rid: int, op_name: str, args: dict[str, Any]) -> None:
        if op_name == "hello":
            result = hello_result(self.state)
        elif op_name == "ping":
            job = self.running
            result = {
                "pid": os.getpid(),
                "busy": job is not None,
                "op": job.op if job else None,
                "progress": job.ctx.progress if job else None,
            }
        elif op_name == "cancel":
            target = args.get("id")
            with self.lock:
                ctx = self.pending.get(target) if isinstance(target, int) else None
            if ctx is not None:
                ctx.cancel_event.set()
            result = {"cancelled": ctx is not None}
        else:  # shutdown
            result = {}
            self.stopping.set()
        self._send(identity, {"v": PROTOCOL_VERSION, "id": rid, "status": "ok", "result": result}, [])

    def _send(self, identity: bytes, header: dict[str, Any], tensors: list[torch.Tensor]) -> None:
        self.router.send_multipart([identity, *protocol.encode(header, tensors)], copy=False)

    def _reply_error(self, identity: bytes, rid: Any, exc_type: str, message: str) -> None:
        self._send(identity, error_header(rid, exc_type, message), [])

    # ---- compute (main) thread --------------------------------------------
    def compute_loop(self) -> None:
        push = self.zctx.socket(zmq.PUSH)
        push.connect(self.reply_addr)
        try:
            while True:
                job = self.jobs.get()
                if job is _STOP:
                    return
                frames = self._run(job)
                deferred = bool(job.ctx.after_reply)
                if deferred:
                    self.forwarded.clear()  # before the push: the I/O thread's set() after it is this reply's
                push.send_multipart([job.identity, *frames], copy=False)
                if deferred:
                    self.forwarded.wait(FORWARD_WAIT_S)  # the reply leaves first, then the work TypeScript's decision overlaps
                self._after_reply(job)
        finally:
            push.close(linger=1000)

    def _after_reply(self, job: Job) -> None:
        """Run the work the op deferred past its reply; a failure drops the session and is reported by the next op."""
        if not job.ctx.after_reply:
            return
        self.running = job
        try:
            job.ctx.run_deferred()
        except Exception as exc:
            log.warning("work after the reply to %s failed", job.op, exc_info=True)
            self.state.session = None
            self.state.failed_after_reply = (
                f"the work after the reply to {job.op} failed ({type(exc).__name__}: {exc}); the session was dropped"
            )
        finally:
            self.running = None

    def _run(self, job: Job) -> list[bytes | memoryview]:
        rid = job.ctx.request_id
        self.running = job
        try:
            job.ctx.check_cancelled()
            if self.state.failed_after_reply is not None:
                failure, self.state.failed_after_reply = self.state.failed_after_reply, None
                raise RuntimeError(failure)
            if self.state.dist is None:
                result, tensors = HANDLERS[job.op](job.ctx, job.args, job.tensors)
            else:  # several ranks: rank 0 runs all-rank ops on every rank first
                result, tensors = self.state.dist.run(job.op, job.ctx, job.args, job.tensors)
            # A reply the client's libzmq would refuse becomes an error reply naming the frame, not a silent drop.
            return protocol.encode({"v": PROTOCOL_VERSION, "id": rid, "status": "ok", "result": result}, tensors, self.opts.max_message)
        except Cancelled as exc:
            return protocol.encode(error_header(rid, "Cancelled", str(exc)))
        except Exception as exc:  # every failure becomes an error reply, never a dead sidecar
            log.debug("op %s failed", job.op, exc_info=True)
            return protocol.encode(error_header(rid, type(exc).__name__, str(exc), traceback.format_exc()))
        finally:
            self.running = None
            with self.lock:
                self.pending.pop(rid, None)

    def serve(self) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        io = threading.Thread(target=self.io_loop, name="gradprom-io", daemon=True)
        io.start()
        try:
            self.compute_loop()
        finally:
            io.join(timeout=2)
            self.router.close(linger=500)
            self.pull.close(linger=0)


def hello_result(state: State) -> dict[str, Any]:
    return {
        "protocol": PROTOCOL_VERSION,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "devices": state.devices,
        "device": str(state.device),
        "pid": os.getpid(),
        "cuda": torch.version.cuda,
    }


def _peek_id(body: list[Any]) -> Any:
    """The request id of a message that failed validation, if its header can be read at all."""
    import msgpack

    try:
        h = msgpack.unpackb(body[0], raw=False) if body and len(body[0]) <= protocol.DEFAULT_MAX_HEADER else None
    except Exception:
        return None
    rid = h.get("id") if isinstance(h, dict) else None
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None
