"""Adjudication widget: an adjudicator settles a two-reader disagreement with a signed record."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.adjudication_widget import act_as, dock_adjudication, load_logs, write_reads
from support.agreement_fixtures import ellipsoid, write_reader_log
from support.viewer_helpers import SHAPE, add_ct

from napari_clinlabel._widgets.adjudication import DISAGREEMENT, DRAFT
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui


def _reader_labels():
    a = np.zeros(SHAPE, np.uint8)
    b = np.zeros(SHAPE, np.uint8)
    a[ellipsoid(SHAPE, (6, 30, 30), (4, 12, 12))] = 1
    b[ellipsoid(SHAPE, (6, 31, 29), (4, 13, 11))] = 1
    b[ellipsoid(SHAPE, (3, 50, 12), (2, 5, 5))] = 2
    return a, b


ROLES = {"alice": ["annotator", "adjudicator"], "bob": ["annotator"], "carol": ["adjudicator"]}


def _setup(make_napari_viewer, tmp_path, monkeypatch, user, role):
    act_as(monkeypatch, tmp_path, user, role, ROLES)  # adjudicator roles: owner-signed roster
    (tmp_path / "adj").mkdir()
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path / "adj")
    a, b = _reader_labels()
    logs = write_reads(image, tmp_path, "ct.nii.gz.clinlabel.jsonl", {"alice": a, "bob": b})
    widget, errors = dock_adjudication(viewer, monkeypatch)
    return viewer, image, widget, logs, errors, a, b


def test_adjudicator_accepts_a_reader_and_signs(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    viewer, image, widget, logs, errors, a, b = _setup(
        make_napari_viewer, tmp_path, monkeypatch, "carol", "adjudicator"
    )
    load_logs(qtbot, widget, logs)
    assert errors == []
    np.testing.assert_array_equal(viewer.layers["read: alice"].data, a)
    np.testing.assert_array_equal(viewer.layers["read: bob"].data, b)
    np.testing.assert_array_equal(viewer.layers[DISAGREEMENT].data, (a != b).astype(np.uint8))
    assert widget._table.rowCount() == 2  # labels 1 and 2 for the one pair
    assert widget._table.item(0, 0).text() == "alice vs bob"

    widget._reader.setCurrentText("bob")
    qtbot.mouseClick(widget._accept, Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(viewer.layers[DRAFT].data, b)
    log_path = get_session(viewer).log_path_for(image)
    before = list(iter_records(log_path)) if log_path.exists() else []

    qtbot.mouseClick(widget._sign, Qt.MouseButton.LeftButton)  # no reason yet: refused
    assert errors and "reason" in errors[0]
    assert (list(iter_records(log_path)) if log_path.exists() else []) == before

    qtbot.keyClicks(widget._reason, "bob includes the satellite lesion seen on slice 3")
    qtbot.mouseClick(widget._sign, Qt.MouseButton.LeftButton)
    recs = list(iter_records(log_path))
    adj_rec, sign_rec = recs[-2], recs[-1]
    assert adj_rec["action"] == "adjudicate" and adj_rec["actor"]["id"] == "carol"
    assert adj_rec["data"]["decision"] == "accept" and adj_rec["data"]["reader"] == "bob"
    assert adj_rec["data"]["reason"].startswith("bob includes")
    assert [c["reader"] for c in adj_rec["data"]["reads"]] == ["alice", "bob"]
    assert sign_rec["action"] == "sign" and sign_rec["data"]["meaning"] == "adjudication"
    assert sign_rec["target"]["hash"] == adj_rec["hash"]
    assert verify_log(log_path).ok
    assert widget._status.text().startswith("signed: adjudicate seq")
    assert not widget._sign.isEnabled()


def test_merge_then_paint_is_a_redraw(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    viewer, image, widget, logs, errors, a, b = _setup(
        make_napari_viewer, tmp_path, monkeypatch, "carol", "adjudicator"
    )
    load_logs(qtbot, widget, logs)
    qtbot.mouseClick(widget._merge, Qt.MouseButton.LeftButton)
    draft = viewer.layers[DRAFT]
    draft.paint((6, 5, 5), 3, refresh=True)  # a label neither reader drew
    qtbot.keyClicks(widget._reason, "neither read covers the nodule at the apex")
    qtbot.mouseClick(widget._sign, Qt.MouseButton.LeftButton)
    assert errors == []
    rec = list(iter_records(get_session(viewer).log_path_for(image)))[-2]
    assert rec["data"]["decision"] == "redraw" and rec["data"]["voxels_redrawn"] > 0


def test_reader_cannot_adjudicate_and_is_blinded(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    viewer, image, widget, logs, errors, a, b = _setup(
        make_napari_viewer, tmp_path, monkeypatch, "alice", "annotator"
    )
    load_logs(qtbot, widget, logs)
    assert errors == []
    assert "read: alice" in viewer.layers and "read: bob" not in viewer.layers
    assert DISAGREEMENT not in viewer.layers and not widget._sign.isEnabled()
    assert widget._status.text().startswith("blinded")


def test_log_of_another_image_is_refused(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    viewer, image, widget, logs, errors, a, b = _setup(
        make_napari_viewer, tmp_path, monkeypatch, "carol", "adjudicator"
    )
    (tmp_path / "other").mkdir()
    other = write_reader_log(
        tmp_path / "other" / "x.clinlabel.jsonl", a, "olga", image_sha="cd" * 32
    )
    load_logs(qtbot, widget, [logs[0], other])
    assert len(errors) == 1 and "log of another image" in errors[0]
    assert not any(lay.name.startswith("read:") for lay in viewer.layers)
