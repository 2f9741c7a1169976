"""Session widget: who is signed in and as what; role switching within what the roster grants."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.trusted_roster import write_roster
from support.viewer_helpers import add_ct

from napari_clinlabel._widgets.session import SessionWidget
from napari_clinlabel.core.errors import PermissionRefused
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
USERS = {"dr_a": ["annotator", "reviewer"], "dr_b": ["adjudicator"]}


def _roster(folder, sign=True):
    """The dataset's roster beside the image, signed by its owner."""
    return write_roster(folder, USERS, names={"dr_a": "Dr A"}, sign=sign)


def _setup(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    labels = session.labels_layer_for(image)
    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, session, image, labels, widget


def _paint(labels, value):
    labels.paint((6, 30, 30), value)


def test_roster_grants_roles_and_records_carry_the_chosen_one(
    make_napari_viewer, tmp_path, monkeypatch, qtbot
):
    roster = _roster(tmp_path)
    monkeypatch.setenv("CLINLABEL_ROSTER", str(roster))
    monkeypatch.setenv("CLINLABEL_USER", "dr_a")
    viewer, session, image, labels, widget = _setup(make_napari_viewer, tmp_path)
    assert "Dr A" in widget._who.text() and "annotator" in widget._who.text()
    origin = widget._origin.text()
    assert f"signed roster {roster}" in origin and "owner owner" in origin
    assert origin.startswith("id: CLINLABEL_USER")
    assert [widget._role.itemText(i) for i in range(widget._role.count())] == [
        "annotator",
        "reviewer",
    ]
    assert not widget._user.isEnabled() and widget._user.isReadOnly()  # the roster says who
    widget._user.setText("dr_b")  # typed in anyway (programmatically): refused, nothing changes
    widget._on_user_edited()
    assert session.actor.id == "dr_a" and widget._user.text() == "dr_a"
    log_path = session.log_path_for(image)
    assert widget._log_path.text() == str(log_path)

    widget._role.setFocus()
    qtbot.keyClick(widget._role, Qt.Key.Key_Down)  # the user picks "reviewer"
    assert session.actor == Actor("dr_a", "Dr A", "reviewer")
    assert "reviewer" in widget._who.text()
    _paint(labels, 2)
    last = list(iter_records(log_path))[-1]
    assert last["actor"] == {"id": "dr_a", "name": "Dr A", "role": "reviewer"}
    assert widget._head.text().startswith(f"seq {last['seq']} ")

    before = log_path.read_bytes()
    with pytest.raises(
        PermissionRefused, match=r"may act as annotator, reviewer, not 'adjudicator'"
    ):
        session.set_actor(Actor("dr_a", "Dr A", "adjudicator"), image)
    with pytest.raises(PermissionRefused, match=r"'mallory' is not in the roster"):
        session.set_actor(Actor("mallory", "M", "annotator"), image)
    assert session.actor.role == "reviewer" and log_path.read_bytes() == before


def test_without_roster_the_user_id_can_be_changed(
    make_napari_viewer, tmp_path, monkeypatch, qtbot
):
    monkeypatch.setenv("CLINLABEL_USER", "alice")
    viewer, session, image, labels, widget = _setup(make_napari_viewer, tmp_path)
    assert widget._origin.text().startswith("id: CLINLABEL_USER; role: default")
    assert "annotator only" in widget._origin.text()
    assert widget._role.count() == 3 and widget._user.isEnabled()
    widget._user.clear()
    qtbot.keyClicks(widget._user, "bob")
    qtbot.keyClick(widget._user, Qt.Key.Key_Return)
    assert session.actor.id == "bob" and "bob" in widget._who.text()
    _paint(labels, 3)
    recs = list(iter_records(session.log_path_for(image)))
    assert recs[0]["actor"]["id"] == "alice" and recs[-1]["actor"]["id"] == "bob"
    assert np.count_nonzero(labels.data) > 0


def test_an_unsigned_roster_says_so_and_grants_only_annotator(
    make_napari_viewer, tmp_path, monkeypatch
):
    _roster(tmp_path, sign=False)
    monkeypatch.setenv("CLINLABEL_USER", "dr_a")
    viewer, session, image, labels, widget = _setup(make_napari_viewer, tmp_path)
    assert "NOT signed by its owner" in widget._origin.text()
    assert [widget._role.itemText(i) for i in range(widget._role.count())] == ["annotator"]
    assert not widget._user.isEnabled()


def test_a_user_the_roster_does_not_list_cannot_log(make_napari_viewer, tmp_path, monkeypatch):
    roster = _roster(tmp_path)
    monkeypatch.setenv("CLINLABEL_ROSTER", str(roster))
    monkeypatch.setenv("CLINLABEL_USER", "mallory")
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    widget = SessionWidget(viewer)
    assert session.actor is None and "nobody" in widget._who.text()
    assert "'mallory' is not in the roster" in widget._who.text()
    with pytest.raises(PermissionRefused, match="No one is signed in"):
        session.labels_layer_for(image)
    assert not session.log_path_for(image).exists()
    assert len(viewer.layers) == 1


def test_a_reviewer_signs_the_head_by_clicking(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    from napari_clinlabel.core.log.authority import verify_trusted

    roster = _roster(tmp_path)  # keys made for everyone in CLINLABEL_KEYS
    monkeypatch.setenv("CLINLABEL_ROSTER", str(roster))
    monkeypatch.setenv("CLINLABEL_USER", "dr_a")
    viewer, session, image, labels, widget = _setup(make_napari_viewer, tmp_path)
    _paint(labels, 1)  # annotated as annotator …
    assert not widget._sign.isEnabled() and "reviewer" in widget._sign.toolTip()
    widget._role.setFocus()
    qtbot.keyClick(widget._role, Qt.Key.Key_Down)  # … then the same person switches to reviewer
    assert widget._sign.isEnabled()
    log_path = session.log_path_for(image)
    head = list(iter_records(log_path))[-1]
    widget._meaning.setCurrentText("approval")
    qtbot.mouseClick(widget._sign, Qt.MouseButton.LeftButton)
    rec = list(iter_records(log_path))[-1]
    assert rec["action"] == "sign" and rec["data"]["meaning"] == "approval"
    assert rec["target"] == {"seq": head["seq"], "hash": head["hash"]}
    assert rec["actor"] == {"id": "dr_a", "name": "Dr A", "role": "reviewer"}
    assert widget._signed.text().startswith(f"Signed seq {head['seq']} (")
    rep, trust = verify_trusted(log_path)
    assert rep.ok and rep.signatures_checked == 1 and trust.witnessed == 2


def test_signing_without_a_key_says_how_to_make_one(
    make_napari_viewer, tmp_path, monkeypatch, qtbot
):
    roster = write_roster(tmp_path, {"rev9": ["reviewer"]})
    monkeypatch.setenv("CLINLABEL_ROSTER", str(roster))
    monkeypatch.setenv("CLINLABEL_KEYS", str(tmp_path / "no-keys"))
    monkeypatch.setenv("CLINLABEL_USER", "rev9")
    monkeypatch.setenv("CLINLABEL_ROLE", "reviewer")
    viewer, session, image, labels, widget = _setup(make_napari_viewer, tmp_path)
    _paint(labels, 1)
    log_path = session.log_path_for(image)
    before = log_path.read_bytes()
    qtbot.mouseClick(widget._sign, Qt.MouseButton.LeftButton)
    assert "clinlabel keys init --user rev9" in widget._signed.text()
    assert log_path.read_bytes() == before  # nothing recorded
