"""Decoded data sets kept for the next session: in this process, and on disk for the next process.

A session gets its data from :func:`load_data`, never by decoding directly, so that the runs of a
``compare`` (one session each, one sidecar) decode a data set once, and a sidecar restarted after
a crash finds the arrays its predecessor decoded.

- Key: SHA-256 over this cache's version, the resolved ``data`` section without the fields that
  leave the decoded arrays alone (:data:`RUNTIME_FIELDS`), the data seed, and for a data set read
  from files every file under ``data.path`` (plus every other file or folder the config names, and
  the volumes a volumes CSV lists, when they lie outside it; a lone ``data.image`` without a path
  is fingerprinted alone): relative name, size and modification time in ns. A changed, added or removed file
  gives another key, so nothing stale is ever read.
- In memory: one bundle, the last one loaded. A session with another data config replaces it (the
  old one is let go before the new one is decoded). Sessions share its tensors and never write to
  them.
- On disk (file-based kinds, ``data.disk_cache``): one safetensors file per key in
  ``data.cache_dir`` (default ``$XDG_CACHE_HOME/gradprom/data``, else ``~/.cache/gradprom/data``),
  holding the three splits in their compact storage and their names and classes as metadata;
  written to a temporary file and renamed, so a reader sees a whole file or none. The synthetic
  set is generated faster than it would load, and stays in memory only.
- A cache file that cannot be read back (truncated, corrupt, another layout) is not fatal: the
  problem is logged and reported in ``session.create``'s ``data.storage.cache``, the data set is
  decoded again and the file rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gradprom_sidecar.data import build_data
from gradprom_sidecar.data.base import SPLITS, DataBundle, Split
from gradprom_sidecar.data.folder import resolve_path
from gradprom_sidecar.data.nifti import find_pairs
from gradprom_sidecar.training.config import setting

log = logging.getLogger("gradprom.data")

CACHE_VERSION = 2  # 2: per-split sides and aliases
FORMAT = "gradprom-data-cache"
# Fields of the data section that do not change the decoded arrays (left out of the key).
RUNTIME_FIELDS = ("augment", "device_cache", "rng", "disk_cache", "cache_dir")


class CacheError(ValueError):
    """A cache file that cannot be used; the message names the file and the problem."""


@dataclass
class CacheStats:
    """What :func:`load_data` did in this process (tests read it; ``decodes`` counts real decodes)."""

    decodes: int = 0
    memory_hits: int = 0
    disk_hits: int = 0
    disk_writes: int = 0
    rebuilt: int = 0


@dataclass
class Loaded:
    """A data set and where it came from.

    source: "decoded", "memory" or "disk"; path: its cache file (None when not on disk);
    problem: why a cache file could not be used, when one could not.
    """

    bundle: DataBundle
    key: str
    source: str
    path: Path | None = None
    problem: str | None = None

    def describe(self) -> dict:
        """Where the data came from, for ``session.create``'s ``data.storage.cache``."""
        out: dict = {"source": self.source, "key": self.key[:16]}
        if self.path is not None:
            out["path"] = str(self.path)
        if self.problem is not None:
            out["problem"] = self.problem
        return out


STATS = CacheStats()
_memory: tuple[str, DataBundle] | None = None


def clear_memory() -> None:
    """Forget the bundle held in memory (the next :func:`load_data` reads the disk or decodes)."""
    global _memory
    _memory = None


def cache_dir(cfg: dict) -> Path:
    """The disk cache's folder: ``data.cache_dir``, else ``$XDG_CACHE_HOME/gradprom/data``, else ``~/.cache/gradprom/data``.

    :param cfg: the data section of the resolved config.
    """
    chosen = setting(cfg, "cache_dir", "data")
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gradprom" / "data"


