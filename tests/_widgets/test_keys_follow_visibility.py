"""A decision key acts only in the panel the user can see: Review's R never fires behind a tab."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct

from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals, load_proposals
from napari_clinlabel.glue.session import get_session

SHAPE = (12, 64, 64)
MODEL = {"name": "test-net", "version": "0.3", "sha256": "ab" * 32}


def _press(qtbot, viewer, key):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, key)


def test_review_keys_released_while_its_tab_is_hidden(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    image = add_ct(viewer, tmp_path, shape=SHAPE)
    log = get_session(viewer).log_for(image)
    mask = np.zeros(SHAPE, bool)
    mask[4:7, 20:26, 20:26] = True
    draft = ProposalDraft("segment", 1, 0.9, np.flatnonzero(mask), SHAPE, name="p0")
    add_proposals(log, [draft], MODEL, labels_name="segmentation")
    review_dock, review = viewer.window.add_plugin_dock_widget(
        "napari-clinlabel", "Review proposals"
    )
    boxes_dock, _ = viewer.window.add_plugin_dock_widget(
        "napari-clinlabel", "Lesion boxes", tabify=True
    )
    boxes_dock.raise_()  # the user clicks the Lesion boxes tab
    qtbot.waitUntil(lambda: review._keys._suspended, timeout=5000)
    viewer.layers.selection.active = image
    _press(qtbot, viewer, Qt.Key.Key_R)
    assert [p.state.value for p in load_proposals(log.path)] == ["proposed"]
    # the user brings the Review tab to the front: now R rejects, one record
    review_dock.raise_()
    qtbot.waitUntil(lambda: not review._keys._suspended, timeout=5000)
    viewer.layers.selection.active = image
    _press(qtbot, viewer, Qt.Key.Key_R)
    assert [p.state.value for p in load_proposals(log.path)] == ["rejected"]
    assert [r["action"] for r in log.records()].count("proposal.reject") == 1
