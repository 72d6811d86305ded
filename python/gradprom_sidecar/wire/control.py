"""The control plane's call wrapper: a Python exception comes back to TypeScript as data, whole (pythonia's own
error crossing loses the message)."""

from __future__ import annotations

import importlib
import traceback
from typing import Any


def invoke(module: str, fn: str, args: list[Any]) -> dict[str, Any]:
    """Call ``module.fn(*args)``; never raises.

    :param module: the dotted module name
    :param fn: the function's name in it
    :param args: positional arguments (plain data)
    :return: ``{"status": "ok", "value": ...}`` or ``{"status": "error", "type", "message", "traceback"}``
    """
    try:
        value = getattr(importlib.import_module(module), fn)(*args)
        return {"status": "ok", "value": value}
    except Exception as exc:  # every failure is the caller's to report
        return {
            "status": "error",
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        }