def _files(root: Path) -> list[list]:
    """[relative name, size, mtime_ns] of every file under ``root`` (a file alone when ``root`` is one), sorted."""
    if root.is_file():
        st = root.stat()
        return [[root.name, st.st_size, st.st_mtime_ns]]
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out.append([p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return out


# Fields naming a file or folder a loader reads, besides ``data.path`` (relative to it unless absolute).
FILE_FIELDS = ("labels_csv", "masks_dir", "image", "label_volume", "volumes_csv", "label_map", "ground_truth", "synsets")


def _named_sources(cfg: dict, base: Path) -> list[tuple[str, Path]]:
    """(field, file or folder) of every source a loader reads besides ``data.path`` itself."""
    out = [(f, resolve_path(base, str(cfg[f]), "")) for f in FILE_FIELDS if cfg.get(f)]
    out += [(f"folders.{s}", resolve_path(base, str(v), "")) for s, v in (cfg.get("folders") or {}).items() if v]
    if setting(cfg, "kind", "data") == "nifti" and cfg.get("volumes_csv"):
        try:  # the volumes a CSV lists may lie anywhere
            pairs = find_pairs(cfg)[1]
        except (OSError, ValueError):
            pairs = []  # the loader reports it
        out += [("volumes_csv", p) for pair in pairs for p in pair if p is not None]
    return out


def fingerprint(cfg: dict) -> list[list]:
    """The files a file-based data set is read from (see the module docstring); empty for synthetic.

    :param cfg: the data section of the resolved config.
    """
    if setting(cfg, "kind", "data") == "synthetic":
        return []
    path = setting(cfg, "path", "data")
    root = Path(str(path)).expanduser() if path else None
    out = [["", *f] for f in _files(root)] if root is not None and root.exists() else []
    inside = root.resolve() if root is not None and root.is_dir() else None
    for field_name, p in _named_sources(cfg, root if root is not None else Path(".")):
        if p.exists() and (inside is None or not p.resolve().is_relative_to(inside)):
            out += [[field_name, *f] for f in _files(p)]
    return out


def data_key(cfg: dict, seed: int) -> str:
    """The cache key of a data set (see the module docstring).

    :param cfg: the data section of the resolved config.
    :param seed: the data seed.
    """
    decoded = {k: v for k, v in cfg.items() if k not in RUNTIME_FIELDS}
    text = json.dumps([CACHE_VERSION, decoded, int(seed), fingerprint(cfg)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_file(cfg: dict, key: str) -> Path:
    """The disk cache file of ``key``.

    :param cfg: the data section (``cache_dir``, ``kind``).
    :param key: from :func:`data_key`.
    """
    return cache_dir(cfg) / f"{setting(cfg, 'kind', 'data')}-{key[:32]}.safetensors"


def save_bundle(bundle: DataBundle, path: Path, key: str) -> None:
    """Write ``bundle`` to ``path`` atomically (a temporary file in the same folder, fsynced, then renamed).

    :param key: its key, stored inside and checked on reading.
    """
    tensors: dict[str, torch.Tensor] = {}
    names: dict[str, list[str]] = {}
    sides: dict[str, int] = {}
    alias: dict[str, str] = {}  # a split that IS an earlier one (imagefolder's val serving as test) is stored once
    for name in SPLITS:
        s = bundle.split(name)
        same = next((other for other in SPLITS[: SPLITS.index(name)] if bundle.split(other) is s), None)
        if same is not None:
            alias[name] = same
            continue
        tensors[f"{name}.images"] = s.images.contiguous()
        tensors[f"{name}.labels"] = s.labels.contiguous()
        if s.masks is not None:
            tensors[f"{name}.masks"] = s.masks.contiguous()
        names[name] = list(s.names)
        sides[name] = int(s.images.shape[-1])  # imagefolder keeps train larger than size, for its random crop
    meta = {
        "names": names,
        "sides": sides,
        "alias": alias,
        "num_classes": bundle.num_classes,
        "channels": bundle.channels,
        "size": bundle.size,
        "class_names": list(bundle.class_names),
        "has_labels": bundle.has_labels,
        "source": bundle.source,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        _safetensors().torch.save_file(
            tensors, tmp, metadata={"format": FORMAT, "version": str(CACHE_VERSION), "key": key, "meta": json.dumps(meta)}
        )
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _safetensors() -> Any:
    """The safetensors package, imported where the disk cache needs it (so that a machine without it imports this module)."""
    try:
        import safetensors
        import safetensors.torch
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "data.disk_cache: the data cache is written with the safetensors package, which this Python lacks "
            "(pip install safetensors, or set data.disk_cache: false)"
        ) from e
    return safetensors


def read_bundle(path: Path, key: str) -> DataBundle:
    """Read a cache file written by :func:`save_bundle`, checking it whole.

    :param key: the key it must hold.
    :raises CacheError: unreadable, truncated or corrupt file, another format, version or key, or
        arrays that do not fit their metadata; the message names the file.
    """
    st = _safetensors()  # outside the try: a missing package is not a corrupt file
    try:
        with st.safe_open(str(path), framework="pt") as f:
            head = f.metadata() or {}
            if head.get("format") != FORMAT or head.get("version") != str(CACHE_VERSION):
                raise ValueError(
                    f"not a gradprom data cache v{CACHE_VERSION} (format {head.get('format')!r}, version {head.get('version')!r})"
                )
            if head.get("key") != key:
                raise ValueError("it holds another data set (key differs)")
            meta = json.loads(head["meta"])
            stored = set(f.keys())
            splits = {}
            for name in SPLITS:
                if name in meta["alias"]:
                    splits[name] = splits[meta["alias"][name]]
                    continue
                masks = f.get_tensor(f"{name}.masks") if f"{name}.masks" in stored else None
                split = Split(f.get_tensor(f"{name}.images"), f.get_tensor(f"{name}.labels"), masks, list(meta["names"][name]))
                _check_split(split, name, int(meta["channels"]), int(meta["sides"][name]))
                splits[name] = split
    except CacheError:
        raise
    except Exception as e:  # safetensors, json and our own checks raise several types for a bad file
        raise CacheError(f"{path}: unreadable data cache ({type(e).__name__}: {e})") from e
    return DataBundle(
        splits["train"],
        splits["val"],
        splits["test"],
        int(meta["num_classes"]),
        int(meta["channels"]),
        int(meta["size"]),
        list(meta["class_names"]),
        bool(meta["has_labels"]),
        dict(meta["source"]),
    )


def _check_split(s: Split, name: str, channels: int, size: int) -> None:
    """Shapes and dtypes of a split read back from a cache file; a ValueError naming the split otherwise."""
    n = len(s.names)
    if tuple(s.images.shape) != (n, channels, size, size):
        raise ValueError(f"{name}.images: shape {list(s.images.shape)}, expected {[n, channels, size, size]}")
    if tuple(s.labels.shape) != (n,) or s.labels.dtype != torch.int64:
        raise ValueError(f"{name}.labels: shape {list(s.labels.shape)} {s.labels.dtype}, expected [{n}] int64")
    if s.masks is not None and tuple(s.masks.shape) != (n, size, size):
        raise ValueError(f"{name}.masks: shape {list(s.masks.shape)}, expected {[n, size, size]}")


def load_data(cfg: dict, seed: int) -> Loaded:
    """The data set of ``cfg``: from memory, else from the disk cache, else decoded (and then kept).

    :param cfg: the data section of the resolved config.
    :param seed: the data seed.
    :raises DataError: a problem with the files (named in the message).
    :raises ValueError: a bad or missing config value.
    """
    global _memory
    key = data_key(cfg, seed)
    if _memory is not None and _memory[0] == key:
        STATS.memory_hits += 1
        return Loaded(_memory[1], key, "memory")
    _memory = None  # let the old data set go before this one is decoded
    on_disk = setting(cfg, "kind", "data") != "synthetic" and bool(setting(cfg, "disk_cache", "data"))
    path = cache_file(cfg, key) if on_disk else None
    problem = None
    if path is not None and path.is_file():
        try:
            bundle = read_bundle(path, key)
            STATS.disk_hits += 1
            _memory = (key, bundle)
            return Loaded(bundle, key, "disk", path)
        except CacheError as e:
            problem = str(e)
            STATS.rebuilt += 1
            log.warning("%s; decoding the data set again and rewriting the file", problem)
    bundle = build_data(cfg, seed)
    STATS.decodes += 1
    if path is not None:
        try:
            save_bundle(bundle, path, key)
            STATS.disk_writes += 1
        except OSError as e:  # a full or read-only disk costs the next process a decode, nothing more
            log.warning("%s: could not write the data cache (%s)", path, e)
            path = None
    _memory = (key, bundle)
    return Loaded(bundle, key, "decoded", path, problem)
