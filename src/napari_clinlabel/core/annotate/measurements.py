"""Distance and RECIST measurements on a slice, each one logged ``measure.add`` record.

Points are napari world coordinates (z, y, x): millimetres for an image with a physical pixel
size, pixels for one without (:class:`~napari_clinlabel.core.image.volume.PixelGeometry`), so a
length is ``length_mm`` or ``length_px`` and never called mm when it is not.
RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-247): the long axis is the longest
diameter in the slice, the short axis the longest diameter perpendicular to it.
"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.safe_text import csv_row

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


MEASURE_COLUMNS = [
    "id", "kind", "length_mm", "short_axis_mm", "length_px", "short_axis_px", "angle_deg",
    "slice_axis", "slice_index", "points_world", "measured_by", "time", "seq",
]  # fmt: skip


def measurements_in_log(log_path: str | Path) -> list[dict[str, Any]]:
    """Every ``measure.add`` record of a log as one flat row (keys :data:`MEASURE_COLUMNS`)."""
    rows = []
    for rec in iter_records(log_path):
        if rec.get("action") != ACTION:
            continue
        d = rec.get("data") or {}
        sl = d.get("slice") or {}
        rows.append({
            "id": (rec.get("target") or {}).get("measurement"), "kind": d.get("kind"),
            **{k: d.get(k) for k in MEASURE_COLUMNS[2:7]},
            "slice_axis": sl.get("axis"), "slice_index": sl.get("index"),
            "points_world": d.get("points_world"),
            "measured_by": (rec.get("actor") or {}).get("id"), "time": rec.get("time"),
            "seq": rec.get("seq"),
        })  # fmt: skip
    return rows


def measurements_csv(rows: list[dict[str, Any]]) -> bytes:
    """Measurement rows as CSV (cells neutralised against spreadsheet formulas; blanks for None)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MEASURE_COLUMNS)
    for r in rows:
        w.writerow(csv_row(["" if r.get(c) is None else r[c] for c in MEASURE_COLUMNS]))
    return buf.getvalue().encode("utf-8")


__all__ = [
    "ACTION",
    "MEASURE_COLUMNS",
    "measurements_csv",
    "measurements_in_log",
    "angle_deg",
    "distance_data",
    "line_length",
    "recist_data",
    "record_measurement",
    "unit",
]
