"""An open Lesion boxes widget follows the log: a box proposal accepted (A) or edited (drag + E) in
Review shows in its table and layers at once, as reloading from the log would show it; the refresh
itself records nothing."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct, drag

from napari_clinlabel._widgets._proposal_layers import BOXES
from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel.core.annotate.box_view import table_rows
from napari_clinlabel.core.annotate.boxes import load_boxes
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.filterwarnings("error::FutureWarning")
SHAPE = (12, 64, 64)
MODEL = {"name": "test-net", "version": "0.3", "sha256": "ab" * 32}
BOX_3D = {"zyx_min": [2, 10, 12], "zyx_max": [4, 20, 30], "class": "malignant", "label": 6}
BOX_2D = {"zyx_min": [8, 40, 40], "zyx_max": [8, 49, 51], "class": "benign", "label": 6}


def _table(widget):
    t = widget._table
    return [[t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())]


def _canvas_key(qtbot, viewer, key):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, key)


def test_lesion_boxes_show_proposals_decided_in_review(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path, shape=SHAPE)
    session = get_session(viewer)
    log = session.log_for(image)
    add_proposals(
        log,
        [
            ProposalDraft("box", 6, 0.8, payload=BOX_3D, name="lesion"),
            ProposalDraft("box", 6, 0.7, payload=BOX_2D, name="lesion"),
        ],
        MODEL,
    )
    _d1, lw = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Lesion boxes")
    _d2, review = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Review proposals")
    n0 = len(list(iter_records(log.path)))
    assert lw._table.rowCount() == 0 and not lw.boxes  # proposals are not boxes until decided
    boxes = viewer.layers[BOXES]
    assert review.current.payload == BOX_3D

    # A accepts the 3D box as proposed: the Lesion boxes table shows it at once
    _canvas_key(qtbot, viewer, Qt.Key.Key_A)
    recs = list(iter_records(log.path))[n0:]
    assert [r["action"] for r in recs] == ["proposal.accept"]
    assert lw._table.rowCount() == 1
    (first,) = lw.boxes.values()
    assert first.id == recs[0]["target"]["proposal"]
    assert first.zyx_min == (1.5, 9.5, 11.5) and first.zyx_max == (4.5, 20.5, 30.5)
    assert first.cls == "malignant" and first.source["kind"] == "model"
    actor = recs[0]["actor"]["id"]
    row = _table(lw)[0]
    assert row[1] == "malignant" and row[3] == "2–4"
    assert row[-1] == f"test-net 0.3 ✓ {actor}"
    assert len(lw.layer.data) == 1 and list(lw.layer.features["box_id"]) == [first.id]

    # the one-slice box: the reviewer drags it by (+3, +4) voxels, then E accepts it as edited
    assert review.current.payload == BOX_2D
    assert viewer.layers.selection.active is boxes and boxes.mode == "select"
    (i,) = [i for i, pid in enumerate(boxes.features["proposal"]) if pid == review.current.id]
    drag(qtbot, viewer, boxes, 8, (44, 45), (47, 49), steps=8)
    assert not np.allclose(boxes.data[i][:, 1:].min(axis=0), [39.5, 39.5])  # it moved
    _canvas_key(qtbot, viewer, Qt.Key.Key_E)
    recs = list(iter_records(log.path))[n0:]
    assert [r["action"] for r in recs] == ["proposal.accept", "proposal.edit"]  # nothing else
    edited = recs[1]["data"]["box"]
    assert edited["zyx_min"] != BOX_2D["zyx_min"] and edited["zyx_min"][0] == 8
    lo, hi = np.array(edited["zyx_min"][1:]), np.array(edited["zyx_max"][1:])
    assert (hi - lo).tolist() == [9, 11]  # moved, not resized

    assert lw._table.rowCount() == 2
    got = lw.boxes
    second = got[recs[1]["target"]["proposal"]]
    assert second.zyx_min == (8.0, lo[0] - 0.5, lo[1] - 0.5)
    assert second.zyx_max == (8.0, hi[0] + 0.5, hi[1] + 0.5)
    assert second.cls == "benign" and second.created_by == recs[1]["actor"]["id"]
    rows = _table(lw)
    assert [r[0] for r in rows] == ["L1", "L2"] and rows[1][1] == "benign" and rows[1][3] == "8–8"
    assert rows[1][-1] == f"test-net 0.3 ✓ {recs[1]['actor']['id']}"
    # rectangles in the lesions layer: one per box, at the boxes' extents
    ids = list(lw.layer.features["box_id"])
    assert ids == [first.id, second.id]
    rect = np.asarray(lw.layer.data[1])
    assert np.allclose(rect.min(axis=0), second.zyx_min)
    assert np.allclose(rect.max(axis=0), second.zyx_max)

    # exactly what reloading from the log shows: the same boxes and the same table
    assert got == load_boxes(log.path)
    assert rows == table_rows(load_boxes(log.path), lw._volume.geometry)
    fresh = LesionBoxWidget(viewer)
    qtbot.addWidget(fresh)
    assert fresh.boxes == got and _table(fresh) == rows

    # the refresh logged nothing: the log holds exactly the two decision records
    recs = list(iter_records(log.path))[n0:]
    assert [r["action"] for r in recs] == ["proposal.accept", "proposal.edit"]
    assert verify_log(log.path).ok
