"""Control-plane helpers called from TypeScript through pythonia: environment and checkpoint inspection."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

from . import PROTOCOL_VERSION, __version__


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
    """Tensors (name, shape, dtype, numel) of a checkpoint or weights file, read weights-only."""
    from .checkpoint import load_checkpoint, read_state_dict

    p = Path(path)
    info: dict[str, Any] = {"path": str(p), "bytes": p.stat().st_size if p.exists() else None}
    obj: Any = None
    if p.suffix != ".safetensors":
        obj = load_checkpoint(p)
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
