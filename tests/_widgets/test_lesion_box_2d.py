"""Lesion boxes on 2D images (mammograms, PNG, single-frame DICOM), driven as a radiologist would:
only the "lesions" layer (no 3D extent), no slice controls, sizes in mm from the pixel spacing;
switching between a 2D image and a CT in one viewer swaps the layers and loses no box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from qtpy.QtCore import Qt
from support.viewer_helpers import box_records, layer_drag

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.lesion_boxes import EXTENT_NAME, LAYER_NAME, LesionBoxWidget
from napari_clinlabel.cli.demo import sample_file
from napari_clinlabel.core.image.samples import ct_phantom, mammogram_phantom
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.glue.session import get_session

LEFT = Qt.MouseButton.LeftButton


def _names(viewer):
    return [lay.name for lay in viewer.layers]


def _shown_columns(w):
    t = w._table
    return [
        t.horizontalHeaderItem(c).text() for c in range(t.columnCount()) if not t.isColumnHidden(c)
    ]


def _click_row(qtbot, w, row):
    t = w._table
    qtbot.mouseClick(t.viewport(), LEFT, pos=t.visualItemRect(t.item(row, 0)).center())


def _pick(w, cls, conf, **attrs):
    w._class.setCurrentText(cls)
    w._confidence.setCurrentText(conf)
    for combo in w._attrs.values():
        combo.setCurrentText("")
    for k, v in attrs.items():
        w._attrs[k].setCurrentText(v)


def _open_widget(viewer, qtbot):
    w = LesionBoxWidget(viewer)
    qtbot.addWidget(w)
    w.show()
    return w


def test_mammogram_walkthrough_2d_layers_sizes_edit_delete_reopen(
    make_napari_viewer, qtbot, tmp_path
):
    path = sample_file("mammogram", tmp_path)  # the file `clinlabel demo --sample mammogram` opens
    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-clinlabel")
    w = _open_widget(viewer, qtbot)
    log_path = get_session(viewer).log_path_for(image)

    # a 2D image gets the editable boxes layer only, no slice controls, no 3D columns
    assert _names(viewer) == [image.name, LAYER_NAME]
    assert w.layer.ndim == 2
    assert w._slices_row.isHidden() and not w._apply_3d.isEnabled()
    assert _shown_columns(w) == ["#", "class", "conf", "y×x mm", "by"]

    # lesion 1: spiculated mass, malignant, confidence 4; 100 rows × 120 columns of 0.1 mm
    _pick(w, "malignant", "4", finding="mass", margin="spiculated", location="upper outer quadrant")
    qtbot.mouseClick(w._draw_btn, LEFT)
    assert w.layer.mode == "add_rectangle" and viewer.layers.selection.active is w.layer
    layer_drag(viewer, w.layer, (580, 400), (680, 520))
    [rec] = box_records(log_path)
    assert rec["schema"]["id"] == "breast-lesions"  # the demo's DICOM MG gets the BI-RADS lexicon
    a = rec["data"]
    assert rec["action"] == "box.add" and a["zyx_min"] == [580, 400] and a["zyx_max"] == [680, 520]
    assert a["class"] == "malignant" and a["confidence"] == 4
    assert a["attributes"] == {
        "finding": "mass",
        "margin": "spiculated",
        "location": "upper outer quadrant",
    }
    assert a["size_mm"] == pytest.approx([10.0, 12.0]) and a["volume_ml"] is None
    assert len(a["world_corners_mm"]) == 4
    assert w._size.text() == "Size: 10.0 × 12.0 mm (y × x)"  # no slice on a 2D image

    # lesion 2: deselect, then a benign calcification cluster, 50 × 80 pixels
    w.layer.mode = "select"
    w.layer.selected_data = set()
    _pick(w, "benign", "2", finding="calcifications")
    w.layer.mode = "add_rectangle"
    layer_drag(viewer, w.layer, (820, 250), (870, 330))
    qtbot.wait(10)
    recs = box_records(log_path)
    assert [r["action"] for r in recs] == ["box.add", "box.add"]
    b = recs[1]["data"]
    assert b["class"] == "benign" and b["size_mm"] == pytest.approx([5.0, 8.0])
    id_a, id_b = a["id"], b["id"]
    actor = recs[0]["actor"]["id"]
    assert w._table.rowCount() == 2
    assert [w._table.item(0, c).text() for c in (0, 1, 2, 4, 7)] == [
        "L1",
        "malignant",
        "4",
        "10.0×12.0",
        actor,
    ]
    assert w._table.item(1, 4).text() == "5.0×8.0"
    assert len(w.layer.data) == 2 and EXTENT_NAME not in _names(viewer)

    # edit lesion 1: pick its row in the table, lower the confidence → one box.edit
    w.layer.mode = "select"
    _click_row(qtbot, w, 0)
    assert w._class.currentText() == "malignant" and w._confidence.currentText() == "4"
    w._confidence.setCurrentText("3")
    rec = box_records(log_path)[-1]
    assert rec["action"] == "box.edit" and rec["target"] == {"box": id_a}
    assert rec["data"]["changed"] == ["confidence"] and rec["data"]["confidence"] == 3
    assert rec["data"]["size_mm"] == pytest.approx([10.0, 12.0])

    # ...and resize it by moving it: drag it 20 px down → box.edit with the new corners
    qtbot.wait(10)
    layer_drag(viewer, w.layer, (630, 460), (650, 460))
    rec = box_records(log_path)[-1]
    assert rec["action"] == "box.edit" and rec["data"]["zyx_min"] == pytest.approx([600, 400])
    qtbot.wait(10)
    assert w._table.item(0, 2).text() == "3"

    # delete lesion 2: pick its row, press Delete box → box.delete
    _click_row(qtbot, w, 1)
    qtbot.mouseClick(w._delete_btn, LEFT)
    rec = box_records(log_path)[-1]
    assert rec["action"] == "box.delete" and rec["target"] == {"box": id_b}
    qtbot.wait(10)
    assert list(w.boxes) == [id_a] and w._table.rowCount() == 1 and len(w.layer.data) == 1
    assert verify_log(log_path).ok
    n_records = len(list(iter_records(log_path)))

    # reopen from the log in a new viewer: lesion 1 as edited, still no extent layer, nothing logged
    viewer2 = make_napari_viewer()
    [image2] = viewer2.open(str(path), plugin="napari-clinlabel")
    w2 = _open_widget(viewer2, qtbot)
    assert _names(viewer2) == [image2.name, LAYER_NAME]
    box = w2.boxes[id_a]
    assert list(w2.boxes) == [id_a] and box.slice_range is None
    assert (box.cls, box.confidence, box.zyx_min) == ("malignant", 3, (600.0, 400.0))
    assert box.attributes["margin"] == "spiculated"
    assert w2._table.item(0, 4).text() == "10.0×12.0" and w2._table.item(0, 7).text() == actor
    assert len(list(iter_records(log_path))) == n_records


def _write_mg_dicom(path: Path, rows: int, cols: int, with_position: bool) -> Path:
    """One-frame MG DICOM with 0.1 mm pixels, with or without a patient position (as in the wild)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # digital mammography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality = "MG"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    if with_position:
        ds.ImagePositionPatient = [0, 0, 0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.1, 0.1]
    else:
        ds.ImagerPixelSpacing = [0.1, 0.1]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(rows * cols, dtype=np.uint16) % 4000).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("with_position", [True, False], ids=["one-slice volume", "plain 2D"])
