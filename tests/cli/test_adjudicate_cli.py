"""``clinlabel adjudicate``: readers who shared a folder are adjudicated from the one log.

Oracles: SimpleITK's LabelOverlapMeasuresImageFilter (Dice) and numpy on the painted arrays; the
log's verifier for what was recorded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from support.trusted_roster import write_roster

from napari_clinlabel import api
from napari_clinlabel.cli import main
from napari_clinlabel.core.log.audit_log import iter_records, sidecar_paths
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
