"""Scissors: erase (or fill) a label inside or outside a polygon, rectangle or ellipse drawn on a
slice, on that slice only or through the whole volume along the slice axis.

The shape comes as vertices in the label array's index coordinates (what a napari Shapes layer
on the same grid holds); its polygon is rasterised with scikit-image (``polygon2mask``: a pixel
is inside when its centre is). An ellipse is given as napari stores it: the four corners of its
(possibly rotated) bounding box.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.draw import polygon2mask

from napari_clinlabel.core.annotate.tools.result import ToolResult
from napari_clinlabel.core.errors import ClinlabelError, InputError

SHAPES = ("polygon", "rectangle", "ellipse")
SIDES = ("inside", "outside")
EXTENTS = ("slice", "volume")
OPERATIONS = ("erase", "fill")
_ELLIPSE_POINTS = 256


def shape_polygon(vertices_yx: np.ndarray, kind: str) -> np.ndarray:
    """The outline (n, 2) of a shape in the slice plane: the polygon itself, or an ellipse
    sampled from the four corners of its bounding box."""
    v = np.asarray(vertices_yx, float)
    if kind not in SHAPES:
        raise ClinlabelError(f"Unknown scissors shape {kind!r}; use one of {SHAPES}.")
    if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < (4 if kind != "polygon" else 3):
        raise InputError(
            f"A {kind} needs at least {4 if kind != 'polygon' else 3} corners in the slice "
            f"(got {v.shape[0] if v.ndim == 2 else 0}); draw it again."
        )
    if kind != "ellipse":
        return v
    centre = v[:4].mean(axis=0)
    half_a = (v[1] - v[0]) / 2.0  # napari: corners in order around the box
    half_b = (v[3] - v[0]) / 2.0
    t = np.linspace(0, 2 * np.pi, _ELLIPSE_POINTS, endpoint=False)[:, None]
    return centre + np.cos(t) * half_a + np.sin(t) * half_b


def scissors(
    labels: np.ndarray,
    vertices: Sequence[Sequence[float]],
    kind: str,
    *,
    value: int | None,
    side: str = "inside",
    extent: str = "slice",
    axis: int = 0,
    operation: str = "erase",
) -> ToolResult:
    """Erase label ``value`` (None: every label) inside or outside the shape; ``operation="fill"``
    paints ``value`` there instead (other labels are left alone unless the caller overwrites).

    ``vertices`` are (n, ndim) index coordinates on the label grid; for a 3D array the slice is
    the (rounded) coordinate along ``axis`` of the first vertex, and ``extent="volume"`` cuts
    every slice along ``axis`` with the same outline.
    """
    lab = np.asarray(labels)
    if side not in SIDES:
        raise ClinlabelError(f"Unknown side {side!r}; use one of {SIDES}.")
    if extent not in EXTENTS:
        raise ClinlabelError(f"Unknown extent {extent!r}; use one of {EXTENTS}.")
    if operation not in OPERATIONS:
        raise ClinlabelError(f"Unknown scissors operation {operation!r}; use one of {OPERATIONS}.")
    if operation == "fill" and value is None:
        raise InputError("Filling needs one label: pick it (not 'all labels').")
    v = np.asarray(vertices, float)
    if v.ndim != 2 or v.shape[1] != lab.ndim:
        raise InputError(
            f"The shape's corners {v.shape} are not points on the {lab.ndim}D label grid; draw "
            "it on the labels' image."
        )
    ax = axis % lab.ndim if lab.ndim == 3 else None
    if ax is None:
        plane_axes, k = [0, 1], None
    else:
        plane_axes = [i for i in range(3) if i != ax]
        k = int(round(float(v[0, ax])))
        if not 0 <= k < lab.shape[ax]:
            raise InputError(f"The shape lies on slice {k}, outside the image; draw it inside.")
    outline = shape_polygon(v[:, plane_axes], kind)
    plane_shape = tuple(lab.shape[i] for i in plane_axes)
    inside = polygon2mask(plane_shape, outline)
    cut2d = inside if side == "inside" else ~inside
    if ax is None:
        where = cut2d
    else:
        where = np.zeros(lab.shape, bool)
        moved = np.moveaxis(where, ax, 0)
        if extent == "volume":
            moved[:] = cut2d
        else:
            moved[k] = cut2d
    params = {"label": value, "shape": kind, "side": side, "extent": extent, "axis": ax,
              "slice": k, "operation": operation}  # fmt: skip
    seeds = {"vertices": [[round(float(c), 3) for c in p] for p in v]}
    if operation == "fill":
        where &= lab != value
        if not where.any():
            raise InputError(f"Nothing to fill: label {value} already fills the {side}.")
        return ToolResult("scissors", where, int(value), frozenset({int(value)}), params, seeds)
    hit = lab[where]
    if value is None:
        edits = frozenset(int(x) for x in np.unique(hit) if x != 0)
        where &= lab != 0
    else:
        edits = frozenset({int(value)})
        where &= lab == value
    if not where.any():
        raise InputError(
            "Nothing to cut: the shape holds no voxel of "
            f"{'any label' if value is None else f'label {value}'} on the {side}."
        )
    return ToolResult("scissors", where, 0, edits, params, seeds)
