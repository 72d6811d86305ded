"""The op registry: an operation name maps to a handler and where it runs (the ops themselves: ``ops/``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

Result = tuple[dict[str, Any], list[torch.Tensor]]


class Cancelled(Exception):
    """Raised by a handler that noticed its request was cancelled."""


@dataclass
class State:
    """What lives across requests: the device and the training session."""

    device: torch.device
    devices: list[str]
    session: Any = None  # gradprom_sidecar.training.session.Session once created
    dist: Any = None  # gradprom_sidecar.training.distributed.RankGroup when this process is one rank of several
    region: Any = None  # (session, region.Region) while vectors transport shares memory with TypeScript
    failed_after_reply: str | None = None  # work deferred past a reply failed; the next compute op reports it


@dataclass
class Context:
    """Per-request context handed to every handler."""

    state: State
    request_id: int
    cancel_event: threading.Event = field(default_factory=threading.Event)
    after_reply: list[Callable[[], None]] = field(default_factory=list)
    progress: dict[str, Any] | None = None  # what a long op has done so far; ``ping`` shows it

    def report(self, what: str, done: int, total: int) -> None:
        """Record progress of the running op (read by the I/O thread's ``ping``; one dict swap, no lock needed).

        :param what: the phase, e.g. "pretraining VR".
        :param done: units done.
        :param total: units in all.
        """
        self.progress = {"what": what, "done": int(done), "total": int(total)}

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the reply has been sent (before the next request): work the caller does not wait for."""
        self.after_reply.append(fn)

    def run_deferred(self) -> None:
        """Run the deferred work now, in order (the server: after sending the reply; a worker rank: after the op)."""
        work, self.after_reply = self.after_reply, []
        for fn in work:
            fn()

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled(f"request {self.request_id} was cancelled")


Handler = Callable[[Context, dict[str, Any], list[torch.Tensor]], Result]

# Ops answered by the I/O thread itself, never queued behind compute.
IO_OPS = frozenset({"hello", "ping", "cancel", "shutdown"})

HANDLERS: dict[str, Handler] = {}

# Ops that change or read the state every rank holds: under torch.distributed, rank 0 runs them
# on every rank (see distributed.RankGroup.run); the others run on rank 0 alone.
ALL_RANKS: set[str] = set()


def register(name: str, fn: Handler, all_ranks: bool = False) -> None:
    """Register a compute handler under ``name`` (once).

    :param name: the operation name on the wire.
    :param all_ranks: with several ranks, every rank runs it (session state, collectives).
    """
    if name in HANDLERS or name in IO_OPS:
        raise ValueError(f"op {name!r} registered twice")
    HANDLERS[name] = fn
    if all_ranks:
        ALL_RANKS.add(name)


def op(name: str, all_ranks: bool = False) -> Callable[[Handler], Handler]:
    """Decorator: :func:`register` the function under ``name``.

    :param name: the operation name on the wire.
    :param all_ranks: with several ranks, every rank runs it (session state, collectives).
    """

    def decorate(fn: Handler) -> Handler:
        register(name, fn, all_ranks)
        return fn

    return decorate


def require(args: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """`args[key]` checked against `kind`; the error names the argument."""
    if key not in args:
        raise ValueError(f"args.{key}: required")
    value = args[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))):
        raise ValueError(f"args.{key}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value
