"""NIfTI / NRRD / MHA label maps with the source geometry, and their JSON side file.

The image is built from the label array and the :class:`Geometry` alone, so its metadata
dictionary is empty: no DICOM attribute (PatientName, …) can reach an NRRD or MHA header. NIfTI
gets an integer voxel type and the label intent (``intent_code`` 1002 NIFTI_INTENT_LABEL,
``intent_name`` "label"): SimpleITK's writer ignores both, so they are set in the 348-byte header
after writing (for ``.nii.gz`` before compressing). ``descrip`` and ``aux_file`` stay empty.

An image whose file states no pixel size (PNG, JPEG, a TIFF without resolution tags; a
:class:`~.volume.PixelGeometry`) gets its labels as a 2D PNG instead: grayscale, 8 or 16 bits,
values = label values, and no ``pHYs`` chunk, so no reader can take a physical size from it.
NIfTI/NRRD/MHA are refused for it (:func:`require_physical_spacing`): they would declare 1 mm.

A sheared image (gantry-tilted CT, :attr:`Geometry.sheared`) keeps every original voxel, so its
labels carry the shear. NIfTI is written with nibabel: the sform (``sform_code`` 1, scanner)
holds the full sheared affine; the qform (a quaternion cannot hold a shear) is the nearest rigid
grid (orthonormal slice frame, slice spacing along the normal, also in ``pixdim`` so the voxel
volume is right) with ``qform_code`` 0 (unknown). Readers that honour the codes (nibabel, FSL)
take the sform; ITK (SimpleITK, Slicer's NIfTI reader) refuses a non-orthonormal sform when no
qform is coded ("ITK only supports orthonormal direction cosines") rather than guess: for ITK
tools export NRRD, whose non-orthogonal directions ITK reads as they are. NRRD is written
here, header by hand: its ``space directions`` are free vectors, so the shear fits exactly. MHA
(a SimpleITK image: orthonormal direction only) is refused with a message naming the others.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.annotate.reads import (
    readable_arrays,
    require_readable,
    shared_by_readers,
)
from napari_clinlabel.core.annotate.replay import log_spacing_known, replay_labels
from napari_clinlabel.core.errors import ClinlabelError, ExportError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.io import LABEL_SUFFIXES, suffix_of
from napari_clinlabel.core.image.volume import PixelGeometry, spacing_known
from napari_clinlabel.core.log.identity import Actor, current_actor, find_roster
from napari_clinlabel.core.log.reader import iter_records

FORMAT_SUFFIX = {"nifti": ".nii.gz", "nrrd": ".nrrd", "mha": ".mha", "png": ".png"}
PHYSICAL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NIFTI_INTENT_LABEL = 1002
_INTENT_CODE_AT, _INTENT_NAME_AT, _DESCRIP_AT, _AUX_AT = 68, 328, 148, 228


def labelmap_dtype(labels: np.ndarray) -> np.dtype:
    """Smallest unsigned integer type holding every label value (uint8 or uint16)."""
    if labels.size and int(labels.min()) < 0:
        raise ExportError("Label values must be non-negative integers; fix the label layer.")
    top = int(labels.max()) if labels.size else 0
    if top < 256:
        return np.dtype(np.uint8)
    if top < 65536:
        return np.dtype(np.uint16)
    raise ExportError(f"Label value {top} does not fit 16 bits; use values below 65536.")


def suffix_for(fmt: str, out: str | Path) -> str:
    """The file suffix ``out`` should carry for ``fmt`` (``.nii`` stays uncompressed if asked)."""
    name = Path(out).name.lower()
    if fmt == "nifti" and name.endswith(".nii"):
        return ".nii"
    return FORMAT_SUFFIX[fmt]


def _itk_image(labels: np.ndarray, geometry: Geometry) -> sitk.Image:
    if labels.ndim != geometry.ndim:
        raise ExportError(
            f"Label array has {labels.ndim} axes but the image grid has {geometry.ndim}; export "
            "labels drawn on the image's own grid."
        )
    img = sitk.GetImageFromArray(np.ascontiguousarray(labels.astype(labelmap_dtype(labels))))
    return geometry.apply_to_itk(img)  # fresh image: empty metadata dictionary


def set_nifti_label_intent(header_and_data: bytes) -> bytes:
    """NIfTI-1 bytes with the label intent set and the free-text fields cleared."""
    b = bytearray(header_and_data)
    if len(b) < 348 or struct.unpack("<i", bytes(b[:4]))[0] != 348:
        raise ExportError("Internal: SimpleITK wrote an unexpected NIfTI header (not NIfTI-1 LE).")
    b[_INTENT_CODE_AT : _INTENT_CODE_AT + 2] = struct.pack("<h", NIFTI_INTENT_LABEL)
    b[_INTENT_NAME_AT : _INTENT_NAME_AT + 16] = b"label".ljust(16, b"\0")
    b[_DESCRIP_AT : _DESCRIP_AT + 80] = bytes(80)
    b[_AUX_AT : _AUX_AT + 24] = bytes(24)
    return bytes(b)


def png_name(out: str | Path) -> str:
    """``out``'s file name with ``.png`` in place of its label-map suffix."""
    name = Path(out).name
    low = name.lower()
    for s in (*PHYSICAL_SUFFIXES, ".dcm", ".png"):
        if low.endswith(s):
            return name[: -len(s)] + ".png"
    return name + ".png"


