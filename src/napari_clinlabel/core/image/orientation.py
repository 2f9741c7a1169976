"""Patient orientation letters (R/L/A/P/S/I) for the axes a viewer shows, LPS convention.

DICOM/ITK patient coordinates (PS3.3 C.7.6.2.1.1): +x towards the patient's Left, +y towards
Posterior, +z towards Superior (head). A direction is named by the letters of the end it points
to, largest component first (e.g. an oblique axis pointing mostly left and a bit back is "LP").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_clinlabel.core.image.geometry import Geometry

_PLUS = ("L", "P", "S")
_MINUS = ("R", "A", "I")
OBLIQUE_MIN = 0.25  # a component below this (cos ~75°) is not named: "L", not "LPS"


def direction_letters(vector_lps: Any, min_component: float = OBLIQUE_MIN) -> str:
    """Letters of the end ``vector_lps`` (x, y, z) points to, largest component first."""
    v = np.asarray(vector_lps, dtype=float)
    norm = float(np.linalg.norm(v))
    if norm == 0:
        return ""
    v = v / norm
    order = np.argsort(-np.abs(v), kind="stable")
    return "".join((_PLUS if v[i] > 0 else _MINUS)[i] for i in order if abs(v[i]) >= min_component)


def world_axis_vector(geometry: Geometry | None, world_axis: int, ndim: int = 3) -> np.ndarray:
    """LPS unit vector of napari world axis ``world_axis`` (world order z, y, x).

    ``geometry`` None: the layer's affine carries the direction (the plugin's layers), so world
    axis (z, y, x) is physical (S, P, L). Otherwise the world is the index grid scaled, and the
    axis runs along the matching column of ``geometry``'s direction.
    """
    itk_axis = ndim - 1 - world_axis
    if geometry is None:
        return np.eye(ndim)[:, itk_axis]
    return geometry.direction_matrix()[:, itk_axis]


def edge_letters(
    displayed: tuple[int, int],
    geometry: Geometry | None = None,
    ndim: int = 3,
    vertical_up: bool = False,
) -> dict[str, str]:
    """Letters at the ``left``/``right``/``top``/``bottom`` canvas edges of a 2D view.

    ``displayed``: napari's ``dims.displayed`` (vertical world axis, horizontal world axis);
    napari draws the vertical axis increasing downwards (``vertical_up``: upwards, a camera
    oriented "up") and the horizontal one to the right.
    """
    vert = world_axis_vector(geometry, displayed[0], ndim)
    if vertical_up:
        vert = -vert
    horiz = world_axis_vector(geometry, displayed[1], ndim)
    return {
        "left": direction_letters(-horiz),
        "right": direction_letters(horiz),
        "top": direction_letters(-vert),
        "bottom": direction_letters(vert),
    }


__all__ = ["direction_letters", "edge_letters", "world_axis_vector"]
