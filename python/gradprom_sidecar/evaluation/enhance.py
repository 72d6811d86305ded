"""Enhancing with a session's IP: tensors of images (the ``enhance`` op) and image files (``enhance.files``).

Files are read as the data module reads them, but not resized: PNG/JPEG/... through
``data.base.to_float_array``, DICOM through ``data.dicom.GrayWindow`` (the one windowing of the
package), NIfTI volumes through ``data.volume.percentile_scale``'s percentiles and DICOM series
through ``data.dicom_series.read_series``, so what IP sees here is what it saw in training.
Volumes are enhanced slice by slice along ``data.axis`` (in RAS+ order for NIfTI, [column, row,
slice] for a series, as the loaders slice them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import Tensor

from gradprom_sidecar.data.base import to_channels, to_float_array
from gradprom_sidecar.data.dicom import GrayWindow
from gradprom_sidecar.training.config import setting

if TYPE_CHECKING:
    from gradprom_sidecar.training.session import Session


@torch.no_grad()
def enhance_images(s: Session, images: Tensor) -> Tensor:
    """IP's output for N×C×h×w images in [0, 1], clamped to [0, 1], on the CPU (batches of ``eval.batch_size``).

    :param s: the session whose IP enhances.
    """
    c = s.bundle.channels
    if images.dim() != 4 or images.shape[1] != c:
        raise ValueError(f"tensors[0].shape: expected N×{c}×H×W images, got {list(images.shape)}")
    bs = int(setting(s.config, "eval.batch_size"))
    s.ip.eval()
    try:
        outs = [s.ip(images[i : i + bs].float().to(s.device)).clamp_(0.0, 1.0).cpu() for i in range(0, images.shape[0], bs)]
    finally:
        s.ip.train()
    if not outs:
        k = s.ip_scale
        return images.new_zeros(0, c, images.shape[2] * k, images.shape[3] * k)
    return torch.cat(outs)


def to_channels_batch(x: Tensor, channels: int) -> Tensor:
    """N×1×H×W gray images as N×``channels``×H×W (repeated).

    :param channels: 1 or 3.
    """
    return x if channels == 1 else x.expand(-1, channels, -1, -1).contiguous()


def _read_dicom(path: Path, window: dict | None) -> tuple[Any, Tensor, GrayWindow]:
    """A grayscale DICOM as F×1×H×W in [0, 1], windowed like the data module's reader; plus its window."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        arr = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception as e:  # pydicom raises many types for a bad file
        raise ValueError(f"{path}: unreadable DICOM file or pixel data ({e})") from e
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        raise ValueError(f"{path}: colour DICOM (SamplesPerPixel {ds.SamplesPerPixel}) is not supported by enhance.files")
    frames = arr if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 else arr[None]
    gw = GrayWindow.of(ds, frames, window)
    return ds, torch.from_numpy(gw.to_unit(frames)).float()[:, None], gw


def _write_dicom(ds: Any, out: Tensor, gw: GrayWindow, dest: Path, src: Path) -> None:
    """Write IP's output (F×1×H×W in [0, 1]) as ``ds``'s new pixel data, in its stored range and dtype."""
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stored = gw.to_stored(out[:, 0].double().numpy())
    dtype = np.asarray(ds.pixel_array).dtype
    bits = int(getattr(ds, "BitsStored", np.iinfo(dtype).bits if dtype.kind in "iu" else 16))
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    stored = np.clip(np.rint(stored), low, high).astype(dtype)
    if int(getattr(ds, "NumberOfFrames", 1) or 1) <= 1:
        stored = stored[0]
    try:
        ds.set_pixel_data(stored, str(ds.PhotometricInterpretation), bits)
    except Exception:  # older pydicom without set_pixel_data: write uncompressed by hand
        ds.PixelData = stored.tobytes()
        ds.Rows, ds.Columns = int(stored.shape[-2]), int(stored.shape[-1])
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    uid = generate_uid()  # a derived image is a new instance; everything else is kept
    ds.SOPInstanceUID = uid
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.DerivationDescription = f"gradprom enhance.files from {src.name}"
    try:
        ds.save_as(dest, enforce_file_format=True)
    except TypeError:
        ds.save_as(dest, write_like_original=False)


def enhance_volume(s: Session, unit: np.ndarray, axis: int) -> np.ndarray:
    """IP's output for a volume in [0, 1], slice by slice along ``axis`` (same shape, float64).

    :param s: the session whose IP enhances (scale 1: a volume keeps its grid).
    :param unit: the 3-D volume in [0, 1].
    :param axis: 0, 1 or 2.
    """
    if s.ip_scale != 1:
        raise ValueError(f"ip.scale: volumes are enhanced on their own grid, so IP must not upscale (scale {s.ip_scale})")
    slices = torch.from_numpy(np.ascontiguousarray(np.moveaxis(unit, axis, 0))).float()[:, None]
    out = enhance_images(s, to_channels_batch(slices, s.bundle.channels)).mean(dim=1)
    return np.moveaxis(out.double().numpy(), 0, axis)