def test_single_frame_dicom_is_boxed_as_2d(make_napari_viewer, qtbot, tmp_path, with_position):
    path = _write_mg_dicom(tmp_path / "mg.dcm", 200, 160, with_position)
    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-clinlabel")
    w = _open_widget(viewer, qtbot)
    log_path = get_session(viewer).log_path_for(image)
    # with a position it opens as one slice (1, y, x); without, as (y, x): both are 2D here
    assert image.data.ndim == (3 if with_position else 2) == w.layer.ndim
    assert _names(viewer) == [image.name, LAYER_NAME]
    assert w._slices_row.isHidden() and "slices" not in _shown_columns(w)

    lead = (0,) if with_position else ()
    w._class.setCurrentText("indeterminate")
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, w.layer, (*lead, 40, 30), (*lead, 90, 110))
    [rec] = box_records(log_path)
    assert rec["schema"]["id"] == "breast-lesions"  # modality MG: the BI-RADS lexicon
    assert rec["data"]["size_mm"] == pytest.approx(
        [*([1.0] * len(lead)), 5.0, 8.0]
    )  # one slice, 1 mm
    assert rec["data"]["volume_ml"] is None
    assert w._size.text() == "Size: 5.0 × 8.0 mm (y × x)"
    qtbot.wait(10)
    assert w._table.item(0, 4).text() == "5.0×8.0"

    viewer2 = make_napari_viewer()
    viewer2.open(str(path), plugin="napari-clinlabel")
    w2 = _open_widget(viewer2, qtbot)
    assert list(w2.boxes) == [rec["data"]["id"]] and EXTENT_NAME not in _names(viewer2)


