"""Qt-free napari glue: a :class:`Volume` ↔ a napari layer (data tuple, affine, metadata).

The affine is ``geometry.napari_affine(leading_axes)``, so ``layer.data_to_world(index)`` is the
ITK physical point in (z, y, x) mm (for a gantry-tilted series the affine carries the shear, so
it is the sheared position each slice's ImagePositionPatient gives). The layer's ``metadata["clinlabel"]`` carries everything
needed to rebuild the Volume: PHI-free meta, the geometry (ITK order), shape, dtype, leading
axes, and ``spacing_known`` (False when the file states no physical pixel size: sizes on the
layer are then pixels, not mm). Labels layers made from an image should get the same metadata
(see :func:`clinlabel_metadata`), which is what the labels writer reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import Volume

LABELS_META = "clinlabel_labels"  # key of a managed labels layer's own metadata (name, token)
SOFT_TISSUE_WINDOW = (40.0, 400.0)  # CT centre/width in HU
_META_ONLY = ("geometry", "shape", "dtype", "leading_axes")


def clinlabel_metadata(volume: Volume) -> dict[str, Any]:
    """``layer.metadata`` for a layer showing ``volume`` (or labels drawn on it)."""
    _ = volume.sha256  # the voxel digest always travels with the layer
    meta = {k: v for k, v in volume.meta.items() if not k.startswith("_")}
    meta.update(
        geometry=volume.geometry.to_dict(),
        shape=[int(n) for n in volume.base.shape],
        dtype=str(volume.base.dtype),
        leading_axes=volume.leading_axes,
        spacing_known=volume.spacing_known,
    )
    return {"clinlabel": meta}


def contrast_limits(volume: Volume) -> list[float] | None:
    """Display range: DICOM window, CT soft-tissue window, else 0.5–99.5 percentiles."""
    if volume.rgb and np.dtype(volume.base.dtype) == np.uint8:
        return None
    window = volume.meta.get("window")
    if not window and volume.meta.get("modality") == "CT":
        window = SOFT_TISSUE_WINDOW
    if window and window[1]:
        c, w = float(window[0]), float(window[1])
        return [c - w / 2.0, c + w / 2.0]
    sample = _subsample(volume)
    if sample.size == 0:
        return None
    lo, hi = np.percentile(sample, [0.5, 99.5])
    if not window and _looks_like_ct_hu(volume, float(lo), float(hi)):
        c, w = SOFT_TISSUE_WINDOW
        return [c - w / 2.0, c + w / 2.0]
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
        hi = hi if hi > lo else lo + 1.0
    return [float(lo), float(hi)]


def _looks_like_ct_hu(volume: Volume, lo: float, hi: float) -> bool:
    """A 3D volume of unknown modality whose darkest voxels are air in HU (NIfTI/NRRD CT)."""
    return (
        volume.meta.get("modality") in (None, "", "OT")
        and volume.geometry.ndim == 3
        and not volume.rgb
        and np.dtype(volume.base.dtype).kind in "if"
        and -1100.0 <= lo <= -900.0
        and 0.0 < hi <= 4000.0
    )


def _subsample(volume: Volume, target: int = 1_000_000) -> np.ndarray:
    """At most about ``target`` voxels, strided evenly (the smallest level when multiscale)."""
    arr = volume.array[-1] if volume.multiscale else volume.array
    step = max(1, int(np.ceil((int(np.prod(arr.shape)) / target) ** (1.0 / arr.ndim))))
    sample = np.asarray(arr[(slice(None, None, step),) * arr.ndim])
    return sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample.ravel()


def layer_name(volume: Volume) -> str:
    """Series description, else the file name, else the sample name."""
    meta = volume.meta
    for key in ("series_description", "sample"):
        if meta.get(key):
            return str(meta[key])
    src = volume.source_path
    return src.name if src else "image"


def volume_to_layer_data(volume: Volume) -> tuple[Any, dict[str, Any], str]:
    """napari LayerDataTuple ``(data, kwargs, "image")`` with the exact physical affine."""
    kwargs: dict[str, Any] = {
        "name": layer_name(volume),
        "affine": volume.geometry.napari_affine(volume.leading_axes),
        "rgb": volume.rgb,
        "multiscale": volume.multiscale,
        "metadata": clinlabel_metadata(volume),
    }
    limits = contrast_limits(volume)
    if limits is not None:
        kwargs["contrast_limits"] = limits
    return (volume.array, kwargs, "image")


def volume_from_layer(layer: Any) -> Volume:
    """Rebuild the :class:`Volume` behind an image (or labels) layer from its metadata.

    ``meta["spacing_known"]`` False gives back a :class:`~.core.volume.PixelGeometry`.
    """
    meta = dict((getattr(layer, "metadata", None) or {}).get("clinlabel") or {})
    if "geometry" not in meta:
        raise InputError(
            f"layer '{getattr(layer, 'name', '?')}' was not opened by napari-clinlabel, so its "
            "physical geometry is unknown. Open the image with the napari-clinlabel reader."
        )
    geometry = Geometry.from_dict(meta["geometry"])
    data = layer.data
    multiscale = bool(getattr(layer, "multiscale", False))
    array = list(data) if multiscale else data
    for key in _META_ONLY:
        meta.pop(key, None)
    return Volume(array, geometry, meta)
