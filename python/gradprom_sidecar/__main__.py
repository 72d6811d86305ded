"""`python -m gradprom_sidecar`: the sidecar process, started and owned by TypeScript.

The session token comes in the environment (GRADPROM_TOKEN), never on the
command line, where other users could read it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import threading
import time

from . import protocol
from .registry import State
from .server import Options, Server, list_devices, resolve_device

EXIT_PARENT_GONE = 70


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gradprom_sidecar", description=__doc__)
    p.add_argument("--endpoint", required=True, help="ipc:///path or tcp://127.0.0.1:PORT (0 = any free port)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    p.add_argument("--max-header", type=int, default=protocol.DEFAULT_MAX_HEADER, help="bytes")
    p.add_argument("--max-message", type=int, default=-1, help="bytes per frame; -1 = no limit")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def watch_parent(parent_pid: int, endpoint: str) -> None:
    """Exit when the parent is gone (SIGKILLed Node leaves us re-parented)."""
    while True:
        if os.getppid() != parent_pid:
            logging.getLogger("gradprom").error("parent process %d is gone; exiting", parent_pid)
            cleanup_ipc(endpoint)
            os._exit(EXIT_PARENT_GONE)
        time.sleep(0.2)


def cleanup_ipc(endpoint: str) -> None:
    """Remove the ipc socket's private folder (only the one TypeScript made for us)."""
    if endpoint.startswith("ipc://"):
        folder = os.path.dirname(endpoint[len("ipc://"):])
        if os.path.basename(folder).startswith("gradprom-"):
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    token = os.environ.pop("GRADPROM_TOKEN", "")
    if not token:
        print("gradprom sidecar: GRADPROM_TOKEN is not set; refusing to serve without a session token", file=sys.stderr)
        return 2
    if args.parent_pid is not None:
        if os.getppid() != args.parent_pid:
            return EXIT_PARENT_GONE
        threading.Thread(target=watch_parent, args=(args.parent_pid, args.endpoint), daemon=True).start()
    protocol.self_check()
    from . import bridge_ops, session  # noqa: F401  (registers the ops)

    state = State(device=resolve_device(args.device), devices=list_devices())
    server = Server(Options(args.endpoint, token, args.max_header, args.max_message), state)
    # The one line TypeScript waits for: where we listen (tcp port 0 resolves here).
    print("GRADPROM_READY " + json.dumps({"endpoint": server.endpoint, "pid": os.getpid()}), flush=True)
    server.serve()
    cleanup_ipc(args.endpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
