"""Control-plane helpers called from TypeScript through pythonia: environment and checkpoint inspection, weights conversion."""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from gradprom_sidecar import PROTOCOL_VERSION, __version__


def doctor() -> dict[str, Any]:
    """Versions and devices of this interpreter; a missing package is reported, not raised."""
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "sidecar": __version__,
        "protocol": PROTOCOL_VERSION,
    }
    try:
        import torch

        report["torch"] = torch.__version__
        report["cuda"] = torch.version.cuda
        report["cuda_available"] = torch.cuda.is_available()
        report["devices"] = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())] + ["cpu"]
        report["threads"] = torch.get_num_threads()
    except ImportError as exc:
        report["torch"] = None
        report["problem"] = f"torch does not import: {exc}"
    for name, module in (("pyzmq", "zmq"), ("msgpack", "msgpack"), ("numpy", "numpy")):
        try:
            mod = __import__(module)
            report[name] = getattr(mod, "__version__", "?") if module != "msgpack" else ".".join(map(str, mod.version))
            if module == "zmq":
                report["libzmq"] = mod.zmq_version()
        except ImportError:
            report[name] = None
    return report


def inspect_checkpoint(path: str) -> dict[str, Any]:
    """Tensors (name, shape, dtype, numel) of a checkpoint or weights file, read weights-only (a whole pickled model as data)."""
    from gradprom_sidecar.models.checkpoint import RefusedObjectsError, load_checkpoint, read_state_dict

    p = Path(path)
    info: dict[str, Any] = {"path": str(p), "bytes": p.stat().st_size if p.exists() else None}
    obj: Any = None
    if p.suffix != ".safetensors":
        try:
            obj = load_checkpoint(p)
        except RefusedObjectsError:
            obj = None  # maybe a whole pickled model: read_state_dict reads it as data, or refuses it
    if isinstance(obj, dict) and obj.get("format") == "gradprom-checkpoint":
        info["format"] = "gradprom-checkpoint"
        info["step"] = obj.get("step")
        info["config"] = obj.get("config")
        groups = {k: obj[k] for k in ("ip", "vr", "fixed_vr") if isinstance(obj.get(k), dict)}
    else:
        info["format"] = "safetensors" if p.suffix == ".safetensors" else "state_dict"
        groups = {"weights": read_state_dict(p)}
    info["groups"] = {}
    for group, sd in groups.items():
        tensors = [
            {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""), "numel": int(v.numel())}
            for k, v in sd.items()
            if hasattr(v, "shape")
        ]
        info["groups"][group] = {"tensors": tensors, "params": sum(t["numel"] for t in tensors)}
    return info


class _Notes(logging.Handler):
    """Keeps the messages logged while a weights file is read (e.g. that it was a whole pickled model)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def convert_weights(src: str, dst: str, part: str | None = None) -> dict[str, Any]:
    """Write the tensors of any weights file ``src`` reads as to ``dst``, a .safetensors file (atomically).

    ``src`` is read as a session reads ``ip.weights``/``vr.weights`` (``checkpoint.read_state_dict``):
    a state dict, a run checkpoint's ``part``, a safetensors file, or a whole pickled model (read as
    data, nothing in it run). A prefix shared by all keys (``module.``) is stripped.

    :param dst: the output; must end in ``.safetensors``; its folder must exist.
    :param part: the sub-network of a run checkpoint (``ip`` or ``vr``), or None.
    :returns: ``{path, tensors, elements, bytes, notes}``.
    :raises CheckpointError: unreadable ``src``, or a bad ``dst``.
    """
    from safetensors.torch import save_file

    from gradprom_sidecar.models.checkpoint import CheckpointError, read_state_dict

    out = Path(dst)
    if out.suffix != ".safetensors":
        raise CheckpointError(f"{out}: the output must be a .safetensors file")
    if not out.parent.is_dir():
        raise CheckpointError(f"{out}: no such folder {out.parent}")
    notes = _Notes()
    logger = logging.getLogger("gradprom.weights")
    logger.addHandler(notes)
    try:
        sd = read_state_dict(src, part=part)
    finally:
        logger.removeHandler(notes)
    # Own storage per tensor: safetensors refuses tensors that share memory (a pickled model's views do).
    tensors = {k: v.detach().contiguous().clone() for k, v in sd.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"source": Path(src).name})
        os.replace(tmp, out)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, Exception):
            raise CheckpointError(f"{out}: writing failed, nothing written: {type(e).__name__}: {e}") from e
        raise
    return {
        "path": str(out),
        "tensors": len(tensors),
        "elements": sum(int(v.numel()) for v in tensors.values()),
        "bytes": out.stat().st_size,
        "notes": notes.messages,
    }
