"""`python -m gradprom_sidecar`: the sidecar process, started and owned by TypeScript.

The session token comes in the environment (GRADPROM_TOKEN), never on the
command line, where other users could read it. GRADPROM_BENCH_OPS=1 adds the
bench-only ops (see ``tools.bench_ops``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time

import torch

from gradprom_sidecar import ops  # noqa: F401  (importing ops registers them)
from gradprom_sidecar.training.device import list_devices, resolve_device
from gradprom_sidecar.wire import protocol, region
from gradprom_sidecar.wire.registry import State
from gradprom_sidecar.wire.server import Options, Server

EXIT_PARENT_GONE = 70


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gradprom_sidecar", description=__doc__)
    p.add_argument("--endpoint", default=None, help="ipc:///path or tcp://127.0.0.1:PORT (0 = any free port); required except on ranks > 0")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    p.add_argument("--max-header", type=int, default=protocol.DEFAULT_MAX_HEADER, help="bytes")
    p.add_argument("--max-message", type=int, default=protocol.DEFAULT_MAX_MESSAGE, help="bytes per frame, both ways; -1 = no limit")
    p.add_argument("--allow-remote", action="store_true", help="allow a tcp endpoint that is not loopback")
    p.add_argument("--log-level", default="INFO")
    p.add_argument(
        "--dist-backend",
        choices=("gloo", "nccl"),
        default=None,
        help="join a torch.distributed group (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT from the "
        "environment, as torchrun sets them): rank 0 serves, the other ranks follow it",
    )
    p.add_argument("--dist-timeout", type=float, default=1800.0, help="seconds a collective or the rendezvous waits for a peer")
    return p.parse_args(argv)


def watch_parent(parent_pid: int, endpoint: str, by_pid: bool = False) -> None:
    """Exit when the parent is gone (SIGKILLed Node leaves us re-parented).

    :param by_pid: watch whether ``parent_pid`` lives rather than whether it is still our parent
        (under torchrun, its agent stands between Node and us).
    """
    while True:
        if (not _alive(parent_pid)) if by_pid else os.getppid() != parent_pid:
            logging.getLogger("gradprom").error("parent process %d is gone; exiting", parent_pid)
            leave_nothing(endpoint)
            os._exit(EXIT_PARENT_GONE)
        time.sleep(0.2)


def leave_nothing(endpoint: str) -> None:
    """Remove what TypeScript would have removed had it lived: the ipc socket's folder and the shared regions' files."""
    cleanup_ipc(endpoint)
    region.close_all()


def check_endpoint(endpoint: str, allow_remote: bool = False) -> str | None:
    """Why the sidecar must not listen on ``endpoint``, or None when it may.

    tcp binds loopback only (unless ``allow_remote``); an ipc socket must sit in a folder that
    only this user can enter (0700), so other local users cannot reach it.

    :param endpoint: ``ipc:///path`` or ``tcp://HOST:PORT``.
    :param allow_remote: accept a non-loopback tcp host.
    """
    if endpoint.startswith("tcp://"):
        host = endpoint[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
        loopback = host == "localhost" or host == "::1" or host.startswith("127.")
        if not loopback and not allow_remote:
            return f"--endpoint {endpoint}: tcp binds loopback only (127.0.0.1, localhost); pass --allow-remote to bind {host}"
        return None
    if endpoint.startswith("ipc://"):
        folder = os.path.dirname(endpoint[len("ipc://") :]) or "."
        try:
            st = os.stat(folder)
        except OSError as e:
            return f"--endpoint {endpoint}: cannot use the socket's folder ({e.strerror})"
        if st.st_mode & 0o077 or st.st_uid != os.getuid():
            return f"--endpoint {endpoint}: the socket's folder {folder} must belong to this user with mode 0700 (it is {st.st_mode & 0o777:o})"
        return None
    return f"--endpoint {endpoint}: expected ipc:// or tcp://"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's (pid reused): cannot tell better
        return True
    return True


def cleanup_ipc(endpoint: str) -> None:
    """Remove the ipc socket's private folder (only the one TypeScript made for us)."""
    if endpoint.startswith("ipc://"):
        folder = os.path.dirname(endpoint[len("ipc://") :])
        if os.path.basename(folder).startswith("gradprom-"):
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    token = os.environ.pop("GRADPROM_TOKEN", "")
    rank = None
    if args.dist_backend is not None:
        from gradprom_sidecar.training import distributed

        try:
            rank = distributed.rank_env()
        except ValueError as e:
            print(f"gradprom sidecar: {e}", file=sys.stderr)
            return 2
    worker = rank is not None and rank.rank > 0  # follows rank 0 over torch.distributed; opens no socket of ours
    if not worker:
        if not args.endpoint:
            print("gradprom sidecar: --endpoint is required (except on ranks > 0)", file=sys.stderr)
            return 2
        if not token:
            print("gradprom sidecar: GRADPROM_TOKEN is not set; refusing to serve without a session token", file=sys.stderr)
            return 2
        refused = check_endpoint(args.endpoint, args.allow_remote)
        if refused:
            print(f"gradprom sidecar: {refused}", file=sys.stderr)
            return 2
    if args.parent_pid is not None:
        under_agent = bool(os.environ.get("TORCHELASTIC_RUN_ID"))  # started by torchrun, itself started by Node
        own_endpoint = "" if worker else args.endpoint  # a worker shares rank 0's --endpoint but must not remove its folder
        if not under_agent and os.getppid() != args.parent_pid:  # Node died while we were starting
            leave_nothing(own_endpoint)
            return EXIT_PARENT_GONE
        threading.Thread(target=watch_parent, args=(args.parent_pid, own_endpoint, under_agent), daemon=True).start()
        # Ctrl-C in a terminal reaches the whole process group; the parent decides what it means
        # (finish the step, write a checkpoint, then stop us), so the sidecar must not die of it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    protocol.self_check()
    torch.backends.nnpack.set_flags(False)  # as set_backend_modes does: no NNPACK warnings on CPUs it does not support
    if os.environ.get("GRADPROM_BENCH_OPS") == "1":  # npm run bench only (workers register them too: same environment)
        from gradprom_sidecar.tools import bench_ops

        bench_ops.register()
    if rank is None:
        state = State(device=resolve_device(args.device), devices=list_devices())
    else:
        state = State(device=distributed.rank_device(args.device, rank.local_rank), devices=list_devices())
        try:  # waits (up to --dist-timeout) until every rank has joined
            state.dist = distributed.RankGroup(rank, args.dist_backend, state.device, args.dist_timeout)
        except Exception as e:
            print(
                f"gradprom sidecar: rank {rank.rank} of {rank.world_size} could not join the group at "
                f"{rank.master_addr}:{rank.master_port}: {type(e).__name__}: {e}",
                file=sys.stderr,
            )
            return 1
        if worker:
            return state.dist.serve(state)
    server = Server(Options(args.endpoint, token, args.max_header, args.max_message), state)
    # The one line TypeScript waits for: where we listen (tcp port 0 resolves here).
    print("GRADPROM_READY " + json.dumps({"endpoint": server.endpoint, "pid": os.getpid()}), flush=True)
    try:
        server.serve()
    finally:
        region.close_all()  # the shared regions' files (TypeScript removes their folder too, however we stop)
    cleanup_ipc(args.endpoint)
    if state.dist is not None:
        state.dist.close()  # the workers exit with us
    return 0


if __name__ == "__main__":
    sys.exit(main())
