"""Adjudication widget with a grade dispute: each read's grades shown, the final grade chosen
by the adjudicator (refused unchosen), and recorded in the signed ``adjudicate`` record.

Oracles: the grades each reader's log was written with; the built-in BI-RADS scale; the verifier.
"""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from support.adjudication_widget import act_as, dock_adjudication, load_logs, write_reads
from support.agreement_fixtures import ellipsoid
from support.viewer_helpers import SHAPE, add_ct

from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.quality.adjudication import is_adjudicated
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui


def _setup(make_napari_viewer, tmp_path, monkeypatch):
    roles = {"ann": ["annotator"], "ben": ["annotator"], "carol": ["adjudicator"]}
    act_as(monkeypatch, tmp_path, "carol", "adjudicator", roles)
    (tmp_path / "adj").mkdir()
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path / "adj")
    labels = np.zeros(SHAPE, np.uint8)
    labels[ellipsoid(SHAPE, (6, 30, 30), (4, 12, 12))] = 1
    logs = write_reads(image, tmp_path, "ct.nii.gz.clinlabel.jsonl",
                       {"ann": labels, "ben": labels},
                       grades={"ann": {"assessment": "4A"}, "ben": {"assessment": "2"}},
                       schema=load_schema("birads"))  # fmt: skip
    widget, errors = dock_adjudication(viewer, monkeypatch)
    return viewer, image, widget, logs, errors


def test_grade_dispute_is_shown_chosen_and_recorded(
    make_napari_viewer, tmp_path, monkeypatch, qtbot
):
    viewer, image, widget, logs, errors = _setup(make_napari_viewer, tmp_path, monkeypatch)
    load_logs(qtbot, widget, logs)
    assert errors == []
    text = widget._grades.text()
    assert "ann: assessment 4A" in text and "ben: assessment 2" in text
    assert "DISAGREE on assessment: ann 4A vs ben 2" in text
    box = widget._grade_pick["assessment"]
    choices = [box.itemData(i) for i in range(box.count())]
    # unchosen first, the readers' grades, then the rest of the BI-RADS scale
    birads = [v.value for v in load_schema("birads").scales["assessment"].values]
    assert choices[:3] == [None, "4A", "2"] and set(choices[1:]) == set(birads)

    log_path = get_session(viewer).log_path_for(image)
    n = len(list(iter_records(log_path)))
    qtbot.mouseClick(widget._merge, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(widget._reason, "outlines agree; grade on the spot view")
    qtbot.mouseClick(widget._sign, Qt.MouseButton.LeftButton)  # grade not chosen: refused
    assert errors and "disagree on grade assessment" in errors[-1]
    assert len(list(iter_records(log_path))) == n and not is_adjudicated(log_path)

    widget._reader.setCurrentText("ben")
    qtbot.mouseClick(widget._accept, Qt.MouseButton.LeftButton)
    assert box.currentData() == "2"  # ben's grade, shown before signing
    box.setCurrentIndex(box.findData("4B"))  # the adjudicator picks another grade
    qtbot.mouseClick(widget._sign, Qt.MouseButton.LeftButton)
    rec = list(iter_records(log_path))[-2]
    assert rec["action"] == "adjudicate" and rec["data"]["grades"] == {"assessment": "4B"}
    assert rec["data"]["reader"] == "ben"  # equal outlines: the reader accepted is named
    assert rec["data"]["grade_reads"] == {"assessment": {"ann": "4A", "ben": "2"}}
    assert is_adjudicated(log_path, ["assessment"]) and verify_log(log_path).ok
    assert "grade assessment 4B" in widget._status.text()
