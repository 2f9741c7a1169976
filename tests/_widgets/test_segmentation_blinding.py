"""Blinding (issue 14 item 2): two readers of one image in one folder, through the Segmentation
widget. The second reader's layer starts empty and is named for her; her strokes are hers in the
log; the first reader's labels never reach her layer; she is told, in one line, that another read
exists and stays hidden. A reviewer is told who read it."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager
from qtpy.QtCore import Qt
from support.trusted_roster import write_roster
from support.viewer_helpers import add_ct, drag, show_slice

from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
Z = 6


@pytest.fixture
def infos():
    seen: list[str] = []

    def keep(n):
        seen.append(str(n.message))

    notification_manager.notification_ready.connect(keep)
    yield seen
    notification_manager.notification_ready.disconnect(keep)


def _read(make_napari_viewer, qtbot, folder, user, monkeypatch, label=1, row=20):
    """``user`` opens the CT of ``folder``, clicks 'Segment this image' and paints one stroke."""
    monkeypatch.setenv("CLINLABEL_USER", user)
    viewer = make_napari_viewer(show=True)
    image = add_ct(viewer, folder)
    widget = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    qtbot.mouseClick(widget._start_btn, Qt.MouseButton.LeftButton)
    labels = widget._labels
    start = labels.data.copy()
    show_slice(viewer, labels, Z)
    viewer.reset_view()
    qtbot.wait(20)
    widget._label_table.select_value(label)
    labels.mode = "paint"
    labels.brush_size = 4
    drag(qtbot, viewer, labels, Z, (row, 10), (row, 50))
    return viewer, widget, image, labels, start


def _labels_records(log_path):
    return [r for r in iter_records(log_path)
            if isinstance(r["target"], dict) and r["target"].get("labels")]  # fmt: skip


def test_second_reader_starts_blank_and_never_sees_the_first_read(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, infos
):
    monkeypatch.delenv("CLINLABEL_ROLE", raising=False)
    # reader A (ann) reads the image and paints
    va, wa, image_a, ann_layer, ann_start = _read(
        make_napari_viewer, qtbot, tmp_path, "ann", monkeypatch, label=1, row=20
    )
    log_path = get_session(va).log_path_for(image_a)
    assert not ann_start.any() and ann_layer.name == "CT labels (ann)"
    ann_labels = ann_layer.data.copy()
    assert (ann_labels == 1).sum() > 0
    assert not any("other read" in m for m in infos)  # nobody else read it yet
    va.close()

    # reader B (bea), same folder and so the same log, another workstation session
    vb, wb, image_b, bea_layer, bea_start = _read(
        make_napari_viewer, qtbot, tmp_path, "bea", monkeypatch, label=2, row=40
    )
    assert get_session(vb).log_path_for(image_b) == log_path
    assert bea_layer.name == "CT labels (bea)"
    assert not bea_start.any()  # her layer starts empty: not Ann's read
    note = "1 other read of this image exists; it stays hidden until adjudication."
    assert note in infos and wb._status.text() == note and "ann" not in note
    # Ann's labels never appear in Bea's layer, and no layer of Ann's is open in her viewer
    assert not (bea_layer.data == 1).any()
    assert (bea_layer.data == 2).sum() > 0
    assert [lay for lay in vb.layers if lay.name == "CT labels (ann)"] == []

    # the log: each reader's records carry that reader, on that reader's own array
    recs = _labels_records(log_path)
    by_array = {}
    for r in recs:
        by_array.setdefault(r["target"]["labels"], set()).add(r["actor"]["id"])
    assert by_array == {"segmentation": {"ann"}, "segmentation (bea)": {"bea"}}
    bea_paint = [r for r in recs if r["actor"]["id"] == "bea" and r["action"] == "label.paint"]
    assert bea_paint and all(r["data"]["tool"] == "brush" for r in bea_paint)
    # replayed from the log (the oracle: the arrays each reader had on screen)
    replayed = replay_labels(log_path).labels
    np.testing.assert_array_equal(replayed["segmentation"], ann_labels)
    np.testing.assert_array_equal(replayed["segmentation (bea)"], bea_layer.data)
    vb.close()

    # Ann reopens: her own read only, not Bea's strokes; she is told one other read exists
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    vc = make_napari_viewer(show=True)
    add_ct(vc, tmp_path)
    wc = SegmentationWidget(vc)
    vc.window.add_dock_widget(wc, area="right")
    qtbot.mouseClick(wc._start_btn, Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(wc._labels.data, ann_labels)
    assert wc._status.text() == note


def test_a_reviewer_is_told_who_read_it(make_napari_viewer, qtbot, tmp_path, monkeypatch, infos):
    write_roster(tmp_path, {"ann": ["annotator"], "rev": ["reviewer"]})
    monkeypatch.delenv("CLINLABEL_ROLE", raising=False)
    va, *_ = _read(make_napari_viewer, qtbot, tmp_path, "ann", monkeypatch)
    va.close()
    monkeypatch.setenv("CLINLABEL_ROLE", "reviewer")
    vb, wb, image, layer, start = _read(make_napari_viewer, qtbot, tmp_path, "rev", monkeypatch)
    assert get_session(vb).actor.role == "reviewer"
    assert not start.any() and layer.name == "CT labels (rev)"  # still their own layer
    assert "(ann)" in wb._status.text() and "reviewer" in wb._status.text()
