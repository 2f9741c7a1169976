"""File ▸ Save of the plugin's own "lesions" layer (issue 14 item 4): napari's save path hands the
layer to the plugin's JSON / CSV writers, which export the boxes of the image's log."""

from __future__ import annotations

import csv
import json

import SimpleITK as sitk
from qtpy.QtCore import Qt
from support.viewer_helpers import box_records, layer_drag

from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel.core.image.samples import ct_phantom
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.glue.session import get_session

LEFT = Qt.MouseButton.LeftButton


def test_file_save_of_the_lesions_layer_exports_its_boxes(make_napari_viewer, qtbot, tmp_path):
    vol = ct_phantom(shape=(8, 48, 48))
    img = sitk.GetImageFromArray(vol.array)
    vol.geometry.apply_to_itk(img)
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(img, str(path))

    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-clinlabel")
    w = LesionBoxWidget(viewer)
    qtbot.addWidget(w)
    layer = w.layer
    assert layer.metadata["clinlabel"]["source_path"] == str(path)
    viewer.dims.set_point(0, float(image.data_to_world((3, 0, 0))[0]))
    w._class.setCurrentText("malignant")
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, layer, (3, 10, 12), (3, 20, 30))
    log_path = get_session(viewer).log_path_for(image)
    [rec] = box_records(log_path)

    # what File ▸ Save does with the selected layer, through npe2 and the plugin's writers
    viewer.layers.selection = {layer}
    out_json = tmp_path / "boxes.json"
    written = viewer.layers.save(str(out_json), selected=True, plugin="napari-clinlabel")
    assert str(out_json) in [str(p) for p in written]
    text = out_json.read_text()
    json.loads(text)
    assert rec["data"]["id"] in text and "malignant" in text
    out_csv = tmp_path / "boxes.csv"
    viewer.layers.save(str(out_csv), selected=True, plugin="napari-clinlabel")
    rows = list(csv.DictReader(out_csv.open(newline="")))
    assert len(rows) == 1 and "malignant" in rows[0].values()
    # each save is one logged export naming its output
    exports = [r for r in iter_records(log_path) if r["action"] == "export"]
    assert [e["data"]["format"] for e in exports] == ["json", "csv"]
    assert exports[0]["data"]["outputs"][0]["name"] == "boxes.json"
