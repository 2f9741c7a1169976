"""Deciding proposals on a log that has no label array yet (as `clinlabel prelabel` leaves it)."""

from __future__ import annotations

import numpy as np

from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, accept, add_proposals, reject

SHAPE = (4, 8, 8)
MODEL = {"name": "net", "version": "1", "sha256": "cd" * 32}


def _log(tmp_path):
    log = AuditLog(tmp_path / "ct.nii.gz.clinlabel.jsonl", {"uid": None, "sha256": "ab" * 32},
                   Actor("ann", "Ann"))  # fmt: skip
    log.append("image.open", {"image": "ct.nii.gz"}, {"shape": list(SHAPE), "dtype": "int16"})
    return log


def _drafts():
    a = np.zeros(SHAPE, bool)
    a[1, 1:3, 1:3] = True
    b = np.zeros(SHAPE, bool)
    b[2, 5:7, 5:7] = True
    return [
        ProposalDraft("segment", 1, 0.9, np.flatnonzero(a), SHAPE, name="a"),
        ProposalDraft("segment", 2, 0.8, np.flatnonzero(b), SHAPE, name="b"),
    ]


def test_first_decision_records_the_empty_label_array(tmp_path):
    log = _log(tmp_path)
    first, second = add_proposals(log, _drafts(), MODEL, labels_name="labels")
    labels = np.zeros(SHAPE, np.uint8)
    accept(log, first, labels, "labels")
    reject(log, second)
    actions = [r["action"] for r in log.records()]
    assert actions.count("labels.create") == 1
    assert actions.index("labels.create") < actions.index("proposal.accept")
    assert np.array_equal(replay_labels(log.path).labels["labels"], labels)
    assert verify_log(log.path).ok


def test_array_with_unlogged_content_is_snapshotted_first(tmp_path):
    log = _log(tmp_path)
    first, _ = add_proposals(log, _drafts(), MODEL, labels_name="labels")
    labels = np.zeros(SHAPE, np.uint8)
    labels[0, 0, 0] = 3  # content from outside this log (e.g. labels loaded from a file)
    accept(log, first, labels, "labels")
    assert [r["action"] for r in log.records()].count("labels.save") == 1
    assert np.array_equal(replay_labels(log.path).labels["labels"], labels)
