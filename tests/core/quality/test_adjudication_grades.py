"""A grade the reads disagree on is part of the adjudication: the decision must choose it, the
record holds it, and the programme's queue keeps a high-stakes grade dispute open until a signed
decision chose the grade.

Oracles: the grades each reader's log was written with (``support.adjudication_fixtures``), the
BI-RADS scale of the built-in schema, the log's verifier.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.adjudication_fixtures import grade_dispute

from napari_clinlabel.core.errors import ClinlabelError, InputError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.image_open import image_open_data, record_image_open
from napari_clinlabel.core.log.signing import sign_head
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.programme.dataset import Dataset
from napari_clinlabel.core.programme.report import programme_view
from napari_clinlabel.core.programme.status import status
from napari_clinlabel.core.quality.adjudication import (
    adjudicate,
    grade_disagreements,
    is_adjudicated,
    load_reads,
)


@pytest.fixture
def programme(tmp_path, monkeypatch):
    """Two high-risk cases, both double read by ann and ben; case000: same outline, BI-RADS 4A vs 2
    (cat failed calibration). The dataset, its reads folder and case000's two reads."""
    dispute = grade_dispute(tmp_path, monkeypatch, failed_calibration=("cat",))
    return Dataset(dispute.ds_dir), dispute.reads, dispute.logs


def _adj_log(reads, case="case000"):
    image = {"uid": None, "sha256": __import__("hashlib").sha256(case.encode()).hexdigest()}
    log = AuditLog(
        reads / f"{case}__adj.clinlabel.jsonl", image, Actor("adj", "adj", "adjudicator")
    )
    record_image_open(log, image_open_data((16, 16), np.uint8, geometry=Geometry.identity(2),
                                           modality="MG", source=f"{case}.nii.gz"))  # fmt: skip
    return log


def _queue(ds):
    return {q["case"]: q["why"] for q in status(ds)["adjudication_queue"]}


def test_reads_carry_their_grades_and_the_dispute(programme):
    ds, _, logs = programme
    rd = load_reads(logs)
    assert {r.reader: r.grades for r in rd} == {
        "ann": {"assessment": "4A", "density": "b"},
        "ben": {"assessment": "2", "density": "b"},
    }
    assert grade_disagreements(rd) == {"assessment": {"ann": "4A", "ben": "2"}}
    # the outlines agree (same square): only the grade trips the trigger
    assert _queue(ds) == {"case000": ["assessment: ann 4A vs ben 2 (high-stakes grade)"]}


def test_labels_only_decision_is_refused_and_a_legacy_one_leaves_the_case_queued(programme):
    ds, reads, logs = programme
    rd = load_reads(logs)
    log = _adj_log(reads)
    n = len(log.records())
    with pytest.raises(InputError, match="disagree on grade assessment"):
        adjudicate(log, rd, rd[1].labels, "ben's outline")
    assert len(log.records()) == n  # nothing written
    # a labels-only adjudication as an earlier version wrote it: signed, but no grade chosen
    rec = log.append("adjudicate", {"labels": "adjudicated"}, {"decision": "accept",
                                                               "reader": "ben", "reason": "x"})  # fmt: skip
    sign_head(log, "adjudication", target_seq=rec["seq"])
    path = log.path
    assert is_adjudicated(path) and not is_adjudicated(path, ["assessment"])
    assert "case000" in _queue(ds)  # the grade dispute stays open
    # accepting ben's read takes ben's grade, as the adjudicator's choice
    rec, _ = adjudicate(log, rd, rd[1].labels, "ben's read, BI-RADS 2 on review", grades_from="ben")
    log.close()
    assert rec["data"]["grades"] == {"assessment": "2"}
    assert rec["data"]["grades_from"] == "ben"
    assert rec["data"]["grade_reads"] == {"assessment": {"ann": "4A", "ben": "2"}}
    assert is_adjudicated(path, ["assessment"])
    assert verify_log(path).ok
    assert "case000" not in _queue(ds)
    view = programme_view(ds.folder)
    final = [a for a in view["adjudications"] if a["grades"]]
    assert [(a["case"], a["reader"], a["grades"]) for a in final] == [
        ("case000", "ben", {"assessment": "2"})
    ]


def test_explicit_grade_is_checked_against_the_scale(programme):
    _, reads, logs = programme
    rd = load_reads(logs)
    log = _adj_log(reads)
    n = len(log.records())
    with pytest.raises(ClinlabelError, match="not a grade"):
        adjudicate(log, rd, rd[0].labels, "r", grades={"assessment": "9Z"})
    with pytest.raises(InputError, match="no read grades"):
        adjudicate(log, rd, rd[0].labels, "r", grades={"nosuch": "1"})
    assert len(log.records()) == n
    # ann's labels with a grade neither reader gave: 4B (BI-RADS 5th ed. value, written lower-case)
    rec, _ = adjudicate(log, rd, rd[0].labels, "4B on the spot view", grades={"assessment": "4b"})
    log.close()
    assert rec["data"]["grades"] == {"assessment": "4B"} and "grades_from" not in rec["data"]
    assert [r["action"] for r in iter_records(log.path)][-2:] == ["adjudicate", "sign"]
