"""Linked axial/coronal/sagittal views driven as a reader does: a brush stroke dragged across the
sagittal canvas lands in the one label array and is exactly one ``label.paint`` record whose
voxels lie on the sagittal plane; a click in the coronal view moves every view's slice."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Shapes
from support.viewer_helpers import add_ct, canvas_drag

from napari_clinlabel._widgets.linked_views import CROSSHAIR, CROSSHAIR_NAME, LinkedViewsWidget
from napari_clinlabel.core.annotate.label_edits import bbox_of
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
SHAPE = (12, 48, 48)


def _canvas_pos(widget, view, world):
    """Canvas pixel of world point ``world`` in side view ``view``."""
    model = widget.models[view]
    v, h = model.dims.displayed[-2:]
    scene = widget.qt_viewers[view].canvas.view.scene.transform
    return np.round(scene.map([world[h], world[v]])[:2]).astype(int)


def _drag(qtbot, widget, view, w0, w1, steps=6):
    """Drag from world point ``w0`` to ``w1`` in side view ``view``."""
    canvas = widget.qt_viewers[view].canvas._scene_canvas
    p0, p1 = _canvas_pos(widget, view, w0), _canvas_pos(widget, view, w1)
    canvas_drag(qtbot, canvas, p0, p1, steps)


@pytest.fixture
def linked(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    image = add_ct(viewer, tmp_path, shape=SHAPE)
    labels = get_session(viewer).labels_layer_for(image)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Linked views")
    assert isinstance(widget, LinkedViewsWidget)
    qtbot.wait(50)
    return viewer, image, labels, widget


def _paints(image, viewer):
    path = get_session(viewer).log_path_for(image)
    return [r for r in iter_records(path) if r["action"] == "label.paint"]


def test_sagittal_stroke_is_one_record_on_the_plane(linked, qtbot):
    viewer, image, labels, widget = linked
    sag = widget.side_layer("sagittal", labels)
    assert sag.data is labels.data  # one array, not a copy
    x = 20
    widget.set_crosshair(image.data_to_world((6, 24, x)))
    assert widget.models["sagittal"].dims.point == pytest.approx(viewer.dims.point)
    viewer.layers.selection.active = labels
    labels.mode = "paint"
    labels.selected_label = 3
    labels.brush_size = 3
    assert sag.mode == "paint" and sag.selected_label == 3  # the side tool follows the main one
    assert widget.models["sagittal"].layers.selection.active is sag
    before = len(_paints(image, viewer))
    w0 = image.data_to_world((3, 10, x))
    w1 = image.data_to_world((9, 36, x))
    _drag(qtbot, widget, "sagittal", w0, w1)
    qtbot.wait(20)
    recs = _paints(image, viewer)[before:]
    assert len(recs) == 1, [r["data"] for r in recs]
    rec = recs[0]
    assert rec["data"]["tool"] == "brush" and rec["data"]["label"] == 3
    painted = np.flatnonzero(labels.data == 3)
    assert painted.size > 0
    # oracle: the array itself; the stroke lies on the sagittal plane x == 20 only
    zz, yy, xx = np.unravel_index(painted, labels.data.shape)
    assert set(xx.tolist()) == {x}
    assert labels.data[3, 10, x] == 3 and labels.data[9, 36, x] == 3
    assert rec["data"]["voxels"] == painted.size
    assert rec["data"]["bbox"] == bbox_of(painted, labels.data.shape)
    # the main (axial) view shows the stroke after Qt's idle refresh
    widget.flush_refresh()
    viewer.dims.set_point(0, float(image.data_to_world((6, 0, 0))[0]))
    assert np.array_equal(labels._slice.image.raw, labels.data[6])
    # undo in the side view is the recorder's: a second record, the array back to empty
    sag.undo()
    recs = _paints(image, viewer)[before:]
    assert len(recs) == 2 and recs[1]["data"]["tool"] == "undo"
    assert not np.any(labels.data == 3)


def test_click_in_coronal_moves_all_slices(linked, qtbot):
    viewer, image, labels, widget = linked
    viewer.layers.selection.active = image  # pan/zoom: a click moves the crosshair
    widget.set_crosshair(image.data_to_world((6, 24, 24)))
    target = image.data_to_world((4, 24, 31))  # on the coronal plane y == 24
    canvas = widget.qt_viewers["coronal"].canvas._scene_canvas
    pos = _canvas_pos(widget, "coronal", target)
    canvas.events.mouse_press(pos=pos, modifiers=(), button=1)
    qtbot.wait(8)
    canvas.events.mouse_release(pos=pos, modifiers=(), button=1)
    idx = np.round(image.world_to_data(viewer.dims.point)).astype(int)
    assert tuple(idx) == (4, 24, 31)  # axial slice 4, sagittal plane x == 31
    for model in widget.models.values():
        assert model.dims.point == pytest.approx(viewer.dims.point)
    # the crosshair's lines cross at the point, in every view
    for v in widget.viewers():
        [cross] = [layer for layer in v.layers if layer.name.startswith(CROSSHAIR)]  # one only
        vert, horiz = v.dims.displayed[-2:]
        first, second = ([cross.data_to_world(p) for p in line] for line in cross.data[:2])
        assert np.allclose(np.asarray(first)[:, horiz], viewer.dims.point[horiz])
        assert np.allclose(np.asarray(second)[:, vert], viewer.dims.point[vert])


def test_sliders_keep_the_image_step(make_napari_viewer, tmp_path):
    """The crosshair takes the image's transform: the slider still steps one slice."""
    viewer = make_napari_viewer(show=True)
    add_ct(viewer, tmp_path, shape=SHAPE)
    before = [r.step for r in viewer.dims.range]
    assert before[0] != pytest.approx(1.0)  # the phantom's slices are not 1 mm apart
    viewer.window.add_plugin_dock_widget("napari-clinlabel", "Linked views")
    assert [CROSSHAIR in layer.name for layer in viewer.layers].count(True) == 1
    assert [r.step for r in viewer.dims.range] == pytest.approx(before)
    assert viewer.dims.nsteps[0] == SHAPE[0]


def test_crosshair_layer_is_inert(linked, qtbot):
    """The main view's crosshair, the one listed, can be neither deleted nor edited by the user."""
    viewer, image, labels, widget = linked
    [cross] = [layer for layer in viewer.layers if layer.name.startswith(CROSSHAIR)]
    assert cross.name == CROSSHAIR_NAME and isinstance(cross, Shapes)
    assert viewer.layers.selection.active is not cross  # docking did not make it the target
    # napari's own delete (the layer list's button, the Delete key) refuses it
    viewer.layers.selection.active = cross
    viewer.layers.remove_selected()
    assert cross in viewer.layers
    # no drawing tool can be chosen on it, even after a move (napari re-enables editing on
    # every data change of a Shapes layer)
    widget.set_crosshair(image.data_to_world((3, 10, 20)))
    assert not cross.editable
    for mode in ("add_line", "select", "direct", "add_polygon"):
        cross.mode = mode
        assert str(cross.mode) == "pan_zoom"
    assert len(cross.data) == 2  # still the two lines, untouched by the tries


def test_side_views_letters_superior_up():
    from napari_clinlabel.core.image.orientation import edge_letters

    # coronal (z, x) with the camera "up": S at the top, the patient's right on the left
    assert edge_letters((0, 2), vertical_up=True) == {
        "left": "R", "right": "L", "top": "S", "bottom": "I"
    }  # fmt: skip
    assert edge_letters((0, 1), vertical_up=True)["left"] == "A"
