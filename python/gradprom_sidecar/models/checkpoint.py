"""Reading weights and checkpoints safely, and writing them atomically.

Everything is read with ``torch.load(..., weights_only=True)``: a checkpoint
is data, never code, so a file holding pickled custom objects is refused
instead of executed. The one exception is a weights file holding a whole
pickled ``nn.Module`` (``torch.save(model)``, as ESTR published its models):
:func:`read_state_dict` then reads it with ``pickled.read_pickled_model``,
which rebuilds its tensors and imports or runs nothing the file names, and
logs a note. Writes go to a temporary file in the target folder,
are fsynced, then renamed over the target, so a crash or a failing save never
leaves a half-written checkpoint where the previous good one was.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradprom_sidecar.models.pickled import read_pickled_model

__all__ = ["CheckpointError", "RefusedObjectsError", "LoadReport", "read_state_dict", "load_weights", "save_atomic", "load_checkpoint"]

_SHOW = 10  # how many names of each problem kind an error message lists
log = logging.getLogger("gradprom.weights")


class CheckpointError(Exception):
    """A checkpoint or weights file could not be read, written or applied; the message names the file."""


class RefusedObjectsError(CheckpointError):
    """``weights_only`` refused the file: it holds pickled objects other than tensors and plain containers."""


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch reports refused globals (custom classes, functions) this way.
        # Keep torch's one useful line ("Unsupported global: GLOBAL pkg.Class ...") and drop its advice.
        detail = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "")
        first = detail.split(" was not")[0].replace("WeightsUnpickler error: ", "") or type(e).__name__
        raise RefusedObjectsError(
            f"{path}: contains objects that weights_only refuses (only tensors and plain containers "
            f"are loaded; re-save the state_dict): {first}"
        ) from e
    except Exception as e:  # truncated zip, bad magic number, EOF, ...
        raise CheckpointError(f"{path}: cannot read checkpoint (corrupt or truncated?): {type(e).__name__}: {e}") from e


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _strip_prefix(sd: dict[str, Tensor], prefix: str | None, path: Path) -> dict[str, Tensor]:
    if prefix is None:
        # Auto: DataParallel/DDP ("module.") or Lightning-style ("model.") wrappers, only when every key has it.
        for auto in ("module.", "model."):
            if sd and all(k.startswith(auto) for k in sd):
                return {k[len(auto) :]: v for k, v in sd.items()}
        return sd
    # Explicit: keep exactly the keys under the prefix (this also selects a
    # sub-network, e.g. "encoder.", out of a larger checkpoint).
    picked = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    if not picked:
        sample = ", ".join(list(sd)[:5])
        raise CheckpointError(f"{path}: no key starts with prefix {prefix!r} (keys begin: {sample})")
    return picked


def _whole_model(path: Path, part: str | None, refused: RefusedObjectsError) -> dict[str, Tensor]:
    """The tensors of a whole pickled module that ``weights_only`` refused, read as data; else the refusal."""
    try:
        tensors = read_pickled_model(path, part)
    except Exception as e:  # a hostile or damaged file may fail in any way; it is named, never half-read
        raise CheckpointError(f"{refused}; read as a whole pickled model instead, it is malformed: {e}") from e
    if not tensors:
        raise refused
    log.warning(
        "%s: a whole pickled model; its %d tensors were read as data (nothing the file names was imported or run). "
        "`gradprom convert %s OUT.safetensors` writes a plain weights file",
        path,
        len(tensors),
        path,
    )
    return tensors


def read_state_dict(path: str | Path, prefix: str | None = None, part: str | None = None) -> dict[str, Tensor]:
    """Read a name → tensor mapping from a .pt/.pth/.bin or .safetensors file.

    A ``{"state_dict": {...}}`` or ``{"model": {...}}`` wrapper is unwrapped, and so is
    ``{part: {...}}`` (a run checkpoint holds ``ip`` and ``vr``). A whole pickled module
    (``torch.save(model)``, zip or legacy format) gives its parameters and buffers, read without
    running the file (``pickled.read_pickled_model``).

    :param prefix: ``None`` strips a ``module.`` or ``model.`` prefix shared by
        all keys; a string keeps only keys starting with it, with it removed.
    :param part: the sub-network to take from a run checkpoint, e.g. ``"ip"``.
    :raises CheckpointError: unreadable, corrupt, refused, or not tensors.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"{path}: no such file")
        try:
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        except Exception as e:
            raise CheckpointError(f"{path}: cannot read safetensors file: {type(e).__name__}: {e}") from e
    else:
        try:
            obj = _torch_load(path)
        except RefusedObjectsError as refused:
            obj = _whole_model(path, part, refused)
    if isinstance(obj, dict) and not _is_tensor_dict(obj):
        for key in ((part,) if part else ()) + ("state_dict", "model"):
            if _is_tensor_dict(obj.get(key)):
                obj = obj[key]
                break
    if not _is_tensor_dict(obj):
        what = type(obj).__name__
        if isinstance(obj, dict):
            bad = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)][:_SHOW]
            what = f"dict with non-tensor entries {bad}"
        raise CheckpointError(f"{path}: not a state dict of tensors ({what})")
    return _strip_prefix(dict(obj), prefix, path)


