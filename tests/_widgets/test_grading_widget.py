"""Grading by keyboard alone: BI-RADS 4B + density c on the mammogram, ICDR 2 + DME absent on
the fundus photo; done is refused until every required grade exists; a new viewer restores it."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.grading import GradingWidget
from napari_clinlabel.core.image.samples import fundus_phantom, mammogram_phantom
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session


@pytest.fixture(scope="module")
def images():
    return mammogram_phantom(), fundus_phantom()


def _keys(qtbot, viewer, *keys):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    for k in keys:
        qtbot.keyClick(canvas, k)


def _open(make_napari_viewer, qtbot, images):
    viewer = make_napari_viewer()
    mg = add_volume(viewer, images[0], name="mammogram")
    fu = add_volume(viewer, images[1], name="fundus")
    widget = GradingWidget(viewer)
    qtbot.addWidget(widget)
    return viewer, mg, fu, widget


def _grades(log_path):
    return [
        (r["target"]["scale"], r["data"]["value"], r["schema"]["id"])
        for r in iter_records(log_path)
        if r["action"] == "grade.set"
    ]


def test_keyboard_grading_done_and_reopen(make_napari_viewer, qtbot, images, monkeypatch):
    viewer, mg, fu, w = _open(make_napari_viewer, qtbot, images)
    session = get_session(viewer)
    errors = []
    monkeypatch.setattr(session, "report_error", lambda exc: errors.append(str(exc)))

    # mammogram: schema by typing into the combo, then b (4B), c (density c), Enter (done)
    w._image_combo.setCurrentText("mammogram")
    viewer.layers.selection.active = mg
    qtbot.keyClicks(w._schema_combo, "birads")
    assert w._schema_combo.currentText() == "birads"
    _keys(qtbot, viewer, Qt.Key.Key_Return)  # done before any grade: refused
    assert "missing" in errors[-1] and "BI-RADS assessment" in errors[-1]
    assert "density" in errors[-1]
    _keys(qtbot, viewer, Qt.Key.Key_B)
    _keys(qtbot, viewer, Qt.Key.Key_Return)  # still refused: density missing
    assert "Breast composition" in errors[-1] and "assessment" not in errors[-1].split(":")[-1]
    # the grade moved the active scale on to density; a Down there stays (no wrap back to the
    # assessment, where a trial user's 'c' overwrote her 4B with 4C)
    _keys(qtbot, viewer, Qt.Key.Key_Down, Qt.Key.Key_C, Qt.Key.Key_Return)
    mg_log = session.log_path_for(mg)
    assert _grades(mg_log) == [("assessment", "4B", "birads"), ("density", "c", "birads")]
    done = [r for r in iter_records(mg_log) if r["action"] == "image.done"]
    assert len(done) == 1 and done[0]["data"]["grades"] == {
        "assessment:image": "4B",
        "density:image": "c",
    }
    assert w.status.startswith("Done")
    # the schema in force is on the records
    assert all(
        r["schema"] == load_schema("birads").ref()
        for r in iter_records(mg_log)
        if r["action"] != "image.open"
    )

    # fundus: ICDR moderate NPDR (2) then DME absent (0), a note typed first, Enter
    w._image_combo.setCurrentText("fundus")
    viewer.layers.selection.active = fu
    qtbot.wait(500)  # Qt's combo type-ahead restarts after its input interval
    qtbot.keyClicks(w._schema_combo, "icdr")
    assert w._schema_combo.currentText() == "icdr"
    qtbot.keyClicks(w._note, "microaneurysms and haemorrhages")
    _keys(qtbot, viewer, Qt.Key.Key_2, Qt.Key.Key_0, Qt.Key.Key_Return)
    fu_log = session.log_path_for(fu)
    assert _grades(fu_log) == [("dr", "2", "icdr"), ("dme", "absent", "icdr")]
    recs = [r for r in iter_records(fu_log) if r["action"] == "grade.set"]
    assert recs[0]["data"]["note"] == "microaneurysms and haemorrhages"
    assert recs[0]["data"]["label"].startswith("Moderate non-proliferative")
    assert any(r["action"] == "image.done" for r in iter_records(fu_log))
    assert verify_log(fu_log).ok and verify_log(mg_log).ok

    # a key that is not on the active scale is not logged
    n = len(list(iter_records(fu_log)))
    _keys(qtbot, viewer, Qt.Key.Key_9)
    assert len(list(iter_records(fu_log))) == n

    # reopen both images in a new viewer: grades, schema and done come back
    viewer2, mg2, fu2, w2 = _open(make_napari_viewer, qtbot, images)
    w2._image_combo.setCurrentText("mammogram")
    assert w2._schema_combo.currentText() == "birads"
    assert w2.grades == {"assessment": "4B", "density": "c"} and w2.status.startswith("Done")
    assert w2._buttons["assessment"]["4B"].isChecked()
    w2._image_combo.setCurrentText("fundus")
    assert w2._schema_combo.currentText() == "icdr"
    assert w2.grades == {"dr": "2", "dme": "absent"} and w2.status.startswith("Done")


def test_refusals_and_keys_given_back(make_napari_viewer, qtbot, images, monkeypatch):
    viewer, mg, fu, w = _open(make_napari_viewer, qtbot, images)
    errors = []
    monkeypatch.setattr(get_session(viewer), "report_error", lambda exc: errors.append(str(exc)))
    # grading with no schema chosen: a clear message, nothing logged
    w._image_combo.setCurrentText("fundus")
    viewer.layers.selection.active = fu
    w.choose("dr", "2")
    assert "no grading schema is chosen" in errors[-1]
    log = get_session(viewer).log_path_for(fu)
    assert not [r for r in iter_records(log) if r["action"] == "grade.set"]
    # the widget's keys are bound on the image and the viewer, and given back on close
    w._schema_combo.setCurrentText("icdr")
    assert len(fu.keymap) > 0
    w.close()
    assert len(fu.keymap) == 0 and len(viewer.keymap) == 0