def require_physical_spacing(geometry: Geometry, out: str | Path) -> None:
    """Refuse (ExportError) a NIfTI/NRRD/MHA file for an image that states no pixel size, and
    an MHA file for a sheared (gantry-tilted) image, which MHA cannot describe."""
    if geometry.sheared and suffix_of(out) in (".mha", ".mhd"):
        raise ExportError(
            f"{out}: the image is sheared ({geometry.shear_angle_deg:.2f}° gantry tilt) and MHA "
            "holds only an orthonormal direction; export NIfTI (.nii.gz) or NRRD, which keep the "
            "shear, or DICOM SEG on the original frames."
        )
    if not spacing_known(geometry):
        raise ExportError(
            f"{out}: the image states no pixel size (PNG/JPEG/TIFF without resolution tags); a "
            "NIfTI/NRRD/MHA file would declare 1 mm per pixel. Save the labels as PNG "
            f"({png_name(out)}) instead."
        )


def require_png_shape(shape: tuple[int, ...], out: str | Path) -> None:
    """Refuse (ExportError) a PNG for labels of more than one slice: PNG holds one 2D image."""
    if len(shape) == 2 or (len(shape) == 3 and shape[0] == 1):
        return
    slices = f"{shape[0]} slices" if len(shape) == 3 else f"{len(shape)} axes"
    raise ExportError(
        f"{out}: a PNG holds one 2D image but these labels are a volume of {slices} "
        f"{tuple(shape)}; a volume's labels go to NIfTI (.nii.gz, .nii), NRRD or MHA, which keep "
        f"its geometry: choose one of these, e.g. {png_name(out)[:-4]}.nii.gz."
    )


def png_plane(labels: np.ndarray, out: str | Path) -> np.ndarray:
    """The 2D (y, x) plane of ``labels`` for a PNG file; a volume of several slices is refused."""
    a = np.asarray(labels)
    require_png_shape(a.shape, out)
    return a[0] if a.ndim == 3 else a


