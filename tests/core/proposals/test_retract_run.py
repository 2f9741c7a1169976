"""Retracting a model run: one record; every undecided proposal of that model rejected with the
reason; decided ones and other models' untouched; nothing accepted; states survive a re-read."""

from __future__ import annotations

import numpy as np
import pytest

from napari_clinlabel.core.annotate.label_edits import record_labels_create
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.proposals.lifecycle import (
    ProposalDraft,
    ProposalState,
    accept,
    add_proposals,
    load_proposals,
    pending_count,
    reject,
    retract_run,
)

SHAPE = (4, 10, 10)
BAD = {"name": "phantom-unet", "version": "1", "sha256": "ab" * 32}
OTHER = {"name": "other", "version": "2", "sha256": "cd" * 32}


def _draft(label, k):
    m = np.zeros(SHAPE, bool)
    m[k % 4, k : k + 2, 1:3] = True
    return ProposalDraft("segment", label, 0.5, np.flatnonzero(m), SHAPE)


def test_retract_rejects_only_the_runs_undecided_proposals(tmp_path):
    actor = Actor("ann", "Ann Reader", "annotator")
    log = AuditLog(tmp_path / "i.nii.clinlabel.jsonl", {"uid": None, "sha256": "0" * 64}, actor)
    labels = np.zeros(SHAPE, np.uint8)
    record_labels_create(log, "labels", SHAPE, labels.dtype)
    bad = add_proposals(log, [_draft(1, k) for k in range(5)], BAD, "labels")
    other = add_proposals(log, [_draft(2, 6)], OTHER, "labels")
    accept(log, bad[0], labels, "labels")
    reject(log, bad[1])
    n = len(list(iter_records(log.path)))
    rec = retract_run(log, BAD, "outside the training domain: 600 mm liver")
    recs = list(iter_records(log.path))
    assert len(recs) == n + 1 and recs[-1] == rec  # one recorded action
    assert rec["action"] == "proposal.retract" and rec["actor"]["id"] == "ann"
    assert rec["source"]["kind"] == "model" and rec["source"]["sha256"] == BAD["sha256"]
    assert rec["data"]["proposals"] == [p.id for p in bad[2:]]
    assert rec["data"]["reason"].startswith("outside")
    states = {p.id: p.state for p in load_proposals(log.path)}
    assert states[bad[0].id] is ProposalState.ACCEPTED  # decided stays decided
    assert all(states[p.id] is ProposalState.REJECTED for p in bad[1:])
    assert states[other[0].id] is ProposalState.PROPOSED
    assert pending_count(log.path) == 1
    assert (labels != 0).sum() == bad[0].payload.get("voxels", (labels != 0).sum())
    # nothing left to retract; a retracted proposal cannot be accepted afterwards
    assert retract_run(log, BAD, "again") is None
    with pytest.raises(ClinlabelError):
        accept(log, load_proposals(log.path)[3], labels, "labels")
    with pytest.raises(ClinlabelError, match="why"):
        retract_run(log, OTHER, "  ")