def test_switching_2d_and_3d_images_swaps_layers_and_keeps_boxes(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    ct = add_volume(viewer, ct_phantom(shape=(24, 96, 96)), name="ct")
    mg = add_volume(viewer, mammogram_phantom(), name="mammogram")
    w = _open_widget(viewer, qtbot)
    session = get_session(viewer)
    ct_log, mg_log = session.log_path_for(ct), session.log_path_for(mg)

    # the last image opened is chosen: the mammogram, 2D, no extent layer
    assert w._image_combo.currentText() == "mammogram"
    assert _names(viewer) == ["ct", "mammogram", LAYER_NAME] and w.layer.ndim == 2
    w._class.setCurrentText("malignant")
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, w.layer, (580, 400), (680, 500))
    [mg_box] = box_records(mg_log)
    assert mg_box["data"]["size_mm"] == pytest.approx([10.0, 10.0])

    # switch to the CT: 3D layers, slice controls and 3D columns back; the CT has no box yet
    w._image_combo.setCurrentText("ct")
    assert _names(viewer) == ["ct", "mammogram", EXTENT_NAME, LAYER_NAME]
    assert w.layer.ndim == 3 and not w._slices_row.isHidden() and w._apply_3d.isEnabled()
    assert _shown_columns(w) == ["#", "class", "conf", "slices", "y×x mm", "z mm", "mL", "by"]
    assert w.boxes == {} and w._table.rowCount() == 0
    viewer.dims.set_point(0, float(ct.data_to_world((10, 0, 0))[0]))
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, w.layer, (10, 20, 30), (10, 45, 60))
    [ct_box] = box_records(ct_log)
    w._z_from.setValue(8)
    w._z_to.setValue(12)
    qtbot.mouseClick(w._apply_3d, LEFT)
    qtbot.wait(10)
    assert box_records(ct_log)[-1]["data"]["size_mm"] == pytest.approx([12.5, 20.0, 24.0])
    assert len(viewer.layers[EXTENT_NAME].data) == 4
    n_ct, n_mg = len(list(iter_records(ct_log))), len(list(iter_records(mg_log)))

    # back to the mammogram: the extent layer goes, its box comes back from its log
    w._image_combo.setCurrentText("mammogram")
    assert _names(viewer) == ["ct", "mammogram", LAYER_NAME] and w.layer.ndim == 2
    assert list(w.boxes) == [mg_box["data"]["id"]] and len(w.layer.data) == 1
    assert w._slices_row.isHidden() and w._table.rowCount() == 1

    # its table row jumps to it even with the CT's z axis in the viewer (the CT slice stays)
    z_before = viewer.dims.point[0]
    _click_row(qtbot, w, 0)
    centre = mg.data_to_world((630, 450))
    assert tuple(viewer.scene.camera.center[-2:]) == pytest.approx(tuple(centre), abs=1e-3)
    assert viewer.dims.point[0] == pytest.approx(z_before)

    # and to the CT again: the 3D box with its outlines
    w._image_combo.setCurrentText("ct")
    assert list(w.boxes) == [ct_box["data"]["id"]]
    assert w.boxes[ct_box["data"]["id"]].slice_range == (8, 12)
    assert len(viewer.layers[EXTENT_NAME].data) == 4
    assert w._table.item(0, 3).text() == "8–12" and w._table.item(0, 6).text() == "6.00"

    # switching logged nothing and lost nothing
    assert len(list(iter_records(ct_log))) == n_ct and len(list(iter_records(mg_log))) == n_mg
    assert verify_log(ct_log).ok and verify_log(mg_log).ok

    # closing the CT moves to the mammogram; closing that too takes the box layers away
    viewer.layers.remove(ct)
    assert w._image_combo.currentText() == "mammogram"
    assert _names(viewer) == ["mammogram", LAYER_NAME]
    viewer.layers.remove(mg)
    assert _names(viewer) == [] and w.layer is None and w._table.rowCount() == 0
    assert w._size.text() == "No box selected."
