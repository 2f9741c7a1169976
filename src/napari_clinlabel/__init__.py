"""napari-clinlabel: clinical-grade annotation of medical images with an auditable sidecar log."""

__version__ = "0.1.0"
