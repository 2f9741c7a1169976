"""Provenance → DICOM SEG algorithm type, for manual, accepted-unchanged and edited proposals."""

from __future__ import annotations

import numpy as np
import pytest

from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create
from napari_clinlabel.core.annotate.provenance import segment_provenance, walk_provenance
from napari_clinlabel.core.log.audit_log import AuditLog, model_source
from napari_clinlabel.core.log.identity import Actor

ANN = Actor("ann", "Ann Reader", "annotator")
BOB = Actor("bob", "Bob Reader", "annotator")
SRC = model_source("organseg", "2.1", "ab" * 32)


def _log(tmp_path):
    log = AuditLog(tmp_path / "img.nii.clinlabel.jsonl", {"uid": None, "sha256": "0" * 64}, ANN)
    labels = np.zeros((4, 8, 8), np.uint8)
    record_labels_create(log, "labels", labels.shape, labels.dtype)
    return log, labels


def _paint(log, labels, value, region, action="label.paint", source=None, target=None, actor=None):
    after = labels.copy()
    after[region] = value
    idx = np.flatnonzero(labels.reshape(-1) != after.reshape(-1))
    old, new = labels.reshape(-1)[idx], after.reshape(-1)[idx]
    labels[...] = after
    if actor is not None:
        log.actor = actor
    rec = record_label_change(
        log, labels, "labels", idx, old, new, action=action, source=source, target=target
    )
    log.actor = ANN
    return rec


def test_manual_automatic_semiautomatic(tmp_path):
    log, labels = _log(tmp_path)
    _paint(log, labels, 1, np.s_[0, :4, :4])  # human
    log.append("proposal.add", {"proposal": "p1"}, {"label": 2}, SRC)
    _paint(log, labels, 2, np.s_[1, :4, :4], "proposal.accept", SRC, {"proposal": "p1"})
    log.append("proposal.add", {"proposal": "p2"}, {"label": 3}, SRC)
    log.append("proposal.edit", {"proposal": "p2"}, {"label": 3}, SRC)
    _paint(log, labels, 3, np.s_[2, :4, :4], "proposal.accept", SRC, {"proposal": "p2"})
    prov = segment_provenance(log.path, "labels")
    assert prov[1].algorithm_type == "MANUAL" and prov[1].models == []
    assert prov[2].algorithm_type == "AUTOMATIC"
    assert prov[2].models == [{"name": "organseg", "version": "2.1"}]
    assert prov[3].algorithm_type == "SEMIAUTOMATIC"
    assert prov[3].models == [{"name": "organseg", "version": "2.1"}]
    assert all(p.confirmed_by == {"ann"} for p in prov.values())
    # the replayed labels equal the labels we built
    state = walk_provenance(log.path, "labels")
    np.testing.assert_array_equal(state.labels, labels)


def test_mix_and_human_touch_make_semiautomatic(tmp_path):
    log, labels = _log(tmp_path)
    _paint(log, labels, 2, np.s_[1, :4, :4], "proposal.accept", SRC, {"proposal": "p1"})
    _paint(log, labels, 0, np.s_[1, 0, :], "label.erase")  # human erases part of the model's work
    _paint(log, labels, 4, np.s_[3, :4, :4], "proposal.accept", SRC, {"proposal": "p9"})
    _paint(log, labels, 4, np.s_[3, 5:, 5:])  # human adds to a model segment
    prov = segment_provenance(log.path, "labels")
    assert prov[2].algorithm_type == "SEMIAUTOMATIC"
    assert prov[4].algorithm_type == "SEMIAUTOMATIC"


def test_proposal_edit_with_diff_and_confirmers(tmp_path):
    log, labels = _log(tmp_path)
    _paint(log, labels, 5, np.s_[0, :2, :2], "proposal.edit", SRC, {"proposal": "p3"})
    _paint(log, labels, 6, np.s_[2, :2, :2], actor=BOB)
    _paint(log, labels, 7, np.s_[3, :2, :2], "adjudicate")
    prov = segment_provenance(log.path, "labels")
    assert prov[5].algorithm_type == "SEMIAUTOMATIC"
    assert prov[6].confirmed_by == {"bob"}
    assert prov[7].algorithm_type == "MANUAL"
    # at_seq: before Bob painted, label 6 did not exist
    assert 6 not in segment_provenance(log.path, "labels", at_seq=1)


def test_model_work_without_a_model_is_refused(tmp_path):
    log, labels = _log(tmp_path)
    _paint(log, labels, 2, np.s_[1, :4, :4], "proposal.accept", None, {"proposal": "px"})
    from napari_clinlabel.core.errors import LogError

    with pytest.raises(LogError, match="does not name the model"):
        segment_provenance(log.path, "labels")


def test_adjudication_carries_model_involvement_from_reads(tmp_path):
    log, labels = _log(tmp_path)  # reader 1 (ann): label 5 accepted from a model
    _paint(log, labels, 5, np.s_[1, :4, :4], "proposal.accept", SRC, {"proposal": "p1"})
    bob_labels = np.zeros_like(labels)  # reader 2 (bob): label 5 drawn by hand elsewhere
    log.actor = BOB
    record_labels_create(log, "bob", bob_labels.shape, bob_labels.dtype)
    after = bob_labels.copy()
    after[3, 4:, 4:] = 5
    idx = np.flatnonzero(after.reshape(-1))
    record_label_change(
        log, after, "bob", idx, np.zeros(idx.size, np.uint8), after.reshape(-1)[idx]
    )
    head = log.head()
    cites = [
        {
            "reader": "ann",
            "log": log.path.name,
            "labels": "labels",
            "seq": head.seq,
            "hash": head.hash,
        },
        {
            "reader": "bob",
            "log": log.path.name,
            "labels": "bob",
            "seq": head.seq,
            "hash": head.hash,
        },
    ]
    judge = Actor("cy", "Cy Senior", "adjudicator")
    log.actor = judge
    record_labels_create(log, "adjudicated", labels.shape, labels.dtype)
    result = np.zeros_like(labels)
    result[3, 4:, 4:] = 5  # bob's manual read only
    idx = np.flatnonzero(result.reshape(-1))
    record_label_change(log, result, "adjudicated", idx, np.zeros(idx.size, np.uint8),
                        result.reshape(-1)[idx], action="adjudicate", data={"reads": cites})  # fmt: skip
    prov = segment_provenance(log.path, "adjudicated")
    assert prov[5].algorithm_type == "MANUAL" and prov[5].confirmed_by == {"cy"}
    result2 = result.copy()
    result2[1, :4, :4] = 5  # now also the model's voxels from ann's read
    idx2 = np.flatnonzero(result2.reshape(-1) != result.reshape(-1))
    record_label_change(log, result2, "adjudicated", idx2, np.zeros(idx2.size, np.uint8),
                        result2.reshape(-1)[idx2], action="adjudicate", data={"reads": cites})  # fmt: skip
    prov = segment_provenance(log.path, "adjudicated")
    assert prov[5].algorithm_type == "SEMIAUTOMATIC"
    assert prov[5].models == [{"name": "organseg", "version": "2.1"}]
