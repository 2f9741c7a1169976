"""Issue 14 "Deliver": a test walks every recording widget's records for inherited values.

Each widget is driven as a user would; after each action the records it wrote are walked: every
field that carries a human choice holds what the user chose in *that* action, or "not set"
(null / empty / absent) — never a value chosen earlier, for another box, image, tile or proposal.
"""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct, drag, layer_drag, show_slice

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.grading import GradingWidget
from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel._widgets.tile_grading import TileGradingWidget
from napari_clinlabel.core.annotate.box_view import NOT_SET
from napari_clinlabel.core.image.samples import (
    ct_phantom,
    fundus_phantom,
    mammogram_phantom,
    pathology_slide,
)
from napari_clinlabel.core.log.audit_log import ObjectStore, iter_records, sidecar_paths
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton
UNSET = (None, "", {}, [])
# the fields of a record's data that carry a human's choice
CHOICE_FIELDS = ("class", "confidence", "attributes", "note", "value", "params", "companion")


class Log:
    """A log read action by action: :meth:`new` gives the records written since the last call
    (the ``image.open`` a first action writes left out: it holds no choice)."""

    def __init__(self, path):
        self.path, self.seen = path, 0

    def new(self):
        recs = list(iter_records(self.path))[self.seen :] if self.path.exists() else []
        self.seen += len(recs)
        return [r for r in recs if r["action"] != "image.open"]


def only_chosen(data: dict, chosen: dict) -> None:
    """Every choice field of ``data`` holds what was chosen in this action, or is not set."""
    for f in CHOICE_FIELDS:
        got = data.get(f)
        if f in chosen:
            assert got == chosen[f], (f, got, chosen[f])
        else:
            assert got in UNSET, f"{f}={got!r} was not chosen in this action"


def _keys(qtbot, viewer, *keys):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    for k in keys:
        qtbot.keyClick(canvas, k)


