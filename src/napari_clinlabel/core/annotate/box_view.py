"""How lesion boxes look: rectangles for the Shapes layers, colours, table rows, size text.

Pure functions of the boxes in force (no Qt, no napari), used by the lesion-box widget. On an
image whose file states no pixel size (PNG, JPEG, a TIFF without resolution tags) sizes are
pixels ("120 × 80 px", "area 9 600 px²", voxel counts), never mm or mL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_clinlabel.core.annotate.boxes import LesionBox, box_size_mm, box_size_px, box_volume_ml
from napari_clinlabel.core.image.volume import spacing_known

CLASS_COLORS = {"benign": "#33cc66", "malignant": "#ff3333", "indeterminate": "#ffaa00"}
_OTHER_COLORS = ["#33aaff", "#cc66ff", "#ffff33"]
NOT_SET = "not set"  # what a field no human chose shows as (recorded as null / left out)
TABLE_HEADER = ["#", "class", "conf", "slices", "y×x mm", "z mm", "mL", "by"]
TABLE_HEADER_PX = ["#", "class", "conf", "slices", "y×x px", "z px", "voxels", "by"]
TABLE_3D_COLUMNS = tuple(TABLE_HEADER.index(c) for c in ("slices", "z mm", "mL"))  # not on 2D
_NBSP = "\u00a0"  # thousands separator that never breaks a number across lines


@dataclass
class BoxShapes:
    """Editable rectangles (one per box, on its anchor slice) and 3D-extent outlines."""

    rects: list[np.ndarray] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    colors: list[str] = field(default_factory=list)
    extent: list[np.ndarray] = field(default_factory=list)
    extent_colors: list[str] = field(default_factory=list)


def middle_slice(box: LesionBox) -> int:
    """The slice in the middle of a box's range (0 on 2D images)."""
    rng = box.slice_range
    return 0 if rng is None else (rng[0] + rng[1]) // 2


def box_centre(box: LesionBox, anchor_z: int | None = None) -> np.ndarray:
    """The box's centre (data coordinates); on a volume, on slice ``anchor_z`` when given."""
    centre = (np.asarray(box.zyx_min) + np.asarray(box.zyx_max)) / 2
    if len(centre) == 3:
        centre[0] = round(centre[0]) if anchor_z is None else anchor_z
    return centre


def rect(box: LesionBox, z: int) -> np.ndarray:
    """The box's in-plane rectangle as 4 napari vertices, on slice ``z`` for volumes."""
    (y0, x0), (y1, x1) = box.zyx_min[-2:], box.zyx_max[-2:]
    corners = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float)
    if len(box.zyx_min) == 2:
        return corners
    return np.column_stack([np.full(4, float(z)), corners])


def class_color(cls: str | None, classes: list[str]) -> str:
    """Edge colour of a lesion class."""
    if cls in CLASS_COLORS:
        return CLASS_COLORS[cls]
    return _OTHER_COLORS[(classes.index(cls) if cls in classes else 0) % len(_OTHER_COLORS)]


def box_shapes(
    boxes: dict[str, LesionBox], anchors: dict[str, int], classes: list[str]
) -> BoxShapes:
    """Everything the two Shapes layers show for ``boxes``."""
    out = BoxShapes()
    for n, (bid, box) in enumerate(boxes.items(), start=1):
        color = class_color(box.cls, classes)
        z = anchors.get(bid, middle_slice(box))
        out.rects.append(rect(box, z))
        out.ids.append(bid)
        out.labels.append(f"L{n} {box.cls or NOT_SET}")
        out.colors.append(color)
        rng = box.slice_range
        if rng is not None and box.is_3d:
            for k in range(rng[0], rng[1] + 1):
                if k != z:
                    out.extent.append(rect(box, k))
                    out.extent_colors.append(color)
    return out


def table_header(geometry: Any) -> list[str]:
    """Column titles: mm and mL, or px and voxels when the image states no pixel size."""
    return list(TABLE_HEADER if spacing_known(geometry) else TABLE_HEADER_PX)


def count(v: float) -> str:
    """A pixel count or length: whole numbers with spaced thousands (9 600), else one decimal."""
    if abs(v - round(v)) < 0.05:
        return f"{round(v):,d}".replace(",", _NBSP)
    return f"{v:,.1f}".replace(",", _NBSP)


def table_rows(boxes: dict[str, LesionBox], geometry: Any) -> list[list[str]]:
    """Rows of the lesion table (see :func:`table_header`)."""
    known = spacing_known(geometry)
    rows = []
    for r, box in enumerate(boxes.values()):
        rng = box.slice_range
        if known:
            size = box_size_mm(box, geometry)
            vol = box_volume_ml(box, geometry)
            plane = f"{size[-2]:.1f}×{size[-1]:.1f}"
            depth = f"{size[0]:.1f}" if rng is not None else ""  # one slice: its thickness
            amount = "" if vol is None else f"{vol:.2f}"
        else:
            px = box_size_px(box)
            plane = f"{count(px[-2])}×{count(px[-1])}"
            depth = count(px[0]) if rng is not None else ""
            amount = count(float(np.prod(px))) if box.is_3d else ""
        rows.append(
            [
                f"L{r + 1}",
                box.cls or NOT_SET,
                "" if box.confidence is None else str(box.confidence),
                "" if rng is None else f"{rng[0]}–{rng[1]}",
                plane,
                depth,
                amount,
                by_whom(box),
            ]
        )
    return rows


def by_whom(box: LesionBox) -> str:
    """Who made the box: the human, or the model a human confirmed (``model ✓ human``)."""
    if box.source.get("kind") == "model":
        return f"{box.source.get('name')} {box.source.get('version')} ✓ {box.created_by or '?'}"
    return str(box.created_by or "")


def size_text(box: LesionBox, geometry: Any, flat: bool = False) -> str:
    """One line: in-plane size, and depth, slice range and volume for a 3D box; in pixels
    (with the area, or the voxel count of a 3D box) when the image states no pixel size.

    ``flat``: the image has one slice (2D), so the slice a box lies on is not worth naming.
    """
    rng = box.slice_range
    if not spacing_known(geometry):
        px = box_size_px(box)
        text = f"Size: {count(px[-2])} × {count(px[-1])} px (y × x)"
        if box.is_3d and rng is not None:
            text += f", {count(px[0])} slices deep ({rng[0]}–{rng[1]}); "
            return text + f"{count(float(np.prod(px)))} voxels (pixel size unknown)"
        if rng is not None and not flat:
            text += f" on slice {rng[0]}"
        return text + f", area {count(px[-2] * px[-1])} px² (pixel size unknown)"
    size = box_size_mm(box, geometry)
    text = f"Size: {size[-2]:.1f} × {size[-1]:.1f} mm (y × x)"
    if box.is_3d and rng is not None:
        text += f", {size[0]:.1f} mm deep ({rng[0]}–{rng[1]}); "
        text += f"volume {box_volume_ml(box, geometry):.2f} mL"
    elif rng is not None and not flat:
        text += f" on slice {rng[0]}, {size[0]:.1f} mm deep (one slice)"
    return text
