"""Drawn rectangles → box records: reconcile a layer of rectangles with the boxes in force.

A viewer shows each lesion box as one rectangle (napari vertices, napari axis order (z, y, x) or
(y, x)) tagged with its box id. After the user draws, moves, resizes or deletes rectangles,
:func:`reconcile_boxes` turns every difference into one record through :mod:`.boxes`: an
untagged (or duplicated, or unknown) rectangle is a new box (``box.add``), a tagged one whose
extent moved is a ``box.edit`` (a 3D box keeps its slice range: a rectangle edits the in-plane
extent only), a box without rectangle is a ``box.delete``. Refused changes (outside the image,
not allowed by the schema) are reported back, never recorded. Pure of Qt and napari.

Also here: which lesion schema an image gets (:func:`lesion_schema_for`) and the box a reviewer
left when editing a model's box proposal (:func:`edited_proposal_box`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_clinlabel.core.annotate.boxes import LesionBox, add_box, delete_box, edit_box
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.audit_log import AuditLog

DEFAULT_SCHEMA = "lesions"
MAMMOGRAPHY_SCHEMA = "breast-lesions"
BOX_ACTIONS = ("box.add", "box.edit", "box.delete")

Extent = tuple[tuple[float, ...], tuple[float, ...]]


def rect_extent(verts: np.ndarray) -> Extent:
    """``(zyx_min, zyx_max)`` of a drawn rectangle; on a volume it lies on the slice it was drawn on."""
    verts = np.asarray(verts, dtype=float)
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    if verts.shape[1] == 3:  # a rectangle drawn on one slice: snap to that slice
        z = float(np.round(verts[:, 0].mean()))
        lo[0] = hi[0] = z
    return tuple(float(v) for v in lo), tuple(float(v) for v in hi)


def moved_extent(box: LesionBox, verts: np.ndarray) -> Extent:
    """The extent of ``box`` after its rectangle became ``verts`` (a 3D box keeps its slices)."""
    lo, hi = rect_extent(verts)
    if box.is_3d:
        lo, hi = (box.zyx_min[0], *lo[1:]), (box.zyx_max[0], *hi[1:])
    return lo, hi


@dataclass
class Reconciled:
    """What :func:`reconcile_boxes` recorded: the boxes in force afterwards and what changed."""

    boxes: dict[str, LesionBox]
    added: dict[int, str] = field(default_factory=dict)  # rectangle index -> new box id
    edited: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)  # rectangles whose new box was refused
    errors: list[ClinlabelError] = field(default_factory=list)


def reconcile_boxes(
    log: AuditLog,
    boxes: dict[str, LesionBox],
    rects: Sequence[tuple[str, np.ndarray]],
    volume: Volume,
    schema: Any = None,
    new_box: dict[str, Any] | None = None,
) -> Reconciled:
    """Record every difference between ``rects`` (``(box id or "", vertices)`` per rectangle, in
    layer order) and ``boxes``; a new box takes ``new_box``'s ``cls``/``confidence``/``attributes``.

    Records are written rectangle by rectangle (adds and edits), then the deletions. A refused
    change is kept in ``errors`` and not recorded: a refused new rectangle is listed in
    ``rejected``, a refused edit leaves the box as it was.
    """
    out = Reconciled(dict(boxes))
    seen: set[str] = set()
    fields = dict(new_box or {})
    for i, (bid, verts) in enumerate(rects):
        if not bid or bid in seen or bid not in out.boxes:
            lo, hi = rect_extent(verts)
            box = LesionBox(lo, hi, created_by=log.actor.id, **fields)
            try:
                add_box(log, box, volume, schema)
            except ClinlabelError as exc:
                out.errors.append(exc)
                out.rejected.append(i)
                continue
            out.boxes[box.id] = box
            out.added[i] = box.id
            seen.add(box.id)
            continue
        seen.add(bid)
        old = out.boxes[bid]
        lo, hi = moved_extent(old, verts)
        if np.allclose(lo, old.zyx_min) and np.allclose(hi, old.zyx_max):
            continue
        try:
            out.boxes[bid], _rec = edit_box(log, old, {"zyx_min": lo, "zyx_max": hi}, volume,
                                            schema)  # fmt: skip
        except ClinlabelError as exc:
            out.errors.append(exc)
            continue
        out.edited.append(bid)
    for bid in [b for b in out.boxes if b not in seen]:
        try:
            delete_box(log, bid)
        except ClinlabelError as exc:
            out.errors.append(exc)
            continue
        del out.boxes[bid]
        out.deleted.append(bid)
    return out


def box_schema_in_force(records: Iterable[dict[str, Any]]) -> str | None:
    """Id of the schema named by the latest box record, or None (no box records)."""
    found = None
    for rec in records:
        if rec.get("action") in BOX_ACTIONS and (rec.get("schema") or {}).get("id"):
            found = rec["schema"]["id"]
    return found


def lesion_schema_for(modality: str | None, in_force: str | None, known: Sequence[str]) -> str:
    """The lesion schema for an image: the one its boxes were drawn with (when installed), else
    ``breast-lesions`` (BI-RADS lexicon) for a mammogram (modality MG), else ``lesions``."""
    if in_force in known:
        return str(in_force)
    return MAMMOGRAPHY_SCHEMA if str(modality or "").upper() == "MG" else DEFAULT_SCHEMA


# -- model box proposals (inclusive voxel indices) -------------------------------------------
def proposal_box_rects(payload: dict[str, Any]) -> list[np.ndarray]:
    """A box proposal's rectangles (pixel edges), one per slice of a 3D box."""
    lo, hi = payload["zyx_min"], payload["zyx_max"]
    (y0, x0), (y1, x1) = lo[-2:], hi[-2:]
    corners = np.array([[y0, x0], [y0, x1 + 1], [y1 + 1, x1 + 1], [y1 + 1, x0]], float) - 0.5
    if len(lo) == 2:
        return [corners]
    return [np.column_stack([np.full(4, float(z)), corners]) for z in range(lo[0], hi[0] + 1)]


