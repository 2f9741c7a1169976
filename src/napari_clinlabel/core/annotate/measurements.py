"""Distance and RECIST measurements on a slice, each one logged ``measure.add`` record.

Points are napari world coordinates (z, y, x): millimetres for an image with a physical pixel
size, pixels for one without (:class:`~napari_clinlabel.core.image.volume.PixelGeometry`), so a
length is ``length_mm`` or ``length_px`` and never called mm when it is not.
RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-247): the long axis is the longest
diameter in the slice, the short axis the longest diameter perpendicular to it.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from napari_clinlabel.core.errors import InputError

ACTION = "measure.add"
PERPENDICULAR_TOL_DEG = 10.0  # short axis drawn by hand: accept 80°..100° to the long axis


def _line(points: Any) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[0] != 2 or pts.shape[1] < 2 or not np.all(np.isfinite(pts)):
        raise InputError(
            f"a measurement line needs two finite end points (got shape {pts.shape}); draw a line."
        )
    return pts


def unit(spacing_known: bool) -> str:
    """``"mm"`` for images with a physical pixel size, else ``"px"``."""
    return "mm" if spacing_known else "px"


def line_length(points_world: Any) -> float:
    """Euclidean length of a two-point line in world units (mm, or px)."""
    pts = _line(points_world)
    return float(np.linalg.norm(pts[1] - pts[0]))


def angle_deg(line_a: Any, line_b: Any) -> float:
    """Angle between two lines in degrees, 0..90."""
    a, b = _line(line_a), _line(line_b)
    va, vb = a[1] - a[0], b[1] - b[0]
    na, nb = np.linalg.norm(va), np.linalg.norm(vb)
    if na == 0 or nb == 0:
        raise InputError("a measurement line has zero length; draw it again with two points.")
    cos = abs(float(va @ vb) / (na * nb))
    return float(np.degrees(np.arccos(min(1.0, cos))))


def distance_data(
    points_world: Any, spacing_known: bool, slice_: dict[str, int] | None
) -> dict[str, Any]:
    """``measure.add`` data of a distance: kind, length (mm or px), points, slice."""
    pts = _line(points_world)
    length = line_length(pts)
    if length == 0:
        raise InputError("the line has zero length; draw it again with two distinct points.")
    return {
        "kind": "distance",
        f"length_{unit(spacing_known)}": length,
        "points_world": pts.tolist(),
        "slice": slice_,
    }


def recist_data(
    line_a: Any,
    line_b: Any,
    spacing_known: bool,
    slice_: dict[str, int] | None,
    tol_deg: float = PERPENDICULAR_TOL_DEG,
) -> dict[str, Any]:
    """``measure.add`` data of a RECIST pair: the longer line is the long axis.

    Refused (:class:`InputError`) unless the two lines are perpendicular within ``tol_deg``.
    """
    a, b = _line(line_a), _line(line_b)
    angle = angle_deg(a, b)
    if abs(90.0 - angle) > tol_deg:
        raise InputError(
            f"RECIST short axis must be perpendicular to the long axis (they are {angle:.0f}° "
            f"apart, allowed 90 ± {tol_deg:.0f}°); redraw the short axis. Nothing was recorded."
        )
    long_, short = (a, b) if line_length(a) >= line_length(b) else (b, a)
    u = unit(spacing_known)
    return {
        "kind": "recist",
        f"length_{u}": line_length(long_),
        f"short_axis_{u}": line_length(short),
        "angle_deg": angle,
        "points_world": [long_.tolist(), short.tolist()],
        "slice": slice_,
    }


def record_measurement(log: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Append one ``measure.add`` record (target: a new measurement id) and return it."""
    if data.get("kind") not in ("distance", "recist"):
        raise InputError(f"unknown measurement kind {data.get('kind')!r}; use distance or recist.")
    return log.append(ACTION, {"measurement": uuid.uuid4().hex}, data)


__all__ = [
    "ACTION",
    "angle_deg",
    "distance_data",
    "line_length",
    "recist_data",
    "record_measurement",
    "unit",
]
