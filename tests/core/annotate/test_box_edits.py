"""Box reconciliation and box-proposal edits, Qt-free: rectangles in, box records out."""

from __future__ import annotations

import numpy as np
import pytest

from napari_clinlabel.core.annotate.box_edits import (
    box_schema_in_force,
    box_voxel_indices,
    edited_proposal_box,
    lesion_schema_for,
    moved_extent,
    proposal_box_rects,
    reconcile_boxes,
    rect_extent,
)
from napari_clinlabel.core.annotate.boxes import LesionBox, load_boxes
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.image.samples import ct_phantom
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.schema import load_schema

SHAPE = (12, 64, 64)
ACTOR = Actor("dr.a", "Dr A", "annotator")


def _rect(z, lo, hi):
    """The rectangle napari shows for inclusive voxels ``lo..hi`` (y, x) on slice ``z``."""
    (y0, x0), (y1, x1) = lo, hi
    c = np.array([[y0, x0], [y0, x1 + 1], [y1 + 1, x1 + 1], [y1 + 1, x0]], float) - 0.5
    return np.column_stack([np.full(4, float(z)), c])


@pytest.fixture(scope="module")
def ct():
    return ct_phantom(shape=(16, 64, 64))


@pytest.fixture
def log(tmp_path, ct):
    schema = load_schema("lesions")
    return AuditLog(tmp_path / "ct.clinlabel.jsonl", ct.image_ref(), ACTOR, schema.ref())


def test_rect_extent_snaps_to_the_slice_drawn_on():
    verts = np.array([[3.2, 10, 20], [3.2, 10, 40], [2.9, 30, 40], [3.0, 30, 20]], float)
    assert rect_extent(verts) == ((3.0, 10.0, 20.0), (3.0, 30.0, 40.0))
    flat = np.array([[1, 2], [1, 8], [5, 8], [5, 2]], float)
    assert rect_extent(flat) == ((1.0, 2.0), (5.0, 8.0))
    box3d = LesionBox((1.5, 10, 20), (4.5, 30, 40))  # slices 2..4
    assert moved_extent(box3d, verts) == ((1.5, 10.0, 20.0), (4.5, 30.0, 40.0))


def test_reconcile_records_each_difference_once(log, ct):
    schema = load_schema("lesions")
    new = {"cls": "malignant", "confidence": 4, "attributes": {}}
    done = reconcile_boxes(log, {}, [("", _rect(5, (10, 10), (19, 19)))], ct, schema, new)
    (bid,) = done.boxes
    assert done.added == {0: bid} and not done.errors
    box = done.boxes[bid]
    assert box.zyx_min == (5.0, 9.5, 9.5) and box.zyx_max == (5.0, 19.5, 19.5)
    assert (box.cls, box.confidence, box.created_by) == ("malignant", 4, "dr.a")

    # moved, plus a copy of the same rectangle (same id twice → the second is a new box),
    # plus one outside the image (refused: nothing recorded, listed as rejected)
    moved = _rect(5, (12, 10), (21, 19))
    rects = [(bid, moved), (bid, moved), ("", _rect(5, (60, 60), (70, 70)))]
    done2 = reconcile_boxes(log, done.boxes, rects, ct, schema, new)
    assert done2.edited == [bid] and list(done2.added) == [1] and done2.rejected == [2]
    assert len(done2.errors) == 1 and "outside the image" in str(done2.errors[0])
    assert done2.boxes[bid].zyx_min == (5.0, 11.5, 9.5)

    # a rectangle left unchanged records nothing; a box without rectangle is deleted
    copy_id = done2.added[1]
    done3 = reconcile_boxes(log, done2.boxes, [(bid, moved)], ct, schema, new)
    assert done3.deleted == [copy_id] and not done3.edited and not done3.added
    actions = [r["action"] for r in iter_records(log.path)]
    assert actions == ["box.add", "box.edit", "box.add", "box.delete"]
    # the log replays to what reconciliation says is in force
    assert {k: v.to_dict() for k, v in load_boxes(log.path).items()} == {
        k: v.to_dict() for k, v in done3.boxes.items()
    }


def test_reconcile_keeps_a_3d_box_slice_range(log, ct):
    box = LesionBox((1.5, 10, 10), (4.5, 20, 20), created_by="dr.a")  # slices 2..4
    done = reconcile_boxes(log, {box.id: box}, [(box.id, _rect(3, (12, 12), (25, 25)))], ct)
    assert done.edited == [box.id]
    new = done.boxes[box.id]
    assert new.zyx_min == (1.5, 11.5, 11.5) and new.zyx_max == (4.5, 25.5, 25.5)
    assert new.slice_range == (2, 4)


def test_lesion_schema_choice():
    known = ["lesions", "breast-lesions"]
    assert lesion_schema_for("MG", None, known) == "breast-lesions"
    assert lesion_schema_for("ct", None, known) == "lesions"
    assert lesion_schema_for("MG", "lesions", known) == "lesions"  # the boxes' schema wins
    assert lesion_schema_for(None, "gone-schema", known) == "lesions"
    recs = [{"action": "box.add", "schema": {"id": "lesions"}},
            {"action": "grade.set", "schema": {"id": "birads"}},
            {"action": "box.edit", "schema": {"id": "breast-lesions"}}]  # fmt: skip
    assert box_schema_in_force(recs) == "breast-lesions"
    assert box_schema_in_force(recs[1:2]) is None


def test_box_proposal_rects_and_voxels():
    payload = {"zyx_min": [2, 10, 12], "zyx_max": [4, 20, 30]}
    rects = proposal_box_rects(payload)
    assert len(rects) == 3 and [r[0][0] for r in rects] == [2.0, 3.0, 4.0]
    np.testing.assert_array_equal(rects[1], _rect(3, (10, 12), (20, 30)))
    idx = box_voxel_indices(payload, SHAPE)
    mask = np.zeros(SHAPE, bool)
    mask[2:5, 10:21, 12:31] = True
    np.testing.assert_array_equal(np.sort(idx), np.flatnonzero(mask))


def test_edited_box_reads_voxels_a_rectangle_covers():
    proposed = {"zyx_min": [2, 10, 12], "zyx_max": [4, 20, 30]}
    same = [_rect(z, (10, 12), (20, 30)) for z in (2, 3, 4)]
    assert edited_proposal_box(same, proposed, SHAPE) is None
    # a drag of (+0.4, +1.3) voxels: the rectangle holds most of voxels y 10..20, x 13..31
    moved = [*same[:2], same[2] + np.array([0.0, 0.4, 1.3])]
    assert edited_proposal_box(moved, proposed, SHAPE) == ([2, 10, 13], [4, 20, 31])
    # off the image: clipped to the last voxel; nothing left: refused
    off = [_rect(3, (50, 50), (70, 70))]
    assert edited_proposal_box(off, proposed, SHAPE) == ([2, 50, 50], [4, 63, 63])
    with pytest.raises(ClinlabelError, match="covers no whole voxel"):
        edited_proposal_box([_rect(3, (70, 70), (80, 80))], proposed, SHAPE)
    with pytest.raises(ClinlabelError, match="changed differently on slices 2, 4"):
        edited_proposal_box(
            [_rect(2, (1, 1), (5, 5)), _rect(4, (6, 6), (9, 9))], proposed, SHAPE, 3
        )
    # the slice in view wins when slices disagree
    two = [_rect(2, (1, 1), (5, 5)), _rect(3, (6, 6), (9, 9))]
    assert edited_proposal_box(two, proposed, SHAPE, 3) == ([2, 6, 6], [4, 9, 9])
