"""CSV exports neutralise formula injection (OWASP: = + - @ TAB CR lead to a leading ')."""

from __future__ import annotations

import csv
import io

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.cli import main
from napari_clinlabel.core.annotate.boxes import LesionBox, add_box
from napari_clinlabel.core.annotate.grading import set_grade
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.safe_text import csv_cell
from napari_clinlabel.core.schema import load_schema

# OWASP CSV Injection: cells a spreadsheet reads as formulas or DDE start with one of these
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
PAYLOADS = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3+cmd|x", "@SUM(1+1)*cmd|x",
            "\t=1+1", "\r=1+1"]  # fmt: skip


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_csv_cell_follows_owasp():
    for p in PAYLOADS:
        assert csv_cell(p) == "'" + p.replace("\r", "\n")
    for safe in ("-1.5", "+3", "-2e-3", "benign", "", 7, -3.25, None):
        assert csv_cell(safe) == safe


def test_exported_csv_cells_never_start_a_formula(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLINLABEL_USER", "=evil")
    path = tmp_path / "img.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 9), np.int16)), str(path))
    vol = read_volumes(path)[0]
    schema = load_schema("isup")
    log = AuditLog.for_image(path, vol.image_ref(), Actor("=evil", "=evil"), schema.ref())
    for i, p in enumerate(PAYLOADS):
        set_grade(log, schema.scales["isup"], "3", item=f"item{i}", note=p)
    add_box(log, LesionBox((1, 1, 1), (1, 4, 5), "benign", None, {"note": PAYLOADS[0]}, "@b1"), vol)
    out = tmp_path / "t.csv"
    assert main(["export", str(path), "--format", "csv", "-o", str(out)]) == 0
    assert "recorded as seq" in capsys.readouterr().out
    grades = out.with_name("t.grades.csv")
    cells = 0
    for f in (out, grades):
        for row in csv.reader(io.StringIO(f.read_text(encoding="utf-8"), newline="")):
            for cell in row:
                cells += 1
                assert not cell.startswith(DANGEROUS) or _is_number(cell), (f.name, cell)
    text = grades.read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text and "'@SUM" in text and "'=evil" in text
    assert "'@b1" in out.read_text(encoding="utf-8")
    assert cells > 20
    # one header and one row per grade: no CR split a row
    assert len(list(csv.reader(io.StringIO(grades.read_bytes().decode(), newline="")))) == 7
