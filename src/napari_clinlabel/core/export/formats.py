"""The export formats by name, apart from the exporters so the CLI can list them cheaply."""

VOLUME_LABEL_FORMATS = ("nifti", "nrrd", "mha", "dicom-seg")
PLANE_LABEL_FORMATS = ("png",)  # one 2D image: refused for a volume of several slices
PHYSICAL_LABEL_FORMATS = ("nifti", "nrrd", "mha")  # declare a spacing: refused without one
LABEL_FORMATS = VOLUME_LABEL_FORMATS + PLANE_LABEL_FORMATS
TABLE_FORMATS = ("json", "csv", "coco", "tiles-csv")  # tiles-csv: per-tile grades (pathology)
REPORT_FORMATS = ("dicom-sr",)  # boxes and grades as a DICOM SR measurement report
FORMATS = VOLUME_LABEL_FORMATS + TABLE_FORMATS + REPORT_FORMATS  # for an image of any size
ALL_FORMATS = LABEL_FORMATS + TABLE_FORMATS + REPORT_FORMATS
