"""The ``image.resample`` record: a human asked for an unevenly spaced series to be resampled.

Resampling changes voxels, so it happens only on an explicit request, and that request is one
record of the image's sidecar log, attributed to the human who asked (the log's actor), with
``source`` naming the tool, and ``data`` saying from which slice steps to which spacing, how,
and how many slices (:func:`~napari_clinlabel.core.image.dicom.volume.resample_record_data`).
"""

from __future__ import annotations

from typing import Any

from napari_clinlabel.core.image.dicom.volume import resample_record_data
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.audit_log import AuditLog

ACTION = "image.resample"
TOOL = {"kind": "tool", "name": "clinlabel.resample_uneven", "version": "1"}


def record_resample(log: AuditLog, volume: Volume) -> dict[str, Any]:
    """Append the one ``image.resample`` record of ``volume`` (a resampled volume) to ``log``."""
    return log.append(ACTION, None, resample_record_data(volume), TOOL)


__all__ = ["ACTION", "record_resample"]
