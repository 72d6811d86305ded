"""The shared region of vectors transport: one file both processes map, holding g_IP, g_VR and the merged update.

TypeScript makes a private folder (0700) on a memory file system and asks for a region there
(``vectors.region``); the sidecar creates the file (0600, sized from the layout), places the
session's flat gradient buffers in it (on the CPU autograd then writes straight into what
TypeScript reads; on CUDA the region is pinned and the vectors are copied into it with the step's
one host-device sync) and names it in its reply. From then on no vector crosses ZeroMQ: each
``train.advance`` reply carries the sequence number the sidecar wrote into the header after the
vectors were in place, and a merged decision carries the one TypeScript wrote after filling its slot.

Layout (little-endian), header then three page-aligned float32 slots::

    0  magic  b"GPRMREG1"      8  version u32, header bytes u32   16 numel u64   24 slot bytes u64
    32 vectors seq u64 (sidecar)   40 merged seq u64 (TypeScript)   48 nonce, 16 bytes (TypeScript's)
    64 total bytes u64
    HEADER: g_ip | g_vr | merged

A header that does not read back, a file of the wrong size or mode, a sequence number that does
not match the message's: each is an error naming the region's path.
"""

from __future__ import annotations

import logging
import mmap
import os
import stat
import struct
import warnings

import torch
from torch import Tensor

log = logging.getLogger("gradprom.region")

MAGIC = b"GPRMREG1"
VERSION = 1
HEADER = 4096  # one page: the slots start page-aligned (needed to pin them for CUDA)
PAGE = 4096
FILE_NAME = "region-{pid}-{n}.bin"
# cudaHostRegisterPortable: page-locked for every CUDA context, not only the current device's (a sidecar on cuda:1 copies
# from that device; without the flag its copies into the region may silently run synchronously).
CUDA_HOST_REGISTER_PORTABLE = 1
_HEAD = struct.Struct("<8sIIQQQQ16sQ")  # magic, version, header, numel, slot bytes, vectors seq, merged seq, nonce, total
SEQ_VECTORS, SEQ_MERGED = 32, 40

_open: list[Region] = []  # closed (file removed) however the sidecar stops: see close_all
# TypeScript's folders that held a region: each stays while the sidecar serves (the next session's region goes there too),
# and is removed when the sidecar stops, as TypeScript would have removed it (close_all).
_folders: set[str] = set()


class RegionError(ValueError):
    """A region that cannot be used as announced; the message names its path."""


def slot_bytes(numel: int) -> int:
    """Bytes of one float32 slot of ``numel`` elements, rounded up to a page."""
    return (numel * 4 + PAGE - 1) // PAGE * PAGE