@dataclass
class LoadReport:
    """How a weights file matched a module.

    :param missing: model keys absent from the file.
    :param unexpected: file keys the model does not have.
    :param mismatched: (name, checkpoint shape, model shape) for names in both with other shapes.
    :param loaded: number of tensors copied into the model.
    """

    path: str = ""
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    loaded: int = 0

    @property
    def ok(self) -> bool:
        """True when every key matched in name and shape."""
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        """One line per problem kind, first 10 names each, with counts."""

        def part(label: str, items: list[str]) -> str:
            more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
            return f"{len(items)} {label}: {', '.join(items[:_SHOW])}{more}"

        parts = []
        if self.missing:
            parts.append(part("missing keys", self.missing))
        if self.unexpected:
            parts.append(part("unexpected keys", self.unexpected))
        if self.mismatched:
            shapes = [f"{n} (checkpoint {list(c)} vs model {list(m)})" for n, c, m in self.mismatched]
            parts.append(part("shape mismatches", shapes))
        return "; ".join(parts) if parts else "all keys match"


def load_weights(
    module: nn.Module, path: str | Path, strict: bool = True, prefix: str | None = None, part: str | None = None
) -> LoadReport:
    """Copy a weights file into ``module`` and report how the names matched.

    :param module: the network to fill.
    :param path: .pt/.pth/.bin/.safetensors weights.
    :param strict: any missing, unexpected or mismatched key raises; with
        False, the tensors that match in name and shape are loaded and the
        rest reported.
    :param prefix: see :func:`read_state_dict`.
    :param part: see :func:`read_state_dict`.
    :raises CheckpointError: unreadable file, or a mismatch under ``strict``.
    """
    sd = read_state_dict(path, prefix, part)
    own = module.state_dict()
    report = LoadReport(path=str(path))
    report.missing = [k for k in own if k not in sd]
    report.unexpected = [k for k in sd if k not in own]
    report.mismatched = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in own if k in sd and sd[k].shape != own[k].shape]
    if strict and not report.ok:
        raise CheckpointError(f"{path}: weights do not match the model: {report.describe()}")
    bad = {n for n, _, _ in report.mismatched}
    usable = {k: v for k, v in sd.items() if k in own and k not in bad}
    try:
        module.load_state_dict(usable, strict=strict)
    except Exception as e:  # e.g. a dtype that cannot be copied
        raise CheckpointError(f"{path}: loading into the model failed: {e}") from e
    report.loaded = len(usable)
    return report


_SAFE_LEAVES = (Tensor, str, int, float, bool, bytes, type(None), torch.dtype, torch.device, torch.Size)


def _check_loadable(obj: Any, where: str) -> None:
    """Refuse, before writing, anything ``weights_only=True`` could not read back."""
    if isinstance(obj, _SAFE_LEAVES):
        return
    if isinstance(obj, dict):  # includes OrderedDict
        for k, v in obj.items():
            _check_loadable(k, f"{where}[key {k!r}]")
            _check_loadable(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple, set)) and type(obj) in (list, tuple, set):
        for i, v in enumerate(obj):
            _check_loadable(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: {type(obj).__module__}.{type(obj).__qualname__} cannot be loaded with weights_only=True")


def save_atomic(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over it.

    :param obj: tensors and plain containers only (dict, list, tuple, str,
        int, float, bool, None), so :func:`load_checkpoint` can read it back.
    :param path: destination; its folder is created if needed.
    :raises CheckpointError: the object holds something else, or the write
        failed (the previous file at ``path`` is then untouched).
    """
    path = Path(path)
    try:
        _check_loadable(obj, "checkpoint")
    except TypeError as e:
        raise CheckpointError(f"{path}: refusing to save: {e}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception):
            raise CheckpointError(f"{path}: saving failed, previous file kept: {type(e).__name__}: {e}") from e
        raise
    try:
        # Persist the rename itself (POSIX); not possible everywhere, so best effort.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint (model, optimizer, step, seed, config, RNG states).

    :param path: a file written by :func:`save_atomic` (or a .safetensors file).
    :raises CheckpointError: missing, corrupt, refused, or not a dict.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return dict(read_state_dict(path))
    obj = _torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj
