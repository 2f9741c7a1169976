"""Reopening restores boxes, grades, tile grades and done from the log alone."""

from __future__ import annotations

from napari_clinlabel.core.annotate.boxes import LesionBox, add_box
from napari_clinlabel.core.annotate.grading import mark_done, set_grade
from napari_clinlabel.core.annotate.state import image_grades, restore_state
from napari_clinlabel.core.image.samples import ct_phantom
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.schema import load_schema


def test_restore_everything(tmp_path):
    vol = ct_phantom(shape=(8, 32, 32))
    log = AuditLog(tmp_path / "x.clinlabel.jsonl", vol.image_ref(), Actor("u", "U"))
    lesions, icdr, isup = load_schema("lesions"), load_schema("icdr"), load_schema("isup")
    log.schema = lesions.ref()
    box = LesionBox((2, 3, 3), (2, 9, 9), "benign", 2, {"shape": "oval"})
    add_box(log, box, vol, lesions)
    log.schema = icdr.ref()
    set_grade(log, icdr.scales["dr"], "2")
    set_grade(log, icdr.scales["dme"], "absent")
    mark_done(log, icdr)
    log.schema = isup.ref()
    set_grade(log, isup.scales["isup"], "4", item="r000c001")
    state = restore_state(log.path)
    assert state.boxes[box.id].to_dict() == box.to_dict()
    assert image_grades(state) == {"dr": "2", "dme": "absent"}
    assert {k: g.value for k, g in state.tile_grades.items()} == {("isup", "r000c001"): "4"}
    assert state.done and state.schema == isup.ref()


def test_empty_state(tmp_path):
    s = restore_state(tmp_path / "missing.jsonl")
    assert s.boxes == {} and s.grades == {} and not s.done


def test_labels_and_proposals_come_back(tmp_path):
    import numpy as np

    from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create

    vol = ct_phantom(shape=(8, 32, 32))
    log = AuditLog(tmp_path / "y.clinlabel.jsonl", vol.image_ref(), Actor("u", "U"))
    labels = np.zeros(vol.spatial_shape, np.uint8)
    record_labels_create(log, "segmentation", labels.shape, labels.dtype)
    idx = np.arange(100, 140, dtype=np.int64)
    labels.reshape(-1)[idx] = 3
    record_label_change(
        log, labels, "segmentation", idx, np.zeros(40, np.uint8), np.full(40, 3, np.uint8)
    )
    state = restore_state(log.path)
    np.testing.assert_array_equal(state.labels["segmentation"], labels)