def _enhance_nifti(s: Session, src: Path, dest: Path) -> None:
    """Enhance a NIfTI volume into ``dest``: same affine and header, intensities back in the input's range and dtype.

    Values outside the ``data.percentiles`` range come back clipped to it, as DICOM values outside their window do.
    """
    import nibabel as nib
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    from gradprom_sidecar.data.nifti import load_nifti_image
    from gradprom_sidecar.data.volume import check_axis, check_percentiles

    img = load_nifti_image(src)  # a DataError names the file
    if len(img.shape) != 3:
        raise ValueError(f"{src}: enhance takes 3-D volumes, got shape {tuple(img.shape)}")
    data = np.asarray(img.dataobj, dtype=np.float64)  # scl_slope/scl_inter applied
    to_canon = io_orientation(img.affine)
    canon = apply_orientation(data, to_canon)
    low, high = check_percentiles(setting(s.config, "data"))
    lo, hi = np.percentile(canon, [low, high])
    unit = np.clip((canon - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(canon)
    out = enhance_volume(s, unit, check_axis(setting(s.config, "data")))
    values = apply_orientation(lo + out * (hi - lo), ornt_transform(axcodes2ornt(("R", "A", "S")), to_canon))
    dtype = img.get_data_dtype()
    slope, inter = img.header.get_slope_inter()
    if dtype.kind in "iu" and slope is None:
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max).astype(dtype)  # unscaled integers: the same stored type
    elif dtype.kind == "f":
        values = values.astype(dtype)
    # (scaled integer input: nibabel picks a new scl_slope/scl_inter for the same stored type)
    result = (
        nib.Nifti1Image(values, img.affine, img.header.copy())
        if isinstance(img, nib.Nifti1Image)
        else nib.Nifti2Image(values, img.affine, img.header.copy())
    )
    result.header["descrip"] = f"gradprom enhance from {src.name}"[:79].encode()
    nib.save(result, str(dest))


def _enhance_series(s: Session, folder: Path, dest: Path) -> list[str]:
    """Enhance the DICOM series in ``folder`` into the folder ``dest``: one file per input file, new SOPInstanceUIDs."""
    from gradprom_sidecar.data.dicom_series import read_series
    from gradprom_sidecar.data.volume import check_axis

    series = read_series(folder, setting(s.config, "data.window"))  # a DataError names the folder or file
    unit = series.unit().transpose(2, 1, 0)  # [column, row, slice], as the loader slices it
    out = enhance_volume(s, unit, check_axis(setting(s.config, "data"))).transpose(2, 1, 0)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for k, (ds, src, gw) in enumerate(zip(series.datasets, series.files, series.windows)):
        target = dest / src.name
        _write_dicom(ds, torch.from_numpy(out[k : k + 1, None]).float(), gw, target, src)
        written.append(str(target))
    return written


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
        return head[128:132] == b"DICM"
    except OSError:
        return False


def enhance_files(s: Session, inputs: list[str], out_dir: str, check: Callable[[], None] = lambda: None) -> list[str]:
    """Enhance image files with IP at their own size: PNG out for PNG/JPEG/..., DICOM out for DICOM.

    A ``.nii``/``.nii.gz`` input is written as a NIfTI of the same name (same affine and header,
    the input's range and data type); a folder input is a DICOM series, written as a folder of the
    same name holding one file per input file (new SOPInstanceUIDs, all other metadata kept).

    Images are read as the data module reads them (8/16-bit, gray or colour, converted to the data
    set's channel count) but not resized; PNGs are written 8-bit (16-bit for 16-bit input). DICOM
    is windowed like the data module's reader (``data.window``, else the file's window, else
    min-max; MONOCHROME1 inverted); the output maps [0, 1] back through the window to the stored
    range and dtype, keeps the input's metadata and gets a new SOPInstanceUID. Values outside the
    window come back clipped to it.

    :param s: the session whose IP enhances.
    :param out_dir: output folder (created); an output never overwrites its input.
    :param check: called between files (cancellation).
    :returns: the written paths.
    """
    from PIL import Image

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    channels = s.bundle.channels
    window = setting(s.config, "data.window")
    written: list[str] = []
    taken: set[str] = set()
    for raw in inputs:
        check()
        src = Path(raw).expanduser()
        if src.is_dir() or src.name.lower().endswith((".nii", ".nii.gz")):
            dest = out / src.name
            if src.name in taken or dest.resolve() == src.resolve():
                raise ValueError(f"{src}: its output {dest} would overwrite the input or another output (choose another out_dir)")
            taken.add(src.name)
            if src.is_dir():
                written += _enhance_series(s, src, dest)
            else:
                _enhance_nifti(s, src, dest)
                written.append(str(dest))
            continue
        if not src.is_file():
            raise ValueError(f"{src}: no such file (args.inputs)")
        dicom = _is_dicom(src)
        stem, suffix = src.stem, (".dcm" if dicom else ".png")
        name, k = stem + suffix, 1
        while name in taken:
            name, k = f"{stem}-{k}{suffix}", k + 1
        taken.add(name)
        dest = out / name
        if dest.resolve() == src.resolve():
            raise ValueError(f"{src}: the output would overwrite the input (choose another out_dir)")
        if dicom:
            ds, frames, gw = _read_dicom(src, window)
            result = enhance_images(s, to_channels_batch(frames, channels))
            _write_dicom(ds, result.mean(dim=1, keepdim=True) if channels != 1 else result, gw, dest, src)
        else:
            try:
                with Image.open(src) as img:
                    sixteen = img.mode in ("I;16", "I;16B", "I;16L", "I")
                    arr = to_float_array(img)
            except Exception as e:
                raise ValueError(f"{src}: unreadable or corrupt image ({e})") from e
            x = to_channels(torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1), channels)
            y = enhance_images(s, x[None].float())[0].permute(1, 2, 0).numpy()
            if sixteen and channels == 1:
                Image.fromarray(np.rint(y[..., 0] * 65535).astype(np.uint16)).save(dest)
            else:
                y8 = np.rint(y * 255).astype(np.uint8)
                Image.fromarray(np.ascontiguousarray(y8[..., 0] if channels == 1 else y8)).save(dest)
        written.append(str(dest))
    return written
