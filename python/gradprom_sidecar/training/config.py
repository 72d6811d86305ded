"""The experiment config on the Python side: resolving a partial config, and reading a resolved one.

The sidecar has no defaults of its own. Every default lives in ``src/config/defaults.ts``;
``npm run gen:defaults`` writes them to ``defaults.json`` beside this file (a test checks it is current), and :func:`resolve` merges a
partial config over them exactly as TypeScript's ``withDefaults`` does (objects merge key by
key, anything else, arrays included, replaces; each degradation entry gets its kind's fields).
TypeScript always sends a resolved config; :func:`resolve` is for Python entry points that read
a user's file (``python -m gradprom_sidecar.tools.reference``).

Reading: :func:`setting` takes a value at a dotted path and names ``config.<path>`` when it is missing,
so a config that skipped resolution fails loudly instead of falling back to a second set of
defaults.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from pathlib import Path
from typing import Any

DEFAULTS_FILE = Path(__file__).parents[1] / "defaults.json"


@functools.lru_cache(maxsize=1)
def _defaults_file() -> dict[str, Any]:
    return json.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))


def defaults() -> dict[str, Any]:
    """A fresh copy of the resolved config when the user gives nothing (``DEFAULTS`` of defaults.ts)."""
    return copy.deepcopy(_defaults_file()["defaults"])


def degradation_defaults() -> dict[str, dict[str, Any]]:
    """A fresh copy of the per-kind fields of a degradation entry (``DEGRADATION_DEFAULTS``)."""
    return copy.deepcopy(_defaults_file()["degradation"])


def _merge(base: Any, over: Any) -> Any:
    """``over`` deep-merged onto a copy of ``base``: dicts merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def resolve(partial: dict[str, Any]) -> dict[str, Any]:
    """The resolved config: ``partial`` merged over the defaults, per-kind degradation fields filled.

    Idempotent, and the same as TypeScript's ``parseConfig`` gives (``withDefaults``, then a null
    ``ip.scale`` in a degrading config set to its downsampling). Values are not validated here
    (TypeScript's schema does that); a bad value fails where it is read.

    :param partial: a user config (any subset of the sections).
    :raises ValueError: when ``partial`` is not a mapping.
    """
    if not isinstance(partial, dict):
        raise ValueError(f"config: expected a mapping of sections, got {type(partial).__name__}")
    merged = _merge(defaults(), partial)
    table = degradation_defaults()
    if isinstance(merged.get("degradation"), list):
        merged["degradation"] = [
            _merge(table[d["kind"]], d) if isinstance(d, dict) and isinstance(d.get("kind"), str) and d["kind"] in table else d
            for d in merged["degradation"]
        ]
        ip = merged.get("ip")
        if isinstance(ip, dict) and ip.get("scale") is None and merged["degradation"]:
            ip["scale"] = math.prod(
                int(d.get("scale", 1)) for d in merged["degradation"] if isinstance(d, dict) and d.get("kind") == "downsample"
            )
    return merged


def setting(cfg: dict[str, Any], path: str, where: str = "") -> Any:
    """The value at a dotted ``path``; a missing key is a ValueError naming ``config.<where>.<path>``.

    :param cfg: the resolved config, or one of its sections.
    :param path: e.g. ``"train.ip_optim.lr"``.
    :param where: the dotted path of ``cfg`` itself when it is a section, e.g. ``"data"``.
    """
    full = f"{where}.{path}" if where else path
    node: Any = cfg
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"config.{full}: required")
        node = node[part]
    return node


def setting_in(cfg: dict[str, Any], path: str, allowed: tuple[str, ...], where: str = "") -> str:
    """:func:`setting`, checked against ``allowed``; the error names the path and the choices.

    :param cfg: the resolved config, or one of its sections.
    :param where: the dotted path of ``cfg`` when it is a section.
    """
    value = setting(cfg, path, where)
    if value not in allowed:
        full = f"{where}.{path}" if where else path
        raise ValueError(f"config.{full}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file as a mapping: JSON, or YAML (``.yaml``/``.yml``) when PyYAML is installed.

    :raises ValueError: unreadable file, bad syntax, no YAML parser, or not a mapping; the message names the file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{p}: cannot read config ({e.strerror or e})") from e
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise ValueError(f"{p}: YAML needs PyYAML, which this Python lacks; give the config as JSON instead") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{p}: not valid YAML ({e})") from e
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping of config sections, got {type(data).__name__}")
    return data
