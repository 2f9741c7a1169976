"""The export formats by name, apart from the exporters so the CLI can list them cheaply."""

LABEL_FORMATS = ("nifti", "nrrd", "mha", "dicom-seg")
TABLE_FORMATS = ("json", "csv", "coco")
FORMATS = LABEL_FORMATS + TABLE_FORMATS
