"""Segmentation widget driven as a user would: pick a label, click tools and the canvas, look at
the preview and apply it; every applied tool is one ``label.paint`` record whose voxels match
SimpleITK / scipy run on the same input."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from napari.utils.notifications import notification_manager
from qtpy.QtCore import Qt
from scipy import ndimage
from support.viewer_helpers import click, drag, show_slice

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel.core.image import samples
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
SHAPE = (48, 160, 160)  # the default phantom: lesions small against the liver
SEED = (24, 80, 50)  # inside the liver, away from lesions
VOXEL_ML = 0.8 * 0.8 * 2.5 / 1000


@pytest.fixture
def errors():
    seen: list[str] = []

    def keep(n):
        if str(n.severity).lower().endswith("error"):
            seen.append(str(n.message))

    notification_manager.notification_ready.connect(keep)
    yield seen
    notification_manager.notification_ready.disconnect(keep)


@pytest.fixture
def seg(make_napari_viewer, qtbot, tmp_path):
    """Viewer with the CT phantom, the widget docked and 'Segment this image' clicked."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1100, 800)
    vol = samples.ct_phantom(shape=SHAPE)
    vol.meta["source_path"] = str(tmp_path / "ct.nii.gz")
    image = add_volume(viewer, vol, name="CT")
    widget = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    qtbot.mouseClick(widget._start_btn, Qt.MouseButton.LeftButton)
    labels = widget._labels
    assert labels is not None and labels.data.shape == SHAPE
    show_slice(viewer, labels, SEED[0])
    viewer.reset_view()
    qtbot.wait(20)
    session = get_session(viewer)
    return viewer, widget, image, labels, session.log_path_for(image)


def records(path):
    return list(iter_records(path))


def select_label(qtbot, widget, value):
    table = widget._label_table
    for row in range(table.rowCount()):
        if table.item(row, 0).data(Qt.ItemDataRole.UserRole) == value:
            rect = table.visualItemRect(table.item(row, 0))
            qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
            assert widget._current_value() == value
            return
    raise AssertionError(f"label {value} not listed")


def set_spin(qtbot, box, value):
    box.selectAll()
    qtbot.keyClicks(box, str(value))
    qtbot.keyClick(box, Qt.Key.Key_Enter)
    assert box.value() == pytest.approx(value)


def sitk_grow(image, seed, lower, upper, smoothing):
    img = sitk.GetImageFromArray(image.astype(np.float32))
    if smoothing:
        img = sitk.SmoothingRecursiveGaussian(img, smoothing)
    out = sitk.ConnectedThreshold(img, seedList=[seed[::-1]], lower=lower, upper=upper)
    return sitk.GetArrayFromImage(out).astype(bool)


def test_schema_labels_listed_with_colours_and_codes(seg, qtbot):
    viewer, widget, image, labels, log_path = seg
    table = widget._label_table
    rows = [[table.item(r, c).text() for c in range(4)] for r in range(table.rowCount())]
    assert len(rows) == 6
    assert rows[0] == ["1 liver", "SCT 10200004", "0", "0.00"]
    assert rows[5][:2] == ["6 lesion", "SCT 108369006"]
    assert "Neoplasm" in table.item(5, 1).toolTip()
    select_label(qtbot, widget, samples.SPLEEN)
    assert labels.selected_label == samples.SPLEEN
    np.testing.assert_allclose(labels.colormap.map(np.array([2]))[0][:3],
                               [0x9D / 255, 0x6C / 255, 0xA2 / 255], atol=1e-6)  # fmt: skip
    labels.selected_label = samples.AORTA  # the layer's own control moves the list too
    assert widget._current_value() == samples.AORTA
    # the schema in force is on the records
    assert records(log_path)[-1]["schema"]["id"] == "abdomen-ct"


def apply(qtbot, widget):
    assert widget.tools.preview.layer is not None  # a preview was shown before anything is logged
    qtbot.mouseClick(widget.tools._apply_btn, Qt.MouseButton.LeftButton)


