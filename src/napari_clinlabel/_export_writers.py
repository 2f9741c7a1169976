"""npe2 writers for the export formats: each calls :func:`core.export.export` (gate, record, atomic).

Labels layers → NIfTI / NRRD / MHA / PNG (2D, pixels) / DICOM SEG; shapes layers (lesion boxes) → JSON / CSV / COCO.
The layer must come from an image opened with napari-clinlabel: its ``metadata["clinlabel"]``
names the source (``source_path``), whose sidecar log holds the labels, boxes and grades; the
labels layer's own name in the log is ``metadata["clinlabel_labels"]["name"]`` (else the layer
name). What is written is what the log replays to, never unlogged layer state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.utils.notifications import show_info

from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.glue.layers import LABELS_META


def _source(path: str, attributes: dict[str, Any]) -> str:
    meta = (attributes.get("metadata") or {}).get("clinlabel") or {}
    src = meta.get("source_path")
    if not src:
        raise ExportError(
            f"{path}: layer '{attributes.get('name', '?')}' does not say which image it belongs "
            "to (metadata['clinlabel']['source_path']); create it from an image opened with "
            "napari-clinlabel, or use 'clinlabel export' on the image."
        )
    return str(src)


def _labels_name(attributes: dict[str, Any]) -> str:
    own = (attributes.get("metadata") or {}).get(LABELS_META) or {}
    return str(own.get("name") or attributes.get("name") or "labels")


def _resampled(attributes: dict[str, Any]) -> bool:
    """True for a layer of a DICOM series opened resampled: its log is the resampled one, and
    label maps go back onto the original slices."""
    meta = (attributes.get("metadata") or {}).get("clinlabel") or {}
    return bool(meta.get("resampled"))


def _labels(path: str, data: Any, attributes: dict[str, Any], fmt: str) -> list[str]:
    res = export(
        _source(path, attributes),
        fmt,
        path,
        labels_name=_labels_name(attributes),
        expect_labels=np.asarray(data),
        resample=_resampled(attributes),
    )
    for note in res.notes:  # e.g. labels carried between original slices: said, never silent
        show_info(f"Export: {note}")
    return [str(o.path) for o in res.outputs]


def _tables(path: str, attributes: dict[str, Any], fmt: str) -> list[str]:
    res = export(_source(path, attributes), fmt, path, resample=_resampled(attributes))
    return [str(o.path) for o in res.outputs]


def write_labels_nifti(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Labels layer → NIfTI label map (``.nii.gz``/``.nii``) + JSON side file."""
    return _labels(path, data, attributes, "nifti")


def write_labels_nrrd(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Labels layer → NRRD label map + JSON side file."""
    return _labels(path, data, attributes, "nrrd")


def write_labels_mha(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Labels layer → MetaImage label map + JSON side file."""
    return _labels(path, data, attributes, "mha")


def write_labels_png(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Labels layer of a 2D image → grayscale PNG label map (no pixel size) + JSON side file."""
    return _labels(path, data, attributes, "png")


def write_labels_dicom_seg(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Labels layer → DICOM SEG (``.dcm``) referencing the source series."""
    return _labels(path, data, attributes, "dicom-seg")


def write_boxes_json(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Shapes layer (lesion boxes) → JSON of the logged boxes and grades."""
    return _tables(path, attributes, "json")


def write_boxes_csv(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Shapes layer (lesion boxes) → CSV of boxes (+ ``.grades.csv``)."""
    return _tables(path, attributes, "csv")


def write_boxes_coco(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Shapes layer (lesion boxes) → COCO JSON (2D boxes, tile grades)."""
    return _tables(path, attributes, "coco")
