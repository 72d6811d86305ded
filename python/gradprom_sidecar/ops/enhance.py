"""Enhancing ops: a tensor of images, or image files on disk (see ``gradprom_sidecar.evaluation.enhance``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gradprom_sidecar.evaluation.enhance import enhance_files, enhance_images
from gradprom_sidecar.ops.session import session_of
from gradprom_sidecar.wire.registry import Context, Result, op, require


@op("enhance")
def enhance_op(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """IP's output for ``tensors[0]`` (N×C×H×W in [0, 1])."""
    if len(tensors) != 1:
        raise ValueError(f"enhance: expected one tensor of images, got {len(tensors)}")
    return {}, [enhance_images(session_of(ctx), tensors[0])]


@op("enhance.files")
def enhance_files_op(ctx: Context, args: dict[str, Any], tensors: list[Tensor]) -> Result:
    """Enhance ``args.inputs`` (PNG/JPEG/... or DICOM files, NIfTI volumes, DICOM series folders) into ``args.out_dir``."""
    inputs = require(args, "inputs", list)
    out_dir = require(args, "out_dir", str)
    if not all(isinstance(p, str) for p in inputs):
        raise ValueError("args.inputs: expected a list of file paths")
    return {"written": enhance_files(session_of(ctx), inputs, out_dir, ctx.check_cancelled)}, []
