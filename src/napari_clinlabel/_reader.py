"""npe2 reader: DICOM folders/files, NIfTI, NRRD, MetaImage and 2D images via core.volume_io.

Errors are :class:`ClinlabelError` subclasses; napari shows their message (file, problem, fix).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from napari import current_viewer
from napari.utils.notifications import show_info

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.export.sr_read import (
    SrReport,
    import_boxes,
    place_boxes,
    read_sr,
    sr_files,
)
from napari_clinlabel.core.image.dicom.seg_read import read_seg, seg_files, seg_layer_data
from napari_clinlabel.core.image.dicom.series import RESAMPLE_HINT
from napari_clinlabel.core.image.io import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    ITK_SUFFIXES,
    is_dicom_file,
    read_volumes,
    suffix_of,
)
from napari_clinlabel.glue.layers import volume_from_layer, volume_to_layer_data
from napari_clinlabel.glue.session import get_session

PathLike = str | Path
ReaderFunction = Callable[[PathLike | list[PathLike]], list[tuple[Any, dict, str]]]


def _dir_has_dicom(folder: Path, probe: int = 64) -> bool:
    """True when one of the first ``probe`` files under ``folder`` looks like DICOM."""
    if folder.suffix.lower() in (".zarr", ".n5"):
        return False
    seen = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if is_dicom_file(Path(root) / name):
                return True
            seen += 1
            if seen >= probe:
                return False
    return False


def _supported(path: PathLike) -> bool:
    p = Path(path)
    if p.is_dir():
        return _dir_has_dicom(p)
    suffix = suffix_of(p)
    if suffix in ITK_SUFFIXES or suffix in IMAGE_SUFFIXES or suffix in DICOM_SUFFIXES:
        return True
    return p.is_file() and is_dicom_file(p)


def get_reader(path: PathLike | list[PathLike]) -> ReaderFunction | None:
    """The reader function when every path is something this plugin opens, else None."""
    paths = path if isinstance(path, list | tuple) else [path]
    if not paths or not all(_supported(p) for p in paths):
        return None
    return read_layers


def read_layers(path: PathLike | list[PathLike]) -> list[tuple[Any, dict, str]]:
    """One image layer per volume (one per DICOM series) with its physical affine."""
    target = [Path(p) for p in path] if isinstance(path, list | tuple) else Path(path)
    segs = seg_files(target) if isinstance(target, Path) else []
    if segs:  # a DICOM SEG opens as labels (names, codes, colours), not as a grey image
        return [t for f in segs for t in seg_layer_data(read_seg(f), f"SEG {f.stem}")]
    srs = sr_files(target) if isinstance(target, Path) else []
    if srs:  # a DICOM SR (TID 1500) opens as its lesion boxes, not as an image
        return [_sr_layer(f) for f in srs]
    volumes = read_volumes(target)
    blocks = [v for v in volumes if v.meta.get("slice_block")]
    if blocks:  # uneven spacing: say how to get one volume (never resampled unasked)
        show_info(
            f"{blocks[0].source_path.name if blocks[0].source_path else 'series'}: uneven slice "
            f"spacing: opened as {len(blocks)} evenly spaced blocks; to annotate it as one "
            f"volume, {RESAMPLE_HINT}."
        )
    return [volume_to_layer_data(v) for v in volumes]


# -- DICOM SR: boxes over the referenced image ------------------------------------------------
def _open_image_for(report: SrReport) -> Any:
    """The image layer of the current viewer showing the series the report's boxes are on."""
    viewer = current_viewer()
    wanted = {o.sop_instance_uid for f in report.findings for o in f.outlines}
    for layer in [] if viewer is None else list(viewer.layers):
        sops = (layer.metadata.get("clinlabel") or {}).get("sop_instance_uids") or []
        if layer.__class__.__name__ == "Image" and wanted and wanted <= set(sops):
            return viewer, layer
    return viewer, None


def _series_beside(report: SrReport) -> Any:
    """The referenced series read from a folder beside the SR (its own, a sibling, a child of a
    sibling: an export folder, a PACS pull's study folder), or None."""
    base = report.path.parent
    folders = [base, *(d for d in sorted(base.parent.iterdir()) if d.is_dir() and d != base)]
    folders += [c for d in folders[1:] for c in sorted(d.iterdir()) if c.is_dir()]
    for folder in folders[:200]:
        try:
            first = next(f for f in sorted(folder.iterdir()) if f.is_file() and is_dicom_file(f))
        except StopIteration:
            continue
        head = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        uid = str(head.get("SeriesInstanceUID", ""))
        if uid in report.referenced_series_uids:
            for v in read_volumes(folder):
                if v.series_uid == uid:
                    return v
    return None


def _sr_layer(path: Path) -> tuple[Any, dict, str]:
    """One Shapes layer of the SR's boxes on the referenced series' grid (its physical affine):
    the series open in the viewer (the boxes are then imported into its log, one record), else
    found beside the SR file (shown, not imported: no image of it is open)."""
    report = read_sr(path)
    if not report.findings:
        raise InputError(
            f"{path.name}: the report holds no lesion box drawn on an image "
            f"({len(report.skipped)} group(s) without an image outline); nothing to show."
        )
    viewer, image = _open_image_for(report)
    volume = volume_from_layer(image) if image is not None else _series_beside(report)
    if volume is None:
        raise InputError(
            f"{path.name}: the series the report's boxes are drawn on is neither open nor beside "
            "the file; open that series first, then the SR."
        )
    ndim = volume.geometry.ndim
    sops = volume.meta.get("sop_instance_uids") or []
    if ndim == 2 and not sops:
        sops = [o.sop_instance_uid for o in report.findings[0].outlines]
    spacing_z = float(volume.geometry.spacing_zyx[0]) if ndim == 3 else None
    boxes = place_boxes(report, list(sops), ndim, spacing_z)
    imported = False
    if image is not None and viewer is not None:
        log = get_session(viewer).log_for(image)
        imported = import_boxes(log, report, boxes, volume) is not None
        if not imported:
            show_info(
                f"{path.name}: its {len(boxes)} box(es) are already in this image's log; "
                "nothing imported."
            )
    rects, ids, labels = [], [], []
    for b in boxes:
        lo, hi = b.zyx_min, b.zyx_max
        corners = [[lo[-2], lo[-1]], [lo[-2], hi[-1]], [hi[-2], hi[-1]], [hi[-2], lo[-1]]]
        zs = [None] if ndim == 2 else range(b.slice_range[0], b.slice_range[1] + 1)
        for z in zs:
            rects.append(np.array(corners if z is None else [[z, *c] for c in corners], float))
            ids.append(b.id)
            labels.append(f"{b.id} {b.cls or 'class not set'}")
    kwargs = {
        "name": f"SR {path.stem}",
        "shape_type": "rectangle",
        "affine": volume.geometry.napari_affine(),
        "edge_color": "yellow",
        "face_color": "transparent",
        "features": {"box_id": ids, "label": labels},
        "text": {"string": "{label}", "size": 9, "color": "yellow"},
        "metadata": {"clinlabel_sr": {
            "sop_instance_uid": report.sop_instance_uid, "series_uid": report.series_uid,
            "referenced_series_uids": report.referenced_series_uids, "imported": imported,
            "skipped": report.skipped}},
    }  # fmt: skip
    return rects, kwargs, "shapes"
