"""Enhancing with a session's IP (gradprom_sidecar.evaluation.enhance): tensors of images and image files, PNG and DICOM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import needs
from helpers import call, make, tiny_config
from test_data import write_dcm

from gradprom_sidecar.wire.registry import State


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


# ---------------------------------------------------------------- volumes


def _volume_session() -> State:
    cfg = tiny_config()
    cfg["data"].update(axis=2, percentiles={"low": 0.5, "high": 99.5})
    return make(cfg)[0]


def _identity_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    """IP that returns its input: what comes out must be the input, mapped there and back."""
    import gradprom_sidecar.evaluation.enhance as E

    monkeypatch.setattr(E, "enhance_images", lambda s, x: x.clamp(0, 1))


def test_enhance_nifti_keeps_affine_header_dtype_and_orientation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nib = needs("nibabel")
    from test_volumes import brain, save_nii

    state = _volume_session()
    img, _ = brain((14, 18, 10))
    affine = np.array(
        [[-1.0, 0, 0, 10], [0, 0, 2.0, -5], [0, -1.5, 0, 3], [0, 0, 0, 1]]
    )  # not RAS: the result must come back in this order
    src = save_nii(tmp_path / "in" / "t1.nii.gz", img, affine)
    res, _ = call(state, "enhance.files", {"inputs": [str(src)], "out_dir": str(tmp_path / "real")})
    out = nib.load(res["written"][0])
    inp = nib.load(str(src))
    assert Path(res["written"][0]).name == "t1.nii.gz" and out.shape == inp.shape
    assert np.array_equal(out.affine, inp.affine) and out.get_data_dtype() == inp.get_data_dtype() == np.int16
    for key in ("dim", "pixdim", "qform_code", "sform_code", "srow_x", "xyzt_units"):
        assert np.array_equal(out.header[key], inp.header[key]), key
    lo, hi = np.percentile(img, [0.5, 99.5])
    got = np.asarray(out.dataobj)
    assert got.min() >= np.floor(lo) and got.max() <= np.ceil(hi)

    _identity_ip(monkeypatch)
    res, _ = call(state, "enhance.files", {"inputs": [str(src)], "out_dir": str(tmp_path / "identity")})
    back = np.asarray(nib.load(res["written"][0]).dataobj)
    assert np.abs(back.astype(float) - np.clip(img, lo, hi)).max() <= 1.0  # rounding only: same voxels, same orientation


def test_enhance_dicom_series_writes_a_series(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pydicom = needs("pydicom")
    from test_volumes import write_series

    state = _volume_session()
    _identity_ip(monkeypatch)
    vol = (np.random.default_rng(2).random((5, 12, 12)) * 3000).astype(np.uint16)
    files = write_series(tmp_path / "ct", vol, uid="1.2.826.0.1.9", PatientID="P7", RescaleSlope=1, RescaleIntercept=-1000)
    res, _ = call(state, "enhance.files", {"inputs": [str(tmp_path / "ct")], "out_dir": str(tmp_path / "out")})
    assert sorted(Path(p).name for p in res["written"]) == sorted(f.name for f in files)
    for f in files:
        a, b = pydicom.dcmread(f), pydicom.dcmread(tmp_path / "out" / "ct" / f.name)
        assert b.SOPInstanceUID != a.SOPInstanceUID and b.file_meta.MediaStorageSOPInstanceUID == b.SOPInstanceUID
        assert (b.SeriesInstanceUID, b.PatientID, b.InstanceNumber, list(b.ImagePositionPatient)) == (
            a.SeriesInstanceUID,
            a.PatientID,
            a.InstanceNumber,
            list(a.ImagePositionPatient),
        )
        assert b.pixel_array.dtype == a.pixel_array.dtype
        assert np.abs(b.pixel_array.astype(int) - a.pixel_array.astype(int)).max() <= 1  # min-max window of the series, undone
    assert len({pydicom.dcmread(p).SOPInstanceUID for p in res["written"]}) == len(files)