def check_private_dir(folder: str) -> None:
    """Refuse a folder another user could enter: it must be ours, a directory, mode 0700.

    :param folder: where the region file is to be made.
    :raises RegionError: naming the folder and what is wrong.
    """
    try:
        st = os.lstat(folder)
    except OSError as e:
        raise RegionError(f"region folder {folder}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o777 != 0o700:
        raise RegionError(f"region folder {folder}: must be a directory of this user with mode 0700 (it is {st.st_mode & 0o777:o})")


class Region:
    """One session's shared region: the file, its mapping, and float32 tensors over the three slots.

    :param folder: a private folder (0700) of TypeScript's making.
    :param numel: elements of the flat IP gradient (the layout's).
    :param nonce: 16 bytes from TypeScript, written into the header (TypeScript checks it reads them back).
    """

    def __init__(self, folder: str, numel: int, nonce: bytes) -> None:
        check_private_dir(folder)
        if len(nonce) != 16:
            raise RegionError(f"args.nonce: expected 16 bytes, got {len(nonce)}")
        self.numel, self.slot = numel, slot_bytes(numel)
        self.bytes = HEADER + 3 * self.slot
        self.path = os.path.join(folder, FILE_NAME.format(pid=os.getpid(), n=len(_open)))
        self.pinned = False
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.ftruncate(fd, self.bytes)
            self.fd = fd
            self.mm = mmap.mmap(fd, self.bytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            os.unlink(self.path)
            raise
        _HEAD.pack_into(self.mm, 0, MAGIC, VERSION, HEADER, numel, self.slot, 0, 0, nonce, self.bytes)
        with warnings.catch_warnings():  # frombuffer warns about non-writable buffers; an mmap is writable
            warnings.simplefilter("ignore", UserWarning)
            self.g_ip, self.g_vr, self.merged = (
                torch.frombuffer(self.mm, dtype=torch.float32, count=numel, offset=HEADER + i * self.slot) for i in range(3)
            )
        self.seq = 0
        _open.append(self)
        _folders.add(folder)

    def describe(self) -> dict:
        """The region as announced to TypeScript: ``{path, bytes, numel, header, slot}``."""
        return {"path": self.path, "bytes": self.bytes, "numel": self.numel, "header": HEADER, "slot": self.slot}

    def check(self) -> None:
        """Raise :class:`RegionError` when the file was truncated or the header overwritten since it was made.

        Run before the slots are written or read, so a truncated file is an error, not a SIGBUS.
        """
        try:
            size = os.fstat(self.fd).st_size
        except OSError as e:
            raise RegionError(f"region {self.path}: {e.strerror}") from None
        if size != self.bytes:
            raise RegionError(f"region {self.path}: truncated or resized ({size} bytes, expected {self.bytes})")
        magic, version, header, numel, slot, *_ = _HEAD.unpack_from(self.mm, 0)
        if (magic, version, header, numel, slot) != (MAGIC, VERSION, HEADER, self.numel, self.slot):
            raise RegionError(f"region {self.path}: header corrupted (magic {magic!r}, numel {numel}, expected {self.numel})")

    def published(self) -> int:
        """Mark the vector slots as holding the next step's vectors; the sequence number the reply carries."""
        self.seq += 1
        struct.pack_into("<Q", self.mm, SEQ_VECTORS, self.seq)
        return self.seq

    def merged_slot(self, seq: object) -> Tensor:
        """The merged slot, once TypeScript's header says it wrote decision ``seq`` there.

        :param seq: ``args.decision.region_seq`` of the request.
        :raises RegionError: the header holds another number (a stale or corrupted region).
        """
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise ValueError(f"args.decision.region_seq: expected an integer, got {seq!r}")
        self.check()
        (found,) = struct.unpack_from("<Q", self.mm, SEQ_MERGED)
        if found != seq:
            raise RegionError(f"region {self.path}: merged slot holds decision {found}, the request names {seq}")
        return self.merged

    def pin(self) -> None:
        """Page-lock the slots for CUDA, so that device → host copies into them run asynchronously.

        When the driver refuses (e.g. a locked-memory limit), the copies still land in the region,
        synchronously; the reason is logged.
        """
        if self.pinned:
            return
        base = self.g_ip.data_ptr()
        err = torch.cuda.cudart().cudaHostRegister(base, 3 * self.slot, CUDA_HOST_REGISTER_PORTABLE)
        self.pinned = int(err) == 0
        if not self.pinned:
            log.warning("region %s: cudaHostRegister failed (%s); device → host copies into it will not overlap", self.path, err)

    def close(self) -> None:
        """Unpin and remove the file (not its folder: see ``_folders``). The mapping goes when the last tensor over it does."""
        if self in _open:
            _open.remove(self)
        if self.pinned:
            torch.cuda.cudart().cudaHostUnregister(self.g_ip.data_ptr())
            self.pinned = False
        for undo in (lambda: os.unlink(self.path), lambda: os.close(self.fd)):
            try:
                undo()
            except OSError:
                pass  # already gone


def close_all() -> None:
    """Remove every open region's file, and the folders regions were made in when empty (the sidecar is stopping,
    whatever stops it)."""
    for r in list(_open):
        r.close()
    while _folders:
        folder = _folders.pop()
        try:
            os.rmdir(folder)
        except OSError:
            pass  # already gone, or it holds something else: TypeScript removes it
