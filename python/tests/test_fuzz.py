"""Fuzzing the Python decoder (10,000 random or mutated frame lists) and the running sidecar behind it."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from conftest import SIDECAR_TOKEN, needs

msgpack = needs("msgpack")
zmq = needs("zmq")

from gradprom_sidecar import PROTOCOL_VERSION  # noqa: E402
from gradprom_sidecar.wire import protocol  # noqa: E402  (protocol imports msgpack)

SEED = 20250106
DECODER_FRAMES = 10_000
TOKEN = SIDECAR_TOKEN
PING_ID = 987_654_321  # never produced by the generators (their ids stay below 10**6 or are edge values)
KEYS = ["v", "id", "op", "args", "token", "status", "result", "error", "tensors", "dtype", "shape", "k"]
OPS = [
    "ping",
    "hello",
    "cancel",
    "echo",
    "eval",
    "train.advance",
    "vectors.region",
    "vr.pretrain",
    "enhance",
    "checkpoint.load",
    "session.create",
    "no.such.op",
    "",
    "__init__",
]


def random_value(rng: random.Random, depth: int = 3) -> Any:
    """A random msgpack-able value with the awkward cases weighted in."""
    leaves = [
        lambda: None,
        lambda: rng.random() < 0.5,
        lambda: rng.randint(-(2**31), 2**31),
        lambda: rng.choice([0, -1, 2**53, -(2**63), 2**64 - 1, float("nan"), float("inf"), 1e308, 5e-324]),
        lambda: "x" * rng.randrange(40),
        lambda: rng.choice(["", "float32", "int64", "bool", "complex64", "ok", "error", "__class__", "\x00"]),
        lambda: rng.randbytes(rng.randrange(32)),
        lambda: msgpack.ExtType(rng.randrange(128), rng.randbytes(rng.randrange(8))),
    ]
    if depth <= 0 or rng.random() < 0.5:
        return rng.choice(leaves)()
    if rng.random() < 0.5:
        return [random_value(rng, depth - 1) for _ in range(rng.randrange(5))]
    return {rng.choice(KEYS): random_value(rng, depth - 1) for _ in range(rng.randrange(5))}


def valid_message(rng: random.Random, token: str = TOKEN, ops: list[str] = OPS) -> list[bytes]:
    """A well-formed request carrying 0-3 tensors of any wire dtype."""
    tensors = [torch.zeros(rng.randrange(6), dtype=rng.choice(list(protocol.DTYPES.values()))) for _ in range(rng.randrange(4))]
    header = {"v": PROTOCOL_VERSION, "token": token, "id": rng.randrange(10**6), "op": rng.choice(ops), "args": {"k": rng.randrange(9)}}
    return [bytes(f) for f in protocol.encode(header, tensors)]


def _header_of(frame: bytes) -> dict | None:
    try:
        h = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception:
        return None
    return h if isinstance(h, dict) else None


def mutate(rng: random.Random, frames: list[bytes]) -> list[bytes]:
    """One mutation: flipped, cut, grown, dropped, added, swapped or re-described frames."""
    out = [bytearray(f) for f in frames] or [bytearray()]
    i = rng.randrange(len(out))
    f = out[i]
    kind = rng.randrange(8)
    if kind == 0 and f:
        for _ in range(1 + rng.randrange(4)):
            f[rng.randrange(len(f))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        out[i] = f[: rng.randrange(len(f) + 1)]
    elif kind == 2:
        out[i] = f + rng.randbytes(1 + rng.randrange(16))
    elif kind == 3:
        del out[i]
    elif kind == 4:
        out.insert(rng.randrange(len(out) + 1), bytearray(rng.randbytes(rng.randrange(64))))
    elif kind == 5 and len(out) > 1:
        j = rng.randrange(len(out))
        out[i], out[j] = out[j], out[i]
    elif kind in (6, 7) and (h := _header_of(bytes(out[0]))) is not None:
        if kind == 6:
            h["tensors"] = [
                {
                    "dtype": rng.choice(list(protocol.DTYPES)) if rng.random() < 0.8 else random_value(rng, 0),
                    "shape": [rng.choice([0, 1, 2, 3, 4, 8, -1, 2**40, 1.5, True]) for _ in range(rng.randrange(4))],
                }
                for _ in range(rng.randrange(4))
            ]
        else:
            h[rng.choice(KEYS)] = random_value(rng)
        out[0] = bytearray(msgpack.packb(h))
    return [bytes(x) for x in out]


def fuzz_message(rng: random.Random, k: int, token: str = TOKEN, ops: list[str] = OPS) -> list[bytes]:
    """The k-th fuzz message: random bytes, a random msgpack value, or a valid request with 1-3 mutations."""
    if k % 4 == 0:
        return [rng.randbytes(rng.randrange(200)) for _ in range(1 + rng.randrange(3))]
    if k % 4 == 1:
        return [msgpack.packb(random_value(rng)), *([rng.randbytes(rng.randrange(16))] if rng.random() < 0.3 else [])]
    frames = valid_message(rng, token, ops)
    for _ in range(1 + rng.randrange(3)):
        frames = mutate(rng, frames)
    return frames


def test_decoder_fuzz_gives_a_message_or_a_frame_error() -> None:
    rng = random.Random(SEED)
    accepted = refused = 0
    for k in range(DECODER_FRAMES):
        frames = fuzz_message(rng, k)
        try:
            msg = protocol.decode(frames)
        except protocol.FrameError as exc:
            assert str(exc), f"frame set {k}: empty message"
            refused += 1
            continue
        except Exception as exc:  # anything else is a decoder bug
            pytest.fail(f"frame set {k} (seed {SEED}) raised {type(exc).__name__}: {exc}")
        accepted += 1
        # What decodes is coherent: one tensor per frame, of exactly its bytes.
        assert len(msg.tensors) == len(frames) - 1
        for t, body in zip(msg.tensors, frames[1:]):
            assert t.numel() * t.element_size() == len(body)
    assert accepted + refused == DECODER_FRAMES
    assert refused > DECODER_FRAMES // 2 and accepted > 0


def test_sidecar_answers_2000_fuzzed_messages_and_keeps_serving(shared_sidecar: Any) -> None:
    """Half the messages carry the session token, so they reach operation dispatch and argument checks.

    The run's shared sidecar (none of the ops fuzzed ends it or sleeps): afterwards it must still answer and be idle.
    """
    sock, proc = shared_sidecar
    rng = random.Random(SEED + 1)
    sent = replies = 0
    for batch in range(20):
        for k in range(100):
            token = TOKEN if k % 2 else "wrong"
            frames = fuzz_message(rng, batch * 100 + k, token) or [b""]
            sock.send_multipart(frames)
            sent += 1
        for _ in range(100):
            reply = msgpack.unpackb(sock.recv_multipart()[0], strict_map_key=False)
            assert reply["status"] in ("ok", "error")
            replies += 1
        ping = {"v": PROTOCOL_VERSION, "token": TOKEN, "id": PING_ID, "op": "ping", "args": {}}
        sock.send_multipart([msgpack.packb(ping)])
        pong = msgpack.unpackb(sock.recv_multipart()[0], strict_map_key=False)
        while pong.get("id") != PING_ID:  # a late compute reply may come first
            replies += 1
            pong = msgpack.unpackb(sock.recv_multipart()[0], strict_map_key=False)
        assert pong["status"] == "ok" and pong["result"]["pid"] == proc.pid
    while replies < sent:  # the last compute replies
        sock.recv_multipart()
        replies += 1
    assert proc.poll() is None
