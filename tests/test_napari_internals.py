"""The private napari internals this package relies on still exist (pyproject pins napari 0.9).

glue/ and _widgets/ reach into a few napari 0.9 internals where napari has no public hook. A new
napari may move any of them without notice; this test fails loudly, naming which one, before a
user meets a silent wrong behaviour. Each check says where the code uses it. Headless: layer and
viewer models only, no Qt.
"""

from __future__ import annotations

import inspect

import napari
import numpy as np
import pytest
from napari.components import ViewerModel
from napari.layers import Labels

from napari_clinlabel.glue.label_recorder import _regions_of


def test_napari_is_the_tested_minor_version():
    major, minor = (int(p) for p in napari.__version__.split(".")[:2])
    assert (major, minor) == (0, 9), (
        f"napari {napari.__version__}: this package is tested on 0.9 only; re-run this file and "
        "the GUI tests on the new version before widening the pin in pyproject.toml"
    )


def test_shapes_action_type_constants():
    """_widgets/lesion_boxes.py: box edits are taken on ``data`` events with these actions."""
    from napari.layers.base._base_constants import ActionType

    assert {"ADDED", "CHANGED", "REMOVED"} <= set(ActionType.__members__)
    assert ActionType.ADDED.value == "added"


def test_labels_history_attributes():
    """glue/label_recorder.py: frees napari's own undo history and reads its block flag."""
    layer = Labels(np.zeros((6, 6), np.uint8))
    for attr in ("_undo_history", "_redo_history"):
        history = getattr(layer, attr)
        assert hasattr(history, "clear") and hasattr(history, "__len__"), attr
    assert layer._block_history is False
    layer.paint((2, 2), 1)
    assert len(layer._undo_history) == 1  # a paint lands in the history the recorder frees


def test_labels_mask_step_signature():
    """_widgets/_seg_hooks.py: the windowed brush wraps the step every brush/fill/polygon calls."""
    params = list(inspect.signature(Labels._apply_mask_to_data).parameters)
    assert params == ["self", "data", "mask", "new_label", "volume_slice"]


@pytest.mark.parametrize("method", ["paint", "fill", "paint_polygon"])
def test_labels_tool_methods_take_the_label_second(method):
    """glue/label_recorder.py wraps these and reads the label from args[1] or ``new_label``."""
    params = list(inspect.signature(getattr(Labels, method)).parameters)
    assert params[2] == "new_label", params


@pytest.mark.parametrize(
    "edit",
    [
        lambda layer: layer.paint((2, 3), 1),
        lambda layer: layer.fill((0, 0), 2),
        lambda layer: layer.paint_polygon(np.array([[1, 1], [1, 4], [4, 4]]), 3),
        lambda layer: layer.data_setitem((np.array([5]), np.array([5])), 4),
    ],
    ids=["paint", "fill", "polygon", "setitem"],
)
def test_labels_paint_event_items_are_understood(edit):
    """glue/label_recorder.py: the recorder reads where an edit landed from the ``paint`` event's
    history item; an item it does not understand makes it diff the whole array on every stroke."""
    layer = Labels(np.zeros((7, 7), np.uint8))
    items = []
    layer.events.paint.connect(lambda event: items.append(event.value))
    edit(layer)
    assert items, "no paint event"
    regions = [_regions_of(item, 2) for item in items]
    assert all(r is not None and r for r in regions), [type(a) for a in items[0]]
    changed = np.argwhere(layer.data != 0)
    assert changed.size
    for y, x in changed:
        assert any(r[0].start <= y < r[0].stop and r[1].start <= x < r[1].stop
                   for item in regions for r in item)  # fmt: skip


def test_viewer_canvas_size():
    """_widgets/tile_grading.py zooms to a tile from the canvas size in screen pixels (public on
    0.9 as ``viewer.canvas.size``; the private ``_canvas_size`` it once read is gone)."""
    viewer = ViewerModel()
    assert not hasattr(viewer, "_canvas_size")
    size = viewer.canvas.size
    assert len(size) == 2 and all(int(s) == s for s in size)
