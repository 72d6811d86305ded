"""Weights say their shape: srresnet and estr_srresnet fill null shape fields from their weights and refuse contradictions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import call, new_state, tiny_config

from gradprom_sidecar.models import build_ip, load_ip_weights, resolve_ip_shape

NULLS = {"channels": None, "blocks": None, "batch_norm": None, "scale": None, "residual": False, "kwargs": {}}


def save_ip(path: Path, **cfg: object) -> Path:
    torch.save(build_ip({**NULLS, "in_channels": 3, **cfg}).state_dict(), path)
    return path


def test_srresnet_weights_give_scale_width_depth_and_batch_norm(tmp_path: Path) -> None:
    w = save_ip(tmp_path / "sr.pth", arch="srresnet", channels=8, blocks=3, batch_norm=True, scale=4)
    cfg = resolve_ip_shape({**NULLS, "arch": "srresnet", "in_channels": 3}, str(w), default_scale=1)
    assert {k: cfg[k] for k in ("channels", "blocks", "batch_norm", "scale")} == {
        "channels": 8,
        "blocks": 3,
        "batch_norm": True,
        "scale": 4,
    }
    net = build_ip(cfg)
    load_ip_weights(net, w)  # strict: every key and shape fits
    assert net(torch.rand(1, 3, 5, 6)).shape == (1, 3, 20, 24)
    # Without weights: the degradation's scale and the documented fallbacks.
    bare = resolve_ip_shape({**NULLS, "arch": "srresnet", "in_channels": 3}, None, default_scale=2)
    assert (bare["scale"], bare["channels"], bare["blocks"], bare["batch_norm"]) == (2, 32, 4, False)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_estr_weights_give_their_scale(tmp_path: Path, scale: int) -> None:
    w = save_ip(tmp_path / "estr.pth", arch="estr_srresnet", scale=scale)
    assert resolve_ip_shape({**NULLS, "arch": "estr_srresnet", "in_channels": 3}, str(w), default_scale=1)["scale"] == scale


def test_a_config_contradicting_its_weights_is_refused_naming_both(tmp_path: Path) -> None:
    w = save_ip(tmp_path / "sr.pth", arch="srresnet", channels=8, blocks=2, batch_norm=False, scale=2)
    base = {**NULLS, "arch": "srresnet", "in_channels": 3}
    with pytest.raises(ValueError, match=r"config\.ip\.channels: 16, but .*sr\.pth holds a network with channels 8"):
        resolve_ip_shape({**base, "channels": 16}, str(w), 1)
    with pytest.raises(ValueError, match=r"config\.ip\.scale: 4, but .*sr\.pth holds a network with scale 2"):
        resolve_ip_shape({**base, "scale": 4}, str(w), 1)
    with pytest.raises(ValueError, match=r"config\.ip\.batch_norm: True, but .* batch_norm False"):
        resolve_ip_shape({**base, "batch_norm": True}, str(w), 1)
    with pytest.raises(ValueError, match=r"config\.data\.channels: 1, but .*sr\.pth holds a network for 3-channel images"):
        resolve_ip_shape({**base, "in_channels": 1}, str(w), 1)


def test_an_enhancing_session_takes_the_weights_scale_without_a_degradation(tmp_path: Path) -> None:
    w = save_ip(tmp_path / "sr4.pth", arch="estr_srresnet", scale=4)
    data = {"channels": 3}
    ip = {
        "arch": "estr_srresnet",
        "weights": str(w),
        "residual": False,
        "scale": None,
        "channels": None,
        "blocks": None,
        "batch_norm": None,
    }
    for scale in (None, 4):  # left to the weights, or stated as they say: no degradation to match
        state = new_state()
        call(state, "session.create", {"config": tiny_config(data=data, degradation=[], ip={**ip, "scale": scale})})
        _, (out,) = call(state, "enhance", {}, [torch.rand(2, 3, 8, 8)])
        assert out.shape == (2, 3, 32, 32) and state.session.ip_scale == 4
    with pytest.raises(ValueError, match=r"config\.ip\.scale: 2, but .*sr4\.pth holds a network with scale 4"):
        call(new_state(), "session.create", {"config": tiny_config(data=data, degradation=[], ip={**ip, "scale": 2})})
    # A degrading config still ties the scale to its downsampling.
    with pytest.raises(ValueError, match=r"config\.ip\.scale: 4 does not match the degradation's total downsampling \(x1\)"):
        call(new_state(), "session.create", {"config": tiny_config(data=data, ip=ip)})