def test_segmentation_stroke_holds_its_own_label_and_tool(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    image = add_ct(viewer, tmp_path)
    w = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(w, area="right")
    qtbot.mouseClick(w._start_btn, LEFT)
    labels = w._labels
    log = Log(get_session(viewer).log_path_for(image))
    store = ObjectStore(sidecar_paths(tmp_path / "ct.nii.gz")[1])
    log.new()
    show_slice(viewer, labels, 6)
    viewer.reset_view()
    labels.mode, labels.brush_size = "paint", 4

    def stroke(row):
        drag(qtbot, viewer, labels, 6, (row, 10), (row, 50))
        (rec,) = [r for r in log.new() if r["action"] == "label.paint"]
        diff = store.get_arrays(rec["data"]["objects"]["diff"])
        return rec, set(np.unique(diff["new"]).tolist())

    # stroke 1: label 2, painting limited to an intensity window the user set
    w._label_table.select_value(2)
    w._window_check.setChecked(True)
    w._low.setValue(-2000)
    w._high.setValue(4000)
    rec, values = stroke(20)
    assert values == {2} and rec["data"]["tool"] == "threshold_paint"
    only_chosen(rec["data"], {"params": {"window": [-2000.0, 4000.0]}})
    # stroke 2: window off, label 3: the window and label 2 stay with stroke 1
    w._window_check.setChecked(False)
    w._label_table.select_value(3)
    rec, values = stroke(40)
    assert values == {3} and rec["data"]["tool"] == "brush"
    only_chosen(rec["data"], {})
    assert rec["actor"]["id"] == get_session(viewer).actor.id


def test_second_box_takes_nothing_from_the_first(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    image = add_volume(viewer, ct_phantom(shape=(16, 64, 64)), name="ct")
    w = LesionBoxWidget(viewer)
    qtbot.addWidget(w)
    log = Log(get_session(viewer).log_path_for(image))
    viewer.dims.set_point(0, float(image.data_to_world((6, 0, 0))[0]))
    log.new()
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, w.layer, (6, 10, 10), (6, 20, 24))
    (add1,) = log.new()
    assert add1["action"] == "box.add"
    only_chosen(add1["data"], {})
    # fields set on box 1 only, each one box.edit holding just that box's values
    attr = next(iter(w._attrs))
    attr_value = w._attrs[attr].itemText(1)
    w._class.setCurrentText("malignant")
    w._confidence.setCurrentText("4")
    w._attrs[attr].setCurrentText(attr_value)
    edits = log.new()
    assert [r["action"] for r in edits] == ["box.edit"] * 3
    only_chosen(edits[-1]["data"], {"class": "malignant", "confidence": 4,
                                    "attributes": {attr: attr_value}})  # fmt: skip
    # box 2, drawn at once (box 1 still selected): not set, and the form says so
    layer_drag(viewer, w.layer, (6, 30, 30), (6, 40, 44))
    (add2,) = log.new()
    assert add2["action"] == "box.add" and add2["data"]["id"] != add1["data"]["id"]
    only_chosen(add2["data"], {})
    # the form already describes box 2 (not set), so what the user picks now is box 2's alone
    assert w._class.currentText() == NOT_SET and w._confidence.currentText() == NOT_SET
    w._confidence.setCurrentText("2")
    (edit2,) = log.new()
    assert edit2["action"] == "box.edit" and edit2["target"]["box"] == add2["data"]["id"]
    only_chosen(edit2["data"], {"confidence": 2})


def test_grades_carry_only_their_own_note_and_value(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    mg = add_volume(viewer, mammogram_phantom(), name="mammogram")
    fu = add_volume(viewer, fundus_phantom(), name="fundus")
    w = GradingWidget(viewer)
    qtbot.addWidget(w)
    session = get_session(viewer)
    w._image_combo.setCurrentText("mammogram")
    viewer.layers.selection.active = mg
    w._schema_combo.setCurrentText("birads")
    mg_log = Log(session.log_path_for(mg))
    mg_log.new()
    qtbot.keyClicks(w._note, "spiculated mass")
    _keys(qtbot, viewer, Qt.Key.Key_B)  # BI-RADS 4B, with the note typed for it
    (rec,) = mg_log.new()
    only_chosen(rec["data"], {"value": "4B", "note": "spiculated mass"})
    _keys(qtbot, viewer, Qt.Key.Key_C)  # density c: the note was the 4B grade's
    (rec,) = mg_log.new()
    only_chosen(rec["data"], {"value": "c"})
    # a note typed on the mammogram, then the user moves to the fundus and grades it
    qtbot.keyClicks(w._note, "for the mammogram")
    w._image_combo.setCurrentText("fundus")
    viewer.layers.selection.active = fu
    w._schema_combo.setCurrentText("icdr")
    fu_log = Log(session.log_path_for(fu))
    fu_log.new()
    _keys(qtbot, viewer, Qt.Key.Key_2)
    grades = [r for r in fu_log.new() if r["action"] == "grade.set"]
    assert len(grades) == 1
    only_chosen(grades[0]["data"], {"value": "2"})


def test_tile_grade_holds_its_tile_and_key_only(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    slide = pathology_slide((1536, 1536), seed=1)
    levels = [slide.array, slide.array[::2, ::2]]
    image = viewer.add_image(levels, multiscale=True, rgb=True, name="slide",
                             metadata={"clinlabel": {"sha256": slide.sha256}})  # fmt: skip
    w = TileGradingWidget(viewer)
    qtbot.addWidget(w)
    log = Log(get_session(viewer).log_path_for(image))
    log.new()
    first = w.current
    _keys(qtbot, viewer, Qt.Key.Key_3)
    second = w.current
    _keys(qtbot, viewer, Qt.Key.Key_B)
    recs = [r for r in log.new() if r["action"] == "grade.set"]
    assert [(r["target"]["item"], r["data"]["value"]) for r in recs] == [
        (first, "3"), (second, "benign")
    ]  # fmt: skip
    for rec, value in zip(recs, ("3", "benign"), strict=True):
        only_chosen(rec["data"], {"value": value})


MODEL = {"name": "test-net", "version": "0.3", "sha256": "ab" * 32}
NO_CLASS = {"zyx_min": [2, 10, 12], "zyx_max": [2, 20, 30], "label": 6}  # the model named none
DR = {"scale": "icdr", "value": "2", "probabilities": {"2": 0.9, "3": 0.1}}
DME = {"scale": "icdr", "value": "absent", "probabilities": {"absent": 0.8}}


def test_review_decisions_hold_the_proposal_or_the_edit_only(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path, shape=(12, 64, 64))
    log = get_session(viewer).log_for(image)
    add_proposals(log, [
        ProposalDraft("box", 6, 0.8, payload=NO_CLASS, name="lesion"),
        ProposalDraft("grade", "2", 0.9, payload=DR),
        ProposalDraft("grade", "absent", 0.8, payload={**DME, "scale": "icdr"}),
    ], MODEL)  # fmt: skip
    _dock, w = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Review proposals")
    walk = Log(log.path)
    walk.new()
    # A on the box the model gave no class: accepted as not set, never a made-up class
    assert w.current.kind == "box"
    qtbot.keyClick(w, Qt.Key.Key_A)
    (acc,) = walk.new()
    assert acc["action"] == "proposal.accept"
    box = acc["data"].get("box") or {}
    assert box.get("class") is None and box.get("confidence") is None
    assert not box.get("attributes")
    # the DR grade edited to 3 (Down, E) ...
    assert w.current.payload == DR
    qtbot.keyClick(w, Qt.Key.Key_Down)
    qtbot.keyClick(w, Qt.Key.Key_E)
    (edit,) = walk.new()
    assert edit["action"] == "proposal.edit" and edit["data"]["grade"]["value"] == "3"
    # ... and the next grade, accepted as proposed, holds its own value, not the edit's 3
    assert w.current.payload["value"] == "absent" and w.grade_choice == "absent"
    qtbot.keyClick(w, Qt.Key.Key_A)
    (acc2,) = walk.new()
    assert acc2["action"] == "proposal.accept"
    grade = acc2["data"].get("as_grade") or acc2["data"].get("grade") or {}
    assert grade.get("value") == "absent" and "3" not in str(acc2["data"].get("as_grade"))
