"""Lesion-box widget driven like a user: drag rectangles, pick attributes, extend to 3D, move,
delete; every step is one record; a new viewer restores the boxes."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import box_records, layer_drag

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel.core.annotate.box_view import by_whom
from napari_clinlabel.core.annotate.boxes import LesionBox
from napari_clinlabel.core.image.samples import ct_phantom, mammogram_phantom
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def ct():
    return ct_phantom(shape=(24, 96, 96))


def _open(make_napari_viewer, qtbot, ct):
    viewer = make_napari_viewer()
    image = add_volume(viewer, ct, name="ct")
    widget = LesionBoxWidget(viewer)
    qtbot.addWidget(widget)
    return viewer, image, widget


def test_draw_attribute_extend_move_delete_and_reopen(make_napari_viewer, qtbot, ct):
    viewer, image, w = _open(make_napari_viewer, qtbot, ct)
    layer = w.layer
    session = get_session(viewer)
    log_path = session.log_path_for(image)

    session.set_schema(image, load_schema("abdomen-ct"))  # as the segmentation widget would

    # a box reaching outside the image is refused with its extent, and not kept
    shown = []
    report = session.report_error
    session.report_error = lambda exc: shown.append(str(exc))
    outside = np.array([[5, 80, 80], [5, 80, 120], [5, 110, 120], [5, 110, 80]], float)
    layer.add_rectangles([outside])
    session.report_error = report
    assert len(shown) == 1
    assert "ct" in shown[0] and "outside the image" in shown[0] and "80..120" in shown[0]
    assert box_records(log_path) == [] and len(layer.data) == 0

    viewer.dims.set_point(0, float(image.data_to_world((10, 0, 0))[0]))

    # first lesion: malignant, confidence 4, spiculated mass — chosen before drawing
    w._class.setCurrentText("malignant")
    w._confidence.setCurrentText("4")
    w._attrs["margin"].setCurrentText("spiculated")
    w._attrs["finding"].setCurrentText("mass")
    qtbot.mouseClick(w._draw_btn, LEFT)
    assert layer.mode == "add_rectangle"
    layer_drag(viewer, layer, (10, 20, 30), (10, 45, 60))
    recs = box_records(log_path)
    assert [r["action"] for r in recs] == ["box.add"]
    # box records carry the lesion schema; the schema another widget set stays in force for it
    assert recs[0]["schema"]["id"] == "lesions"
    assert session.schema_for(image)["id"] == "abdomen-ct"
    a = recs[0]["data"]
    assert a["class"] == "malignant" and a["confidence"] == 4
    assert a["attributes"] == {"margin": "spiculated", "finding": "mass"}
    assert a["zyx_min"] == pytest.approx([10, 20, 30], abs=1e-6)
    # size by hand: 25 rows × 0.8 mm, 30 columns × 0.8 mm, flat on one slice
    assert a["size_mm"] == pytest.approx([2.5, 25 * 0.8, 30 * 0.8])
    assert a["volume_ml"] is None
    assert "20.0 × 24.0 mm" in w._size.text()

    # second lesion on slice 14: deselect, set benign / confidence 2, draw
    layer.mode = "select"
    layer.selected_data = set()
    viewer.dims.set_point(0, float(image.data_to_world((14, 0, 0))[0]))
    w._class.setCurrentText("benign")
    w._confidence.setCurrentText("2")
    w._attrs["margin"].setCurrentText("circumscribed")
    w._attrs["finding"].setCurrentText("cyst")
    layer.mode = "add_rectangle"
    layer_drag(viewer, layer, (14, 60, 10), (14, 70, 25))
    qtbot.wait(10)
    recs = box_records(log_path)
    assert [r["action"] for r in recs] == ["box.add", "box.add"]
    b = recs[1]["data"]
    assert (b["class"], b["confidence"], b["attributes"]["margin"]) == (
        "benign",
        2,
        "circumscribed",
    )
    assert b["size_mm"] == pytest.approx([2.5, 10 * 0.8, 15 * 0.8])
    assert w._table.rowCount() == 2
    assert w._table.item(1, 7).text() == recs[1]["actor"]["id"]  # who drew it, live
    id_a, id_b = a["id"], b["id"]

    # table row click jumps to the first box: slice 10, camera on its centre
    w._table.setCurrentCell(0, 0)
    w._table.cellClicked.emit(0, 0)
    assert viewer.dims.point[0] == pytest.approx(image.data_to_world((10, 0, 0))[0])
    centre = image.data_to_world((10, 32.5, 45))
    assert viewer.scene.camera.center[-2:] == pytest.approx(tuple(centre[1:]), abs=1e-3)

    # extend it over slices 8..12: 5 slices × 2.5 mm deep
    w._z_from.setValue(8)
    w._z_to.setValue(12)
    qtbot.mouseClick(w._apply_3d, LEFT)
    rec = box_records(log_path)[-1]
    assert rec["action"] == "box.edit" and rec["target"] == {"box": id_a}
    assert rec["data"]["size_mm"] == pytest.approx([5 * 2.5, 20.0, 24.0])
    assert rec["data"]["volume_ml"] == pytest.approx(12.5 * 20 * 24 / 1000)
    assert len(rec["data"]["world_corners_mm"]) == 8
    assert "volume 6.00 mL" in w._size.text()
    qtbot.wait(10)
    assert len(w._extent.data) == 4  # outlines on the other slices of 8..12

    # move the second box by dragging it 5 rows down and 4 columns right
    layer.mode = "select"
    ids = list(layer.features["box_id"])
    i_b = ids.index(id_b)
    viewer.dims.set_point(0, float(image.data_to_world((14, 0, 0))[0]))
    layer.selected_data = {i_b}
    layer_drag(viewer, layer, (14, 65, 17.5), (14, 70, 21.5))
    rec = box_records(log_path)[-1]
    assert rec["action"] == "box.edit" and rec["target"] == {"box": id_b}
    assert rec["data"]["zyx_min"] == pytest.approx([14, 65, 14], abs=1e-6)
    assert rec["data"]["size_mm"] == pytest.approx([2.5, 8.0, 12.0])

    # change the class of the selected box in the form → one box.edit
    qtbot.wait(10)
    w.select_box(id_b, jump=False)
    w._class.setCurrentText("indeterminate")
    rec = box_records(log_path)[-1]
    assert rec["action"] == "box.edit" and rec["data"]["class"] == "indeterminate"
    assert rec["data"]["changed"] == ["class"]

    # delete it with the Delete button → box.delete
    qtbot.wait(10)
    w.select_box(id_b, jump=False)
    qtbot.mouseClick(w._delete_btn, LEFT)
    rec = box_records(log_path)[-1]
    assert rec["action"] == "box.delete" and rec["target"] == {"box": id_b}
    qtbot.wait(10)
    assert list(w.boxes) == [id_a] and w._table.rowCount() == 1
    n_records = len(list(iter_records(log_path)))
    assert verify_log(log_path).ok  # every action above is one chained, verified record

    # reopen in a new viewer: the 3D box with its attributes comes back, nothing new logged
    viewer2, image2, w2 = _open(make_napari_viewer, qtbot, ct)
    assert list(w2.boxes) == [id_a]
    box = w2.boxes[id_a]
    assert box.slice_range == (8, 12) and box.cls == "malignant" and box.confidence == 4
    assert box.attributes == {"margin": "spiculated", "finding": "mass"}
    assert len(w2.layer.data) == 1 and w2._table.rowCount() == 1
    assert w2._table.item(0, 7).text() == box.created_by  # the human who drew it
    assert len(list(iter_records(log_path))) == n_records

    # a 2D image (mammogram): boxes have (y, x) corners, no slices; sizes from 0.1 mm pixels
    mg = add_volume(viewer2, mammogram_phantom(), name="mammogram")
    w2._image_combo.setCurrentText("mammogram")
    assert w2.layer.ndim == 2 and not w2._apply_3d.isEnabled()
    w2._class.setCurrentText("malignant")
    w2.layer.add_rectangles([np.array([[580, 400], [580, 500], [680, 500], [680, 400]], float)])
    rec = box_records(get_session(viewer2).log_path_for(mg))[-1]
    assert rec["action"] == "box.add" and rec["data"]["zyx_min"] == [580, 400]
    assert (
        rec["data"]["size_mm"] == pytest.approx([10.0, 10.0]) and rec["data"]["volume_ml"] is None
    )


def test_table_names_who_made_each_box():
    model = {"kind": "model", "name": "boxnet", "version": "1.0", "sha256": "ab" * 32}
    assert by_whom(LesionBox((1, 1, 1), (1, 4, 4), source=model, created_by="dr.a")) == (
        "boxnet 1.0 ✓ dr.a"
    )
    assert by_whom(LesionBox((1, 1, 1), (1, 4, 4), created_by="dr.b")) == "dr.b"
