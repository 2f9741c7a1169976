"""Proposal lifecycle: each decision one record naming the model; labels exactly as decided."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from napari_clinlabel.core.annotate.label_edits import apply_diff, record_labels_create
from napari_clinlabel.core.errors import ClinlabelError, LogError, PendingProposalsError
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.proposals.lifecycle import (
    ProposalDraft,
    ProposalState,
    accept,
    add_proposals,
    edit,
    load_proposals,
    pending_count,
    proposal_mask,
    reject,
    require_no_pending,
)

SHAPE = (12, 20, 20)
MODEL = {"name": "tiny-net", "version": "2.1", "sha256": "ab" * 32}
ANNA = Actor("anna", "Anna Reader", "annotator")


def cube(z, y, x, r=2):
    m = np.zeros(SHAPE, dtype=bool)
    m[z - r : z + r + 1, y - r : y + r + 1, x - r : x + r + 1] = True
    return m


def seg(mask, label, score):
    return ProposalDraft("segment", label, score, np.flatnonzero(mask), SHAPE, name=f"l{label}")


@pytest.fixture
def log(tmp_path):
    return AuditLog(
        tmp_path / "img.nii.gz.clinlabel.jsonl", {"uid": None, "sha256": "00" * 32}, ANNA
    )


def test_lifecycle_add5_accept2_edit1_reject2(log):
    masks = [cube(3, 4, 4), cube(3, 12, 12), cube(8, 5, 14), cube(8, 14, 4), cube(6, 10, 10, 1)]
    drafts = [
        seg(m, v, s)
        for m, v, s in zip(masks, [1, 2, 3, 4, 1], [0.9, 0.8, 0.7, 0.4, 0.3], strict=True)
    ]
    props = add_proposals(log, drafts, MODEL)
    assert [p.state for p in props] == [ProposalState.PROPOSED] * 5
    assert pending_count(log.path) == 5
    labels = np.zeros(SHAPE, dtype=np.uint8)
    record_labels_create(log, "labels", SHAPE, np.uint8)

    edited = masks[2].copy()
    edited[8, 5, 12:17] = False  # the human trims one row …
    edited[8, 8, 14] = True  # … and adds one voxel
    accept(log, props[0], labels, "labels")
    accept(log, props[1], labels, "labels")
    rec_edit = edit(log, props[2], labels, "labels", edited)
    reject(log, props[3])
    reject(log, props[4])

    expected = np.zeros(SHAPE, dtype=np.uint8)
    expected[masks[0]] = 1
    expected[masks[1]] = 2
    expected[edited] = 3
    np.testing.assert_array_equal(labels, expected)
    assert rec_edit["data"]["edited"] is True
    assert rec_edit["data"]["changed_vs_proposal"] == int((edited ^ masks[2]).sum()) == 6

    recs = list(iter_records(log.path))
    decisions = [
        r for r in recs if r["action"] in ("proposal.accept", "proposal.edit", "proposal.reject")
    ]
    assert [r["action"] for r in decisions] == ["proposal.accept"] * 2 + ["proposal.edit"] + [
        "proposal.reject"
    ] * 2
    assert [r["target"]["proposal"] for r in decisions] == [p.id for p in props]
    for r in recs:  # every proposal record names the model; every record a human actor
        assert r["actor"] == ANNA.to_dict()
        if not r["action"].startswith("proposal."):
            continue
        assert r["source"] == {"kind": "model", **MODEL}
    assert sum(r["action"] == "proposal.add" for r in recs) == 5

    # replaying the logged diffs onto zeros gives the same final labels
    replay = np.zeros(SHAPE, dtype=np.uint8)
    for r in decisions:
        if "diff" in r["data"].get("objects", {}):
            apply_diff(replay, log.get_arrays(r["data"]["objects"]["diff"]))
    np.testing.assert_array_equal(replay, expected)

    states = {p.id: p.state for p in load_proposals(log.path)}
    assert (
        list(states.values())
        == [ProposalState.ACCEPTED] * 2 + [ProposalState.EDITED] + [ProposalState.REJECTED] * 2
    )
    assert pending_count(log.path) == 0
    assert require_no_pending(log.path) == 0

    if importlib.util.find_spec("napari_clinlabel.core.log.verify") is not None:
        from napari_clinlabel.core.log.verify import verify_log

        report = verify_log(log.path)
        assert report.ok, report.reason


def test_decision_is_final(log):
    (p,) = add_proposals(log, [seg(cube(5, 5, 5), 1, 0.5)], MODEL)
    stale = load_proposals(log.path)[0]  # another view of the same proposal, loaded before
    labels = np.zeros(SHAPE, dtype=np.uint8)
    reject(log, p)
    n = len(log.records())
    with pytest.raises(ClinlabelError, match="already rejected"):
        accept(log, p, labels, "labels")
    with pytest.raises(ClinlabelError, match="already decided"):
        accept(log, stale, labels, "labels")
    with pytest.raises(ClinlabelError, match="already decided"):
        reject(log, stale)
    assert len(log.records()) == n and not labels.any()


def test_accept_keeps_other_labels_unless_asked(log):
    a, b = add_proposals(log, [seg(cube(5, 5, 5), 2, 0.9), seg(cube(5, 5, 5), 2, 0.9)], MODEL)
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[5, 5, 3:8] = 1  # a human's label crosses the proposal
    rec = accept(log, a, labels, "labels")
    assert (labels[5, 5, 3:8] == 1).all() and rec["data"]["kept_other_labels"] == 5
    assert (labels == 2).sum() == 125 - 5
    labels2 = np.zeros(SHAPE, dtype=np.uint8)
    labels2[5, 5, 3:8] = 1
    accept(log, b, labels2, "labels", overwrite=True)
    assert (labels2 == 2).sum() == 125


def test_failed_log_write_changes_nothing(log, monkeypatch):
    (p,) = add_proposals(log, [seg(cube(5, 5, 5), 1, 0.5)], MODEL)
    labels = np.zeros(SHAPE, dtype=np.uint8)

    def boom(*a, **k):
        raise LogError("disk full")

    monkeypatch.setattr(log, "append", boom)
    with pytest.raises(LogError):
        accept(log, p, labels, "labels")
    assert not labels.any() and p.pending


def test_box_and_grade(log):
    box = {"zyx_min": [1, 2, 3], "zyx_max": [4, 8, 9], "class": "malignant"}
    grade = {"scale": "icdr", "value": "2", "probabilities": {"0": 0.1, "1": 0.2, "2": 0.7}}
    pb, pg, pb2 = add_proposals(
        log,
        [
            ProposalDraft("box", "malignant", 0.8, payload=box),
            ProposalDraft("grade", "2", 0.7, payload=grade),
            ProposalDraft("box", "benign", 0.6, payload={**box, "class": "benign"}),
        ],
        MODEL,
    )
    r1 = accept(log, pb)
    assert r1["data"]["box"] == box and r1["source"]["name"] == "tiny-net"
    r2 = edit(log, pg, edited={**grade, "value": "3"})
    assert r2["data"]["grade"]["value"] == "3" and r2["data"]["changed_vs_proposal"] == ["value"]
    assert pending_count(log.path) == 1
    with pytest.raises(PendingProposalsError) as exc:
        require_no_pending(log.path)
    assert exc.value.pending == 1
    assert "1 proposal is still undecided; review them or pass --exclude-pending" in str(exc.value)
    assert require_no_pending(log.path, exclude_pending=True) == 1
    loaded = {p.id: p for p in load_proposals(log.path)}
    assert loaded[pg.id].payload["value"] == "3" and loaded[pb.id].payload == box
    assert loaded[pb2.id].pending


def test_segment_mask_round_trip_and_bad_input(log):
    m = cube(4, 6, 7)
    (p,) = add_proposals(log, [seg(m, 1, 0.5)], MODEL)
    np.testing.assert_array_equal(proposal_mask(log, p), m)
    (loaded,) = load_proposals(log.path)
    assert loaded.payload == p.payload and loaded.payload["voxels"] == 125
    with pytest.raises(ClinlabelError, match="grid"):
        accept(log, p, np.zeros((3, 3, 3), np.uint8), "labels")
    with pytest.raises(ClinlabelError, match="label array"):
        accept(log, p)
    with pytest.raises(ClinlabelError, match="name its model"):
        add_proposals(log, [seg(m, 1, 0.5)], {"name": "x"})
    assert p.pending and pending_count(log.path) == 1


def test_a_decided_grade_proposal_is_a_grade_in_force(log):
    from napari_clinlabel.core.annotate.grading import is_done, load_grades

    grade = {"scale": "icdr", "value": "2", "probabilities": {"2": 0.7}}
    off_scale = {"scale": "icdr", "value": "7"}
    unknown = {"scale": "no-such-scale", "value": "x"}
    pg, bad, odd = add_proposals(
        log,
        [
            ProposalDraft("grade", "2", 0.7, payload=grade),
            ProposalDraft("grade", "7", 0.5, payload=off_scale),
            ProposalDraft("grade", "x", 0.5, payload=unknown),
        ],
        MODEL,
    )
    n = len(list(iter_records(log.path)))
    with pytest.raises(ClinlabelError, match="not a grade of"):
        edit(log, pg, edited={**grade, "value": "9"})  # off the scale: refused …
    with pytest.raises(ClinlabelError, match="not a grade of"):
        accept(log, bad)  # … as is a model's grade that is not on its scale
    assert len(list(iter_records(log.path))) == n and pg.pending  # nothing was logged
    log.append("image.done", {"image": "image"}, {"grades": {}})
    assert is_done(iter_records(log.path))
    rec = edit(log, pg, edited={**grade, "value": "3"})
    assert rec["data"]["as_grade"]["scale"] == "dr" and rec["data"]["as_grade"]["value"] == "3"
    g = load_grades(log.path)[("dr", "image")]
    assert (g.value, g.grader, g.seq) == ("3", "anna", rec["seq"])  # the human who decided
    assert rec["source"]["kind"] == "model"  # … on the model's proposal
    assert not is_done(iter_records(log.path))  # a new grade reopens the image
    rec = accept(log, odd)  # a scale no schema knows: decided, but not a grade in force
    assert "as_grade" not in rec["data"] and set(load_grades(log.path)) == {("dr", "image")}
