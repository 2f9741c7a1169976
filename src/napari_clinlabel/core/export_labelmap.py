"""NIfTI / NRRD / MHA label maps with the source geometry, and their JSON side file.

The image is built from the label array and the :class:`Geometry` alone, so its metadata
dictionary is empty: no DICOM attribute (PatientName, …) can reach an NRRD or MHA header. NIfTI
gets an integer voxel type and the label intent (``intent_code`` 1002 NIFTI_INTENT_LABEL,
``intent_name`` "label"): SimpleITK's writer ignores both, so they are set in the 348-byte header
after writing (for ``.nii.gz`` before compressing). ``descrip`` and ``aux_file`` stay empty.
"""

from __future__ import annotations

import gzip
import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import ExportError
from .geometry import Geometry

FORMAT_SUFFIX = {"nifti": ".nii.gz", "nrrd": ".nrrd", "mha": ".mha"}
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


def render_labelmap(labels: np.ndarray, geometry: Geometry, suffix: str) -> bytes:
    """The bytes of a label-map file (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``) on ``geometry``."""
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
    raise ExportError(f"Unsupported label-map suffix {suffix!r}; use .nii.gz, .nii, .nrrd or .mha.")


def side_file(
    labels: np.ndarray,
    geometry: Geometry,
    schema: Any | None,
    head: dict[str, Any] | None,
    image_sha256: str | None,
    labels_name: str,
    file_name: str,
) -> dict[str, Any]:
    """JSON side file: labels present (value, name, colour, codes, voxels, mL), schema, log head."""
    values, counts = np.unique(labels[labels != 0], return_counts=True)
    ml_per_voxel = geometry.voxel_volume_mm3 / 1000.0
    entries = []
    for v, n in zip(values.tolist(), counts.tolist(), strict=True):
        lab = schema.label(v) if schema is not None else None
        entry: dict[str, Any] = {"value": int(v), "voxels": int(n), "volume_ml": n * ml_per_voxel}
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
        "axes": "file in ITK/LPS physical space; arrays (z, y, x)",
    }


def side_file_bytes(content: dict[str, Any]) -> bytes:
    """Canonical, readable bytes of a side file."""
    return (json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
