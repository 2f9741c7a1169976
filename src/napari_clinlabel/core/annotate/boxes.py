"""Lesion boxes: 2D boxes on one slice and 3D boxes over a slice range, sized from the geometry.

Coordinates are continuous napari data (voxel index) coordinates in napari axis order (z, y, x)
or (y, x). In-plane corners are where the rectangle was drawn; a voxel ``k`` covers
``[k - 0.5, k + 0.5]``. A 2D box lies on one slice: ``z_min == z_max == slice``. A 3D box over
slices ``a..b`` spans ``z`` from ``a - 0.5`` to ``b + 0.5`` (whole slices), so its depth is
``(b - a + 1) × spacing_z``.

Sizes: the direction cosines are a rotation, so the index axes stay orthogonal in millimetres even
for oblique images; each box edge is its index extent times that axis' spacing, and the volume is
their product. World corners (LPS mm, napari order) are the images of the index corners.

An image whose file states no pixel size (PNG, JPEG, a TIFF without resolution tags: a
:class:`~.volume.PixelGeometry`) has no millimetres: :func:`box_size_mm` refuses it, and box
records carry ``"spacing_known": false``, ``size_px`` and ``size_mm`` / ``volume_ml`` /
``world_corners_mm`` set to null. Every box record has ``spacing_known`` and ``size_px``.

Every change is one record: ``box.add``, ``box.edit`` (data holds the whole box after the change
and the changed fields) and ``box.delete``. ``proposal.accept`` / ``proposal.edit`` records whose
data holds ``{"box": {...}}`` add a box attributed to the model (``source``) and confirmed by the
record's actor.
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import Volume, spacing_known
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records

HUMAN = {"kind": "human"}
_BOX_FIELDS = ("id", "zyx_min", "zyx_max", "class", "confidence", "attributes")


@dataclass
class LesionBox:
    """One lesion box (napari data coordinates, napari axis order) with its clinical attributes."""

    zyx_min: tuple[float, ...]
    zyx_max: tuple[float, ...]
    cls: str | None = None  # None: not set (no human chose a class)
    confidence: int | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    source: dict[str, Any] = field(default_factory=lambda: dict(HUMAN))
    created_by: str | None = None  # actor id of the human who drew or confirmed it

    def __post_init__(self) -> None:
        lo = tuple(float(v) for v in self.zyx_min)
        hi = tuple(float(v) for v in self.zyx_max)
        if len(lo) != len(hi) or len(lo) not in (2, 3):
            raise ClinlabelError(
                f"Box {self.id}: corners {lo} and {hi} must both have 2 or 3 coordinates."
            )
        self.zyx_min = tuple(min(a, b) for a, b in zip(lo, hi, strict=True))
        self.zyx_max = tuple(max(a, b) for a, b in zip(lo, hi, strict=True))

    @property
    def is_3d(self) -> bool:
        """True when the box spans more than one slice (a 3D box over a slice range)."""
        return len(self.zyx_min) == 3 and self.zyx_max[0] > self.zyx_min[0]

    @property
    def slice_range(self) -> tuple[int, int] | None:
        """First and last slice (inclusive) of a box on a volume; None for 2D images.

        A 3D box is on every slice its z extent overlaps (slice ``k`` covers ``k - 0.5 ..
        k + 0.5``): ``a..b`` for whole slices ``a - 0.5 .. b + 0.5`` and for ``a .. b`` alike
        (Python's half-to-even ``round`` made ``0..2`` slices 0–2 but ``1..3`` slice 2 alone)."""
        if len(self.zyx_min) != 3:
            return None
        if not self.is_3d:
            return int(round(self.zyx_min[0])), int(round(self.zyx_min[0]))
        eps = 1e-6  # an edge on a slice boundary, up to float noise, does not touch the next one
        return (
            int(np.floor(self.zyx_min[0] + 0.5 + eps)),
            int(np.ceil(self.zyx_max[0] - 0.5 - eps)),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON fields of the box (as in ``box.add`` data)."""
        return {
            "id": self.id,
            "zyx_min": list(self.zyx_min),
            "zyx_max": list(self.zyx_max),
            "class": self.cls,
            "confidence": self.confidence,
            "attributes": dict(self.attributes),
        }

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], source: dict[str, Any] | None = None, created_by: str | None = None
    ) -> LesionBox:
        """Inverse of :meth:`to_dict` (plus who made it)."""
        return cls(
            tuple(d["zyx_min"]),
            tuple(d["zyx_max"]),
            None if d.get("class") is None else str(d["class"]),
            None if d.get("confidence") is None else int(d["confidence"]),
            dict(d.get("attributes") or {}),
            str(d.get("id") or uuid.uuid4().hex[:8]),
            dict(source or HUMAN),
            created_by,
        )


def with_slices(box: LesionBox, first: int, last: int) -> LesionBox:
    """The box extended over slices ``first..last`` (inclusive): a 3D box (2D when equal)."""
    if len(box.zyx_min) != 3:
        raise ClinlabelError(f"Box {box.id} is on a 2D image; it has no slices to extend over.")
    a, b = sorted((int(first), int(last)))
    z0, z1 = (float(a), float(a)) if a == b else (a - 0.5, b + 0.5)
    return replace(box, zyx_min=(z0, *box.zyx_min[1:]), zyx_max=(z1, *box.zyx_max[1:]))


def box_size_px(box: LesionBox) -> tuple[float, ...]:
    """Edge lengths in pixels (voxels) along each index axis, napari order; a box on one slice of
    a volume is one slice deep (slice count × spacing gives its depth, as for a 3D box)."""
    size = [float(v) for v in np.subtract(box.zyx_max, box.zyx_min)]
    if len(size) == 3 and not box.is_3d:
        size[0] = 1.0  # z_min == z_max is the slice it lies on, which is one slice thick
    return tuple(size)


def box_size_mm(box: LesionBox, geometry: Geometry) -> tuple[float, ...]:
    """Edge lengths (mm) along each index axis, napari order; one slice's spacing along z for a
    box on one slice of a volume.

    The direction matrix is a rotation, so index axes remain orthogonal in physical space and
    each edge is simply its index extent times that axis' spacing (oblique images included).
    Refused (:class:`ClinlabelError`) on an image whose pixel size is unknown: use
    :func:`box_size_px` there.
    """
    if not spacing_known(geometry):
        raise ClinlabelError(
            f"Box {box.id}: the image states no physical pixel size, so its size is known in "
            "pixels only (box_size_px), not in mm."
        )
    return tuple(float(v) for v in np.asarray(box_size_px(box)) * np.asarray(geometry.spacing_zyx))


def box_volume_ml(box: LesionBox, geometry: Geometry) -> float | None:
    """Volume in mL of a 3D box (None for a 2D box or a 2D image, or when the pixel size is
    unknown: then :func:`box_size_px` gives its size in voxels)."""
    if not box.is_3d or not spacing_known(geometry):
        return None
    return float(np.prod(box_size_mm(box, geometry)) / 1000.0)


def box_world_corners_mm(box: LesionBox, geometry: Geometry) -> list[list[float]]:
    """World (LPS mm, napari order) of every distinct index corner of the box."""
    axes = [sorted({lo, hi}) for lo, hi in zip(box.zyx_min, box.zyx_max, strict=True)]
    corners = np.array(list(itertools.product(*axes)), dtype=float)
    return [[round(float(v), 4) for v in p] for p in geometry.index_to_world(corners)]


def image_name(volume: Volume) -> str:
    """A PHI-free name for messages: the file name, else the sample name, else 'the image'."""
    path = volume.source_path
    if path is not None:
        return path.name
    return str(volume.meta.get("sample") or "the image")


def validate_box(box: LesionBox, volume: Volume, schema: Any = None) -> None:
    """Raise :class:`ClinlabelError` if the box leaves the image or breaks the schema."""
    shape = volume.spatial_shape
    name = image_name(volume)
    extent = " × ".join(f"{lo:g}..{hi:g}" for lo, hi in zip(box.zyx_min, box.zyx_max, strict=True))
    if len(box.zyx_min) != len(shape):
        raise ClinlabelError(
            f"{name}: box {box.id} has {len(box.zyx_min)} coordinates but the image has "
            f"{len(shape)} axes; draw the box on this image."
        )
    for lo, hi, n in zip(box.zyx_min, box.zyx_max, shape, strict=True):
        if lo < -0.5 - 1e-6 or hi > n - 0.5 + 1e-6:
            raise ClinlabelError(
                f"{name}: box {box.id} (extent {extent}, voxel index (z, y, x)) lies outside the "
                f"image (0..{' × 0..'.join(str(s - 1) for s in shape)}); draw it inside the image."
            )
    if schema is None:
        return
    if schema.lesion_classes and box.cls is not None and box.cls not in schema.lesion_classes:
        raise ClinlabelError(
            f"{name}: class {box.cls!r} of box {box.id} is not in schema {schema.id!r} "
            f"({', '.join(schema.lesion_classes)}); choose one of those."
        )
    if box.confidence is not None and schema.confidence and box.confidence not in schema.confidence:
        raise ClinlabelError(
            f"{name}: confidence {box.confidence} of box {box.id} is not one of "
            f"{', '.join(map(str, schema.confidence))} (schema {schema.id!r})."
        )
    for key, value in box.attributes.items():
        allowed = schema.lesion_attributes.get(key)
        if allowed is None:
            raise ClinlabelError(
                f"{name}: attribute {key!r} of box {box.id} is not defined by schema "
                f"{schema.id!r} (it has {', '.join(schema.lesion_attributes) or 'none'})."
            )
        if value not in allowed:
            raise ClinlabelError(
                f"{name}: {key} {value!r} of box {box.id} is not one of {', '.join(allowed)}."
            )


def box_record_data(box: LesionBox, geometry: Geometry) -> dict[str, Any]:
    """Record data of a box: its fields plus size (px, and mm), volume (mL) and world corners
    (mm); the mm/mL fields are null when the image states no pixel size (``spacing_known``)."""
    known = spacing_known(geometry)
    return {
        **box.to_dict(),
        "spacing_known": known,
        "size_px": [round(v, 4) for v in box_size_px(box)],
        "size_mm": [round(v, 4) for v in box_size_mm(box, geometry)] if known else None,
        "volume_ml": box_volume_ml(box, geometry),
        "world_corners_mm": box_world_corners_mm(box, geometry) if known else None,
    }


def add_box(log: AuditLog, box: LesionBox, volume: Volume, schema: Any = None) -> dict[str, Any]:
    """Validate and log a new box (``box.add``); returns the record."""
    validate_box(box, volume, schema)
    return log.append("box.add", {"box": box.id}, box_record_data(box, volume.geometry))


def edit_box(
    log: AuditLog,
    box: LesionBox,
    changes: dict[str, Any],
    volume: Volume,
    schema: Any = None,
) -> tuple[LesionBox, dict[str, Any]]:
    """Apply ``changes`` (``zyx_min``, ``zyx_max``, ``cls``/``class``, ``confidence``,
    ``attributes``) to ``box``, validate and log ``box.edit``; returns (new box, record)."""
    kw = {("cls" if k == "class" else k): v for k, v in changes.items()}
    unknown = set(kw) - {"zyx_min", "zyx_max", "cls", "confidence", "attributes"}
    if unknown:
        raise ClinlabelError(f"Box {box.id}: cannot change {', '.join(sorted(unknown))}.")
    new = replace(box, **kw)
    new.__post_init__()
    validate_box(new, volume, schema)
    data = box_record_data(new, volume.geometry)
    data["changed"] = sorted("class" if k == "cls" else k for k in kw)
    return new, log.append("box.edit", {"box": box.id}, data)


def delete_box(log: AuditLog, box_id: str) -> dict[str, Any]:
    """Log the deletion of box ``box_id`` (``box.delete``); returns the record."""
    return log.append("box.delete", {"box": box_id}, {"id": box_id})


def boxes_from_records(records: Any) -> dict[str, LesionBox]:
    """Boxes in force after ``records`` (box.add/edit/delete/import, proposal.accept/edit with
    a box)."""
    boxes: dict[str, LesionBox] = {}
    for rec in records:
        action = rec.get("action")
        data = rec.get("data") or {}
        actor = (rec.get("actor") or {}).get("id")
        if action == "box.add":
            boxes[data["id"]] = LesionBox.from_dict(data, rec.get("source"), actor)
        elif action == "box.edit" and data.get("id") in boxes:
            old = boxes[data["id"]]
            boxes[data["id"]] = LesionBox.from_dict(data, old.source, old.created_by)
        elif action == "box.delete":
            boxes.pop((rec.get("target") or {}).get("box") or data.get("id"), None)
        elif action == "box.import":  # boxes read from a DICOM SR (core.export.sr_read), one record
            for d in data.get("boxes") or []:  # never replaces (re-attributes) a box in force
                if d["id"] not in boxes:
                    boxes[d["id"]] = LesionBox.from_dict(d, rec.get("source"), actor)
        elif action in ("proposal.accept", "proposal.edit") and isinstance(data.get("box"), dict):
            b = box_from_proposal(data, rec.get("source"), actor)
            if b is not None:
                boxes[b.id] = b
    return boxes


def box_from_proposal(
    data: dict[str, Any], source: dict[str, Any] | None, actor: str | None
) -> LesionBox | None:
    """The box a ``proposal.accept``/``proposal.edit`` record confirms (None if it holds none).

    Boxes written by this module (they carry ``size_mm``) are taken as they are; model boxes
    give *inclusive voxel indices* (core.proposals) and become the voxels' outer edges
    (``lo - 0.5 .. hi + 0.5``), except a box one slice thick, which stays on that slice.
    """
    raw = data["box"]
    if isinstance(raw.get("box"), dict):  # a payload nesting its box
        raw = raw["box"]
    if "zyx_min" not in raw or "zyx_max" not in raw:
        return None
    d = dict(raw)
    d.setdefault("id", str(data.get("proposal") or uuid.uuid4().hex[:8]))
    if "size_mm" not in raw:
        lo = np.asarray(raw["zyx_min"], float)
        hi = np.asarray(raw["zyx_max"], float)
        lo2, hi2 = lo - 0.5, hi + 0.5
        if lo.size == 3 and lo[0] == hi[0]:
            lo2[0] = hi2[0] = lo[0]
        d["zyx_min"], d["zyx_max"] = lo2.tolist(), hi2.tolist()
    if not isinstance(d.get("class"), str):
        d["class"] = None  # the model named no class: not set, never a made-up one
    conf = d.get("confidence")
    d["confidence"] = conf if isinstance(conf, int) else None
    d["attributes"] = {str(k): str(v) for k, v in (d.get("attributes") or {}).items()}
    return LesionBox.from_dict(d, source, actor)


def load_boxes(log_path: str | os.PathLike[str]) -> dict[str, LesionBox]:
    """Boxes in force, rebuilt from a sidecar log (empty when the log does not exist)."""
    return boxes_from_records(iter_records(log_path))
