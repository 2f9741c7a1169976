"""Reading aids driven as a reader does: keys 1-8 set the CT window, letters follow the view,
the HU under the cursor shows while a labels layer is active, a drawn line is one logged record."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct, canvas_pos, drag, show_slice

from napari_clinlabel._widgets.viewing import ReadingAidsWidget
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.glue.session import get_session

SHAPE = (12, 64, 64)


def _press(qtbot, viewer, key):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, key)


@pytest.fixture
def opened(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    image = add_ct(viewer, tmp_path, shape=SHAPE)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Reading aids")
    assert isinstance(widget, ReadingAidsWidget)
    qtbot.waitUntil(lambda: widget._keys is not None and not widget._keys._suspended, timeout=5000)
    return viewer, image, widget


def test_preset_keys_set_window(opened, qtbot):
    viewer, image, widget = opened
    viewer.layers.selection.active = image
    # Radiopaedia "Windowing (CT)": lung W1500 L-600 (key 4), bone W1800 L400 (key 8), brain W80 L40
    for key, (lo, hi) in [
        (Qt.Key.Key_4, (-1350, 150)),
        (Qt.Key.Key_8, (-500, 1300)),
        (Qt.Key.Key_1, (0, 80)),
    ]:
        _press(qtbot, viewer, key)
        assert tuple(image.contrast_limits) == pytest.approx((lo, hi))
    assert "brain" in widget._position.text()


def test_letters_follow_displayed_axes(opened):
    viewer, image, widget = opened
    viewer.dims.ndisplay = 2
    viewer.dims.order = (0, 1, 2)  # axial: (y, x) shown
    ov = viewer.canvas.overlays
    got = {e: ov[f"clinlabel_orient_{e}"].text for e in ("left", "right", "top", "bottom")}
    assert got == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    viewer.dims.order = (1, 0, 2)  # coronal: (z, x) shown, z grows downwards on the canvas
    assert ov["clinlabel_orient_top"].text == "I" and ov["clinlabel_orient_left"].text == "R"


def test_value_under_cursor_while_labels_active(opened, qtbot):
    viewer, image, widget = opened
    labels = get_session(viewer).labels_layer_for(image)
    viewer.layers.selection.active = labels
    show_slice(viewer, image, 6)
    idx = (6, 30, 31)
    # a real mouse move over the canvas, as the reader hovers the voxel
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    pos = canvas_pos(viewer, image, idx)
    qtbot.wait(10)
    canvas.events.mouse_move(pos=pos, modifiers=(), button=None)
    qtbot.waitUntil(lambda: widget.cursor_text != "", timeout=3000)
    at = np.round(image.world_to_data(viewer.cursor.position)).astype(int)
    assert widget.cursor_text == f"{float(image.data[tuple(at)]):.0f} HU"
    assert abs(at[1] - idx[1]) <= 1 and abs(at[2] - idx[2]) <= 1 and at[0] == 6
    # the slider's position (the slice shown) in mm, named by patient axis
    assert f"z (I→S) {viewer.dims.point[0]:.1f} mm" in widget._position.text()
    assert viewer.dims.axis_labels[0] == "z (I→S)"


def test_drawn_line_is_one_logged_distance(opened, qtbot):
    viewer, image, widget = opened
    show_slice(viewer, image, 5)
    layer = widget.start_measuring()
    drag(qtbot, viewer, image, 5, (20, 10), (20, 50), steps=8)
    qtbot.waitUntil(lambda: len(layer.data) == 1, timeout=5000)
    log = get_session(viewer).log_for(image)
    recs = [r for r in iter_records(log.path) if r["action"] == "measure.add"]
    assert len(recs) == 1
    data = recs[0]["data"]
    pts = np.asarray(data["points_world"])
    # hand computation: the drawn end points' distance in mm from their world (mm) coordinates
    expect = math.dist(pts[0], pts[1])
    assert data["kind"] == "distance" and data["length_mm"] == pytest.approx(expect)
    # by hand from the image's pixel size: index steps along each axis times that axis' spacing
    spacing_zyx = np.asarray(image.metadata["clinlabel"]["geometry"]["spacing"][::-1])
    steps = np.asarray(image.world_to_data(pts[1])) - np.asarray(image.world_to_data(pts[0]))
    assert data["length_mm"] == pytest.approx(float(np.hypot.reduce(steps * spacing_zyx)), rel=1e-6)
    assert 30 < abs(steps[2]) < 45 and abs(steps[1]) < 2 and steps[0] == pytest.approx(0, abs=1e-6)
    assert data["slice"] == {"axis": 0, "index": 5}
    assert recs[0]["actor"]["id"]


def test_recist_pair_and_refusal(opened, qtbot, monkeypatch):
    viewer, image, widget = opened
    session = get_session(viewer)
    errors = []
    monkeypatch.setattr(session, "report_error", lambda exc: errors.append(str(exc)))
    show_slice(viewer, image, 4)
    widget._kind.setCurrentText("recist")
    layer = widget.start_measuring()
    drag(qtbot, viewer, image, 4, (30, 10), (30, 50))  # long axis along x
    drag(qtbot, viewer, image, 4, (20, 30), (40, 30))  # short axis along y
    log = session.log_for(image)
    recs = [r for r in iter_records(log.path) if r["action"] == "measure.add"]
    assert len(recs) == 1 and recs[0]["data"]["kind"] == "recist"
    d = recs[0]["data"]
    assert d["length_mm"] > d["short_axis_mm"] > 0 and abs(d["angle_deg"] - 90) < 10
    # a second pair drawn at 45°: refused, the line removed, nothing recorded
    drag(qtbot, viewer, image, 4, (10, 10), (10, 50))
    drag(qtbot, viewer, image, 4, (10, 10), (40, 40))
    assert errors and "perpendicular" in errors[-1]
    assert len(layer.data) == 3
    assert len([r for r in iter_records(log.path) if r["action"] == "measure.add"]) == 1
