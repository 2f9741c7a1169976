"""Images in: open any supported file as a :class:`Volume` (voxels + physical geometry + PHI-free
metadata), and the geometry contract every other package relies on.

Modules: ``geometry`` (:class:`Geometry`, LPS millimetres and the napari affine), ``volume``
(:class:`Volume`, :class:`PixelGeometry` for images without a pixel size, ``spacing_known``),
``io`` (:func:`read_volumes`: DICOM, NIfTI, NRRD, MetaImage, PNG/JPEG/TIFF), ``dicom/`` (header
scan, series validation and sorting, pixels), ``slide`` (big TIFFs as lazy multiscale volumes),
``samples`` (phantoms generated in code; not re-exported, as ``samples``).
"""

from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.io import is_dicom_file, read_volumes, suffix_of
from napari_clinlabel.core.image.volume import PixelGeometry, Volume, spacing_known

__all__ = [
    "Geometry",
    "PixelGeometry",
    "Volume",
    "is_dicom_file",
    "read_volumes",
    "spacing_known",
    "suffix_of",
]
