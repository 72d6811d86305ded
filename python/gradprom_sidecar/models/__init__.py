"""IP and VR networks, chosen by name from the experiment config.

Built-in names:

- IP (``build_ip``): ``srresnet``, ``dncnn``, ``unet``, ``estr_srresnet`` (ESTR's network, its
  parameter names, for its released weights).
- VR (``build_vr``): ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``, ``densenet121``,
  ``vgg16_bn`` (torchvision's parameter names: ImageNet weights load unchanged), ``smallresnet``
  (classifiers, N×num_classes logits) and ``unet`` (segmenter, N×num_classes×H×W logits).

Weights: :func:`load_ip_weights` and :func:`load_vr_weights` are the one way a session or a
transfer table fills a network from ``ip.weights``/``vr.weights`` (torchvision-compatible
classifiers through :func:`.imagenet.load_torchvision`, everything else strictly).

An IP's null shape fields (``scale``, ``channels``, ``blocks``, ``batch_norm``) are read from its
weights by :func:`resolve_ip_shape` (``shape``) before it is built. Each builder gets its section of the resolved config (``ip`` with ``in_channels`` and ``scale``
added; ``vr``) and reads the fields it needs; a missing one is an error naming it, never a
default. For a built-in arch, the section's ``kwargs`` are merged into it first (e.g.
``vr.kwargs.widths`` for smallresnet).

Plugin contract: an ``arch`` of the form ``"package.module:ClassName"``
names a user ``nn.Module`` subclass. ``cfg["plugin_path"]`` (a folder, or
null) is put on ``sys.path`` before the import, and ``cfg["kwargs"]`` (a
dict) is passed to the constructor:

- IP: ``Cls(in_channels=..., scale=..., **kwargs)``; maps N×C×h×w in [0,1]
  to N×C×(h·scale)×(w·scale).
- VR: ``Cls(in_channels=..., num_classes=..., **kwargs)``; returns logits.

Any failure (module not found, import error, class missing, not an
``nn.Module``, constructor error) is a ``ValueError`` naming the arch string.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Callable

from torch import nn

from gradprom_sidecar.models import densenet, dncnn, estr_srresnet, resnet, smallresnet, srresnet, unet, vgg
from gradprom_sidecar.models.checkpoint import load_weights
from gradprom_sidecar.models.imagenet import TorchvisionClassifier, load_torchvision
from gradprom_sidecar.models.shape import FALLBACK, resolve_ip_shape
from gradprom_sidecar.training.config import setting

IPBuilder = Callable[[dict], nn.Module]
VRBuilder = Callable[[dict, int, int], nn.Module]

IP_REGISTRY: dict[str, IPBuilder] = {
    "srresnet": srresnet.build,
    "dncnn": dncnn.build,
    "unet": unet.build_ip,
    "estr_srresnet": estr_srresnet.build,
}

VR_REGISTRY: dict[str, VRBuilder] = {
    "resnet18": lambda cfg, c, k: resnet.build(cfg, c, k, 18),
    "resnet34": lambda cfg, c, k: resnet.build(cfg, c, k, 34),
    "resnet50": lambda cfg, c, k: resnet.build(cfg, c, k, 50),
    "resnet101": lambda cfg, c, k: resnet.build(cfg, c, k, 101),
    "densenet121": densenet.build,
    "vgg16_bn": vgg.build,
    "smallresnet": smallresnet.build,
    "unet": unet.build_vr,
}

# VR architectures whose output is a per-pixel map (task "segment").
SEGMENTERS = frozenset({"unet"})

__all__ = [
    "IP_REGISTRY",
    "VR_REGISTRY",
    "SEGMENTERS",
    "build_ip",
    "build_vr",
    "count_params",
    "load_ip_weights",
    "load_vr_weights",
    "register_ip",
    "register_vr",
    "load_plugin_class",
    "resolve_ip_shape",
]


def register_ip(name: str, builder: IPBuilder) -> None:
    """Add an IP network under a name (``builder(cfg) -> nn.Module``).

    :param name: the ``arch`` value that selects it; must not contain ``:``.
    :param builder: makes the module from the IP config dict.
    """
    if ":" in name:
        raise ValueError(f"registered names may not contain ':' (reserved for plugins): {name!r}")
    IP_REGISTRY[name] = builder


def register_vr(name: str, builder: VRBuilder, segmenter: bool = False) -> None:
    """Add a VR network under a name (``builder(cfg, in_channels, num_classes)``).

    :param name: the ``arch`` value that selects it; must not contain ``:``.
    :param builder: makes the module.
    :param segmenter: True when it outputs N×num_classes×H×W maps.
    """
    global SEGMENTERS
    if ":" in name:
        raise ValueError(f"registered names may not contain ':' (reserved for plugins): {name!r}")
    VR_REGISTRY[name] = builder
    if segmenter:
        SEGMENTERS = SEGMENTERS | {name}


def count_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def load_plugin_class(arch: str, plugin_path: str | Path | None = None) -> type[nn.Module]:
    """Import ``"module.sub:ClassName"`` and return the class.

    :param plugin_path: a directory added to ``sys.path`` first (once).
    :raises ValueError: naming ``arch`` and the problem.
    """
    module_name, _, class_name = arch.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"plugin arch {arch!r}: expected 'module.path:ClassName'")
    if plugin_path is not None:
        folder = Path(plugin_path).expanduser().resolve()
        if not folder.is_dir():
            raise ValueError(f"plugin arch {arch!r}: plugin_path {str(folder)!r} is not a directory")
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        importlib.invalidate_caches()  # the folder may have been written after startup
    try:
        mod = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"plugin arch {arch!r}: module {module_name!r} not found ({e})") from e
    except Exception as e:  # a plugin's own import-time error
        raise ValueError(f"plugin arch {arch!r}: importing {module_name!r} failed: {type(e).__name__}: {e}") from e
    cls: Any = mod
    for part in class_name.split("."):
        if not hasattr(cls, part):
            raise ValueError(f"plugin arch {arch!r}: module {module_name!r} has no attribute {class_name!r}")
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"plugin arch {arch!r}: {class_name!r} is not an nn.Module subclass")
    return cls


def _kwargs(cfg: dict, where: str) -> dict:
    kwargs = setting(cfg, "kwargs", where)
    if not isinstance(kwargs, dict):
        raise ValueError(f"config.{where}.kwargs: expected a mapping, got {type(kwargs).__name__}")
    return kwargs


def _build_plugin(arch: str, cfg: dict, where: str, **required: int) -> nn.Module:
    kwargs = _kwargs(cfg, where)
    cls = load_plugin_class(arch, setting(cfg, "plugin_path", where))
    try:
        module = cls(**required, **kwargs)
    except Exception as e:
        raise ValueError(f"plugin arch {arch!r}: constructor failed: {type(e).__name__}: {e}") from e
    if not isinstance(module, nn.Module):  # e.g. a __new__ returning something else
        raise ValueError(f"plugin arch {arch!r}: constructor returned {type(module).__name__}, not an nn.Module")
    return module


def _arch(cfg: dict, role: str) -> str:
    arch = cfg.get("arch")
    if not isinstance(arch, str) or not arch:
        raise ValueError(f"{role} config needs an 'arch' string, got {arch!r}")
    return arch


def build_ip(cfg: dict) -> nn.Module:
    """Make the IP (enhancement) network.

    :param cfg: IP config: ``arch``, ``kwargs``, ``in_channels``, ``scale``
        and the network's own keys (``plugin_path`` for a plugin); unknown keys are ignored.
    :raises ValueError: unknown arch (the message lists the known ones), a
        missing field, or a plugin problem.
    """
    arch = _arch(cfg, "IP")
    cfg = {**cfg, **{k: v for k, v in FALLBACK.items() if k in cfg and cfg[k] is None}}  # null (not missing) shape fields
    if ":" in arch:
        return _build_plugin(arch, cfg, "ip", in_channels=int(setting(cfg, "in_channels", "ip")), scale=int(setting(cfg, "scale", "ip")))
    if arch not in IP_REGISTRY:
        raise ValueError(f"unknown IP arch {arch!r}; known: {', '.join(sorted(IP_REGISTRY))} or 'module:Class'")
    return IP_REGISTRY[arch]({**cfg, **_kwargs(cfg, "ip")})


def build_vr(cfg: dict, in_channels: int, num_classes: int) -> nn.Module:
    """Make the VR (recognition) network.

    :param cfg: VR config: ``arch``, ``kwargs``, ``task`` (``"classify"`` or
        ``"segment"``, checked against the arch) and the network's own keys
        (``plugin_path`` for a plugin); unknown keys are ignored.
    :param in_channels: image channels.
    :param num_classes: classes (per image, or per pixel for segmenters).
    :raises ValueError: unknown arch, an arch that does not fit ``task``, a
        missing field, or a plugin problem.
    """
    arch = _arch(cfg, "VR")
    if ":" in arch:
        return _build_plugin(arch, cfg, "vr", in_channels=in_channels, num_classes=num_classes)
    if arch not in VR_REGISTRY:
        raise ValueError(f"unknown VR arch {arch!r}; known: {', '.join(sorted(VR_REGISTRY))} or 'module:Class'")
    task = setting(cfg, "task", "vr")
    if task == "segment" and arch not in SEGMENTERS:
        raise ValueError(f"VR arch {arch!r} is a classifier; task 'segment' needs one of {sorted(SEGMENTERS)}")
    if task == "classify" and arch in SEGMENTERS:
        raise ValueError(f"VR arch {arch!r} is a segmenter; task 'classify' needs a classifier")
    return VR_REGISTRY[arch]({**cfg, **_kwargs(cfg, "vr")}, in_channels, num_classes)


def load_ip_weights(ip: nn.Module, path: str | Path) -> None:
    """Fill an IP network from a weights file, strictly (a run checkpoint's ``ip`` part, a state dict, or a whole pickled model).

    :raises CheckpointError: unreadable, or keys and shapes that do not match.
    """
    load_weights(ip, path, strict=True, part="ip")


def load_vr_weights(vr: nn.Module, path: str | Path) -> list[str]:
    """Fill a VR network from a weights file; torchvision-compatible classifiers may keep their own head.

    :param path: the weights file (torchvision ImageNet weights, a run checkpoint's ``vr`` part, a state dict).
    :returns: the names left at their initialisation (a head whose class count differs from the file's).
    :raises CheckpointError: unreadable, or keys and shapes that do not match.
    """
    if isinstance(vr, TorchvisionClassifier):
        return load_torchvision(vr, path, part="vr")
    load_weights(vr, path, strict=True, part="vr")
    return []
