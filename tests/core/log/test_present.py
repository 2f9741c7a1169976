"""One presenter for a log record: the cells both the Audit widget and ``clinlabel log show`` show."""

from __future__ import annotations

import re

from napari_clinlabel.cli import main
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records, model_source
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.present import COLUMNS, details_text, record_cells

IMAGE = {"uid": None, "sha256": "ab" * 32}


def test_cells_name_each_field_of_a_record():
    rec = {
        "seq": 7,
        "time": "2026-03-01T10:11:12.345678Z",
        "actor": {"id": "rev", "role": "reviewer"},
        "action": "proposal.edit",
        "target": {"proposal": "p1"},
        "source": {"kind": "model", "name": "liver-net", "version": "1.2", "sha256": "e" * 64},
        "data": {"label": 2, "voxels": 40, "edited": True},
    }
    cells = dict(zip(COLUMNS, record_cells(rec), strict=True))
    assert cells == {
        "seq": "7",
        "time": "2026-03-01 10:11:12.345",
        "actor": "rev",
        "role": "reviewer",
        "action": "proposal.edit",
        "target": '{"proposal":"p1"}',
        "source": "model:liver-net@1.2",
        "details": "label 2 · 40 voxels · edited",
    }
    bare = dict(zip(COLUMNS, record_cells({"seq": 0}), strict=True))
    assert bare["target"] == "" and bare["source"] == "" and bare["details"] == ""
    assert details_text({"tool": "brush", "label": 0, "voxels": 3, "undoes": 4}) == (
        "brush · label 0 · 3 voxels · undoes 4"
    )


def test_log_show_prints_the_presenter_cells(tmp_path, capsys):
    log = AuditLog(tmp_path / "ct.nii.gz.clinlabel.jsonl", IMAGE, Actor("ann", "Ann"))
    log.append("image.open", {"image": "ct.nii.gz"}, {"shape": [3, 4, 5]})
    log.append("grade.set", {"scale": "icdr", "item": "image"},
               {"value": "2", "scale_kind": "ordinal"})  # fmt: skip
    log.append("proposal.add", {"proposal": "p1"}, {"label": 2, "voxels": 12},
               model_source("liver-net", "1.2", "e" * 64), actor=Actor("rev", "Rev", "reviewer"))  # fmt: skip
    assert main(["log", "show", str(log.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["time (UTC)" if c == "time" else c for c in COLUMNS]
    printed = [re.split(r"\s{2,}", line) for line in lines[1:]]
    expected = [list(record_cells(r)) for r in iter_records(log.path)]
    for cells in expected:  # a line ends where its last non-empty cell does
        while cells and not cells[-1]:
            cells.pop()
    assert printed == expected
    assert printed[1][-1] == "grade 2" and printed[2][6] == "model:liver-net@1.2"
