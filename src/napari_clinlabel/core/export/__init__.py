"""Export: labels, tables and reports leave the workspace only through the logged gate.

The one entry point is :func:`napari_clinlabel.core.export.gate.export` (CLI, napari writers and
the Python API all call it): it refuses while proposals are pending, rebuilds the final labels
from the log, writes the files atomically and appends one ``export`` record. The writers behind
it: ``labelmap`` (NIfTI / NRRD / MHA / PNG with the source geometry), ``seg`` (DICOM SEG,
highdicom), ``sr`` (DICOM SR TID 1500), ``tables`` (boxes and grades as JSON, CSV, COCO).
Only the format names are re-exported here (from ``formats``), so listing them stays cheap:
importing this package does not load the exporters.
"""

from napari_clinlabel.core.export.formats import (
    ALL_FORMATS,
    FORMATS,
    LABEL_FORMATS,
    REPORT_FORMATS,
    TABLE_FORMATS,
)

__all__ = ["ALL_FORMATS", "FORMATS", "LABEL_FORMATS", "REPORT_FORMATS", "TABLE_FORMATS"]
