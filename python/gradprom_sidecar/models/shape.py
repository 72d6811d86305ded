"""What an IP's weights say about its shape, and the IP section completed from them.

For ``srresnet`` a weights file shows its input channels, width (``head.0``), residual blocks
(``body.<i>``), BatchNorm (``body_tail.1``) and scale (2 to the number of ``upsample.<i>`` blocks);
for ``estr_srresnet`` its input channels (``block1.0``) and scale (the ``block8.<i>.conv``
upsampling blocks; width and depth are ESTR's, fixed). A field the config leaves null is taken
from the weights; one it sets must agree with them, or the config is refused naming both values.
Without weights, a null field gets :data:`FALLBACK` (the defaults src/config/defaults.ts names) and
a null scale the degradation's.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import Tensor

from gradprom_sidecar.models.checkpoint import CheckpointError, read_state_dict

FALLBACK = {"channels": 32, "blocks": 4, "batch_norm": False}


def _count(sd: dict[str, Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in sd if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def srresnet_shape(sd: dict[str, Tensor]) -> dict:
    """``in_channels``, ``channels``, ``blocks``, ``batch_norm`` and ``scale`` of srresnet weights ({} if not srresnet's).

    :param sd: the state dict.
    """
    head = sd.get("head.0.weight")
    if head is None or head.dim() != 4:
        return {}
    ups = _count(sd, r"^upsample\.(\d+)\.conv\.weight$")
    return {
        "in_channels": int(head.shape[1]),
        "channels": int(head.shape[0]),
        "blocks": _count(sd, r"^body\.(\d+)\.conv1\.weight$"),
        "batch_norm": "body_tail.1.weight" in sd,
        "scale": 2**ups,
    }


def estr_srresnet_shape(sd: dict[str, Tensor]) -> dict:
    """``in_channels`` and ``scale`` of ESTR's SRResNet weights ({} if not ESTR's).

    :param sd: the state dict.
    """
    head = sd.get("block1.0.weight")
    if head is None or head.dim() != 4:
        return {}
    return {"in_channels": int(head.shape[1]), "scale": 2 ** _count(sd, r"^block8\.(\d+)\.conv\.weight$")}


SHAPES: dict[str, Callable[[dict[str, Tensor]], dict]] = {"srresnet": srresnet_shape, "estr_srresnet": estr_srresnet_shape}


def resolve_ip_shape(cfg: dict, weights: str | None, default_scale: int) -> dict:
    """The IP section with its null shape fields filled (see the module docstring).

    :param cfg: the IP section with ``in_channels`` (the data's channels) added.
    :param weights: the weights file the network will be filled from, or None.
    :param default_scale: the scale of a null ``scale`` that no weights give (the degradation's).
    :raises ValueError: a set field that contradicts the weights, naming both values.
    """
    out = dict(cfg)
    said: dict = {}
    if weights and cfg.get("arch") in SHAPES:
        try:
            said = SHAPES[cfg["arch"]](read_state_dict(weights, part="ip"))
        except CheckpointError as e:
            raise ValueError(f"config.ip.weights: {e}") from e
    for key, value in said.items():
        if key == "in_channels":
            if out.get(key) is not None and out[key] != value:
                raise ValueError(f"config.data.channels: {out[key]}, but {weights} holds a network for {value}-channel images")
        elif out.get(key) is None:
            out[key] = value
        elif out[key] != value:
            raise ValueError(f"config.ip.{key}: {out[key]!r}, but {weights} holds a network with {key} {value!r}")
    if out.get("scale") is None:
        out["scale"] = default_scale
    for key, value in FALLBACK.items():
        if key in out and out[key] is None:  # a missing field stays missing: the builder names it
            out[key] = value
    return out
