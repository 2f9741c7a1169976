"""Review's "Retract run…": one recorded action rejects every undecided proposal of the shown
proposal's model run with the reason typed; decided ones stay, nothing is accepted, other runs
untouched; cancelling the dialog records nothing."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct

from napari_clinlabel._widgets import review as review_mod
from napari_clinlabel._widgets.review import ReviewWidget
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals, load_proposals
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
SHAPE = (12, 64, 64)
RUN_A = {"name": "bad-net", "version": "1.0", "sha256": "aa" * 32}
RUN_B = {"name": "good-net", "version": "2.0", "sha256": "bb" * 32}
LEFT = Qt.MouseButton.LeftButton


def _draft(k: int) -> ProposalDraft:
    m = np.zeros(SHAPE, bool)
    m[k * 2 : k * 2 + 2, 10 * k : 10 * k + 4, 5:9] = True
    return ProposalDraft("segment", 1, 0.5, np.flatnonzero(m), SHAPE, name=f"p{k}")


@pytest.fixture
def setup(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path, shape=SHAPE)
    log = get_session(viewer).log_for(image)
    a = add_proposals(log, [_draft(k) for k in range(3)], RUN_A, labels_name="segmentation")
    b = add_proposals(log, [_draft(k) for k in (3, 4)], RUN_B, labels_name="segmentation")
    w = ReviewWidget(viewer)
    qtbot.addWidget(w)
    return viewer, w, log.path, a, b


def _dialog(monkeypatch, answer):
    asked = []

    def get_text(parent, title, label, *args, **kwargs):
        asked.append(label)
        return answer

    monkeypatch.setattr(review_mod.QInputDialog, "getText", staticmethod(get_text))
    return asked


def test_retract_run_one_record_with_reason(setup, qtbot, monkeypatch):
    viewer, w, log_path, a, b = setup
    assert w.current.id == a[0].id
    qtbot.mouseClick(w._accept_btn, LEFT)  # a human accepts p0 of run A first
    assert w.current.id == a[1].id
    before = list(iter_records(log_path))
    asked = _dialog(monkeypatch, ("outlines in the air outside the body", True))
    qtbot.mouseClick(w._retract_btn, LEFT)
    assert "2 undecided proposal(s) of bad-net 1.0" in asked[0]
    new = list(iter_records(log_path))[len(before) :]
    assert [r["action"] for r in new] == ["proposal.retract"]
    rec = new[0]
    assert rec["data"]["proposals"] == [a[1].id, a[2].id] and rec["data"]["count"] == 2
    assert rec["data"]["reason"] == "outlines in the air outside the body"
    assert rec["data"]["decision"] == "rejected"
    assert rec["source"] == {"kind": "model", **RUN_A}
    assert rec["actor"]["id"] == get_session(viewer).actor.id  # the human, not the model
    state = {p.id: p.state.value for p in load_proposals(log_path)}
    assert state == {a[0].id: "accepted", a[1].id: "rejected", a[2].id: "rejected",
                     b[0].id: "proposed", b[1].id: "proposed"}  # fmt: skip
    assert w.current.id == b[0].id  # run B is next to review
    assert verify_log(log_path).ok


def test_cancel_or_empty_reason_records_nothing(setup, qtbot, monkeypatch):
    _viewer, w, log_path, a, _b = setup
    before = len(list(iter_records(log_path)))
    _dialog(monkeypatch, ("", False))
    qtbot.mouseClick(w._retract_btn, LEFT)
    _dialog(monkeypatch, ("   ", True))
    qtbot.mouseClick(w._retract_btn, LEFT)
    assert len(list(iter_records(log_path))) == before
    assert w.current.id == a[0].id and "Not retracted" in w._info.text()
