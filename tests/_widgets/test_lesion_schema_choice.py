"""The Lesion boxes widget's schema: BI-RADS lexicon (breast-lesions) on a mammogram, lesions on a
CT, the schema the boxes were drawn with on reopening; the user may change it in the form."""

from __future__ import annotations

from qtpy.QtCore import Qt
from support.viewer_helpers import box_records, layer_drag

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel.core.image.samples import ct_phantom, mammogram_phantom
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.glue.session import get_session

LEFT = Qt.MouseButton.LeftButton


def _open_widget(viewer, qtbot):
    w = LesionBoxWidget(viewer)
    qtbot.addWidget(w)
    w.show()
    return w


def _choices(combo):
    return [combo.itemText(i) for i in range(combo.count())]


def _open_mammogram(make_napari_viewer):
    """The mammogram sample (modality MG) as the reader adds it."""
    viewer = make_napari_viewer()
    image = add_volume(viewer, mammogram_phantom(), name="mammogram")
    assert image.metadata["clinlabel"]["modality"] == "MG"
    return viewer, image


def test_mammogram_gets_birads_lexicon_and_box_records_carry_it(make_napari_viewer, qtbot):
    viewer, image = _open_mammogram(make_napari_viewer)
    w = _open_widget(viewer, qtbot)
    log_path = get_session(viewer).log_path_for(image)

    assert {"breast-lesions", "lesions"} <= set(_choices(w._schema_combo))
    assert w._schema_combo.currentText() == "breast-lesions"
    location = _choices(w._attrs["location"])
    assert "upper outer quadrant" in location and "subareolar" in location
    assert "liver" not in location and "lung" not in location
    assert "spiculated" in _choices(w._attrs["margin"])
    assert "fine pleomorphic" in _choices(w._attrs["calcification morphology"])

    # a radiologist describes a spiculated irregular mass in the left breast, then draws it
    w._class.setCurrentText("malignant")
    w._confidence.setCurrentText("5")
    for key, value in {
        "finding": "mass",
        "shape": "irregular",
        "margin": "spiculated",
        "laterality": "left",
        "location": "upper outer quadrant",
        "depth": "middle",
    }.items():
        w._attrs[key].setCurrentText(value)
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, w.layer, (580, 400), (680, 520))
    [rec] = box_records(log_path)
    assert rec["action"] == "box.add" and rec["schema"]["id"] == "breast-lesions"
    assert rec["data"]["attributes"]["laterality"] == "left"
    assert rec["data"]["attributes"]["shape"] == "irregular"
    assert verify_log(log_path).ok


def test_ct_gets_lesions_and_switching_images_switches_schema(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    ct = add_volume(viewer, ct_phantom(shape=(24, 96, 96)), name="ct")
    w = _open_widget(viewer, qtbot)
    assert w._schema_combo.currentText() == "lesions"
    assert "liver" in _choices(w._attrs["location"])
    assert "laterality" not in w._attrs

    viewer.dims.set_point(0, float(ct.data_to_world((10, 0, 0))[0]))
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, w.layer, (10, 20, 30), (10, 45, 60))
    [rec] = box_records(get_session(viewer).log_path_for(ct))
    assert rec["schema"]["id"] == "lesions"

    # a mammogram beside it gets the BI-RADS lexicon; back on the CT, lesions again
    add_volume(viewer, mammogram_phantom(), name="mammogram")
    w._image_combo.setCurrentText("mammogram")
    assert w._schema_combo.currentText() == "breast-lesions"
    assert "liver" not in _choices(w._attrs["location"])
    w._image_combo.setCurrentText("ct")
    assert w._schema_combo.currentText() == "lesions" and "liver" in _choices(w._attrs["location"])


def test_reopened_mammogram_keeps_the_schema_its_boxes_were_drawn_with(make_napari_viewer, qtbot):
    viewer, image = _open_mammogram(make_napari_viewer)
    w = _open_widget(viewer, qtbot)
    log_path = get_session(viewer).log_path_for(image)
    n_before = len(box_records(log_path))

    # the user changes the schema in the form: the choices change, nothing is logged for it
    w._schema_combo.setCurrentText("lesions")
    assert "liver" in _choices(w._attrs["location"])
    assert "retroareolar" not in _choices(w._attrs["location"])  # no breast terms in it
    assert "laterality" not in w._attrs
    assert len(box_records(log_path)) == n_before
    w._attrs["finding"].setCurrentText("calcification")
    w._attrs["location"].setCurrentText("other")
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, w.layer, (820, 250), (870, 330))
    [rec] = box_records(log_path)
    assert rec["schema"]["id"] == "lesions"
    assert rec["data"]["attributes"] == {"finding": "calcification", "location": "other"}

    # reopened in a new viewer: the log's box schema wins over the mammogram default
    viewer2, _ = _open_mammogram(make_napari_viewer)
    w2 = _open_widget(viewer2, qtbot)
    assert w2._schema_combo.currentText() == "lesions"
    assert "liver" in _choices(w2._attrs["location"])
    w2.select_box(rec["data"]["id"])
    assert w2._attrs["location"].currentText() == "other"

    # an edit there is recorded under the same schema
    w2._confidence.setCurrentText("3")
    edit = box_records(log_path)[-1]
    assert edit["action"] == "box.edit" and edit["schema"]["id"] == "lesions"
    assert verify_log(log_path).ok
