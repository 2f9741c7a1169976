"""Segmentation agreement per label: Dice, HD95 and mean surface distance in mm, volume difference.

Conventions (stated once, used everywhere):

- **Surface** of a mask: its voxels that have at least one 6-connected (3D) / 4-connected (2D)
  neighbour outside the mask, the array border counting as outside
  (``mask & ~binary_erosion(mask)``). Distances run between voxel centres, in mm, using the
  voxel spacing (z, y, x); direction cosines do not change distances and are ignored.
- **Directed surface distances** A→B: for every surface voxel of A, the distance to the nearest
  surface voxel of B (exact Euclidean distance transform with ``sampling=spacing``).
- **HD95** = max(P95(A→B), P95(B→A)), the 95th percentile (numpy's linear interpolation) of each
  directed set, then the larger of the two: the MONAI ``compute_hausdorff_distance(percentile=95)``
  and BraTS convention. (medpy's ``hd95`` instead pools both sets; pass ``pooled=True`` for that.)
- **Mean surface distance** = mean of both directed sets pooled (average symmetric surface
  distance, MONAI ``compute_average_surface_distance(symmetric=True)``).
- **Volume difference** = volume(B) − volume(A) in mL (signed: positive when B is larger).
- **Unknown pixel spacing** (a :class:`~.volume.PixelGeometry`: PNG, JPEG, a TIFF without
  resolution tags): the same figures on the unit pixel grid, under names that say so —
  ``hd95_px``, ``mean_surface_distance_px`` and ``size_difference_px`` (pixel count of B minus
  A); never ``_mm`` / ``_ml`` keys, so pixels cannot be read as millimetres.
- **Empty masks**: both empty → Dice, HD95 and mean surface distance are NaN (undefined: no
  evidence either way); exactly one empty → Dice 0.0, HD95 and mean surface distance ``inf``.

Speed: all work happens on the union bounding box of each label (plus a one-voxel margin), found
for every label in one pass with :func:`scipy.ndimage.find_objects`; that crop is exact because
every surface voxel of either mask lies inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import spacing_known

__all__ = [
    "dice",
    "hd95_mm",
    "mean_surface_distance_mm",
    "volume_difference_ml",
    "surface_distances_mm",
    "label_map_agreement",
    "MM_KEYS",
    "PX_KEYS",
    "distance_units",
]

MM_KEYS = ("hd95_mm", "mean_surface_distance_mm", "volume_difference_ml")
"""Distance and size keys of :func:`label_map_agreement` when the spacing is physical."""
PX_KEYS = ("hd95_px", "mean_surface_distance_px", "size_difference_px")
"""The same keys, in order, when the image states no pixel size (pixels, pixel counts)."""


def distance_units(metrics: dict[str, Any]) -> str:
    """The units, "mm" or "px", of one label's :func:`label_map_agreement` figures."""
    return "px" if PX_KEYS[0] in metrics else "mm"


def _as_bool_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a).astype(bool, copy=False)
    b = np.asarray(b).astype(bool, copy=False)
    if a.shape != b.shape:
        raise InputError(
            f"masks have different shapes {a.shape} and {b.shape}; resample one onto the other's grid"
        )
    return a, b


def _spacing(spacing_zyx: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing_zyx is None:
        return (1.0,) * ndim
    sp = tuple(float(s) for s in spacing_zyx)
    if len(sp) != ndim or not all(np.isfinite(sp)) or min(sp) <= 0:
        raise InputError(
            f"spacing {sp} does not fit a {ndim}-D mask; give {ndim} positive values (z, y, x)"
        )
    return sp


def dice(a: Any, b: Any) -> float:
    """Dice coefficient 2|A∩B| / (|A|+|B|) of two boolean masks; NaN when both are empty."""
    a, b = _as_bool_pair(a, b)
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    if na + nb == 0:
        return float("nan")
    return 2.0 * int(np.count_nonzero(a & b)) / (na + nb)


def _surface(mask: np.ndarray) -> np.ndarray:
    # border_value=0: a mask touching the array edge has a surface there
    return mask & ~ndi.binary_erosion(mask, border_value=0)


def _crop_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...] | None:
    """Union bounding box of two masks grown by one voxel (clipped), or None if both empty."""
    box = None
    for m in (a, b):
        objs = ndi.find_objects(m.view(np.uint8) if m.dtype == bool else m)
        if objs and objs[0] is not None:
            sl = objs[0]
            box = (
                sl
                if box is None
                else tuple(
                    slice(min(p.start, q.start), max(p.stop, q.stop))
                    for p, q in zip(box, sl, strict=True)
                )
            )
    if box is None:
        return None
    return tuple(
        slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, a.shape, strict=True)
    )


