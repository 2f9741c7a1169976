"""Review: a box proposal moved or resized where it is drawn, and a grade proposal changed by
keyboard, are each accepted as edited by E — one ``proposal.edit`` record with the new box or grade
and what changed; E on a box or grade left as proposed records nothing and says to press A."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct, drag

from napari_clinlabel._widgets._proposal_layers import BOXES, CURRENT_COLOR
from napari_clinlabel._widgets.grading import GradingWidget
from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.filterwarnings("error::FutureWarning")
SHAPE = (12, 64, 64)
MODEL = {"name": "test-net", "version": "0.3", "sha256": "ab" * 32}
BOX_3D = {"zyx_min": [2, 10, 12], "zyx_max": [4, 20, 30], "class": "malignant", "label": 6}
BOX_2D = {"zyx_min": [8, 40, 40], "zyx_max": [8, 49, 51], "class": "benign", "label": 6}
DR = {"scale": "icdr", "value": "2", "probabilities": {"0": 0.05, "2": 0.9, "3": 0.05}}
BIRADS = {"scale": "birads", "value": "4B", "probabilities": {"4B": 0.7}}


def _rect(z, lo, hi):
    """The rectangle napari shows for inclusive voxels ``lo..hi`` (y, x) on slice ``z``."""
    (y0, x0), (y1, x1) = lo, hi
    c = np.array([[y0, x0], [y0, x1 + 1], [y1 + 1, x1 + 1], [y1 + 1, x0]], float) - 0.5
    return np.column_stack([np.full(4, float(z)), c])


@pytest.fixture
def review(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path, shape=SHAPE)
    log = get_session(viewer).log_for(image)
    add_proposals(
        log,
        [
            ProposalDraft("box", 6, 0.8, payload=BOX_3D, name="lesion"),
            ProposalDraft("box", 6, 0.7, payload=BOX_2D, name="lesion"),
            ProposalDraft("grade", "2", 0.9, payload=DR),
            ProposalDraft("grade", "4B", 0.7, payload=BIRADS),
        ],
        MODEL,
    )
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Review proposals")
    n_before = len(list(iter_records(log.path)))
    return viewer, image, widget, log.path, n_before


def _new_records(log_path, n_before):
    return list(iter_records(log_path))[n_before:]


def _canvas_key(qtbot, viewer, key):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, key)


def test_box_edited_where_drawn(review, qtbot):
    viewer, image, w, log_path, n0 = review
    boxes = viewer.layers[BOXES]
    assert w.current.kind == "box" and w._count.text().startswith("0 of 4 decided")
    # the box under review is yellow, its layer selected in select mode: ready to drag
    assert viewer.layers.selection.active is boxes and boxes.mode == "select" and boxes.editable
    mine = [i for i, pid in enumerate(boxes.features["proposal"]) if pid == w.current.id]
    assert len(mine) == 3  # one rectangle per slice, z 2..4
    assert np.allclose(boxes.edge_color[mine[0]], [1, 1, 0, 1])  # CURRENT_COLOR
    assert CURRENT_COLOR == "#ffff00"
    z = round(float(image.world_to_data(viewer.dims.point)[0]))
    assert z == 3  # the view is on the box's middle slice

    # E with the box as proposed: nothing recorded, told to press A
    qtbot.keyClick(w, Qt.Key.Key_E)
    assert not _new_records(log_path, n0)
    assert "The box is as proposed" in w._info.text() and "Press A" in w._info.text()

    # a user drags the rectangle on slice 3 by +3 voxels (y) and +4 (x) with the mouse
    on_z = next(i for i in mine if boxes.data[i][0, 0] == 3)
    drag(qtbot, viewer, boxes, 3, (15, 21), (18, 25), steps=8)
    moved = boxes.data[on_z]
    assert not np.allclose(moved, _rect(3, (10, 12), (20, 30)))
    lo = np.ceil(moved[:, 1:].min(axis=0) - 1e-6).astype(int)
    hi = np.floor(moved[:, 1:].max(axis=0) + 1e-6).astype(int)
    assert (hi - lo).tolist() == [10, 18]  # moved, not resized
    qtbot.keyClick(w, Qt.Key.Key_E)

    recs = _new_records(log_path, n0)
    assert [r["action"] for r in recs] == ["proposal.edit"]
    data = recs[0]["data"]
    assert data["box"]["zyx_min"] == [2, *lo.tolist()]  # z range kept
    assert data["box"]["zyx_max"] == [4, *hi.tolist()]
    assert data["box"]["class"] == "malignant" and data["box"]["label"] == 6  # rest of payload
    assert data["changed_vs_proposal"] == ["zyx_max", "zyx_min"]
    assert data["proposed"] == BOX_3D and data["edited"] is True
    assert recs[0]["source"]["name"] == "test-net" and recs[0]["actor"]["id"]
    assert w._count.text().startswith("1 of 4 decided")

    # next: the one-slice box; resize it through the layer's data (as a corner drag leaves it),
    # then E pressed on the canvas while the Shapes layer is selected (not napari's ellipse tool)
    assert w.current.payload == BOX_2D
    assert viewer.layers.selection.active is boxes and boxes.mode == "select"
    (i,) = [i for i, pid in enumerate(boxes.features["proposal"]) if pid == w.current.id]
    data_now = list(boxes.data)
    data_now[i] = _rect(8, (38, 40), (49, 55))
    boxes.data = data_now
    _canvas_key(qtbot, viewer, Qt.Key.Key_E)
    assert boxes.mode != "add_ellipse"
    recs = _new_records(log_path, n0)
    assert [r["action"] for r in recs] == ["proposal.edit"] * 2
    assert recs[1]["data"]["box"]["zyx_min"] == [8, 38, 40]
    assert recs[1]["data"]["box"]["zyx_max"] == [8, 49, 55]
    assert recs[1]["data"]["changed_vs_proposal"] == ["zyx_max", "zyx_min"]
    assert w._count.text().startswith("2 of 4 decided")
    # the next undecided proposal (a grade) is shown; no box left to edit, image selected again
    assert w.current.kind == "grade" and len(boxes.data) == 0
    assert viewer.layers.selection.active is image and not boxes.editable
    assert verify_log(log_path).ok

    # the Lesion boxes widget lists both confirmed boxes, as edited (outer voxel edges)
    lw = LesionBoxWidget(viewer)
    qtbot.addWidget(lw)
    got = {b.id: b for b in lw.boxes.values()}
    first = got[recs[0]["target"]["proposal"]]
    assert first.zyx_min == (1.5, lo[0] - 0.5, lo[1] - 0.5)
    assert first.zyx_max == (4.5, hi[0] + 0.5, hi[1] + 0.5)
    assert first.source["kind"] == "model" and first.cls == "malignant"
    second = got[recs[1]["target"]["proposal"]]
    assert second.zyx_min == (8.0, 37.5, 39.5) and second.zyx_max == (8.0, 49.5, 55.5)
    assert lw._table.rowCount() == 2


def test_box_edit_refusals_and_next_drops_unconfirmed_change(review, qtbot):
    viewer, _image, w, log_path, n0 = review
    boxes = viewer.layers[BOXES]
    pid = w.current.id
    errors = []
    w._session.report_error = errors.append
    # the reviewer selects the proposed rectangles and deletes them (as the Delete key does)
    boxes.selected_data = {i for i, p in enumerate(boxes.features["proposal"]) if p == pid}
    boxes.remove_selected()
    assert len(boxes.data) == 1  # the other box proposal's rectangle is left
    qtbot.keyClick(w, Qt.Key.Key_E)
    assert errors and "no longer drawn" in str(errors[-1]) and "R to reject" in str(errors[-1])
    # N then P draws it again as proposed; a change not confirmed is dropped by N
    qtbot.keyClick(w, Qt.Key.Key_N)
    qtbot.keyClick(w, Qt.Key.Key_P)
    assert w.current.id == pid
    mine = [i for i, p in enumerate(boxes.features["proposal"]) if p == pid]
    assert len(mine) == 3
    data_now = list(boxes.data)
    data_now[mine[0]] = _rect(2, (5, 5), (9, 9))  # slice 2 one way
    data_now[mine[2]] = _rect(4, (30, 30), (35, 35))  # slice 4 another; slice 3 is in view
    boxes.data = data_now
    qtbot.keyClick(w, Qt.Key.Key_E)
    assert "changed differently on slices 2, 4" in str(errors[-1])
    qtbot.keyClick(w, Qt.Key.Key_N)
    qtbot.keyClick(w, Qt.Key.Key_P)
    assert w.current.id == pid
    mine = [i for i, p in enumerate(boxes.features["proposal"]) if p == pid]
    assert all(np.allclose(boxes.data[i][:, 1:], _rect(0, (10, 12), (20, 30))[:, 1:]) for i in mine)
    qtbot.keyClick(w, Qt.Key.Key_E)  # as proposed again
    assert "The box is as proposed" in w._info.text()
    assert not _new_records(log_path, n0)  # nothing at all was logged
    assert w._count.text().startswith("0 of 4 decided")


def test_grade_changed_by_keyboard(review, qtbot):
    viewer, _image, w, log_path, n0 = review
    qtbot.keyClick(w, Qt.Key.Key_R)  # reject both boxes
    qtbot.keyClick(w, Qt.Key.Key_R)
    assert w.current.kind == "grade" and w.current.payload == DR
    assert w._count.text().startswith("2 of 4 decided")
    combo = w._grade_combo
    assert not w._grade_row.isHidden() and combo.count() == 5  # ICDR DR grades 0..4
    assert w.grade_choice == "2" and "(proposed)" in combo.currentText()
    assert "Up/Down" in w._info.text()

    # E with the proposed grade: nothing recorded, told to press A
    qtbot.keyClick(w, Qt.Key.Key_E)
    assert "The grade is as proposed" in w._info.text()
    assert [r["action"] for r in _new_records(log_path, n0)] == ["proposal.reject"] * 2
    # Down on the canvas (keys bound on the viewer while a grade is shown), Down, Up: grade 3
    _canvas_key(qtbot, viewer, Qt.Key.Key_Down)
    qtbot.keyClick(w, Qt.Key.Key_Down)
    qtbot.keyClick(w, Qt.Key.Key_Up)
    assert w.grade_choice == "3"
    _canvas_key(qtbot, viewer, Qt.Key.Key_E)
    recs = _new_records(log_path, n0)
    assert [r["action"] for r in recs] == ["proposal.reject"] * 2 + ["proposal.edit"]
    data = recs[-1]["data"]
    assert data["grade"] == {**DR, "value": "3"} and data["label"] == "3"
    assert data["changed_vs_proposal"] == ["value"] and data["proposed"] == DR
    assert w._count.text().startswith("3 of 4 decided")

    # BI-RADS: the chooser focused (Tab from the widget), Up to 4A; E pressed in the chooser
    # decides (it is not swallowed as a keyboard search), and so would A/R/N/P
    assert w.current.payload == BIRADS and combo.count() == 9 and w.grade_choice == "4B"
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Up)
    assert w.grade_choice == "4A"
    qtbot.keyClick(combo, Qt.Key.Key_E)
    recs = _new_records(log_path, n0)
    assert [r["action"] for r in recs][-1] == "proposal.edit"
    assert recs[-1]["data"]["grade"]["value"] == "4A"
    assert recs[-1]["data"]["changed_vs_proposal"] == ["value"]
    assert w.current is None and w._count.text().startswith("4 of 4 decided")
    assert not not w._grade_row.isHidden()
    assert len(recs) == 4  # one record per decision, nothing else
    assert verify_log(log_path).ok


def test_grade_accept_keeps_proposed_and_chooser_passes_keys(review, qtbot):
    _viewer, _image, w, log_path, n0 = review
    qtbot.keyClick(w, Qt.Key.Key_N)
    qtbot.keyClick(w, Qt.Key.Key_N)
    assert w.current.payload == DR
    w._grade_combo.setFocus()
    qtbot.keyClick(w._grade_combo, Qt.Key.Key_Down)  # looked at grade 3 …
    qtbot.keyClick(w._grade_combo, Qt.Key.Key_A)  # … but A accepts the grade as proposed
    recs = _new_records(log_path, n0)
    assert [r["action"] for r in recs] == ["proposal.accept"]
    assert recs[0]["data"]["grade"] == DR
    assert w.current.payload == BIRADS and w.grade_choice == "4B"  # the chooser follows


def test_decided_grade_proposals_are_grades_in_the_grading_widget(review, qtbot):
    viewer, image, w, log_path, n0 = review
    open_before = GradingWidget(viewer)  # already open while the reviewer decides
    qtbot.addWidget(open_before)
    open_before._image_combo.setCurrentText(image.name)
    for key in (Qt.Key.Key_R, Qt.Key.Key_R, Qt.Key.Key_Down, Qt.Key.Key_E):
        qtbot.keyClick(w, key)
    rec = _new_records(log_path, n0)[-1]
    assert rec["action"] == "proposal.edit"
    # the decision says which grade it sets: the ICDR schema's DR scale, resolved from "icdr"
    assert rec["data"]["as_grade"] == {
        "scale": "dr", "item": "image", "value": "3", "label": rec["data"]["as_grade"]["label"],
    }  # fmt: skip
    assert "Severe" in rec["data"]["as_grade"]["label"]
    assert open_before.grades.get("dr") == "3"  # the open widget followed the log
    opened_after = GradingWidget(viewer)  # and a new one reads it from the log
    qtbot.addWidget(opened_after)
    opened_after._image_combo.setCurrentText(image.name)
    assert opened_after.grades.get("dr") == "3"
    qtbot.keyClick(w, Qt.Key.Key_A)  # BI-RADS 4B accepted as proposed: a grade as well
    assert opened_after.grades.get("assessment") == "4B" == open_before.grades.get("assessment")
