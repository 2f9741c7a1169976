"""Semi-automatic segmentation tools: each returns the voxels to change, never touching a layer.

The tools compute boolean masks (z, y, x) from an image and/or a label array; the caller turns a
mask into a change with :func:`apply_tool_result` (which never overwrites another label unless
asked) and logs it with :func:`napari_clinlabel.core.annotate.label_edits.record_label_change`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.errors import ClinlabelError, InputError
from napari_clinlabel.core.image.geometry import Geometry

GROW_METHODS = ("connected", "confidence")


def _scalar_image(image: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim not in (2, 3) or a.dtype.kind not in "iuf":
        raise InputError(
            f"{what}: needs a scalar 2D or 3D image (got shape {a.shape}, dtype {a.dtype}); "
            "convert colour images to one channel first."
        )
    return a


def threshold_limited_mask(
    image: np.ndarray, brush_mask: np.ndarray, low: float, high: float
) -> np.ndarray:
    """Voxels of ``brush_mask`` whose intensity lies in the window ``[low, high]`` (inclusive)."""
    if low > high:
        raise ClinlabelError(f"Intensity window {low}..{high} is empty: low must not exceed high.")
    image = np.asarray(image)
    brush = np.asarray(brush_mask, dtype=bool)
    if brush.shape != image.shape:
        raise ClinlabelError(f"Brush mask {brush.shape} is not on the image grid {image.shape}.")
    return brush & (image >= low) & (image <= high)


def in_window(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Boolean array: which intensities lie in ``[low, high]`` (used to limit a brush in place)."""
    v = np.asarray(values)
    return (v >= low) & (v <= high)


def _seed_index(seed_zyx: Sequence[float], shape: tuple[int, ...]) -> tuple[int, ...]:
    seed = tuple(int(round(float(c))) for c in seed_zyx)
    if len(seed) != len(shape) or any(not 0 <= c < n for c, n in zip(seed, shape, strict=True)):
        raise ClinlabelError(
            f"Seed {tuple(seed_zyx)} lies outside the image (shape {shape}); click inside it."
        )
    return seed


def region_grow(
    image: np.ndarray,
    seed_zyx: Sequence[float],
    *,
    method: str = "connected",
    lower: float | None = None,
    upper: float | None = None,
    multiplier: float = 2.5,
    iterations: int = 3,
    radius: int = 1,
    smoothing: float = 0.0,
) -> np.ndarray:
    """Region grown from one seed (z, y, x): SimpleITK ConnectedThreshold or ConfidenceConnected.

    ``connected`` keeps voxels face-connected to the seed with intensity in ``[lower, upper]``;
    when a bound is None it is taken as mean ∓ ``multiplier``·std of the seed's neighbourhood of
    ``radius`` voxels. ``confidence`` iterates ``iterations`` times on the region's statistics.
    ``smoothing`` > 0 first applies SimpleITK's recursive Gaussian (sigma in voxels), which
    keeps noisy CT from leaking; the window then applies to the smoothed intensities.
    """
    a = _scalar_image(image, "Region growing")
    seed = _seed_index(seed_zyx, a.shape)
    if method not in GROW_METHODS:
        raise ClinlabelError(
            f"Unknown region-growing method {method!r}; use one of {GROW_METHODS}."
        )
    img = sitk.GetImageFromArray(a)
    if smoothing > 0:
        img = sitk.SmoothingRecursiveGaussian(sitk.Cast(img, sitk.sitkFloat32), float(smoothing))
        a = sitk.GetArrayViewFromImage(img)
    itk_seed = [tuple(int(c) for c in reversed(seed))]
    if method == "confidence":
        out = sitk.ConfidenceConnected(
            img,
            seedList=itk_seed,
            numberOfIterations=int(iterations),
            multiplier=float(multiplier),
            initialNeighborhoodRadius=int(radius),
            replaceValue=1,
        )
    else:
        lo, hi = lower, upper
        if lo is None or hi is None:
            mean, std = neighbourhood_stats(a, seed, radius)
            lo = mean - multiplier * std if lo is None else lo
            hi = mean + multiplier * std if hi is None else hi
        if lo > hi:
            raise ClinlabelError(f"Region-growing window {lo}..{hi} is empty.")
        out = sitk.ConnectedThreshold(
            img, seedList=itk_seed, lower=float(lo), upper=float(hi), replaceValue=1
        )
    return sitk.GetArrayViewFromImage(out).astype(bool)


