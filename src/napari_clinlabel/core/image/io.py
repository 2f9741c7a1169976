"""Open images as :class:`Volume` objects and save label maps with the source geometry.

Supported: DICOM (a folder, one file of a series, or a list of files of one series), NIfTI
(.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) and 2D PNG/JPEG/TIFF (RGB stays
RGB). Big TIFFs (more than 8192 pixels a side or 256 MiB) open lazily as multiscale slides.

Pixel spacing: PNG and JPEG carry none (their DPI is a print resolution, not the detector's),
nor does a TIFF without resolution tags in inches or centimetres; those open on a unit grid with
``meta["spacing_known"] = False`` (a :class:`~.volume.PixelGeometry`), so sizes on them are given
in pixels, never mm. DICOM, NIfTI, NRRD, MetaImage and TIFFs that state their pixel size open
with ``spacing_known`` True.

Bad input raises :class:`InputError` / :class:`GeometryError` naming the file, the problem and
the fix. Float images holding NaN or infinite values are refused (never opened with them).
Label NIfTI files carry no label intent code: SimpleITK cannot set it (intent_code stays 0).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import tifffile

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.dicom import volume as dicom_volume
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.slide import open_slide, tiff_pixel_size_mm
from napari_clinlabel.core.image.volume import PixelGeometry, Volume

ITK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
BIG_TIFF_SIDE = 8192
BIG_TIFF_BYTES = 256 << 20


def suffix_of(path: str | Path) -> str:
    """Lower-case suffix, treating ``.nii.gz`` as one suffix."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def is_dicom_file(path: str | Path) -> bool:
    """True when the file has a DICOM suffix or the DICM marker at byte 128."""
    p = Path(path)
    if suffix_of(p) in DICOM_SUFFIXES:
        return True
    try:
        with open(p, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_volumes(path: str | Path | Sequence[str | Path]) -> list[Volume]:
    """Every image at ``path`` (a file, a DICOM folder, or a list of either) as Volumes."""
    if isinstance(path, list | tuple):
        paths = [Path(p) for p in path]
        for p in paths:
            _check_exists(p)
        if len(paths) > 1 and all(p.is_file() and is_dicom_file(p) for p in paths):
            return _finish(dicom_volume.read_dicom_files(paths))
        return [v for p in paths for v in read_volumes(p)]
    p = Path(path)
    _check_exists(p)
    if p.is_dir():
        return _finish(dicom_volume.read_dicom_folder(p))
    if p.stat().st_size == 0:
        raise InputError(
            f"{p}: the file is empty (0 bytes). Replace it with a complete copy and open again."
        )
    suffix = suffix_of(p)
    if suffix in ITK_SUFFIXES:
        return [_read_itk(p)]
    if suffix in (".tif", ".tiff") and _is_big_tiff(p):
        return [open_slide(p)]
    if suffix in IMAGE_SUFFIXES:
        return [_read_itk(p)]
    if is_dicom_file(p):
        return _finish(dicom_volume.read_dicom_file(p))
    raise InputError(
        f"{p}: unsupported file type '{suffix or '(no suffix)'}'. Open a DICOM folder or file, "
        f"NIfTI, NRRD, MetaImage or a 2D PNG/JPEG/TIFF ({', '.join(ITK_SUFFIXES + IMAGE_SUFFIXES)})."
    )


def _check_exists(p: Path) -> None:
    if not p.exists():
        raise InputError(f"{p}: no such file or folder. Check the path and try again.")


def _finish(volumes: list[Volume]) -> list[Volume]:
    for v in volumes:
        _ = v.sha256
    return volumes


def _is_big_tiff(p: Path) -> bool:
    try:
        with tifffile.TiffFile(p) as tf:
            page = tf.pages[0]
            shape = page.shape
            nbytes = int(np.prod(shape)) * page.dtype.itemsize if page.dtype else 0
    except Exception:  # let SimpleITK report a corrupt TIFF
        return False
    return max(shape[:2]) > BIG_TIFF_SIDE or nbytes > BIG_TIFF_BYTES


def _read_itk(p: Path) -> Volume:
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise InputError(
            f"{p}: SimpleITK cannot read this file (corrupt or truncated?). Re-export it from "
            "the program that wrote it and open again."
        ) from exc
    for key in img.GetMetaDataKeys():  # no header attribute (possibly PHI) travels further
        img.EraseMetaData(key)
    comps = img.GetNumberOfComponentsPerPixel()
    dim = img.GetDimension()
    if dim == 3 and img.GetSize()[2] == 1 and suffix_of(p) in IMAGE_SUFFIXES:
        img = img[:, :, 0]
        dim = 2
    rgb = dim == 2 and comps in (3, 4)
    array = sitk.GetArrayFromImage(img)
    if dim == 4:  # (t, z, y, x): the fourth axis must not mix with space
        d4 = np.asarray(img.GetDirection()).reshape(4, 4)
        if np.abs(d4[:3, 3]).max() > 1e-6 or np.abs(d4[3, :3]).max() > 1e-6:
            raise InputError(f"{p}: 4D image whose fourth axis is oblique in space; not supported.")
        geometry = Geometry(
            tuple(float(s) for s in img.GetSpacing()[:3]),
            tuple(float(o) for o in img.GetOrigin()[:3]),
            tuple(float(v) for v in d4[:3, :3].ravel()),
        )
    else:
        geometry = Geometry.from_itk(img)
    known = _states_pixel_size(p)
    if not known:  # no physical spacing: a unit grid, marked so nobody calls it mm
        geometry = PixelGeometry.like(geometry)
    if comps > 1 and not rgb:  # vector volume: components become a leading axis
        array = np.moveaxis(array, -1, 0)
    if array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if suffix_of(p) in (".nii", ".nii.gz"):  # ITK's NIfTI reader turns NaN into 0 silently
            bad = max(bad, _nifti_nonfinite(p))
        if bad:
            raise InputError(
                f"{p}: {bad} voxels are NaN or infinite, so measurements on this image would be "
                "wrong. Replace them (e.g. with 0 or the background value) and open the fixed file."
            )
    meta = {
        "modality": None,
        "series_uid": None,
        "series_description": p.name,
        "rgb": rgb,
        "source_path": str(p),
        "n_volumes": array.shape[0] if dim == 4 else 1,
        "spacing_known": known,
    }
    vol = Volume(np.ascontiguousarray(array), geometry, meta)
    _ = vol.sha256
    return vol


def _states_pixel_size(p: Path) -> bool:
    """Whether the file states a physical pixel size: never for PNG/JPEG, for a TIFF only with
    resolution tags in inches or centimetres, always for the medical formats."""
    suffix = suffix_of(p)
    if suffix in (".png", ".jpg", ".jpeg"):
        return False
    if suffix not in (".tif", ".tiff"):
        return True
    return tiff_pixel_size_mm(p) is not None


def _nifti_nonfinite(p: Path) -> int:
    """Non-finite voxels in a float NIfTI-1/2 file, counted from its raw bytes."""
    opener = gzip.open if suffix_of(p) == ".nii.gz" else open
    with opener(p, "rb") as fh:
        raw = fh.read()
    for endian in ("<", ">"):
        size = int(np.frombuffer(raw[:4], endian + "i4")[0])
        if size == 348:  # NIfTI-1
            dtype_code = int(np.frombuffer(raw[70:72], endian + "i2")[0])
            offset = int(np.frombuffer(raw[108:112], endian + "f4")[0])
            break
        if size == 540:  # NIfTI-2
            dtype_code = int(np.frombuffer(raw[12:14], endian + "i2")[0])
            offset = int(np.frombuffer(raw[168:176], endian + "i8")[0])
            break
    else:
        return 0
    kind = {16: "f4", 64: "f8"}.get(dtype_code)
    if kind is None:
        return 0
    dt = np.dtype(endian + kind)
    n = (len(raw) - offset) // dt.itemsize
    data = np.frombuffer(raw, dt, count=n, offset=offset)
    return int(np.count_nonzero(~np.isfinite(data)))
