"""RGB images (fundus photographs) are segmented as 2D labels over the colour: the fundus sample
is offered by the Segmentation widget, 'Segment this image' gives an (H, W) labels layer on the
image's grid, a brush stroke on the canvas is one logged ``label.paint`` record, and the labels
export to NIfTI/PNG that SimpleITK and Pillow read back."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from napari.utils.notifications import notification_manager
from PIL import Image as PILImage
from qtpy.QtCore import Qt
from vispy.app.canvas import MouseEvent

from napari_clinlabel._widgets._common import volume_of
from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
PLUGIN = "napari-clinlabel"
SCHEMA = """\
id: fundus-lesions
version: "1.0.0"
title: Fundus lesions (test)
signed_off_by:
  name: Test board
  date: "2026-11-01"
labels:
  - value: 1
    name: exudate
    color: "#ffe000"
    category: {scheme: SCT, value: "49755003", meaning: Morphologically Altered Structure}
    type: {scheme: SCT, value: "37358008", meaning: Exudate}
  - value: 2
    name: haemorrhage
    color: "#c00000"
    category: {scheme: SCT, value: "49755003", meaning: Morphologically Altered Structure}
    type: {scheme: SCT, value: "50960005", meaning: Hemorrhage}
"""


@pytest.fixture
def errors():
    seen: list[str] = []

    def keep(n):
        if str(n.severity).lower().endswith("error"):
            seen.append(str(n.message))

    notification_manager.notification_ready.connect(keep)
    yield seen
    notification_manager.notification_ready.disconnect(keep)


def _canvas_pos(viewer, layer, yx):
    world = np.asarray(layer.data_to_world(yx))
    scene = viewer.window._qt_viewer.canvas.view.scene.transform
    return np.round(scene.map([world[-1], world[-2]])[:2]).astype(int)


def _stroke(qtbot, viewer, layer, start, end, steps=8):
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    p0, p1 = _canvas_pos(viewer, layer, start), _canvas_pos(viewer, layer, end)
    press = MouseEvent(pos=p0, type="mouse_press", button=1)
    canvas.events.mouse_press(pos=p0, modifiers=(), button=1)
    for t in np.linspace(0.0, 1.0, steps):
        qtbot.wait(8)  # napari throttles mouse moves
        pos = np.round(p0 + t * (p1 - p0)).astype(int)
        canvas.events.mouse_move(pos=pos, modifiers=(), button=1, press_event=press)
    qtbot.wait(8)
    canvas.events.mouse_release(pos=p1, modifiers=(), button=1)


def test_fundus_sample_is_segmented_as_2d_labels(make_napari_viewer, qtbot, tmp_path, errors):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1100, 800)
    (image,) = viewer.open_sample(PLUGIN, "fundus")
    assert image.rgb and image.data.shape == (768, 768, 3)
    widget = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    combo = widget._image_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [image.name]
    schema_file = tmp_path / "fundus-lesions.yaml"
    schema_file.write_text(SCHEMA)
    widget.load_schema_file(schema_file)

    qtbot.mouseClick(widget._start_btn, Qt.MouseButton.LeftButton)
    labels = widget._labels
    assert not errors, errors
    assert labels is not None and labels.data.shape == (768, 768) and labels.data.dtype == np.uint8
    np.testing.assert_allclose(labels.scale, image.scale)
    np.testing.assert_allclose(labels.translate, image.translate)
    np.testing.assert_allclose(labels.affine.affine_matrix, image.affine.affine_matrix)
    assert viewer.layers.selection.active is labels

    # pick "haemorrhage" in the label table, then one brush stroke across the image
    table = widget._label_table
    row = next(
        r for r in range(table.rowCount()) if table.item(r, 0).data(Qt.ItemDataRole.UserRole) == 2
    )
    rect = table.visualItemRect(table.item(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert labels.selected_label == 2
    labels.mode = "paint"
    labels.brush_size = 12
    viewer.reset_view()
    qtbot.wait(20)
    _stroke(qtbot, viewer, labels, (380, 250), (380, 500))
    qtbot.wait(50)

    painted = labels.data == 2
    ys, xs = np.nonzero(painted)
    assert set(np.unique(labels.data)) == {0, 2}
    assert 360 <= ys.min() and ys.max() <= 400  # the stroke's row, the brush's width
    assert painted[:, 260:490].any(axis=0).all()  # every column the stroke crossed
    log = get_session(viewer).log_path_for(image)
    recs = list(iter_records(log))
    paints = [r for r in recs if r["action"] == "label.paint"]
    created = next(r for r in recs if r["action"] == "labels.create")
    assert created["data"]["shape"] == [768, 768]
    name = created["target"]["labels"]  # the layer's logged name (per reader)
    assert len(paints) == 1 and paints[0]["target"]["labels"] == name
    assert paints[0]["schema"]["id"] == "fundus-lesions"
    assert paints[0]["data"]["tool"] == "brush"
    # a 2D image's size is an area: pixels × 0.015² mm (the sample's pixel size), never mL
    table = widget._label_table
    qtbot.waitUntil(lambda: table.counts().get(2) == int(painted.sum()), timeout=3000)
    assert table.horizontalHeaderItem(3).text() == "mm²" and widget.volumes_ml() == {}
    assert table.horizontalHeaderItem(2).text() == "Pixels"
    assert table.areas_mm2()[2] == pytest.approx(painted.sum() * 0.015**2, abs=0.006)
    replayed = replay_labels(log).labels[name]
    np.testing.assert_array_equal(replayed, labels.data)  # the log alone gives the layer back

    # threshold paint limits by luminance (BT.709 weights, written out here as the oracle)
    widget._window_check.setChecked(True)
    widget._low.setValue(150.0)
    widget._high.setValue(255.0)
    table_row = next(
        r for r in range(table.rowCount()) if table.item(r, 0).data(Qt.ItemDataRole.UserRole) == 1
    )
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton,
                     pos=table.visualItemRect(table.item(table_row, 0)).center())  # fmt: skip
    assert labels.selected_label == 1
    labels.mode = "paint"
    _stroke(qtbot, viewer, labels, (373, 480), (373, 640))  # across the bright optic disc
    qtbot.wait(50)
    luma = image.data.astype(float) @ np.array([0.2125, 0.7154, 0.0721])
    disc = labels.data == 1
    assert disc.sum() > 100 and np.all((luma[disc] >= 150 - 1e-3) & (luma[disc] <= 255))
    assert disc[:, 480:640].any(axis=0).sum() < 160  # the dark fundus on the way was left alone
    paints = [r for r in iter_records(log) if r["action"] == "label.paint"]
    assert len(paints) == 2 and paints[1]["data"]["tool"] == "threshold_paint"
    widget._window_check.setChecked(False)

    # export through the logged gate: NIfTI read back by SimpleITK, PNG by Pillow
    session = get_session(viewer)
    volume = volume_of(image)
    assert volume.rgb and volume.spatial_shape == (768, 768)
    nii = export(None, "nifti", tmp_path / "fundus_seg.nii.gz", log=session.log_for(image),
                 volume=volume, schema=schema_file)  # fmt: skip
    back = sitk.ReadImage(str(nii.outputs[0].path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back).reshape(768, 768), labels.data)
    assert back.GetSpacing()[:2] == pytest.approx((0.015, 0.015))
    png = export(None, "png", tmp_path / "fundus_seg.png", log=session.log_for(image),
                 volume=volume, schema=schema_file)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(PILImage.open(png.outputs[0].path)), labels.data)
    assert [r["data"]["format"] for r in iter_records(log) if r["action"] == "export"] == [
        "nifti",
        "png",
    ]
    # DICOM SEG must reference DICOM sources: a colour photo read from PNG has none (one line)
    with pytest.raises(ExportError, match="not read from DICOM") as exc:
        export(None, "dicom-seg", tmp_path / "fundus_seg.dcm", log=session.log_for(image),
               volume=volume, schema=schema_file)  # fmt: skip
    assert "\n" not in str(exc.value) and "NIfTI" in str(exc.value)


def test_rgb_stack_gets_zyx_labels(make_napari_viewer, qtbot, tmp_path, errors):
    """A stack of colour frames (z, y, x, 3) is segmented with (z, y, x) labels on its grid."""
    from napari_clinlabel._widgets._common import add_volume
    from napari_clinlabel.core.image.geometry import Geometry
    from napari_clinlabel.core.image.volume import Volume

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 40, 50, 3), dtype=np.uint8)
    geom = Geometry((0.5, 0.5, 2.0), (1.0, 2.0, 3.0), tuple(np.eye(3).ravel()))
    vol = Volume(
        frames, geom, {"rgb": True, "modality": "XC", "source_path": str(tmp_path / "s.tif")}
    )
    viewer = make_napari_viewer()
    image = add_volume(viewer, vol, name="stack")
    widget = SegmentationWidget(viewer)
    qtbot.addWidget(widget)
    qtbot.mouseClick(widget._start_btn, Qt.MouseButton.LeftButton)
    labels = widget._labels
    assert not errors, errors
    assert labels.data.shape == (3, 40, 50)
    np.testing.assert_allclose(labels.affine.affine_matrix, image.affine.affine_matrix)
    labels.selected_label = 1
    labels.brush_size = 5
    labels.paint((1, 20, 25), 1)  # napari's own brush call (what a click does)
    log = get_session(viewer).log_path_for(image)
    paints = [r for r in iter_records(log) if r["action"] == "label.paint"]
    assert len(paints) == 1 and labels.data[1, 20, 25] == 1 and not labels.data[0].any()
    created = next(r for r in iter_records(log) if r["action"] == "labels.create")
    assert created["data"]["shape"] == [3, 40, 50]
    assert widget._intensity().shape == (3, 40, 50)  # luminance per frame for the tools
