"""Each reader's own labels array in a shared log (no Qt): the second reader gets a fresh array
named for her, replayed from her records only; who may see the other reads before adjudication."""

from __future__ import annotations

import numpy as np
import pytest
from support.trusted_roster import write_roster

from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create
from napari_clinlabel.core.annotate.reads import (
    may_see_other_reads,
    other_readers,
    own_labels_name,
    reads_notice,
)
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor, load_roster

ANN = Actor("ann", "Ann", "annotator")
BEA = Actor("bea", "Bea", "annotator")
SHAPE = (2, 6, 6)


def _paint(log: AuditLog, name: str, state: np.ndarray, where: slice, value: int) -> None:
    """One stroke by ``log.actor`` on ``state`` (the array as the log knows it), logged."""
    after = state.copy()
    after[where] = value
    idx = np.flatnonzero(after.reshape(-1) != state.reshape(-1))
    old, new = state.reshape(-1)[idx], after.reshape(-1)[idx]
    record_label_change(log, state, name, idx, old, new, data={"tool": "brush"}, applied=False)


def _log(tmp_path, actor):
    return AuditLog(
        tmp_path / "ct.nii.gz.clinlabel.jsonl", {"uid": None, "sha256": "ab" * 32}, actor
    )


def test_second_reader_gets_her_own_array_replayed_from_her_records_only(tmp_path):
    a = _log(tmp_path, ANN)
    assert own_labels_name([], "segmentation", "ann") == "segmentation"  # first reader
    record_labels_create(a, "segmentation", SHAPE, np.uint8)
    ann_state = np.zeros(SHAPE, np.uint8)
    _paint(a, "segmentation", ann_state, np.s_[0, 1:4, 1:4], 1)
    records = list(iter_records(a.path))
    assert own_labels_name(records, "segmentation", "ann") == "segmentation"
    # Bea, in the same folder (same log): her own array, not Ann's
    mine = own_labels_name(records, "segmentation", "bea")
    assert mine == "segmentation (bea)"
    assert other_readers(records, "segmentation", "bea") == ["ann"]
    b = _log(tmp_path, BEA)
    record_labels_create(b, mine, SHAPE, np.uint8)
    bea_state = np.zeros(SHAPE, np.uint8)
    _paint(b, mine, bea_state, np.s_[1, 2:5, 2:5], 2)
    records = list(iter_records(a.path))
    # reopening: each finds the array they made, and sees the other only as a read that exists
    assert own_labels_name(records, "segmentation", "bea") == mine
    assert own_labels_name(records, "segmentation", "ann") == "segmentation"
    assert other_readers(records, "segmentation", "ann") == ["bea"]
    assert other_readers(records, "segmentation", "cid") == ["ann", "bea"]
    # the oracle: numpy on what each painted; the replayed arrays never mix the two reads
    labels = replay_labels(a.path).labels
    expect_ann = np.zeros(SHAPE, np.uint8)
    expect_ann[0, 1:4, 1:4] = 1
    expect_bea = np.zeros(SHAPE, np.uint8)
    expect_bea[1, 2:5, 2:5] = 2
    np.testing.assert_array_equal(labels["segmentation"], expect_ann)
    np.testing.assert_array_equal(labels[mine], expect_bea)
    actors = {r["target"]["labels"]: r["actor"]["id"] for r in iter_records(a.path)
              if isinstance(r["target"], dict) and r["target"].get("labels")}  # fmt: skip
    assert actors == {"segmentation": "ann", mine: "bea"}


def test_an_opened_but_unpainted_array_is_no_read(tmp_path):
    """Ann opened the labels and painted nothing (or corrected her user id to Bea's at once):
    no read of hers exists, so Bea works on the plain array and it becomes her read."""
    a = _log(tmp_path, ANN)
    record_labels_create(a, "segmentation", SHAPE, np.uint8)
    records = list(iter_records(a.path))
    assert other_readers(records, "segmentation", "bea") == []
    assert own_labels_name(records, "segmentation", "bea") == "segmentation"
    b = _log(tmp_path, BEA)
    _paint(b, "segmentation", np.zeros(SHAPE, np.uint8), np.s_[0, 0:2, 0:2], 3)
    records = list(iter_records(a.path))
    assert other_readers(records, "segmentation", "ann") == ["bea"]
    assert own_labels_name(records, "segmentation", "ann") == "segmentation (ann)"


def test_who_may_see_other_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_KEYS", str(tmp_path / "keys"))
    roster = load_roster(write_roster(tmp_path, {"ann": ["annotator"], "rev": ["reviewer"]}))
    assert may_see_other_reads(ANN, roster, adjudicated=False) is None
    assert may_see_other_reads(ANN, None, adjudicated=False) is None
    assert "adjudicated" in may_see_other_reads(ANN, roster, adjudicated=True)
    assert "reviewer" in may_see_other_reads(Actor("rev", "Rev", "reviewer"), roster, False)
    assert "adjudicator" in may_see_other_reads(Actor("adj", "Adj", "adjudicator"), None, False)
    assert "own" in may_see_other_reads(Actor("owner", "O", "annotator"), roster, False)
    unsigned = load_roster(write_roster(tmp_path / "u", {"ann": ["annotator"]}, sign=False))
    assert may_see_other_reads(Actor("owner", "O", "annotator"), unsigned, False) is None


@pytest.mark.parametrize(
    ("others", "why", "expect"),
    [
        ([], None, None),
        (["ann"], None, "1 other read of this image exists; it stays hidden until adjudication."),
        (["ann", "cid"], None,
         "2 other reads of this image exist; they stay hidden until adjudication."),
    ],
)  # fmt: skip
def test_notice_is_one_line_and_names_nobody_when_blinded(others, why, expect):
    assert reads_notice(others, why) == expect


def test_notice_names_the_readers_when_the_role_allows():
    text = reads_notice(["ann", "bea"], "your role (reviewer) may see them")
    assert "\n" not in text and "ann, bea" in text and "your own read only" in text
