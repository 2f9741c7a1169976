"""``clinlabel adjudicate``: readers who shared a folder are adjudicated from the one log.

Oracles: SimpleITK's LabelOverlapMeasuresImageFilter (Dice) and numpy on the painted arrays; the
log's verifier for what was recorded.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from support.adjudication_fixtures import grade_dispute as make_grade_dispute
from support.trusted_roster import write_roster

from napari_clinlabel import api
from napari_clinlabel.cli import main
from napari_clinlabel.core.log.audit_log import iter_records, sidecar_paths
from napari_clinlabel.core.log.signing import load_private_key, public_key_b64
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.quality.adjudication import is_adjudicated

SHAPE = (4, 10, 12)


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """Ana and Bea paint the same image in one folder (a roster names them and Carol)."""
    for var in ("CLINLABEL_USER", "CLINLABEL_ROLE", "CLINLABEL_ROSTER"):
        monkeypatch.delenv(var, raising=False)
    write_roster(tmp_path, {"ana": ["annotator"], "bea": ["annotator"], "carol": ["adjudicator"]})
    img = sitk.GetImageFromArray(np.zeros(SHAPE, np.int16))
    img.SetSpacing((0.8, 0.8, 2.0))
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(img, str(path))
    a = np.zeros(SHAPE, np.uint8)
    a[1:3, 2:7, 2:8] = 1
    b = np.zeros(SHAPE, np.uint8)
    b[1:4, 3:8, 3:9] = 1
    for who, labels in (("ana", a), ("bea", b)):
        with api.open_image(path, api.Actor(who, who.title(), "annotator")) as image:
            image.paint(labels == 1, 1)
    return sidecar_paths(path)[0], a, b


def _as(monkeypatch, user, role):
    monkeypatch.setenv("CLINLABEL_USER", user)
    monkeypatch.setenv("CLINLABEL_ROLE", role)


def test_adjudicator_sees_agreement_of_the_shared_log_and_accepts_a_read(
    shared, monkeypatch, capsys
):
    log, a, b = shared
    _as(monkeypatch, "carol", "adjudicator")
    assert main(["adjudicate", str(log), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["reader"], r["labels"]) for r in out["reads"]] == [
        ("ana", "segmentation"),
        ("bea", "segmentation (bea)"),
    ]
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk.GetImageFromArray(a), sitk.GetImageFromArray(b))
    m = out["agreement"]["ana vs bea"]["1"]
    assert m["dice"] == pytest.approx(f.GetDiceCoefficient(1), abs=1e-9)
    assert (m["voxels_a"], m["voxels_b"]) == (int(a.sum()), int(b.sum()))

    assert main(["adjudicate", str(log)]) == 0  # the table
    table = capsys.readouterr().out
    assert "read bea: labels 'segmentation (bea)'" in table and "ana vs bea" in table
    assert main(["adjudicate", str(log), "--accept", "bea"]) == 2  # no reason: refused
    assert "reason" in capsys.readouterr().err
    assert not is_adjudicated(log)
    assert main(["adjudicate", str(log), "--accept", "bea", "--reason", "bea covers slice 3"]) == 0
    recs = list(iter_records(log))
    assert recs[-2]["action"] == "adjudicate" and recs[-2]["actor"]["id"] == "carol"
    assert recs[-2]["data"]["reader"] == "bea"
    assert [c["labels"] for c in recs[-2]["data"]["reads"]] == [
        "segmentation",
        "segmentation (bea)",
    ]
    assert is_adjudicated(log) and verify_log(log).ok


def test_an_annotator_is_refused_the_other_read_until_adjudicated(shared, monkeypatch, capsys):
    log, _a, _b = shared
    _as(monkeypatch, "bea", "annotator")
    assert main(["adjudicate", str(log)]) == 2
    err = capsys.readouterr().err
    assert "hidden until" in err and len(err.strip().splitlines()) == 1
    assert main(["adjudicate", str(log), "--majority", "--reason", "mine"]) == 2  # not adjudicator
    assert not is_adjudicated(log)


def test_bad_decisions_are_one_line_and_record_nothing(shared, monkeypatch, capsys, tmp_path):
    log, _a, _b = shared
    _as(monkeypatch, "carol", "adjudicator")
    n = len(list(iter_records(log)))
    assert main(["adjudicate", str(log), "--accept", "zed", "--reason", "x"]) == 2
    assert "no read by 'zed'" in capsys.readouterr().err
    assert main(["adjudicate", str(log), str(log), "--majority", "--reason", "x"]) == 2
    assert "--into" in capsys.readouterr().err  # reads from several logs: where to record?
    assert main(["adjudicate", str(tmp_path / "missing.clinlabel.jsonl")]) == 2
    assert "no such log file" in capsys.readouterr().err
    assert len(list(iter_records(log))) == n


def test_shared_log_reads_cite_each_readers_own_last_record(shared, monkeypatch, capsys):
    """Ana paints again after Bea: each read cites its reader's own last record, not the log's
    head (oracle: the records ``paint`` returned)."""
    log, a, b = shared
    path = log.parent / "ct.nii.gz"
    with api.open_image(path, api.Actor("ana", "Ana", "annotator")) as image:
        ana_last = image.paint(np.zeros(SHAPE, bool) | (np.indices(SHAPE)[0] == 0), 1)
    bea_last = [r for r in iter_records(log) if r["actor"]["id"] == "bea"][-1]
    assert ana_last["seq"] > bea_last["seq"]
    _as(monkeypatch, "carol", "adjudicator")
    assert main(["adjudicate", str(log), "--json"]) == 0
    cited = {
        r["reader"]: (r["seq"], r["hash"]) for r in json.loads(capsys.readouterr().out)["reads"]
    }
    assert cited == {
        "ana": (ana_last["seq"], ana_last["hash"]),
        "bea": (bea_last["seq"], bea_last["hash"]),
    }
    assert main(["adjudicate", str(log), "--accept", "bea", "--reason", "bea's is tighter"]) == 0
    rec = [r for r in iter_records(log) if r["action"] == "adjudicate"][-1]
    assert {c["reader"]: c["seq"] for c in rec["data"]["reads"]} == {
        "ana": ana_last["seq"],
        "bea": bea_last["seq"],
    }


@pytest.fixture
def grade_dispute(tmp_path, monkeypatch):
    """A programme case read by ann (BI-RADS 4A) and ben (2) with the same outline."""
    dispute = make_grade_dispute(tmp_path, monkeypatch)
    _as(monkeypatch, "adj", "adjudicator")
    return dispute.ds_dir, [str(p) for p in dispute.logs]


def test_grade_dispute_is_shown_and_decided_by_the_cli(grade_dispute, capsys):
    ds_dir, logs = grade_dispute
    assert main(["adjudicate", *logs]) == 0
    out = capsys.readouterr().out
    assert "grades assessment 4A, density b" in out
    assert "GRADE DISAGREEMENT assessment: ann 4A vs ben 2" in out, out
    assert "dice" in out.lower() and "ann vs ben" in out
    e = _json_out(capsys, ["dataset", "next", str(ds_dir), "--reader", "adj", "--json"])
    into = e["log"]  # where the programme wants the adjudicator's decision
    assert e["case"] == "case000" and into.endswith("case000__adj.clinlabel.jsonl")
    # a decision that does not choose the grade: refused, one line, no log created
    assert main(["adjudicate", *logs, "--majority", "--reason", "x", "--into", into]) == 2
    err = capsys.readouterr().err
    assert "disagree on grade assessment" in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(into)
    assert main(["adjudicate", *logs, "--accept", "ben", "--reason", "2 on the spot view",
                 "--into", into]) == 0  # fmt: skip
    assert "grade assessment 2 (taken with ben's read)" in capsys.readouterr().out
    recs = list(iter_records(into))
    # a new adjudicator log starts as the widget's: image.open with the image grid, owner pinned
    assert recs[0]["action"] == "image.open" and recs[0]["seq"] == 0
    first_read = next(iter(iter_records(logs[0])))
    assert recs[0]["data"]["shape"] == first_read["data"]["shape"] == [16, 16]
    assert recs[0]["data"]["owner"] == {"id": "olga", "public_key": public_key_b64(
        load_private_key("olga"))}  # fmt: skip
    (rec,) = [r for r in recs if r["action"] == "adjudicate"]
    assert rec["data"]["reader"] == "ben" and rec["data"]["grades"] == {"assessment": "2"}
    assert rec["data"]["grades_from"] == "ben"
    assert verify_log(into).ok
    s = _json_out(capsys, ["dataset", "status", str(ds_dir), "--json"])
    assert s["adjudication_queue"] == []


def test_explicit_grade_overrides_and_bad_grade_is_one_line(grade_dispute, capsys, tmp_path):
    _, logs = grade_dispute
    into = str(tmp_path / "ds" / "reads" / "case000__adj.clinlabel.jsonl")
    for bad, why in (("assessment", "SCALE=VALUE"), ("assessment=9Z", "not a grade"),
                     ("nosuch=1", "no read grades")):  # fmt: skip
        assert main(["adjudicate", *logs, "--accept", "ben", "--grade", bad, "--reason", "r",
                     "--into", into]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert why in err and len(err.strip().splitlines()) == 1
    assert main(["adjudicate", *logs, "--grade", "assessment=4A"]) == 2  # no decision named
    assert "--accept READER or --majority" in capsys.readouterr().err
    assert not os.path.exists(into)
    assert main(["adjudicate", *logs, "--accept", "ben", "--grade", "assessment=4B",
                 "--reason", "ben's outline; 4B on the spot view", "--into", into]) == 0  # fmt: skip
    (rec,) = [r for r in iter_records(into) if r["action"] == "adjudicate"]
    assert rec["data"]["grades"] == {"assessment": "4B"} and "grades_from" not in rec["data"]


def _json_out(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)