def box_voxel_indices(box: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    """Flat C-order indices of the voxels an inclusive ``zyx_min``..``zyx_max`` box covers."""
    sl = tuple(
        slice(int(a), int(b) + 1) for a, b in zip(box["zyx_min"], box["zyx_max"], strict=True)
    )
    grid = np.indices(tuple(s.stop - s.start for s in sl)).reshape(len(sl), -1)
    full = tuple(g + s.start for g, s in zip(grid, sl, strict=True))
    return np.ravel_multi_index(full, shape).astype(np.int64)


def edited_proposal_box(
    rects: list[np.ndarray], payload: dict[str, Any], shape: tuple, shown_z: int | None = None
) -> tuple[list[int], list[int]] | None:
    """The box the reviewer left (inclusive voxel ``zyx_min``, ``zyx_max``); None when unchanged.

    A rectangle covers the voxels it holds at least half of (its vertices' bounding box, so a
    rotated one counts by its extent); the z extent stays as proposed. Where a 3D box's rectangles
    were changed differently, the one on ``shown_z`` (the slice in view) counts. Raises
    :class:`ClinlabelError` when no rectangle is left, the box covers no voxel of the image, or two
    slices other than the one in view disagree.
    """
    lo, hi = [int(v) for v in payload["zyx_min"]], [int(v) for v in payload["zyx_max"]]
    if not rects:
        raise ClinlabelError(
            "The proposed box is no longer drawn (it was deleted from the layer): press N then P "
            "to draw it again, or R to reject it. Nothing was recorded."
        )
    top = np.asarray(shape[-2:], int) - 1
    changed: dict[int | None, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for r in rects:
        yx = np.asarray(r, float)[:, -2:]
        a = np.maximum(np.ceil(yx.min(axis=0) - 1e-6).astype(int), 0)
        b = np.minimum(np.floor(yx.max(axis=0) + 1e-6).astype(int), top)
        if np.any(a > b):
            raise ClinlabelError(
                "The edited box covers no whole voxel of the image: make it bigger (or move it "
                "back onto the image), or press R to reject it. Nothing was recorded."
            )
        ext = (tuple(a.tolist()), tuple(b.tolist()))
        if ext != (tuple(lo[-2:]), tuple(hi[-2:])):
            changed[int(round(float(r[0][0]))) if len(lo) == 3 else None] = ext
    if not changed:
        return None
    if len(set(changed.values())) > 1:
        if shown_z not in changed:
            where = ", ".join(str(z) for z in sorted(k for k in changed if k is not None))
            raise ClinlabelError(
                f"The box was changed differently on slices {where}: show the slice whose box is "
                "right and press E again (or N then P to start over). Nothing was recorded."
            )
        ext = changed[shown_z]
    else:
        ext = next(iter(changed.values()))
    return lo[:-2] + list(ext[0]), hi[:-2] + list(ext[1])
