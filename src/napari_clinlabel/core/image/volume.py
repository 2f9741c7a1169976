"""An opened image: voxels in napari order, physical geometry and PHI-free metadata."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.image.geometry import Geometry


def voxel_sha256(array: Any, chunk_bytes: int = 64 << 20) -> str:
    """sha256 hex of the voxel bytes in C order (napari axis order), read in bounded chunks.

    Works on numpy arrays and on lazy (dask) arrays without materialising them whole.
    """
    h = hashlib.sha256()
    if isinstance(array, np.ndarray):
        a = np.ascontiguousarray(array)
        flat = a.reshape(-1).view(np.uint8) if a.size else np.empty(0, np.uint8)
        for start in range(0, flat.size, chunk_bytes):
            h.update(memoryview(flat[start : start + chunk_bytes]))
        return h.hexdigest()
    # lazy array: hash row blocks along the first axis in order
    rows = max(1, int(chunk_bytes // max(1, np.prod(array.shape[1:]) * array.dtype.itemsize)))
    for start in range(0, array.shape[0], rows):
        block = np.ascontiguousarray(np.asarray(array[start : start + rows]))
        h.update(memoryview(block.reshape(-1).view(np.uint8)))
    return h.hexdigest()


class PixelGeometry(Geometry):
    """Geometry of an image whose file states no physical pixel size (PNG, JPEG, a TIFF without
    resolution tags): unit spacing, so its "mm" are pixels and no size on it may be called mm.

    napari still needs a spacing, so the values are a plain unit grid; only the type says they
    are not physical. ``to_dict`` is the same as a :class:`Geometry`'s: the flag travels apart,
    as ``meta["spacing_known"]`` (see :class:`Volume`).
    """

    @classmethod
    def like(cls, geometry: Geometry) -> PixelGeometry:
        """A unit-spacing pixel geometry with ``geometry``'s origin and direction."""
        return cls((1.0,) * geometry.ndim, tuple(geometry.origin), tuple(geometry.direction))


def spacing_known(geometry: Geometry) -> bool:
    """True when ``geometry``'s spacing is physical (mm); False for a :class:`PixelGeometry`."""
    return not isinstance(geometry, PixelGeometry)


@dataclass
class Volume:
    """Voxels (z, y, x) / (t, z, y, x) / (y, x[, rgb]) with geometry and metadata.

    ``meta`` never holds patient names, IDs or birth dates: only modality, UIDs, series
    description, window, the source path and the voxel digest.

    ``meta["spacing_known"] = False`` (or a :class:`PixelGeometry`) marks an image whose file
    states no physical pixel size; the two are kept in step, so either one is enough.
    """

    array: Any  # numpy array, or a list of arrays (multiscale, largest first)
    geometry: Geometry
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.meta.get("spacing_known") is False and spacing_known(self.geometry):
            self.geometry = PixelGeometry.like(self.geometry)
        elif not spacing_known(self.geometry):
            self.meta["spacing_known"] = False

    @property
    def spacing_known(self) -> bool:
        """True when the spacing is physical (mm); False when sizes on it are in pixels."""
        return spacing_known(self.geometry)

    @property
    def rgb(self) -> bool:
        """True for colour 2D images (last axis holds RGB/RGBA)."""
        return bool(self.meta.get("rgb", False))

    @property
    def multiscale(self) -> bool:
        """True when ``array`` is a list of resolution levels."""
        return isinstance(self.array, list)

    @property
    def base(self) -> Any:
        """Full-resolution array."""
        return self.array[0] if self.multiscale else self.array

    @property
    def leading_axes(self) -> int:
        """Non-spatial axes before the spatial ones (1 for a 4D series of volumes)."""
        spatial = self.geometry.ndim + (1 if self.rgb else 0)
        return self.base.ndim - spatial

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape of the spatial grid in napari order (z, y, x) or (y, x)."""
        lead = self.leading_axes
        return tuple(self.base.shape[lead : lead + self.geometry.ndim])

    @property
    def sha256(self) -> str:
        """Digest of the voxel data (computed once and cached in ``meta``)."""
        if "sha256" not in self.meta:
            self.meta["sha256"] = voxel_sha256(self.base)
        return self.meta["sha256"]

    @property
    def series_uid(self) -> str | None:
        """SeriesInstanceUID for DICOM, else None."""
        return self.meta.get("series_uid")

    @property
    def source_path(self) -> Path | None:
        """File or DICOM folder the volume came from."""
        p = self.meta.get("source_path")
        return Path(p) if p else None

    def image_ref(self) -> dict[str, Any]:
        """The ``image`` field of sidecar log records."""
        return {"uid": self.series_uid, "sha256": self.sha256}

    def to_itk(self, array: np.ndarray | None = None) -> sitk.Image:
        """A SimpleITK image of ``array`` (default: the voxels) carrying this geometry exactly.

        The metadata dictionary is left empty, so no DICOM attribute leaks into headers.
        """
        a = np.asarray(self.base if array is None else array)
        img = sitk.GetImageFromArray(a, isVector=self.rgb and a.ndim == self.geometry.ndim + 1)
        return self.geometry.apply_to_itk(img)