def test_local_threshold_click_previews_then_is_one_record(seg, qtbot):
    viewer, widget, image, labels, log_path = seg
    select_label(qtbot, widget, samples.LIVER)
    # another label already inside the region must survive
    session = get_session(viewer)
    spleen_idx = np.ravel_multi_index(([24] * 5, [80] * 5, [60, 61, 62, 63, 64]), SHAPE)
    session.edit_labels(labels, spleen_idx, samples.SPLEEN, tool="brush")
    widget.tools.select_tool("Local threshold")
    set_spin(qtbot, widget.tools._lt_low, 52)
    set_spin(qtbot, widget.tools._lt_high, 72)
    set_spin(qtbot, widget.tools._lt_diam, 0)
    before = len(records(log_path))
    qtbot.mouseClick(widget.tools._lt_click, Qt.MouseButton.LeftButton)
    assert widget.tools._lt_click.isChecked()
    click(qtbot, viewer, labels, SEED[0], SEED[1:])
    qtbot.waitUntil(lambda: widget.tools.preview.layer is not None, timeout=10000)  # off-thread
    assert len(records(log_path)) == before  # a preview records nothing
    apply(qtbot, widget)
    recs = records(log_path)
    assert len(recs) == before + 1
    rec = recs[-1]
    assert rec["action"] == "label.paint" and rec["data"]["tool"] == "local_threshold"
    assert rec["source"] == {"kind": "tool", "name": "local_threshold", "version": "1"}
    assert rec["data"]["seeds"]["click_zyx"] == list(SEED)
    assert widget.tools.preview.layer is None
    expected = sitk_grow(np.asarray(image.data), SEED, 52, 72, 0.0)
    expected_change = expected & (labels.data != samples.SPLEEN)
    assert rec["data"]["voxels"] == int(expected_change.sum())
    assert np.array_equal(labels.data == samples.LIVER, expected_change)
    assert np.all(labels.data.reshape(-1)[spleen_idx] == samples.SPLEEN)
    # live volume table
    qtbot.waitUntil(lambda: widget.volumes_ml().get(1, 0) > 0, timeout=2000)
    assert widget.volumes_ml()[1] == pytest.approx(expected_change.sum() * VOXEL_ML, abs=0.006)
    assert widget.volumes_ml()[2] == pytest.approx(5 * VOXEL_ML, abs=0.006)
    # a drag (pan) is not a click: nothing grows
    drag(qtbot, viewer, labels, SEED[0], (40, 40), (60, 60))
    qtbot.wait(300)
    assert len(records(log_path)) == before + 1 and not widget.tools.preview.busy


