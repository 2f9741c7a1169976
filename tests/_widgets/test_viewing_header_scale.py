"""Header-driven reading aids, as a breast radiologist and a pathologist meet them: the mammogram
shows its laterality and view ("L CC") on the canvas; the lesion box's laterality is offered from
the header and recorded only once the reader presses "Use header"; the scale bar reads µm on a
slide and mm on a CT."""

from __future__ import annotations

import pydicom
import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct, box_records, layer_drag

from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel._widgets.viewing import VIEW_OVERLAY, ReadingAidsWidget
from napari_clinlabel.cli.demo import sample_file
from napari_clinlabel.core.annotate.box_view import NOT_SET
from napari_clinlabel.core.image.samples import pathology_slide
from napari_clinlabel.glue.layers import volume_to_layer_data
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton


def _scale_bar_text(viewer):
    canvas = viewer.window._qt_viewer.canvas
    [visual] = canvas._viewer_overlay_to_visual[viewer.canvas.overlays.scale_bar]
    return visual.node.text.text


def test_mammogram_laterality_shown_and_offered_not_set(make_napari_viewer, qtbot, tmp_path):
    path = sample_file("mammogram", tmp_path)
    ds = pydicom.dcmread(path)  # oracle: the file's own header, read by pydicom
    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-clinlabel")
    aids = ReadingAidsWidget(viewer)
    qtbot.addWidget(aids)
    overlay = viewer.canvas.overlays[VIEW_OVERLAY]
    assert overlay.visible and overlay.text == f"{ds.ImageLaterality} {ds.ViewPosition}" == "L CC"

    w = LesionBoxWidget(viewer)
    qtbot.addWidget(w)
    w.show()
    combo = w._attrs["laterality"]
    button = w._form.offer_buttons["laterality"]
    assert combo.currentText() == NOT_SET  # offered, not chosen
    assert button.text() == "Use header: left"
    log_path = get_session(viewer).log_path_for(image)
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, w.layer, (580, 400), (680, 520))
    [add] = box_records(log_path)
    assert "laterality" not in add["data"].get("attributes", {})  # nobody chose it yet
    qtbot.mouseClick(button, LEFT)  # the reader confirms the header's value
    recs = box_records(log_path)
    assert [r["action"] for r in recs] == ["box.add", "box.edit"]
    assert recs[1]["data"]["attributes"]["laterality"] == "left"
    assert recs[1]["data"]["changed"] == ["attributes"]


def test_scale_bar_um_on_slide_mm_on_ct(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    data, kwargs, _ = volume_to_layer_data(pathology_slide((512, 512)))
    slide = viewer.add_image(data, **kwargs)
    aids = ReadingAidsWidget(viewer)
    qtbot.addWidget(aids)
    viewer.reset_view()
    qtbot.wait(50)
    assert viewer.scale_bar.visible
    assert [str(u) for u in slide.units] == ["millimeter", "millimeter"]
    assert _scale_bar_text(viewer).endswith("µm")  # 0.25 µm pixels: the bar reads microns
    viewer.layers.remove(slide)
    ct = add_ct(viewer, tmp_path)
    viewer.reset_view()
    qtbot.wait(50)
    assert all(str(u) == "millimeter" for u in ct.units)
    assert _scale_bar_text(viewer).endswith(" mm")  # a 0.8 mm CT: millimetres
