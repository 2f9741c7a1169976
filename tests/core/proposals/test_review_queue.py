"""ReviewQueue: one decision per call, the next undecided proposal current at once."""

from __future__ import annotations

import numpy as np
import pytest

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals
from napari_clinlabel.core.proposals.review_queue import ReviewQueue, proposal_size

SHAPE = (10, 16, 16)
MODEL = {"name": "m", "version": "1", "sha256": "cd" * 32}


def test_walk_and_decide(tmp_path):
    log = AuditLog(
        tmp_path / "i.clinlabel.jsonl", {"uid": None, "sha256": "0" * 64}, Actor("bo", "Bo")
    )
    masks = []
    for k in range(3):
        m = np.zeros(SHAPE, bool)
        m[2 + 2 * k, 3:6, 3:6] = True
        masks.append(m)
    drafts = [ProposalDraft("segment", 1, 0.9, np.flatnonzero(m), SHAPE) for m in masks]
    drafts.append(
        ProposalDraft("box", "benign", 0.5, payload={"zyx_min": [1, 2, 3], "zyx_max": [3, 4, 5]})
    )
    props = add_proposals(log, drafts, MODEL)
    labels = np.zeros(SHAPE, np.uint8)
    q = ReviewQueue(log, labels, "labels")
    assert len(q) == 4 and q.current.id == props[0].id
    assert q.current_center() == (2.0, 4.0, 4.0)
    np.testing.assert_array_equal(q.current_indices(), np.flatnonzero(masks[0]))
    assert q.previous().id == props[3].id and q.current_center() == (2.0, 3.0, 4.0)
    assert q.current_indices() is None
    assert q.next().id == props[0].id
    q.accept()
    assert q.current.id == props[1].id and len(q) == 3
    q.reject()
    assert q.current.id == props[2].id
    q.next()
    q.edit(edited={"zyx_min": [1, 2, 3], "zyx_max": [3, 4, 6], "class": "benign"})
    assert q.current.id == props[2].id
    q.accept()
    assert q.current is None and len(q) == 0
    np.testing.assert_array_equal(labels, (masks[0] | masks[2]).astype(np.uint8))
    with pytest.raises(ClinlabelError, match="No proposal"):
        q.accept()
    assert len(ReviewQueue(log)) == 0  # rebuilt from the log: nothing left
    stale = ReviewQueue(log, labels, "labels", proposals=props)  # objects from before the decisions
    with pytest.raises(ClinlabelError, match="already decided"):
        stale.accept()


def test_order_by_size_or_score_and_jump_to_the_next_large(tmp_path):
    log = AuditLog(
        tmp_path / "i.clinlabel.jsonl", {"uid": None, "sha256": "0" * 64}, Actor("bo", "Bo")
    )
    sizes, scores = [8, 125, 27, 64], [0.9, 0.3, 0.6, 0.95]  # cubes of 2, 5, 3, 4 voxels a side
    drafts = []
    for k, (n, score) in enumerate(zip(sizes, scores, strict=True)):
        m = np.zeros(SHAPE, bool)
        e = round(n ** (1 / 3))
        m[k : k + e, 0:e, 10 - k : 10 - k + e] = True
        drafts.append(ProposalDraft("segment", 1, score, np.flatnonzero(m), SHAPE))
    drafts.append(ProposalDraft("box", "benign", 0.5,
                                payload={"zyx_min": [0, 0, 0], "zyx_max": [1, 9, 4]}))  # fmt: skip
    props = add_proposals(log, drafts, MODEL)
    q = ReviewQueue(log)
    assert [proposal_size(p) for p in q.proposals] == [8, 125, 27, 64, 2 * 10 * 5]
    q.next()  # the second one is under review: it stays so whatever the order
    q.order_by("size")
    assert [p.id for p in q.proposals] == [props[i].id for i in (1, 4, 3, 2, 0)]
    assert q.current.id == props[1].id and q.position == 0
    q.order_by("score")
    assert [p.id for p in q.proposals] == [props[i].id for i in (3, 0, 2, 4, 1)]
    assert q.current.id == props[1].id
    assert q.first().id == props[3].id  # the top of the order: highest score
    q.order_by("added")
    q.go_to(props[1].id)
    assert q.next_large(60).id == props[3].id  # after #2 (125, itself last): 27 no, 64 yes
    assert q.next_large(100).id == props[4].id  # the box: 100 voxels
    assert q.next_large(120).id == props[1].id  # wraps around
    q.reject()
    assert q.next_large(120) is None and q.current.id == props[2].id  # none left: cursor stays
    assert q.decided == 1 and len(q) == 4
    with pytest.raises(ClinlabelError, match="not one of added, size, score"):
        q.order_by("colour")