def test_fill_between_slices_islands_and_holes(seg, qtbot):
    viewer, widget, image, labels, log_path = seg
    session = get_session(viewer)
    _, truth = samples.ct_phantom_truth(shape=SHAPE)
    liver = truth == samples.LIVER
    for z in (16, 24):  # the user drew two slices
        idx = np.flatnonzero(liver[z]) + z * SHAPE[1] * SHAPE[2]
        session.edit_labels(labels, idx, samples.LIVER, tool="brush")
    select_label(qtbot, widget, samples.LIVER)
    before = len(records(log_path))
    qtbot.mouseClick(widget._interp_btn, Qt.MouseButton.LeftButton)
    apply(qtbot, widget)
    recs = records(log_path)
    assert len(recs) == before + 1 and recs[-1]["data"]["tool"] == "interpolate"
    filled = labels.data == samples.LIVER
    assert all(filled[z].any() for z in range(17, 24)) and not filled[25:].any()
    dice = 2 * (filled[16:25] & liver[16:25]).sum() / (filled[16:25].sum() + liver[16:25].sum())
    assert dice > 0.9
    assert recs[-1]["data"]["voxels"] == int(filled[17:24].sum())

    # an island of 4 voxels and a hole of 1 voxel
    island = np.ravel_multi_index(([40] * 4, [10] * 4, [10, 11, 12, 13]), SHAPE)
    session.edit_labels(labels, island, samples.LIVER, tool="brush")
    inside = np.argwhere(filled[20])
    y, x = inside[len(inside) // 2]
    hole = np.ravel_multi_index(([20], [int(y)], [int(x)]), SHAPE)
    session.edit_labels(labels, hole, 0, tool="erase")
    before = len(records(log_path))
    set_spin(qtbot, widget._islands, 10)
    qtbot.mouseClick(widget._islands_btn, Qt.MouseButton.LeftButton)
    apply(qtbot, widget)
    rec = records(log_path)[-1]
    assert rec["data"]["tool"] == "remove_islands" and rec["data"]["voxels"] == 4
    assert np.all(labels.data.reshape(-1)[island] == 0)
    widget._holes_per_slice.setChecked(True)
    current = labels.data == samples.LIVER
    expected = np.stack([ndimage.binary_fill_holes(p) for p in current]) & (labels.data == 0)
    qtbot.mouseClick(widget._holes_btn, Qt.MouseButton.LeftButton)
    apply(qtbot, widget)
    rec = records(log_path)[-1]
    assert rec["data"]["tool"] == "fill_holes" and rec["data"]["voxels"] == int(expected.sum())
    assert np.array_equal(labels.data == samples.LIVER, current | expected)
    assert labels.data.reshape(-1)[hole][0] == samples.LIVER
    assert len(records(log_path)) == before + 2


def test_threshold_paint_limits_the_brush(seg, qtbot):
    viewer, widget, image, labels, log_path = seg
    select_label(qtbot, widget, samples.LIVER)
    set_spin(qtbot, widget._low, 45)
    set_spin(qtbot, widget._high, 80)
    widget._window_check.setChecked(True)
    labels.brush_size = 15
    labels.mode = "paint"
    viewer.layers.selection.active = labels
    before = len(records(log_path))
    drag(qtbot, viewer, labels, SEED[0], (80, 30), (80, 120))
    recs = records(log_path)
    assert len(recs) == before + 1
    rec = recs[-1]
    assert rec["data"]["tool"] == "threshold_paint"
    assert rec["data"]["params"]["window"] == [45.0, 80.0]
    painted = labels.data == samples.LIVER
    hu = np.asarray(image.data)[painted]
    assert painted.sum() == rec["data"]["voxels"] > 100
    assert hu.min() >= 45 and hu.max() <= 80
    # the stroke crossed voxels outside the window that stayed unpainted
    zslice = np.asarray(image.data)[SEED[0], 76:85, 40:110]
    assert ((zslice < 45) | (zslice > 80)).any()
    # without the window the brush paints everything it touches
    widget._window_check.setChecked(False)
    drag(qtbot, viewer, labels, SEED[0], (100, 40), (100, 41))
    assert records(log_path)[-1]["data"]["tool"] == "brush"


def test_bad_schema_file_names_the_line(seg, qtbot, tmp_path, errors):
    viewer, widget, image, labels, log_path = seg
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: x\nversion: '1'\ntitle: t\nsigned_off_by: {name: a, date: '2026-01-01'}\n"
        "labels:\n  - {value: 1, name: a, color: 'red', category: {scheme: SCT, value: '1', "
        "meaning: m}, type: {scheme: SCT, value: '2', meaning: n}}\n"
    )
    widget.load_schema_file(bad)
    assert any(f"{bad}, line 6: colour 'red'" in e for e in errors)
    assert widget._schema.id == "abdomen-ct" and widget._label_table.rowCount() == 6
    # a good file replaces the list
    good = tmp_path / "good.yaml"
    good.write_text(bad.read_text().replace("'red'", "'#ff0000'"))
    widget.load_schema_file(good)
    assert widget._label_table.rowCount() == 1 and widget._schema.id == "x"
    # the schema in force goes on the next records; values it lacks still show their volume
    get_session(viewer).edit_labels(labels, np.arange(10), 2, tool="brush")
    rec = records(log_path)[-1]
    assert rec["schema"] == widget._schema.ref() and rec["schema"]["id"] == "x"
    qtbot.waitUntil(lambda: widget._label_table.rowCount() == 2, timeout=2000)
    assert widget._label_table.item(1, 0).text() == "2 (not in schema)"
    assert widget.volumes_ml()[2] == pytest.approx(10 * VOXEL_ML, abs=0.006)


def test_tools_before_labels_and_bad_seed_say_what_to_do(
    make_napari_viewer, qtbot, tmp_path, errors
):
    viewer = make_napari_viewer()
    vol = samples.ct_phantom(shape=(12, 64, 64))
    vol.meta["source_path"] = str(tmp_path / "ct.nii.gz")
    image = add_volume(viewer, vol, name="CT")
    widget = SegmentationWidget(viewer)
    qtbot.mouseClick(widget._interp_btn, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.tools._lt_click, Qt.MouseButton.LeftButton)
    assert not widget.tools._lt_click.isChecked()
    assert errors and all("Segment this image" in e for e in errors)
    assert not get_session(viewer).log_path_for(image).exists()  # nothing was logged
    qtbot.mouseClick(widget._start_btn, Qt.MouseButton.LeftButton)
    log_path = get_session(viewer).log_path_for(image)
    n = len(records(log_path))
    widget.tools.threshold_at((50, 0, 0), sync=True)
    assert "outside the image" in errors[-1] and len(records(log_path)) == n


def test_opens_from_the_plugin_menu(make_napari_viewer):
    """napari builds the widget from the manifest and hands it the viewer."""
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Segmentation")
    assert isinstance(widget, SegmentationWidget) and widget._viewer is viewer
