"""Every edit of a managed labels layer — brush, erase, fill, polygon, undo, redo, save — is one
record, and the log replays to the exact array the layer had after each action."""

from __future__ import annotations

import errno
import os
import types

import numpy as np
import pytest
from napari.components import ViewerModel
from napari.utils.notifications import notification_manager
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct, click, drag, show_slice

from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.log import audit_log
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
Z = 6


def replay(log_path, name, seq):
    """The label array at ``seq`` per the log alone (engineer B's replay: an independent oracle)."""
    return replay_labels(log_path, at_seq=seq).labels[name]


@pytest.fixture
def errors():
    """Error notifications shown while the test runs."""
    seen = []

    def keep(n):
        if str(n.severity).lower().endswith("error"):
            seen.append(str(n.message))

    notification_manager.notification_ready.connect(keep)
    yield seen
    notification_manager.notification_ready.disconnect(keep)


@pytest.fixture
def painted(make_napari_viewer, qtbot, tmp_path):
    """A viewer with the CT phantom and its managed 'segmentation' layer on slice Z."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(700, 600)
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    labels = session.labels_layer_for(image)
    viewer.layers.selection.active = labels
    show_slice(viewer, labels, Z)
    viewer.reset_view()
    qtbot.wait(20)
    return viewer, session, image, labels


def _key(qtbot, viewer, key, modifiers):
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, key, modifiers)


def test_each_action_is_one_record_and_replays_exactly(painted, qtbot):
    viewer, session, image, labels = painted
    log_path = session.log_path_for(image)
    heard = []
    session.record_appended.connect(heard.append)
    states = {}

    def act(tool, do):
        before = len(list(iter_records(log_path)))
        do()
        qtbot.wait(5)
        recs = list(iter_records(log_path))
        assert len(recs) == before + 1, f"{tool}: {len(recs) - before} records"
        rec = recs[-1]
        states[rec["seq"]] = labels.data.copy()
        return rec

    labels.mode = "paint"
    labels.selected_label = 1
    labels.brush_size = 6
    rec = act("brush", lambda: drag(qtbot, viewer, labels, Z, (20, 10), (20, 50)))
    assert rec["action"] == "label.paint" and rec["data"]["tool"] == "brush"
    assert rec["data"]["label"] == 1 and rec["data"]["voxels"] == int((labels.data == 1).sum())
    assert rec["data"]["bbox"][0][0] == Z == rec["data"]["bbox"][1][0]
    assert rec["target"] == {"labels": "segmentation"} and rec["actor"]["id"]

    labels.selected_label = 2
    act("brush2", lambda: drag(qtbot, viewer, labels, Z, (40, 10), (40, 50)))
    labels.mode = "erase"
    rec = act("erase", lambda: drag(qtbot, viewer, labels, Z, (10, 30), (50, 30)))
    assert rec["data"]["tool"] == "erase" and rec["data"]["label"] == 0
    labels.mode = "fill"
    labels.selected_label = 3
    rec = act("fill", lambda: click(qtbot, viewer, labels, Z, (40, 12)))
    assert rec["data"]["tool"] == "fill" and rec["data"]["label"] == 3
    rec = act("polygon", lambda: labels.paint_polygon([[Z, 5, 5], [Z, 5, 15], [Z, 15, 10]], 4))
    assert rec["data"]["tool"] == "polygon"
    labels.mode = "pan_zoom"
    painted_before_undo = labels.data.copy()
    rec = act(
        "undo", lambda: _key(qtbot, viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    )
    assert rec["data"]["tool"] == "undo" and rec["data"]["undoes"] == rec["seq"] - 1
    assert not (labels.data == 4).any()
    rec = act("undo2", labels.undo)
    assert rec["data"]["undoes"] == rec["seq"] - 3  # the fill, before the polygon
    act("redo", labels.redo)
    rec = act(
        "redo2",
        lambda: _key(
            qtbot,
            viewer,
            Qt.Key.Key_Z,
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
        ),
    )
    assert rec["data"]["tool"] == "redo"
    np.testing.assert_array_equal(labels.data, painted_before_undo)
    rec = act("save", lambda: session.record_save(labels, "/somewhere/seg.nii.gz"))
    assert rec["action"] == "labels.save" and rec["data"]["file"] == "seg.nii.gz"

    for seq, state in states.items():
        np.testing.assert_array_equal(replay(log_path, "segmentation", seq), state)
    assert [r["seq"] for r in heard] == sorted(states)
    actions = [r["action"] for r in iter_records(log_path)]
    assert actions[:2] == ["image.open", "labels.create"]


def test_unwritable_log_refuses_the_edit_and_tells_the_user(painted, qtbot, monkeypatch, errors):
    viewer, session, image, labels = painted
    log_path = session.log_path_for(image)
    labels.mode = "paint"
    labels.selected_label = 1
    labels.brush_size = 5
    drag(qtbot, viewer, labels, Z, (30, 10), (30, 30))
    kept = labels.data.copy()
    n = len(list(iter_records(log_path)))
    size = os.path.getsize(log_path)

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(audit_log, "os", types.SimpleNamespace(**{**vars(os), "write": disk_full}))
    drag(qtbot, viewer, labels, Z, (10, 10), (50, 50))  # a stroke: refused
    np.testing.assert_array_equal(labels.data, kept)
    assert np.asarray(labels._slice.image.raw).sum() == kept[Z].sum()  # the display too
    labels.undo()  # an undo: refused as well
    np.testing.assert_array_equal(labels.data, kept)
    assert len(errors) == 2 and all("cannot write the audit log" in e for e in errors)
    assert "No space left" in errors[0] and "free space" in errors[0]

    monkeypatch.undo()
    assert os.path.getsize(log_path) == size and len(list(iter_records(log_path))) == n
    labels.undo()  # the first stroke is still the one to undo, and now it is logged
    assert not labels.data.any()
    assert list(iter_records(log_path))[-1]["data"]["tool"] == "undo"


def test_changes_outside_the_tools_are_logged_too(tmp_path):
    viewer = ViewerModel()  # no canvas needed: nothing here goes through the mouse
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    labels = session.labels_layer_for(image)
    log_path = session.log_path_for(image)
    new = labels.data.copy()
    new[Z, 5:9, 5:9] = 7
    labels.data = new  # whole-array replacement
    rec = list(iter_records(log_path))[-1]
    assert rec["data"]["tool"] == "replace" and rec["data"]["voxels"] == 16
    labels.data_setitem((np.array([Z]), np.array([1]), np.array([1])), 5)
    assert list(iter_records(log_path))[-1]["data"]["tool"] == "setitem"
    labels.data[0, 0, 0] = 9  # bypasses every event: caught before the save
    session.record_save(labels)
    recs = list(iter_records(log_path))
    assert [r["data"].get("tool") for r in recs[-2:]] == ["untracked", None]
    np.testing.assert_array_equal(replay(log_path, "segmentation", recs[-1]["seq"]), labels.data)


def test_labels_come_back_from_the_log(painted, qtbot):
    viewer, session, image, labels = painted
    labels.mode = "paint"
    labels.selected_label = 2
    drag(qtbot, viewer, labels, Z, (30, 10), (30, 40))
    expected = labels.data.copy()
    viewer.layers.remove(labels)
    again = session.labels_layer_for(image)
    assert again is not labels
    np.testing.assert_array_equal(again.data, expected)
    np.testing.assert_allclose(again.affine.affine_matrix, image.affine.affine_matrix)
    assert again.data.dtype == np.uint8
    records = list(iter_records(session.log_path_for(image)))
    assert [r["action"] for r in records].count("labels.create") == 1


def test_new_data_off_the_image_grid_is_refused(tmp_path, errors):
    viewer = ViewerModel()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    labels = session.labels_layer_for(image)
    labels.paint((2, 10, 10), 3)
    kept = labels.data.copy()
    log_path = session.log_path_for(image)
    before = log_path.read_bytes()
    labels.data = np.ones((12, 32, 64), np.uint8)
    assert labels.data.shape == (12, 64, 64)
    np.testing.assert_array_equal(labels.data, kept)
    assert log_path.read_bytes() == before
    assert len(errors) == 1 and "new data of shape (12, 32, 64) refused" in errors[0]
