"""Framing: every dtype round-trips; malformed frames are refused with the field named."""

from __future__ import annotations

import pytest
import torch
from conftest import needs

msgpack = needs("msgpack")

from gradprom_sidecar import PROTOCOL_VERSION  # noqa: E402
from gradprom_sidecar.wire import protocol  # noqa: E402  (protocol imports msgpack)


@pytest.mark.parametrize("name", list(protocol.DTYPES))
def test_every_dtype_round_trips(name: str) -> None:
    t = (torch.arange(24) % 3).to(protocol.DTYPES[name]).reshape(2, 3, 4)
    frames = [bytes(f) for f in protocol.encode({"v": PROTOCOL_VERSION}, [t])]
    msg = protocol.decode(frames)
    assert msg.header["tensors"] == [{"dtype": name, "shape": [2, 3, 4]}]
    assert msg.tensors[0].dtype == t.dtype and torch.equal(msg.tensors[0], t)


def test_scalar_and_empty_tensors() -> None:
    ts = [torch.tensor(3.5), torch.empty(0, 4)]
    msg = protocol.decode([bytes(f) for f in protocol.encode({}, ts)])
    assert msg.tensors[0].shape == () and msg.tensors[0].item() == 3.5
    assert msg.tensors[1].shape == (0, 4)


def head(**kw: object) -> bytes:
    return msgpack.packb({"v": PROTOCOL_VERSION, **kw})


@pytest.mark.parametrize(
    "frames, field",
    [
        ([], "message"),
        ([b"\xc1"], "header"),
        ([msgpack.packb([1, 2])], "header"),
        ([head(tensors=[{"dtype": "float32", "shape": [2]}])], "header.tensors"),
        ([head(tensors=[{"dtype": "complex64", "shape": [1]}]), b"\0" * 8], "tensors[0].dtype"),
        ([head(tensors=[{"dtype": "float32", "shape": [-1]}]), b""], "tensors[0].shape"),
        ([head(tensors=[{"dtype": "float32", "shape": [3]}]), b"\0" * 8], "tensors[0]: 12 bytes expected"),
    ],
)
def test_malformed_frames_name_the_field(frames: list[bytes], field: str) -> None:
    with pytest.raises(protocol.FrameError, match=field.replace("[", r"\[").replace("]", r"\]")):
        protocol.decode(frames)


def test_oversized_header_refused_before_decoding() -> None:
    with pytest.raises(protocol.FrameError, match="exceeds the limit"):
        protocol.decode([b"\x00" * 2048], max_header=1024)


def test_version_check() -> None:
    protocol.check_version({"v": PROTOCOL_VERSION})
    with pytest.raises(protocol.FrameError, match="protocol version 99"):
        protocol.check_version({"v": 99})


def test_self_check_passes() -> None:
    protocol.self_check()
