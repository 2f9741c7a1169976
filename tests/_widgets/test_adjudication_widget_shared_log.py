"""Adjudication widget for readers who shared a folder: their reads are arrays of the image's one
sidecar log, loaded with the log field left empty (no path typed twice)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.adjudication_widget import act_as, dock_adjudication
from support.agreement_fixtures import ellipsoid
from support.viewer_helpers import SHAPE, add_ct

from napari_clinlabel._widgets.adjudication import DISAGREEMENT, DRAFT
from napari_clinlabel.core.annotate.label_edits import (
    diff_between,
    record_label_change,
    record_labels_create,
)
from napari_clinlabel.core.annotate.reads import own_labels_name
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.glue.session import get_session, image_sha256

pytestmark = pytest.mark.gui

ROLES = {"alice": ["annotator"], "bob": ["annotator"], "carol": ["adjudicator"]}


def _read_into(log_path, ref, geometry, reader: str, labels: np.ndarray) -> str:
    """``reader`` paints ``labels`` in one stroke into their own array of the shared log."""
    log = AuditLog(log_path, ref, Actor(reader, reader.title(), "annotator"))
    name = own_labels_name(iter_records(log_path) if log_path.exists() else [], "segmentation",
                           reader)  # fmt: skip
    log.append("image.open", None, {"shape": list(labels.shape), "geometry": geometry})
    record_labels_create(log, name, labels.shape, labels.dtype)
    work = np.zeros_like(labels)
    idx, old, new = diff_between(work, labels)
    record_label_change(log, work, name, idx, old, new, applied=False)
    log.close()
    return name


def _setup(make_napari_viewer, tmp_path, monkeypatch, user, role):
    act_as(monkeypatch, tmp_path, user, role, ROLES)
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path)
    log_path = get_session(viewer).log_path_for(image)
    a = np.zeros(SHAPE, np.uint8)
    b = np.zeros(SHAPE, np.uint8)
    a[ellipsoid(SHAPE, (6, 30, 30), (4, 12, 12))] = 1
    b[ellipsoid(SHAPE, (6, 31, 29), (4, 13, 11))] = 1
    meta = image.metadata["clinlabel"]
    ref = {"uid": meta.get("series_uid"), "sha256": image_sha256(image)}  # as napari logs it
    names = [
        _read_into(log_path, ref, meta["geometry"], r, m) for r, m in (("alice", a), ("bob", b))
    ]
    assert names == ["segmentation", "segmentation (bob)"]
    widget, errors = dock_adjudication(viewer, monkeypatch)
    return viewer, widget, log_path, errors, a, b


def test_adjudicator_loads_both_reads_from_the_shared_log_and_signs(
    make_napari_viewer, tmp_path, monkeypatch, qtbot
):
    viewer, widget, log_path, errors, a, b = _setup(
        make_napari_viewer, tmp_path, monkeypatch, "carol", "adjudicator"
    )
    qtbot.mouseClick(widget._load, Qt.MouseButton.LeftButton)  # nothing typed: the image's log
    assert errors == []
    np.testing.assert_array_equal(viewer.layers["read: alice"].data, a)
    np.testing.assert_array_equal(viewer.layers["read: bob"].data, b)
    np.testing.assert_array_equal(viewer.layers[DISAGREEMENT].data, (a != b).astype(np.uint8))
    assert widget._table.item(0, 0).text() == "alice vs bob"
    widget._reader.setCurrentText("alice")
    qtbot.mouseClick(widget._accept, Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(viewer.layers[DRAFT].data, a)
    qtbot.keyClicks(widget._reason, "alice's margin follows the capsule")
    qtbot.mouseClick(widget._sign, Qt.MouseButton.LeftButton)
    assert errors == []
    adj_rec = list(iter_records(log_path))[-2]
    assert adj_rec["action"] == "adjudicate" and adj_rec["data"]["reader"] == "alice"
    assert [(c["reader"], c["labels"]) for c in adj_rec["data"]["reads"]] == [
        ("alice", "segmentation"),
        ("bob", "segmentation (bob)"),
    ]
    assert verify_log(log_path).ok


def test_reader_of_the_shared_log_sees_only_her_own_read(
    make_napari_viewer, tmp_path, monkeypatch, qtbot
):
    viewer, widget, log_path, errors, a, b = _setup(
        make_napari_viewer, tmp_path, monkeypatch, "bob", "annotator"
    )
    qtbot.mouseClick(widget._load, Qt.MouseButton.LeftButton)
    assert errors == []
    np.testing.assert_array_equal(viewer.layers["read: bob"].data, b)
    assert "read: alice" not in viewer.layers and not widget._sign.isEnabled()