def render_png(labels: np.ndarray, out: str | Path = "labels.png") -> bytes:
    """Lossless grayscale PNG bytes of a 2D label map (uint8, uint16 when values need it).

    Only IHDR, IDAT and IEND chunks: no ``pHYs`` (a DPI is not a pixel size), no time or text.
    """
    plane = png_plane(labels, out)
    dtype = labelmap_dtype(plane)
    rows = np.ascontiguousarray(plane.astype(dtype.newbyteorder(">")))  # PNG samples: big-endian
    height, width = rows.shape
    raw = np.zeros((height, 1 + width * dtype.itemsize), np.uint8)  # filter byte 0 per row
    raw[:, 1:] = rows.view(np.uint8).reshape(height, -1)
    ihdr = struct.pack(">IIBBBBB", width, height, 8 * dtype.itemsize, 0, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def sheared_nifti_bytes(labels: np.ndarray, geometry: Geometry, compress: bool) -> bytes:
    """NIfTI-1 bytes of a (z, y, x) label map on a sheared grid: sform = the sheared RAS affine
    (code 1, scanner), qform = nearest rigid grid with code 0, label intent, no free text."""
    a = np.ascontiguousarray(labels.astype(labelmap_dtype(labels)))
    img = nib.Nifti1Image(a.T, None)  # nibabel indexes (i, j, k): the transpose of (z, y, x)
    hdr = img.header
    rigid = Geometry(geometry.spacing, geometry.origin, geometry.direction)
    # a quaternion cannot hold the shear: qform (and pixdim) = the unsheared stack with the slice
    # spacing along the normal, which keeps the voxel volume right; code 0 says "do not use"
    img.set_qform(rigid.nifti_affine(), code=0)
    img.set_sform(geometry.nifti_affine(), code=1)
    hdr.set_xyzt_units("mm")
    hdr.set_intent("label", (), name="label")
    hdr["descrip"] = b""
    hdr["aux_file"] = b""
    data = img.to_bytes()
    return gzip.compress(data, compresslevel=6, mtime=0) if compress else data


def nrrd_bytes(labels: np.ndarray, geometry: Geometry) -> bytes:
    """NRRD (gzip) bytes of a 3D (z, y, x) label map in LPS space with the exact geometry.

    ``space directions`` are the index-to-physical matrix's columns, so a shear is kept; the
    header names nothing but the grid (no DICOM attribute can reach it).
    """
    a = np.ascontiguousarray(labels.astype(labelmap_dtype(labels)))
    if a.ndim != 3 or geometry.ndim != 3:
        raise ExportError("Internal: the NRRD writer takes 3D label maps only.")
    m = geometry.index_to_physical_matrix()
    vec = lambda v: "(" + ",".join(f"{float(x):.17g}" for x in v) + ")"  # noqa: E731
    header = "\n".join(
        [
            "NRRD0004",
            "# Complete NRRD file format specification at:",
            "# http://teem.sourceforge.net/nrrd/format.html",
            f"type: {'uint8' if a.dtype == np.uint8 else 'uint16'}",
            "dimension: 3",
            "space: left-posterior-superior",
            "sizes: " + " ".join(str(n) for n in a.shape[::-1]),
            "space directions: " + " ".join(vec(m[:3, c]) for c in range(3)),
            "kinds: domain domain domain",
            "endian: little",
            "encoding: gzip",
            "space origin: " + vec(m[:3, 3]),
        ]
    )
    body = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    return (header + "\n\n").encode("ascii") + gzip.compress(body, compresslevel=6, mtime=0)


def render_labelmap(labels: np.ndarray, geometry: Geometry, suffix: str) -> bytes:
    """The bytes of a label-map file (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``, ``.png``).

    NIfTI/NRRD/MHA carry ``geometry`` and are refused when it states no pixel size; a sheared
    geometry goes to NIfTI (sform) or NRRD with its shear, and is refused for MHA.
    """
    if suffix == ".png":
        return render_png(labels)
    require_physical_spacing(geometry, f"labels{suffix}")
    if geometry.sheared:
        if labels.ndim != 3:
            raise ExportError("Label array must be 3D (z, y, x) on a sheared image's grid.")
        if suffix in (".nii", ".nii.gz"):
            return sheared_nifti_bytes(labels, geometry, compress=suffix == ".nii.gz")
        if suffix == ".nrrd":
            return nrrd_bytes(labels, geometry)
    img = _itk_image(labels, geometry)
    with tempfile.TemporaryDirectory(prefix="clinlabel-export-") as tmp:
        if suffix in (".nii", ".nii.gz"):
            path = Path(tmp) / "labels.nii"
            sitk.WriteImage(img, str(path), useCompression=False)
            data = set_nifti_label_intent(path.read_bytes())
            return gzip.compress(data, compresslevel=6, mtime=0) if suffix == ".nii.gz" else data
        if suffix in (".nrrd", ".mha"):
            path = Path(tmp) / f"labels{suffix}"
            sitk.WriteImage(img, str(path), useCompression=True)
            return path.read_bytes()
    raise ExportError(
        f"Unsupported label-map suffix {suffix!r}; use .nii.gz, .nii, .nrrd, .mha or .png."
    )


def side_file(
    labels: np.ndarray,
    geometry: Geometry,
    schema: Any | None,
    head: dict[str, Any] | None,
    image_sha256: str | None,
    labels_name: str,
    file_name: str,
) -> dict[str, Any]:
    """JSON side file: labels present (value, name, colour, codes, voxels, mL), schema, log head.

    For an image that states no pixel size, ``spacing_known`` is false and ``volume_ml`` null.
    """
    values, counts = np.unique(labels[labels != 0], return_counts=True)
    known = spacing_known(geometry)
    ml_per_voxel = geometry.voxel_volume_mm3 / 1000.0
    entries = []
    for v, n in zip(values.tolist(), counts.tolist(), strict=True):
        lab = schema.label(v) if schema is not None else None
        ml = n * ml_per_voxel if known else None
        entry: dict[str, Any] = {"value": int(v), "voxels": int(n), "volume_ml": ml}
        if lab is not None:
            entry.update(
                name=lab.name,
                color=lab.color,
                category=lab.category.to_dict(),
                type=lab.type.to_dict(),
            )
        entries.append(entry)
    return {
        "file": file_name,
        "labels_layer": labels_name,
        "labels": entries,
        "schema": schema.ref() if schema is not None else None,
        "log_head": head,
        "image_sha256": image_sha256,
        "geometry": geometry.to_dict(),
        "spacing_known": known,
        "axes": "file in ITK/LPS physical space; arrays (z, y, x)"
        if known
        else "PNG rows = y, columns = x, in pixels (the image states no pixel size)",
    }


def side_file_bytes(content: dict[str, Any]) -> bytes:
    """Canonical, readable bytes of a side file."""
    return (json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_labels(array: np.ndarray, geometry: Geometry, path: str | Path) -> Path:
    """Save an integer label map with ``geometry`` to .nii/.nii.gz/.nrrd/.mha/.png, atomically.

    Writes a temporary file in the same folder, fsyncs it and renames it over ``path``; the
    image carries no metadata dictionary, so no DICOM attribute reaches the header. A 2D map may
    be saved as PNG (pixels only); NIfTI/NRRD/MHA are refused for a geometry that states no pixel
    size (a :class:`~.volume.PixelGeometry`), since they would declare 1 mm per pixel.
    """
    p = Path(path)
    suffix = suffix_of(p)
    allowed = (*LABEL_SUFFIXES, ".png")
    if suffix not in allowed:
        raise ExportError(f"{p}: labels can be saved as {', '.join(allowed)}; choose one of these.")
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if a.dtype.kind not in "iu":
        raise ExportError(f"{p}: label maps must hold integers, got {a.dtype}; round them first.")
    if a.ndim != geometry.ndim:
        raise ExportError(
            f"{p}: labels have {a.ndim} axes but the image geometry has {geometry.ndim}; "
            "save one volume's labels at a time."
        )
    if suffix == ".png":
        data = render_png(a, p)  # refuses a volume of several slices
    else:
        require_physical_spacing(geometry, p)
    if not p.parent.is_dir():
        raise ExportError(f"{p}: the folder {p.parent} does not exist; create it first.")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=f".tmp{suffix}", dir=p.parent)
    os.close(fd)
    try:
        if suffix == ".png" or geometry.sheared:  # a shear: written here, not by SimpleITK
            data = data if suffix == ".png" else render_labelmap(a, geometry, suffix)
            with open(tmp, "wb") as fh:
                fh.write(data)
        else:
            img = geometry.apply_to_itk(sitk.GetImageFromArray(np.ascontiguousarray(a)))
            sitk.WriteImage(img, tmp, useCompression=suffix != ".nii")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except RuntimeError as exc:
        raise ExportError(f"{p}: SimpleITK could not write the labels ({exc}).") from exc
    except OSError as exc:
        raise ExportError(
            f"{p}: cannot write the labels ({exc.strerror}); free space or choose a writable "
            "folder. Nothing was changed."
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def write_replay(
    log_path: str | os.PathLike[str],
    at_seq: int | None,
    out_path: str | os.PathLike[str],
    labels_name: str | None = None,
    actor: Actor | None = None,
) -> Path:
    """Write the labels as they stood after ``at_seq`` to NIfTI with the image's geometry; in a
    log several readers share, another's read only for ``actor`` (default: the signed-in user)
    when they may see it."""
    res = replay_labels(log_path, at_seq)
    if not res.labels:
        raise ClinlabelError(f"{log_path}: no labels exist at seq {res.seq}; choose a later --at.")
    records = list(iter_records(log_path))
    shared = actor is not None or shared_by_readers(records)  # then it depends on who asks
    who = (actor if actor is not None else current_actor(near=log_path)) if shared else None
    roster = find_roster(log_path) if shared else None
    if labels_name is None:
        readable = set(readable_arrays(records, who, roster)[0]) if who else set(res.labels)
        names = [n for n in res.labels if n in readable]
        if len(names) != 1:
            raise ClinlabelError(
                f"{log_path}: several label layers ({', '.join(names)}); name one with --labels."
                if names
                else f"{log_path}: no labels of yours exist at seq {res.seq}."
            )
        labels_name = names[0]
    if who is not None:
        require_readable(records, labels_name, who, roster, str(log_path), "Nothing was written.")
    if labels_name not in res.labels:
        raise ClinlabelError(
            f"{log_path}: no labels {labels_name!r} at seq {res.seq}; have {', '.join(res.labels)}."
        )
    arr = res.labels[labels_name]
    geometry = res.geometry
    if geometry is None:
        raise ClinlabelError(
            f"{log_path}: the log has no image.open record with the image geometry, so the labels "
            "cannot be placed in space; export them from the viewer instead."
        )
    if not log_spacing_known(log_path, None, geometry):  # pixels: write_labels refuses mm formats
        geometry = PixelGeometry.like(geometry)
    return write_labels(arr, geometry, out_path)
