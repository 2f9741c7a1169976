"""Nothing recorded that a human did not choose (issue 14 item 1): a new lesion box starts
"not set" and never takes the previous box's class, confidence or attributes; R draws a box from
any selected layer; a one-slice box on a 2.5 mm CT is 2.5 mm deep."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import box_records, layer_drag

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel.core.annotate.box_view import NOT_SET
from napari_clinlabel.core.image.samples import ct_phantom
from napari_clinlabel.glue.session import get_session

LEFT = Qt.MouseButton.LeftButton
UNSET = {"class": None, "confidence": None, "attributes": {}}


def _press(qtbot, viewer, key):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, key)


def _chosen(rec):
    return {k: rec["data"][k] for k in UNSET}


def test_new_boxes_start_not_set_and_never_inherit(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    image = add_volume(viewer, ct_phantom(shape=(16, 64, 64)), name="ct")  # 2.5 mm slices
    w = LesionBoxWidget(viewer)
    qtbot.addWidget(w)
    log_path = get_session(viewer).log_path_for(image)
    layer = w.layer
    viewer.dims.set_point(0, float(image.data_to_world((6, 0, 0))[0]))

    # the form opens on "not set" everywhere, and "not set" is a choice in each combo
    combos = [w._class, w._confidence, *w._attrs.values()]
    assert combos and all(c.currentText() == NOT_SET for c in combos)
    assert all(c.findText(NOT_SET) == 0 for c in combos)

    # box 1, drawn without choosing anything: recorded as not set (null / no attributes)
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, layer, (6, 10, 10), (6, 20, 24))
    recs = box_records(log_path)
    assert [r["action"] for r in recs] == ["box.add"]
    assert _chosen(recs[0]) == UNSET
    # one slice of a 2.5 mm CT is 2.5 mm deep (slice count × spacing), not 0
    assert recs[0]["data"]["size_mm"][0] == pytest.approx(2.5)
    assert "2.5 mm deep" in w._size.text()

    # the user now describes box 1 (it is selected): each choice is one box.edit of box 1
    attr = next(iter(w._attrs))
    attr_value = w._attrs[attr].itemText(1)
    w._class.setCurrentText("malignant")
    w._confidence.setCurrentText("4")
    w._attrs[attr].setCurrentText(attr_value)
    edits = box_records(log_path)[1:]
    assert [r["action"] for r in edits] == ["box.edit"] * 3
    assert _chosen(edits[-1]) == {
        "class": "malignant", "confidence": 4, "attributes": {attr: attr_value},
    }  # fmt: skip

    # R with the *image* layer selected (not the lesions layer) arms drawing; box 2 starts unset
    viewer.layers.selection.active = image
    _press(qtbot, viewer, Qt.Key.Key_R)
    assert viewer.layers.selection.active is layer and layer.mode == "add_rectangle"
    assert all(c.currentText() == NOT_SET for c in combos)
    layer_drag(viewer, layer, (6, 30, 30), (6, 40, 44))
    recs = box_records(log_path)
    assert recs[-1]["action"] == "box.add" and _chosen(recs[-1]) == UNSET
    assert recs[-1]["data"]["id"] != recs[0]["data"]["id"]

    # box 3 drawn straight after box 2 (box 2 still selected) is not set either
    layer_drag(viewer, layer, (6, 45, 10), (6, 55, 20))
    recs = box_records(log_path)
    assert recs[-1]["action"] == "box.add" and _chosen(recs[-1]) == UNSET

    # deselecting clears the form; what the user then picks is what the next box gets
    layer.selected_data = set()
    layer.events.highlight()
    assert all(c.currentText() == NOT_SET for c in combos)
    w._class.setCurrentText("benign")
    layer_drag(viewer, layer, (6, 45, 40), (6, 55, 50))
    recs = box_records(log_path)
    assert _chosen(recs[-1]) == {"class": "benign", "confidence": None, "attributes": {}}

    # walk every box record: no add holds a value set only on another box
    adds = [r for r in box_records(log_path) if r["action"] == "box.add"]
    assert [r["data"]["class"] for r in adds] == [None, None, None, "benign"]
    assert all(r["data"]["confidence"] is None and r["data"]["attributes"] == {} for r in adds)
    qtbot.waitUntil(lambda: w._table.rowCount() == 4, timeout=3000)  # redrawn on the next tick
    assert [row[1] for row in _table(w)] == ["malignant", NOT_SET, NOT_SET, "benign"]


def _table(w):
    t = w._table
    return [[t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())]


def test_grading_opens_birads_on_a_mammogram_and_records_only_the_key_pressed(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_clinlabel._widgets.grading import GradingWidget
    from napari_clinlabel.cli.demo import sample_file
    from napari_clinlabel.core.log.audit_log import iter_records

    viewer = make_napari_viewer(show=True)
    [image] = viewer.open(str(sample_file("mammogram", tmp_path)), plugin="napari-clinlabel")
    assert image.metadata["clinlabel"]["modality"] == "MG"
    w = GradingWidget(viewer)
    qtbot.addWidget(w)
    assert w._schema_combo.currentText() == "birads"  # as Lesion boxes picks breast-lesions
    viewer.layers.selection.active = image
    _press(qtbot, viewer, Qt.Key.Key_B)  # BI-RADS 4B, the only thing the reader chose
    log_path = get_session(viewer).log_path_for(image)
    recs = [r for r in iter_records(log_path) if r["action"].startswith("grade")]
    assert len(recs) == 1 and recs[0]["schema"]["id"] == "birads"
    # the record holds the grade chosen and no other scale's value (density stays not set)
    assert "4B" in str(recs[0]["data"]) and "density" not in str(recs[0]["data"])