def _directed(surf_from: np.ndarray, surf_to: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distance (mm) from each surface voxel of ``surf_from`` to the nearest of ``surf_to``."""
    edt = ndi.distance_transform_edt(~surf_to, sampling=spacing)
    return edt[surf_from]


def surface_distances_mm(
    a: Any, b: Any, spacing_zyx: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (A→B, B→A) in mm; both arrays empty when either mask is empty."""
    a, b = _as_bool_pair(a, b)
    sp = _spacing(spacing_zyx, a.ndim)
    box = _crop_box(a, b)
    empty = np.empty(0, dtype=float)
    if box is None:
        return empty, empty
    ac, bc = a[box], b[box]
    if not ac.any() or not bc.any():
        return empty, empty
    sa, sb = _surface(ac), _surface(bc)
    return _directed(sa, sb, sp), _directed(sb, sa, sp)


def _empty_case(a: np.ndarray, b: np.ndarray) -> float | None:
    """NaN when both masks are empty, inf when exactly one is, None otherwise."""
    ea, eb = not a.any(), not b.any()
    if ea and eb:
        return float("nan")
    if ea or eb:
        return float("inf")
    return None


def _hd95_from(d_ab: np.ndarray, d_ba: np.ndarray, pooled: bool) -> float:
    if pooled:
        return float(np.percentile(np.concatenate([d_ab, d_ba]), 95))
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def hd95_mm(
    a: Any, b: Any, spacing_zyx: Sequence[float] | None = None, pooled: bool = False
) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (max of the two directed P95s).

    ``pooled=True`` takes P95 of both directed sets together instead (medpy's ``hd95``).
    NaN when both masks are empty, inf when exactly one is.
    """
    a, b = _as_bool_pair(a, b)
    special = _empty_case(a, b)
    if special is not None:
        return special
    return _hd95_from(*surface_distances_mm(a, b, spacing_zyx), pooled)


def mean_surface_distance_mm(a: Any, b: Any, spacing_zyx: Sequence[float] | None = None) -> float:
    """Average symmetric surface distance in mm (mean of both directed sets pooled)."""
    a, b = _as_bool_pair(a, b)
    special = _empty_case(a, b)
    if special is not None:
        return special
    d_ab, d_ba = surface_distances_mm(a, b, spacing_zyx)
    return float(np.concatenate([d_ab, d_ba]).mean())


def volume_difference_ml(a: Any, b: Any, voxel_volume_mm3: float = 1.0) -> float:
    """Signed volume(B) − volume(A) in mL for voxels of ``voxel_volume_mm3`` mm³."""
    a, b = _as_bool_pair(a, b)
    return (int(np.count_nonzero(b)) - int(np.count_nonzero(a))) * voxel_volume_mm3 / 1000.0


def _check_label_map(m: Any, name: str) -> np.ndarray:
    m = np.asarray(m)
    if m.dtype == bool:
        return m.view(np.uint8)
    if not np.issubdtype(m.dtype, np.integer):
        raise InputError(f"label map {name} has dtype {m.dtype}; label maps must hold integers")
    if np.issubdtype(m.dtype, np.signedinteger) and m.size and m.min() < 0:
        raise InputError(
            f"label map {name} holds negative values; labels must be 0 (background) or positive"
        )
    return m


def _find_objects(m: np.ndarray) -> list[tuple[slice, ...] | None]:
    # find_objects wants native integer types; uint64 is not accepted
    if m.dtype == np.uint64:
        m = m.astype(np.int64)
    return ndi.find_objects(m)


def label_map_agreement(
    a: Any,
    b: Any,
    geometry: Geometry | None = None,
    pooled: bool = False,
    names: tuple[str, str] = ("A", "B"),
) -> dict[str, dict[str, Any]]:
    """Per label value present in either map (0 = background, skipped): Dice, HD95, MSD, ΔV.

    Returns ``{"<value>": {"dice", "hd95_mm", "mean_surface_distance_mm",
    "volume_difference_ml", "voxels_a", "voxels_b"}}``; ``geometry`` gives spacing and voxel
    volume (unit spacing when None); for a :class:`~.volume.PixelGeometry` the three mm/mL keys
    are :data:`PX_KEYS` instead (pixels). ``names`` say which map a refusal is about (e.g. the
    file names). Empty-mask conventions as in the module docstring.
    """
    a = _check_label_map(a, names[0])
    b = _check_label_map(b, names[1])
    if a.shape != b.shape:
        raise InputError(
            f"label maps have different shapes {a.shape} and {b.shape}; they must share one grid"
        )
    geometry = geometry or Geometry.identity(a.ndim)
    if geometry.ndim != a.ndim:
        raise InputError(f"geometry is {geometry.ndim}-D but the label maps are {a.ndim}-D")
    known = spacing_known(geometry)
    sp = geometry.spacing_zyx if known else (1.0,) * a.ndim
    vox_ml = geometry.voxel_volume_mm3 / 1000.0
    k_hd, k_msd, k_dv = MM_KEYS if known else PX_KEYS
    objs_a, objs_b = _find_objects(a), _find_objects(b)
    out: dict[str, dict[str, Any]] = {}
    for v in range(1, max(len(objs_a), len(objs_b)) + 1):
        sa = objs_a[v - 1] if v <= len(objs_a) else None
        sb = objs_b[v - 1] if v <= len(objs_b) else None
        if sa is None and sb is None:
            continue
        boxes = [s for s in (sa, sb) if s is not None]
        box = tuple(
            slice(
                max(min(s[d].start for s in boxes) - 1, 0),
                min(max(s[d].stop for s in boxes) + 1, n),
            )
            for d, n in enumerate(a.shape)
        )
        ma, mb = a[box] == v, b[box] == v
        na, nb = int(np.count_nonzero(ma)), int(np.count_nonzero(mb))
        inter = int(np.count_nonzero(ma & mb))
        if na and nb:
            sfa, sfb = _surface(ma), _surface(mb)
            d_ab, d_ba = _directed(sfa, sfb, sp), _directed(sfb, sfa, sp)
            hd = _hd95_from(d_ab, d_ba, pooled)
            msd = float(np.concatenate([d_ab, d_ba]).mean())
        else:
            hd = msd = float("inf")
        out[str(v)] = {
            "dice": 2.0 * inter / (na + nb),
            k_hd: hd,
            k_msd: msd,
            k_dv: (nb - na) * vox_ml if known else nb - na,
            "voxels_a": na,
            "voxels_b": nb,
        }
    return out
