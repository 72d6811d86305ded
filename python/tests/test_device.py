"""Devices (gradprom_sidecar.training.device), and the compute half importing where only Python and PyTorch exist.

A bare GPU machine has a CUDA PyTorch but neither pyzmq nor msgpack: every module but the
transport (server, protocol, the process entry point) must import there, and the reference loop run.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from helpers import tiny_config

from gradprom_sidecar.training.device import list_devices, resolve_device

TRANSPORT = {"gradprom_sidecar.wire.server", "gradprom_sidecar.wire.protocol", "gradprom_sidecar.__main__"}

CHILD = r"""
import importlib, json, pkgutil, sys
sys.modules["zmq"] = None  # an import of either now raises ImportError
sys.modules["msgpack"] = None
import torch
import gradprom_sidecar
names = sorted(m.name for m in pkgutil.walk_packages(gradprom_sidecar.__path__, "gradprom_sidecar."))
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as e:
        failed[name] = str(e)
from gradprom_sidecar.tools.reference import run_reference
result = run_reference(json.loads(sys.argv[1]), steps=2, device=torch.device("cpu"))
print(json.dumps({"modules": names, "failed": failed, "steps": result["steps"], "evals": len(result["evals"])}))
"""


def test_compute_modules_import_and_train_without_zmq_or_msgpack() -> None:
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(tiny_config())], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"gradprom_sidecar.training.session", "gradprom_sidecar.tools.reference", "gradprom_sidecar.ops.train"} <= set(out["modules"])
    assert set(out["failed"]) == TRANSPORT, out["failed"]
    assert all("zmq" in msg or "msgpack" in msg for msg in out["failed"].values())
    assert out["steps"] == 2 and out["evals"] == 2  # final val and test


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert list_devices()[-1] == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="CUDA is not available"):
            resolve_device("cuda:0")
