"""Framing: a msgpack header plus raw tensor frames, and back.

This module knows no operation names (framing stays apart from meaning): it maps a header and a
list of tensors to frames, and frames to a validated header and tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import torch

from gradprom_sidecar import PROTOCOL_VERSION

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
ITEMSIZE = {name: torch.empty(0, dtype=dt).element_size() for name, dt in DTYPES.items()}

DEFAULT_MAX_HEADER = 1 << 20  # 1 MiB: headers carry arguments, never tensors
DEFAULT_MAX_MESSAGE = 1 << 30  # 1 GiB per frame, either direction (libzmq refuses larger before allocating)


class FrameError(ValueError):
    """A message that does not follow the framing rules; the text names the field."""


@dataclass
class Message:
    header: dict[str, Any]
    tensors: list[torch.Tensor] = field(default_factory=list)


def describe(t: torch.Tensor) -> dict[str, Any]:
    """The descriptor sent for one tensor frame."""
    if t.dtype not in DTYPE_NAMES:
        raise FrameError(f"dtype {t.dtype} is not supported on the wire")
    return {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape)}


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    # Contiguous CPU bytes; bfloat16 has no numpy dtype, so view it as int16 first.
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    if t.numel() == 0:
        return memoryview(b"")
    return memoryview(t.numpy().reshape(-1)).cast("B")


def encode(header: dict[str, Any], tensors: Sequence[torch.Tensor] = (), max_message: int = -1) -> list[bytes | memoryview]:
    """Frames for a header and its tensors; `header["tensors"]` is filled in here.

    :param max_message: bytes per frame (-1: no limit); a larger frame is a FrameError naming it,
        raised before anything is sent (the peer's libzmq would drop the connection instead).
    """
    head = dict(header)
    head["tensors"] = [describe(t) for t in tensors]
    if max_message >= 0:
        for i, t in enumerate(tensors):
            size = t.numel() * t.element_size()
            if size > max_message:
                raise FrameError(f"tensors[{i}]: {size} bytes exceeds the message limit of {max_message} bytes per frame")
    packed = msgpack.packb(head, use_bin_type=True)
    if 0 <= max_message < len(packed):
        raise FrameError(f"header: {len(packed)} bytes exceeds the message limit of {max_message} bytes per frame")
    return [packed, *(_tensor_bytes(t) for t in tensors)]


def decode(frames: Sequence[bytes | memoryview], max_header: int = DEFAULT_MAX_HEADER) -> Message:
    """A validated message from frames; raises FrameError naming the first bad field."""
    if not frames:
        raise FrameError("message: no frames")
    raw = frames[0]
    if len(raw) > max_header:
        raise FrameError(f"header: {len(raw)} bytes exceeds the limit of {max_header}")
    try:
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise FrameError(f"header: not valid msgpack ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict):
        raise FrameError(f"header: expected a map, got {type(header).__name__}")
    descs = header.get("tensors", [])
    if not isinstance(descs, list):
        raise FrameError("header.tensors: expected a list")
    if len(descs) != len(frames) - 1:
        raise FrameError(f"header.tensors: {len(descs)} descriptors for {len(frames) - 1} tensor frames")
    tensors = [_frame_tensor(i, d, frames[i + 1]) for i, d in enumerate(descs)]
    return Message(header, tensors)


def _frame_tensor(i: int, desc: Any, frame: bytes | memoryview) -> torch.Tensor:
    where = f"tensors[{i}]"
    if not isinstance(desc, dict):
        raise FrameError(f"{where}: expected a map with dtype and shape")
    dtype, shape = desc.get("dtype"), desc.get("shape")
    if dtype not in DTYPES:
        raise FrameError(f"{where}.dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise FrameError(f"{where}.shape: expected a list of non-negative integers, got {shape!r}")
    numel = 1
    for s in shape:
        numel *= s
    expected = numel * ITEMSIZE[dtype]
    if len(frame) != expected:
        raise FrameError(f"{where}: {expected} bytes expected for {dtype}{shape}, got {len(frame)}")
    if numel == 0:
        return torch.empty(shape, dtype=DTYPES[dtype])
    wire = torch.int16 if dtype == "bfloat16" else DTYPES[dtype]
    # frombuffer shares the frame's memory; the frame is read-only, so torch warns: keep it quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = torch.frombuffer(frame, dtype=wire).reshape(shape)
    return t.view(torch.bfloat16) if dtype == "bfloat16" else t


def check_version(header: dict[str, Any]) -> None:
    v = header.get("v")
    if v != PROTOCOL_VERSION:
        raise FrameError(f"header.v: protocol version {v!r} is not supported (this sidecar speaks {PROTOCOL_VERSION})")


def self_check() -> None:
    """Round-trip every dtype through encode/decode; run once at startup, so a broken codec fails before the first request."""
    for name, dt in DTYPES.items():
        t = (torch.arange(6) % 2).to(dt).reshape(2, 3)
        msg = decode([bytes(f) for f in encode({"v": PROTOCOL_VERSION}, [t])])
        if not torch.equal(msg.tensors[0], t):
            raise RuntimeError(f"protocol self-check failed for {name}")
