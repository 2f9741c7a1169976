"""Blinding on a shared seat (no Qt): a second reader taking over the same viewer gets her own
empty layer, and the first reader's layer leaves the viewer; the log keeps both reads apart."""

from __future__ import annotations

import numpy as np
from napari.components import ViewerModel
from support.viewer_helpers import add_ct

from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.glue.session import get_session


def test_second_reader_on_the_same_viewer(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    monkeypatch.delenv("CLINLABEL_ROLE", raising=False)
    viewer = ViewerModel()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    ann_layer, notice = session.reader_labels_layer_for(image)
    assert notice is None and ann_layer.name == "CT labels (ann)"
    session.edit_labels(ann_layer, np.arange(0, 50), 1, tool="brush")
    ann_labels = ann_layer.data.copy()

    session.set_actor(Actor("bea", "Bea", "annotator"))
    assert ann_layer not in viewer.layers  # Ann's read is not left open for Bea
    bea_layer, notice = session.reader_labels_layer_for(image)
    assert bea_layer is not ann_layer and bea_layer.name == "CT labels (bea)"
    assert not bea_layer.data.any()
    assert notice == "1 other read of this image exists; it stays hidden until adjudication."
    rec = session.edit_labels(bea_layer, np.arange(100, 120), 3, tool="brush")
    assert rec["actor"]["id"] == "bea" and rec["target"]["labels"] == "segmentation (bea)"

    replayed = replay_labels(session.log_path_for(image)).labels
    np.testing.assert_array_equal(replayed["segmentation"], ann_labels)
    assert set(np.unique(replayed["segmentation (bea)"])) == {0, 3}
    assert not (replayed["segmentation (bea)"] == 1).any()
