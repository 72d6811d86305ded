"""The shared region of vectors transport (gradprom_sidecar.wire.region, ops/vectors.py): same numbers as frames, private, checked, removed."""

from __future__ import annotations

import os
import shutil
import stat
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import call, make, params
from test_train import advance, weights

from gradprom_sidecar.training import grads as G
from gradprom_sidecar.wire import region as R
from gradprom_sidecar.wire.registry import State

NONCE = bytes(range(16))


@pytest.fixture
def mem_path(tmp_path: Path) -> Iterator[Path]:
    """A folder on a memory file system where there is one, as TypeScript chooses: CUDA may refuse to pin a disk file's mapping."""
    if not Path("/dev/shm").is_dir():
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="gradprom-test-", dir="/dev/shm"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def private_dir(mem_path: Path) -> str:
    folder = mem_path / "gradprom-region"
    folder.mkdir(mode=0o700)
    return str(folder)


def open_region(state: State, folder: str) -> dict:
    res, _ = call(state, "vectors.region", {"dir": folder, "nonce": NONCE})
    return res


def test_vectors_through_the_region_are_those_of_frames_and_a_merged_update_in_it_is_applied(mem_path: Path) -> None:
    """The same steps with vectors as frames (a) and in a shared region (b): same vectors, same parameters after."""
    (state_a, a), (state_b, b) = make(), make()
    described = open_region(state_b, private_dir(mem_path))
    assert described["numel"] == b.layout.numel and os.path.getsize(described["path"]) == described["bytes"]
    region: R.Region = state_b.region[1]
    if b.device.type == "cpu":
        assert b.buffers.g_ip.data_ptr() == region.g_ip.data_ptr()  # autograd writes straight into the region
    else:  # the vectors are read back into the region's slots, page-locked so that the copies overlap
        assert b.buffers.host_vectors()[0].data_ptr() == region.g_ip.data_ptr() and region.pinned
    w = weights(len(a.layout))
    res_a, vecs = advance(state_a, None, transport="vectors")
    res_b, none = advance(state_b, None, transport="vectors")
    for t in range(3):
        assert none == [] and res_b["next"]["region_seq"] == t + 1 and res_a["next"]["gram"] == res_b["next"]["gram"]
        assert struct.unpack_from("<Q", region.mm, R.SEQ_VECTORS)[0] == t + 1
        assert torch.equal(vecs[0], region.g_ip) and torch.equal(vecs[1], region.g_vr)
        merged = G.merge_weights(vecs[0], vecs[1], a.layout, w["ip"], w["vr"])
        region.merged.copy_(merged)  # what TypeScript does, then it numbers the decision in the header
        struct.pack_into("<Q", region.mm, R.SEQ_MERGED, 100 + t)
        res_a, vecs = advance(state_a, {"kind": "merged"}, nxt=t < 2, tensors=[merged], transport="vectors")
        res_b, none = advance(state_b, {"kind": "merged", "region_seq": 100 + t}, nxt=t < 2, transport="vectors")
    for x, y in zip(params(a.ip) + params(a.vr), params(b.ip) + params(b.vr)):
        assert torch.equal(x, y)


def test_the_region_is_private_and_a_folder_others_can_enter_is_refused(mem_path: Path) -> None:
    state, _ = make()
    path = open_region(state, private_dir(mem_path))["path"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    open_folder = mem_path / "shared"
    open_folder.mkdir(mode=0o755)
    os.chmod(open_folder, 0o755)
    with pytest.raises(R.RegionError, match=f"region folder {open_folder}: .*mode 0700"):
        open_region(state, str(open_folder))


@pytest.mark.parametrize("damage", ["truncate", "header"])
def test_a_truncated_or_corrupted_region_is_an_error_naming_it(mem_path: Path, damage: str) -> None:
    state, s = make()
    path = open_region(state, private_dir(mem_path))["path"]
    advance(state, None, transport="vectors")
    if damage == "truncate":
        os.truncate(path, 4096)
    else:
        with open(path, "r+b") as f:
            f.write(b"XXXXXXXX")
    with pytest.raises(R.RegionError, match=f"region {path}: " + ("truncated" if damage == "truncate" else "header corrupted")):
        advance(state, weights(len(s.layout)), transport="vectors")


def test_a_merged_decision_the_header_does_not_confirm_is_refused(mem_path: Path) -> None:
    state, s = make()
    path = open_region(state, private_dir(mem_path))["path"]
    before = [p.clone() for p in params(s.ip)]
    advance(state, None, transport="vectors")
    with pytest.raises(R.RegionError, match=f"region {path}: merged slot holds decision 0, the request names 7"):
        advance(state, {"kind": "merged", "region_seq": 7}, transport="vectors")
    assert all(torch.equal(x, y) for x, y in zip(before, params(s.ip)))  # nothing applied


def test_a_new_session_closes_the_old_region_in_a_folder_its_own_can_use_and_stopping_removes_both(mem_path: Path) -> None:
    """TypeScript makes its region folder once per sidecar: a new session's region goes there too, so the old one's
    closing leaves the folder; when the sidecar stops, the file and the folder go (as after a SIGKILLed parent)."""
    state, _ = make()
    folder = private_dir(mem_path)
    path = open_region(state, folder)["path"]
    from helpers import tiny_config

    call(state, "session.create", {"config": tiny_config()})
    assert state.region is None and not os.path.exists(path) and os.listdir(folder) == []
    path = open_region(state, folder)["path"]
    assert os.path.dirname(path) == folder and os.path.exists(path)
    R.close_all()
    assert not os.path.exists(path) and not os.path.exists(folder)


def test_the_region_is_pinned_portable_so_that_copies_from_any_device_overlap(mem_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cudaHostRegister with the portable flag (a region pinned without it is page-locked for the current device only)."""
    calls: list[tuple] = []

    class FakeCudart:
        def cudaHostRegister(self, ptr: int, size: int, flags: int) -> int:
            calls.append(("register", ptr, size, flags))
            return 0

        def cudaHostUnregister(self, ptr: int) -> int:
            calls.append(("unregister", ptr))
            return 0

    monkeypatch.setattr(torch.cuda, "cudart", lambda: FakeCudart())
    region = R.Region(private_dir(mem_path), 10, NONCE)
    region.pin()
    region.pin()  # once only
    assert region.pinned and calls == [("register", region.g_ip.data_ptr(), 3 * region.slot, R.CUDA_HOST_REGISTER_PORTABLE)]
    assert R.CUDA_HOST_REGISTER_PORTABLE == 1  # cudaHostRegisterPortable in cuda_runtime_api.h
    region.close()
    assert calls[-1] == ("unregister", region.g_ip.data_ptr()) and not region.pinned