def neighbourhood_stats(
    image: np.ndarray, seed_zyx: Sequence[int], radius: int = 1
) -> tuple[float, float]:
    """Mean and standard deviation of the (2r+1)^n box around a seed (clipped to the image)."""
    box = tuple(
        slice(max(0, int(c) - radius), min(n, int(c) + radius + 1))
        for c, n in zip(seed_zyx, image.shape, strict=True)
    )
    v = np.asarray(image[box], dtype=np.float64)
    return float(v.mean()), float(v.std())


def interpolate_slices(
    labels: np.ndarray,
    label_value: int,
    axis: int = 0,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """Mask of ``label_value`` with the empty slices between drawn ones filled (shape-based).

    Between two drawn slices a < b along ``axis``, slice s gets
    ``(1 - t)·D_a + t·D_b <= 0`` with t = (s - a)/(b - a) and D the in-plane signed distance (mm)
    to the contour midway between voxels (SimpleITK's Maurer maps, inside negative). Drawn slices and slices beyond the first and last
    drawn one are left as they are. ``spacing`` is in napari order (z, y, x); default 1.
    (The installed SimpleITK lacks ITK's MorphologicalContourInterpolator remote module.)
    """
    lab = np.asarray(labels)
    if lab.ndim != 3:
        raise ClinlabelError(f"Filling between slices needs a 3D label array (got {lab.ndim}D).")
    mask = np.moveaxis(lab == label_value, axis, 0)
    spacing = tuple(spacing) if spacing is not None else (1.0,) * lab.ndim
    plane_spacing = [float(s) for i, s in enumerate(spacing) if i != axis % lab.ndim]
    drawn = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    out = mask.copy()
    dist_cache: dict[int, np.ndarray] = {}

    def dist(k: int) -> np.ndarray:
        if k not in dist_cache:
            dist_cache[k] = _signed_distance(mask[k], plane_spacing)
        return dist_cache[k]

    for a, b in zip(drawn[:-1], drawn[1:], strict=True):
        if b - a < 2:
            continue
        da, db = dist(int(a)), dist(int(b))
        for s in range(a + 1, b):
            t = (s - a) / (b - a)
            out[s] = ((1.0 - t) * da + t * db) <= 0.0
        dist_cache.pop(int(a), None)
    return np.moveaxis(out, 0, axis)


def _signed_distance(plane: np.ndarray, spacing_yx: Sequence[float]) -> np.ndarray:
    """In-plane signed distance (mm) to the contour midway between voxels; negative inside."""
    half = 0.5 * min(spacing_yx)
    d_out = _distance_to(plane, spacing_yx)  # background voxels: distance to the nearest inside
    d_in = _distance_to(~plane, spacing_yx)  # inside voxels: distance to the nearest background
    return np.where(plane, half - d_in, d_out - half)


def _distance_to(plane: np.ndarray, spacing_yx: Sequence[float]) -> np.ndarray:
    """Exact Euclidean distance (mm) from each voxel to the nearest True voxel (SimpleITK Maurer)."""
    if not plane.any():
        return np.full(plane.shape, np.inf)
    img = sitk.GetImageFromArray(plane.astype(np.uint8))
    img.SetSpacing(tuple(reversed([float(s) for s in spacing_yx])))
    d = sitk.SignedMaurerDistanceMap(
        img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return np.maximum(sitk.GetArrayFromImage(d).astype(np.float64), 0.0)


def remove_small_islands(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """``mask`` without its face-connected components of fewer than ``min_voxels`` voxels."""
    m = np.asarray(mask, dtype=bool)
    if min_voxels <= 1 or not m.any():
        return m.copy()
    labeller = sitk.ConnectedComponentImageFilter()
    labeller.SetFullyConnected(False)  # face connectivity, as scikit-image's connectivity=1
    cc = labeller.Execute(sitk.GetImageFromArray(m.astype(np.uint8)))
    kept = sitk.RelabelComponent(cc, minimumObjectSize=int(min_voxels), sortByObjectSize=False)
    return sitk.GetArrayViewFromImage(kept) > 0


def island_voxels(labels: np.ndarray, value: int, min_voxels: int) -> np.ndarray:
    """Voxels of label ``value`` lying in islands of fewer than ``min_voxels`` voxels."""
    mask = np.asarray(labels) == value
    return mask & ~remove_small_islands(mask, min_voxels)


def hole_voxels(labels: np.ndarray, value: int, *, per_slice_axis: int | None = None) -> np.ndarray:
    """Voxels enclosed by label ``value`` that it does not hold (its holes), per :func:`fill_holes`."""
    mask = np.asarray(labels) == value
    return fill_holes(mask, per_slice_axis=per_slice_axis) & ~mask


def fill_holes(mask: np.ndarray, *, per_slice_axis: int | None = None) -> np.ndarray:
    """``mask`` with enclosed background holes filled (3D, or slice by slice along an axis)."""
    m = np.asarray(mask, dtype=bool)
    if per_slice_axis is None:
        return _fill_holes_itk(m)
    moved = np.moveaxis(m, per_slice_axis, 0)
    out = np.stack([_fill_holes_itk(p) if p.any() else p for p in moved])
    return np.moveaxis(out, 0, per_slice_axis)


def _fill_holes_itk(m: np.ndarray) -> np.ndarray:
    img = sitk.GetImageFromArray(m.astype(np.uint8))
    filled = sitk.BinaryFillhole(img, fullyConnected=False, foregroundValue=1)
    return sitk.GetArrayViewFromImage(filled) > 0


def label_voxel_counts(labels: np.ndarray, chunk_voxels: int = 1 << 20) -> np.ndarray:
    """Voxel count of every label value (index = value) in one pass over the array.

    Counts the non-zero voxels of each chunk with ``bincount`` (background by subtraction): on a
    mostly empty CT-sized map this is tens of times faster than one ``bincount`` of the whole.
    """
    lab = np.asarray(labels)
    if lab.dtype.kind not in "ui":
        raise ClinlabelError(f"Label arrays must hold integers (got {lab.dtype}).")
    flat = lab.reshape(-1)
    if lab.dtype.kind == "i" and flat.size and flat.min() < 0:
        raise ClinlabelError("Label arrays must not hold negative values.")
    if lab.dtype.itemsize <= 2 and lab.dtype.kind == "u":
        size = 1 << (8 * lab.dtype.itemsize)
    else:
        size = int(flat.max()) + 1 if flat.size else 1
    counts = np.zeros(size, np.int64)
    for start in range(0, flat.size, chunk_voxels):
        block = flat[start : start + chunk_voxels]
        nonzero = block[block != 0]
        if nonzero.size:
            counts += np.bincount(nonzero, minlength=size)
    counts[0] = flat.size - counts[1:].sum()
    return counts


def label_volumes_ml(labels: np.ndarray, geometry: Geometry | float) -> dict[int, float]:
    """Volume in mL of each non-zero label present: voxels × voxel volume (mm³) / 1000.

    ``geometry`` is the image's :class:`Geometry`, or the voxel volume in mm³ directly.
    """
    voxel_mm3 = geometry.voxel_volume_mm3 if isinstance(geometry, Geometry) else float(geometry)
    counts = label_voxel_counts(labels)
    present = np.flatnonzero(counts)
    return {int(v): float(counts[v]) * voxel_mm3 / 1000.0 for v in present if v != 0}


def tool_change(
    labels: np.ndarray,
    mask: np.ndarray,
    value: int,
    *,
    overwrite_other_labels: bool = False,
    from_value: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The change ``(indices, old, new)`` that setting ``labels[mask] = value`` would make.

    Voxels already holding another non-zero label are left alone unless
    ``overwrite_other_labels``; ``from_value`` restricts the change to voxels currently holding
    that value (erasing needs it: ``value=0, from_value=label`` clears only that label).
    ``labels`` is not modified.
    """
    if labels.shape != np.shape(mask):
        raise ClinlabelError(
            f"Tool result {np.shape(mask)} is not on the label grid {labels.shape}."
        )
    info = np.iinfo(labels.dtype)
    if not info.min <= value <= info.max:
        raise ClinlabelError(
            f"Label value {value} does not fit the labels layer ({labels.dtype}); use uint16."
        )
    flat = labels.reshape(-1)
    idx = np.flatnonzero(np.asarray(mask, dtype=bool).reshape(-1))
    current = flat[idx]
    keep = current != value
    if from_value is not None:
        keep &= current == from_value
    elif not overwrite_other_labels:
        keep &= current == 0
    idx = idx[keep].astype(np.int64)
    return idx, current[keep], np.full(idx.shape, value, dtype=labels.dtype)


def apply_tool_result(
    labels: np.ndarray,
    mask: np.ndarray,
    value: int,
    *,
    overwrite_other_labels: bool = False,
    from_value: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Set ``labels[mask] = value`` in place per :func:`tool_change`; return ``(indices, old, new)``.

    Log the returned change with ``record_label_change`` (which undoes it if the log fails).
    """
    if not labels.flags.c_contiguous:
        raise ClinlabelError("Label arrays must be C-contiguous to be edited in place.")
    idx, old, new = tool_change(
        labels, mask, value, overwrite_other_labels=overwrite_other_labels, from_value=from_value
    )
    labels.reshape(-1)[idx] = new
    return idx, old, new
