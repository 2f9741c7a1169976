"""Adjudication widget: an adjudicator settles a two-reader disagreement with a signed record."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.agreement_fixtures import ellipsoid, write_reader_log  # noqa: E402
from support.trusted_roster import write_roster
from support.viewer_helpers import SHAPE, add_ct

from napari_clinlabel._widgets.adjudication import DISAGREEMENT, DRAFT, AdjudicationWidget
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.glue.session import get_session, image_sha256

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
    monkeypatch.setenv("CLINLABEL_USER", user)
    monkeypatch.setenv("CLINLABEL_ROLE", role)
    write_roster(tmp_path, ROLES)  # adjudicator roles come from an owner-signed roster (and keys)
    (tmp_path / "adj").mkdir()
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path / "adj")
    geom = Geometry.from_dict(image.metadata["clinlabel"]["geometry"])
    sha = image_sha256(image)
    a, b = _reader_labels()
    logs = []
    for reader, labels in (("alice", a), ("bob", b)):
        (tmp_path / reader).mkdir()
        logs.append(
            write_reader_log(
                tmp_path / reader / "ct.nii.gz.clinlabel.jsonl",
                labels,
                reader,
                image_sha=sha,
                geom=geom,
            )  # fmt: skip
        )
    widget = AdjudicationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    errors: list[str] = []
    monkeypatch.setattr(get_session(viewer), "report_error", lambda exc: errors.append(str(exc)))
    return viewer, image, widget, logs, errors, a, b


def test_adjudicator_accepts_a_reader_and_signs(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    viewer, image, widget, logs, errors, a, b = _setup(
        make_napari_viewer, tmp_path, monkeypatch, "carol", "adjudicator"
    )
    qtbot.keyClicks(widget._logs, ";".join(map(str, logs)))
    qtbot.mouseClick(widget._load, Qt.MouseButton.LeftButton)
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
    qtbot.keyClicks(widget._logs, ";".join(map(str, logs)))
    qtbot.mouseClick(widget._load, Qt.MouseButton.LeftButton)
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
    qtbot.keyClicks(widget._logs, ";".join(map(str, logs)))
    qtbot.mouseClick(widget._load, Qt.MouseButton.LeftButton)
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
    qtbot.keyClicks(widget._logs, f"{logs[0]};{other}")
    qtbot.mouseClick(widget._load, Qt.MouseButton.LeftButton)
    assert len(errors) == 1 and "log of another image" in errors[0]
    assert not any(lay.name.startswith("read:") for lay in viewer.layers)
