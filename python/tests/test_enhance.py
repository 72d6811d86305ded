"""Enhancing with a session's IP (gradprom_sidecar.enhance): tensors of images and image files, PNG and DICOM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_data import write_dcm
from test_session import call, make


def test_enhance_shapes_and_range() -> None:
    state, _ = make()
    _, (out,) = call(state, "enhance", {}, [torch.rand(20, 1, 16, 16) * 3 - 1])
    assert out.shape == (20, 1, 16, 16) and out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match=r"tensors\[0\].shape"):
        call(state, "enhance", {}, [torch.rand(2, 3, 16, 16)])


def test_enhance_files_png_and_dicom(tmp_path: Path) -> None:
    from PIL import Image

    state, _ = make()
    png = tmp_path / "in" / "a.png"
    png.parent.mkdir()
    Image.fromarray((np.random.default_rng(0).random((20, 24)) * 255).astype(np.uint8)).save(png)
    pixels = (np.random.default_rng(1).random((18, 18)) * 4095).astype(np.uint16)
    dcm = write_dcm(
        tmp_path / "in" / "b.dcm",
        pixels,
        PatientID="TEST01",
        Modality="CT",
        BitsStored=12,
        HighBit=11,
        RescaleSlope=1,
        RescaleIntercept=-1024,
    )
    res, _ = call(state, "enhance.files", {"inputs": [str(png), str(dcm)], "out_dir": str(tmp_path / "out")})
    out_png, out_dcm = map(Path, res["written"])
    assert out_png.name == "a.png" and Image.open(out_png).size == (24, 20)
    import pydicom

    src, out = pydicom.dcmread(dcm), pydicom.dcmread(out_dcm)
    assert out.pixel_array.shape == (18, 18) and out.pixel_array.dtype == src.pixel_array.dtype
    assert out.PatientID == src.PatientID and out.SOPInstanceUID != src.SOPInstanceUID
    assert out.pixel_array.min() >= 0 and out.pixel_array.max() <= 4095
    with pytest.raises(ValueError, match="missing.png: no such file"):
        call(state, "enhance.files", {"inputs": [str(tmp_path / "missing.png")], "out_dir": str(tmp_path / "out")})
