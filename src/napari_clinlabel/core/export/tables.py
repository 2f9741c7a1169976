"""Lesion boxes and grades as JSON, CSV and COCO.

Boxes carry voxel coordinates (napari order, (z, y, x) or (y, x), box corners as drawn) and world
coordinates (LPS mm, same axis order), class, confidence, attributes, edge lengths in mm and the
volume in mL of 3D boxes, plus who confirmed them and which model proposed them, if any. Grades
carry scale, item (``image``, a study or a tile id), value, label, grader and time. COCO holds
boxes on 2D images (and 2D boxes on single slices of a volume, one COCO image per slice) and tile
grades (one annotation per graded tile, its bbox the tile, its category the grade).

Unknown pixel size (PNG, JPEG, a TIFF without resolution tags: ``spacing_known`` false): nothing
is called mm that is really pixels. Every box carries ``spacing_known`` and ``size_px`` (edge
lengths in pixels, napari order); when the spacing is unknown ``size_mm``, ``volume_ml`` and the
world coordinates are null in JSON and blank in CSV (columns ``size_z_px, size_y_px, size_x_px,
spacing_known`` come last, the same for every image). COCO ``bbox`` and ``area`` are pixels by
COCO's own convention, whatever the spacing, and COCO carries no mm.

Resampled image (an uneven DICOM series opened resampled): ``slice_first``/``slice_last`` and the
voxel z are on the resampled grid; each box also carries ``original_slice_first``/``_last``, the
series' own slice numbers (1-based) it goes onto as labels do on export, and CSV adds the
``slice_grid``, ``original_slice_first``, ``original_slice_last`` columns last (JSON: a top-level
``slice_grid``). World mm are unchanged.

Not set: a class or confidence no human chose is ``null`` in JSON (as in the log), ``not set`` in
CSV, and the category ``not set`` in COCO; an attribute nobody set is left out. Never ``None``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from napari_clinlabel.core.annotate.box_view import NOT_SET
from napari_clinlabel.core.annotate.boxes import (
    LesionBox,
    box_size_mm,
    box_size_px,
    box_volume_ml,
    box_world_corners_mm,
)
from napari_clinlabel.core.annotate.grading import Grade
from napari_clinlabel.core.annotate.tiles import TileGrid, parse_tile_id
from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import spacing_known
from napari_clinlabel.core.safe_text import csv_row

BOX_COLUMNS = [
    "id", "class", "confidence", "attributes", "slice_first", "slice_last",
    "z_min", "y_min", "x_min", "z_max", "y_max", "x_max",
    "world_min_z_mm", "world_min_y_mm", "world_min_x_mm",
    "world_max_z_mm", "world_max_y_mm", "world_max_x_mm",
    "size_z_mm", "size_y_mm", "size_x_mm", "volume_ml", "confirmed_by", "model",
    "size_z_px", "size_y_px", "size_x_px", "spacing_known",
]  # fmt: skip
GRADE_COLUMNS = ["scale", "item", "value", "label", "grader", "time", "seq", "note"]


def _model(src: dict[str, Any]) -> str | None:
    if src.get("kind") != "model":
        return None
    return f"{src.get('name')} {src.get('version')}"


def box_row(box: LesionBox, geometry: Geometry) -> dict[str, Any]:
    """One box as a flat JSON-ready dict (voxel and world coordinates, size, volume, provenance);
    the mm fields are None when the pixel size is unknown (see the module docstring)."""
    known = spacing_known(geometry)
    pad = (0.0,) if len(box.zyx_min) == 2 else ()
    lo, hi = (*pad, *box.zyx_min), (*pad, *box.zyx_max)
    size_px = box_size_px(box)
    rng = box.slice_range
    if known:
        world_lo = geometry.index_to_world(box.zyx_min)
        world_hi = geometry.index_to_world(box.zyx_max)
        size = box_size_mm(box, geometry)
        mm = {
            "world_min_zyx_mm": [round(float(v), 4) for v in world_lo],
            "world_max_zyx_mm": [round(float(v), 4) for v in world_hi],
            "world_corners_mm": box_world_corners_mm(box, geometry),
            "size_mm": [round(float(v), 4) for v in size],
            "volume_ml": box_volume_ml(box, geometry),
        }
        flat_mm = ((*pad, *world_lo.tolist()), (*pad, *world_hi.tolist()), (*pad, *size))
    else:
        mm = dict.fromkeys(("world_min_zyx_mm", "world_max_zyx_mm", "world_corners_mm",
                            "size_mm", "volume_ml"))  # fmt: skip
        flat_mm = ((None,) * 3,) * 3
    return {
        "id": box.id,
        "class": box.cls,
        "confidence": box.confidence,
        "attributes": dict(box.attributes),
        "slice_first": None if rng is None else rng[0],
        "slice_last": None if rng is None else rng[1],
        "voxel_min_zyx": list(box.zyx_min),
        "voxel_max_zyx": list(box.zyx_max),
        **mm,
        "size_px": [round(float(v), 4) for v in size_px],
        "spacing_known": known,
        "confirmed_by": box.created_by,
        "model": _model(box.source),
        "_flat": (lo, hi, *flat_mm, (*pad, *size_px)),
    }


#: resampled slices (first, last) -> the original slice numbers they go onto, or None
OriginalSpan = Callable[[int, int], "tuple[int, int] | None"]
RESAMPLED_COLUMNS = ["slice_grid", "original_slice_first", "original_slice_last"]


def _original(row: dict[str, Any], span: OriginalSpan) -> tuple[Any, Any]:
    if row["slice_first"] is None:
        return None, None
    got = span(row["slice_first"], row["slice_last"])
    return (None, None) if got is None else got


def boxes_json_obj(
    boxes: Iterable[LesionBox], geometry: Geometry, original_span: OriginalSpan | None = None
) -> list[dict[str, Any]]:
    """Boxes as a list of JSON objects (``original_span``: a resampled image's mapping)."""
    out = []
    for b in boxes:
        row = box_row(b, geometry)
        row.pop("_flat")
        if original_span is not None:
            row["original_slice_first"], row["original_slice_last"] = _original(row, original_span)
        out.append(row)
    return out


def boxes_csv(
    boxes: Iterable[LesionBox],
    geometry: Geometry,
    original_span: OriginalSpan | None = None,
    slice_grid: str = "",
) -> bytes:
    """Boxes as CSV (one row per box; attributes as ``key=value;…``); mm columns blank and
    ``spacing_known`` false when the image states no pixel size. A resampled image
    (``original_span``) adds :data:`RESAMPLED_COLUMNS` last, ``slice_grid`` naming the grid."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(BOX_COLUMNS + (RESAMPLED_COLUMNS if original_span is not None else []))
    for b in boxes:
        r = box_row(b, geometry)
        lo, hi, wl, wh, size, size_px = r["_flat"]
        attrs = ";".join(f"{k}={v}" for k, v in sorted(r["attributes"].items()))
        tail = []
        if original_span is not None:
            tail = [slice_grid, *(_blank(v) for v in _original(r, original_span))]
        w.writerow(csv_row(
            [r["id"], _not_set(r["class"]), _not_set(r["confidence"]), attrs,
             _blank(r["slice_first"]),
             _blank(r["slice_last"]), *lo, *hi, *(_mm(v) for v in wl), *(_mm(v) for v in wh),
             *(_mm(v) for v in size), _blank(r["volume_ml"]), r["confirmed_by"] or "",
             r["model"] or "", *(round(v, 4) for v in size_px),
             "true" if r["spacing_known"] else "false", *tail]
        ))  # fmt: skip
    return buf.getvalue().encode("utf-8")


def _blank(v: Any) -> Any:
    return "" if v is None else v


def _not_set(v: Any) -> Any:
    """A human's choice as written, or ``not set`` where nobody chose (never ``None``)."""
    return NOT_SET if v is None else v


def _mm(v: float | None) -> Any:
    return "" if v is None else round(v, 4)


def grade_obj(g: Grade) -> dict[str, Any]:
    """A grade as JSON (history left out: the log keeps it)."""
    return {
        "scale": g.scale, "item": g.item, "value": g.value, "label": g.label,
        "grader": g.grader, "time": g.time, "seq": g.seq, "note": g.note,
    }  # fmt: skip


def grades_csv(grades: Iterable[Grade]) -> bytes:
    """Grades as CSV (``scale,item,value,label,grader,time,seq,note``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(GRADE_COLUMNS)
    for g in grades:
        d = grade_obj(g)
        w.writerow(csv_row([d[c] for c in GRADE_COLUMNS]))
    return buf.getvalue().encode("utf-8")


def tables_json(
    boxes: Iterable[LesionBox],
    grades: Iterable[Grade],
    geometry: Geometry,
    extra: dict[str, Any],
    original_span: OriginalSpan | None = None,
) -> bytes:
    """One JSON document with boxes, grades and the ``extra`` context (schema, log head)."""
    doc = {
        **extra,
        "boxes": boxes_json_obj(boxes, geometry, original_span),
        "grades": [grade_obj(g) for g in grades],
    }
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def coco(
    boxes: Iterable[LesionBox],
    grades: Iterable[Grade],
    shape: tuple[int, ...],
    file_name: str,
    *,
    classes: list[str] | None = None,
    tile_size: int | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """COCO JSON: 2D boxes (per slice on volumes) and tile grades; 3D boxes are refused."""
    boxes = list(boxes)
    if len(shape) == 3:
        h, w = int(shape[1]), int(shape[2])
    elif len(shape) == 2:
        h, w = int(shape[0]), int(shape[1])
    else:
        raise ExportError(f"COCO needs a 2D image or slices of a volume, not shape {shape}.")
    names = list(classes or [])
    for b in boxes:
        if _not_set(b.cls) not in names:
            names.append(_not_set(b.cls))
    categories = [{"id": i + 1, "name": n, "supercategory": "lesion"} for i, n in enumerate(names)]
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    images: dict[str, dict[str, Any]] = {}

    def image_id(key: str, fname: str) -> int:
        if key not in images:
            images[key] = {"id": len(images) + 1, "file_name": fname, "width": w, "height": h}
        return images[key]["id"]

    annotations = []
    for b in boxes:
        if b.is_3d:
            raise ExportError(
                f"Box {b.id} spans several slices; COCO holds 2D boxes only. Export JSON or CSV."
            )
        if len(b.zyx_min) == 3:
            k = int(round(b.zyx_min[0]))
            iid = image_id(f"z{k}", f"{file_name}#z{k:04d}")
            lo, hi = b.zyx_min[1:], b.zyx_max[1:]
        else:
            iid = image_id("", file_name)
            lo, hi = b.zyx_min, b.zyx_max
        bw, bh = float(hi[1] - lo[1]), float(hi[0] - lo[0])
        annotations.append(
            {"id": len(annotations) + 1, "image_id": iid, "category_id": cat_id[_not_set(b.cls)],
             "bbox": [float(lo[1]), float(lo[0]), bw, bh], "area": bw * bh, "iscrowd": 0,
             "attributes": {"box_id": b.id, "confidence": b.confidence, **b.attributes,
                            "confirmed_by": b.created_by, "model": _model(b.source)}}
        )  # fmt: skip
    tile_grades = [g for g in grades if _is_tile(g.item)]
    if tile_grades:
        if not tile_size:
            raise ExportError("Tile grades need the schema's tile_size to place tiles in COCO.")
        grid = TileGrid((h, w), tile_size)
        iid = image_id("", file_name)
        for g in sorted(tile_grades, key=lambda g: parse_tile_id(g.item)):
            name = f"{g.scale}:{g.value}"
            if name not in cat_id:
                cat_id[name] = len(categories) + 1
                categories.append({"id": cat_id[name], "name": name, "supercategory": g.scale})
            y0, x0, y1, x1 = grid.bounds(g.item)
            annotations.append(
                {"id": len(annotations) + 1, "image_id": iid, "category_id": cat_id[name],
                 "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                 "iscrowd": 0, "attributes": {"tile": g.item, "scale": g.scale, "grade": g.value,
                                              "grader": g.grader, "time": g.time}}
            )  # fmt: skip
    if not images:
        image_id("", file_name)
    doc = {
        "info": {"description": "napari-clinlabel export", **(extra or {})},
        "images": sorted(images.values(), key=lambda d: d["id"]),
        "annotations": annotations,
        "categories": categories,
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _is_tile(item: str) -> bool:
    try:
        parse_tile_id(item)
    except Exception:
        return False
    return True
