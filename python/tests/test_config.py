"""Config resolution on the Python side (gradprom_sidecar.training.config): the defaults come from defaults.json only."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from gradprom_sidecar.models.shape import resolve_ip_shape
from gradprom_sidecar.training.config import defaults, degradation_defaults, read_config_file, resolve, setting, setting_in


def test_resolving_nothing_gives_the_defaults_of_defaults_ts() -> None:
    d = resolve({})
    # As parseConfig does: the default config degrades without downsampling, so its null ip.scale is 1.
    assert defaults()["ip"]["scale"] is None and d["ip"]["scale"] == 1
    assert d == {**defaults(), "ip": {**defaults()["ip"], "scale": 1}}
    # srresnet's shape is left to its weights; with none, resolve_ip_shape fills the documented 32/4/false.
    assert (d["ip"]["arch"], d["ip"]["channels"], d["ip"]["blocks"], d["ip"]["batch_norm"]) == ("srresnet", None, None, None)
    shape = resolve_ip_shape({**d["ip"], "in_channels": 1}, None, 1)
    assert (shape["channels"], shape["blocks"], shape["batch_norm"], shape["scale"]) == (32, 4, False, 1)
    assert d["vr"]["normalize"] == "none" and d["data"]["channels"] == 1


def test_objects_merge_key_by_key_and_arrays_replace() -> None:
    d = resolve({"data": {"counts": {"train": 8}}, "degradation": [{"kind": "poisson", "peak": 5}], "seed": 3})
    assert d["data"]["counts"] == {**defaults()["data"]["counts"], "train": 8}
    assert d["data"]["size"] == defaults()["data"]["size"] and d["seed"] == 3
    assert d["degradation"] == [{"kind": "poisson", "peak": 5}]
    assert resolve({"vr": {"kwargs": {"widths": [4, 8]}}})["vr"]["kwargs"] == {"widths": [4, 8]}
    assert resolve({"data": {"window": {"center": 40, "width": 400}}})["data"]["window"] == {"center": 40, "width": 400}
    assert resolve({"eval": {"limit": None}, "ip": {"weights": None}})["eval"]["limit"] is None


def test_each_degradation_entry_gets_its_kinds_fields() -> None:
    table = degradation_defaults()
    d = resolve({"degradation": [{"kind": "downsample"}, {"kind": "gaussian", "sigma": 0.1}, {"kind": "blur"}, 7]})
    assert d["degradation"] == [
        {"kind": "downsample", **table["downsample"]},
        {"kind": "gaussian", "sigma": 0.1, "clip": table["gaussian"]["clip"], "seeding": table["gaussian"]["seeding"]},
        {"kind": "blur"},  # unknown kinds and non-objects pass through for the reader to refuse
        7,
    ]


def test_resolve_is_idempotent_and_leaves_its_input_alone() -> None:
    partial = {"data": {"counts": {"val": 4}}, "degradation": [{"kind": "gaussian"}]}
    before = copy.deepcopy(partial)
    once = resolve(partial)
    assert resolve(once) == once and partial == before
    once["data"]["counts"]["val"] = 99
    assert resolve(partial)["data"]["counts"]["val"] == 4 and defaults()["data"]["counts"]["val"] != 99


def test_resolve_refuses_a_config_that_is_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="config: expected a mapping"):
        resolve([1, 2])  # type: ignore[arg-type]


def test_at_and_choice_name_the_dotted_path() -> None:
    cfg = resolve({})
    assert setting(cfg, "train.ip_optim.lr") == cfg["train"]["ip_optim"]["lr"]
    assert setting(cfg["train"], "ip_optim.name", "train") == "adam"
    del cfg["train"]["ip_optim"]["lr"]
    with pytest.raises(ValueError, match=r"^config\.train\.ip_optim\.lr: required$"):
        setting(cfg, "train.ip_optim.lr")
    with pytest.raises(ValueError, match=r"^config\.train\.ip_optim\.lr: required$"):
        setting(cfg["train"]["ip_optim"], "lr", "train.ip_optim")
    assert setting_in(cfg, "vr.mode", ("supervised", "frozen")) == "supervised"
    with pytest.raises(ValueError, match=r"config\.vr\.mode: expected one of frozen, got 'supervised'"):
        setting_in(cfg, "vr.mode", ("frozen",))


def test_read_config_file_json_yaml_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"seed": 2}))
    assert read_config_file(good) == {"seed": 2}
    (tmp_path / "bad.json").write_text("{seed: 2")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        read_config_file(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"list\.json: expected a mapping"):
        read_config_file(tmp_path / "list.json")
    with pytest.raises(ValueError, match=r"nope\.json: cannot read config"):
        read_config_file(tmp_path / "nope.json")
    (tmp_path / "c.yaml").write_text("seed: 2\n")
    try:
        import yaml  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"c\.yaml: YAML needs PyYAML.*as JSON"):
            read_config_file(tmp_path / "c.yaml")
    else:
        assert read_config_file(tmp_path / "c.yaml") == {"seed": 2}
