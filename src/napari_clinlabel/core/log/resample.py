"""The ``image.resample`` record: a human asked for an unevenly spaced series to be resampled.

Resampling changes voxels, so it happens only on an explicit request, and that request is one
record of the image's sidecar log, attributed to the human who asked (the log's actor), with
``source`` naming the tool, and ``data`` saying from which slice steps to which spacing, how,
and how many slices (:func:`~napari_clinlabel.core.image.dicom.volume.resample_record_data`).
The resampled image is other voxels than the series' even blocks, so it has its own sidecar
log beside the folder, ``<folder>.resampled.clinlabel.jsonl`` (:func:`resampled_log_base`);
reopening it without naming a spacing gives the grid that log last recorded, so its labels and
records stay on one image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import InputError, LogIntegrityError
from napari_clinlabel.core.image.dicom.volume import read_dicom_resampled, resample_record_data
from napari_clinlabel.core.image.io import is_dicom_file
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records, sidecar_paths

ACTION = "image.resample"
TOOL = {"kind": "tool", "name": "clinlabel.resample_uneven", "version": "1"}


def record_resample(log: AuditLog, volume: Volume) -> dict[str, Any]:
    """Append the one ``image.resample`` record of ``volume`` (a resampled volume) to ``log``."""
    return log.append(ACTION, None, resample_record_data(volume), TOOL)


def resampled_log_base(path: str | os.PathLike[str]) -> Path:
    """What the log of the series at ``path`` (its folder, or one DICOM file of it) opened
    resampled is named after: ``<folder>.resampled`` (its log: ``<folder>.resampled.clinlabel.jsonl``)."""
    p = Path(path).resolve()
    if p.is_file() and is_dicom_file(p):
        p = p.parent
    return p.parent / f"{p.name}.resampled"


def last_resample(records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The log's latest ``image.resample`` record, or None when the image was never resampled."""
    found = None
    for rec in records:
        if rec.get("action") == ACTION:
            found = rec
    return found


def read_resampled(
    path: str | os.PathLike[str], spacing_mm: float | None = None, series_uid: str | None = None
) -> Volume:
    """The series at ``path`` resampled on request: to ``spacing_mm``, else to the spacing its
    sidecar log last recorded (the same grid as before), else to the smallest original step.
    Records nothing: the caller that opens it for a human writes :func:`record_resample`."""
    if spacing_mm is None:
        log_path = sidecar_paths(resampled_log_base(path))[0]
        try:
            rec = last_resample(iter_records(log_path)) if log_path.is_file() else None
        except LogIntegrityError:
            rec = None  # the log is checked (and refused) when it is opened
        if rec is not None and (series_uid is None or rec["data"].get("series_uid") == series_uid):
            spacing_mm = float(rec["data"]["to_spacing_mm"])
            series_uid = series_uid or rec["data"].get("series_uid")
    volume = read_dicom_resampled(Path(path), spacing_mm, series_uid)
    volume.meta["log_base"] = str(resampled_log_base(volume.source_path or path))
    return volume


def require_recorded_grid(volume: Volume) -> None:
    """Refuse, in one line, opening a resampled ``volume`` whose grid is not the one its
    sidecar log was made on (another spacing than the log recorded), before the log is opened
    (which would say only that the log belongs to other voxels)."""
    base = volume.meta.get("log_base")
    log_path = sidecar_paths(base)[0] if base else None
    if log_path is None or not log_path.is_file():
        return
    try:
        records = list(iter_records(log_path))
    except LogIntegrityError:
        return  # the log is checked (and refused) when it is opened
    ref = next((r.get("image") for r in records if r.get("image")), None) or {}
    rec = last_resample(records)
    if rec is None or not ref.get("sha256") or ref["sha256"] == volume.sha256:
        return
    data = rec.get("data") or {}
    recorded = float(data.get("to_spacing_mm", 0.0))
    used = float((volume.meta.get("resampled") or {}).get("to_spacing_mm", 0.0))
    if recorded > 0 and abs(recorded - used) > 1e-9 * max(recorded, 1.0):
        raise InputError(
            f"{log_path.name}: this log recorded the series resampled to {recorded:.10g} mm "
            f"({data.get('resampled_slices', '?')} slices), not {used:.10g} mm; pass that "
            "spacing (or none: the log's is used), or move the log aside to start a new one."
        )
    raise InputError(
        f"{log_path.name}: resampled again at the recorded {recorded:.10g} mm the series gives "
        "other voxels than this log records (files added or removed, or a log made before the "
        "grid ended on the last slice); restore the series, or move the log aside to start anew."
    )


__all__ = [
    "ACTION",
    "TOOL",
    "last_resample",
    "read_resampled",
    "record_resample",
    "require_recorded_grid",
    "resampled_log_base",
]
