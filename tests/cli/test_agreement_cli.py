"""``clinlabel agreement`` end to end: JSON against SimpleITK / sklearn, tables, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.metrics import cohen_kappa_score
from support.agreement_fixtures import reader_maps, write_grades, write_map, write_reader_log  # noqa: E402

from napari_clinlabel.cli import main

BIRADS = ["0", "1", "2", "3", "4A", "4B", "4C", "5", "6"]


def test_label_maps_json_matches_simpleitk(tmp_path, capsys):
    a, b = reader_maps()
    pa, pb = write_map(tmp_path / "a.nii.gz", a), write_map(tmp_path / "b.nii.gz", b)
    assert main(["agreement", str(pa), str(pb), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk.ReadImage(str(pa)), sitk.ReadImage(str(pb)))
    for v in ("1", "2"):
        assert out["labels"][v]["dice"] == pytest.approx(f.GetDiceCoefficient(int(v)), abs=1e-9)
        assert out["labels"][v]["hd95_mm"] > 0
    assert out["labels"]["3"]["hd95_mm"] is None and out["labels"]["3"]["voxels_a"] == 0


def test_label_maps_table(tmp_path, capsys):
    a, b = reader_maps()
    pa, pb = write_map(tmp_path / "a.mha", a), write_map(tmp_path / "b.mha", b)
    assert main(["agreement", str(pa), str(pb)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["label", "dice", "hd95_mm"]
    assert [ln.split()[0] for ln in lines[1:]] == ["1", "2", "3"]
    assert lines[3].split()[2] == "inf"


def test_grade_tables_json_and_table(tmp_path, capsys):
    rng = np.random.default_rng(4)
    ia = rng.integers(0, 8, 40)
    ib = np.clip(ia + rng.choice([-1, 0, 0, 1], 40), 0, 7)
    a, b = [BIRADS[i] for i in ia], [BIRADS[i] for i in ib]
    items = [f"img{i}" for i in range(40)]
    pa = write_grades(tmp_path / "a.csv", list(zip(items, a, strict=True)))
    pb = write_grades(tmp_path / "b.csv", list(zip(items, b, strict=True)))
    assert main(["agreement", str(pa), str(pb), "--json", "--scale", "birads:assessment"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 40 and out["scale"] == BIRADS
    assert out["kappa"] == pytest.approx(cohen_kappa_score(a, b, labels=BIRADS), abs=1e-9)
    assert out["weighted_kappa_quadratic"] == pytest.approx(
        cohen_kappa_score(a, b, labels=BIRADS, weights="quadratic"), abs=1e-9
    )
    assert out["per_class"]["6"]["precision"] is None  # nobody graded 6: undefined, not 0
    assert main(["agreement", str(pa), str(pb), "--scale", "birads:assessment"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("n=40  kappa=") and "confusion matrix (rows A, columns B):" in text


def test_logs_of_different_images_one_line_error(tmp_path, capsys):
    a, b = reader_maps()
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    la = write_reader_log(tmp_path / "r1" / "ct.clinlabel.jsonl", a, "alice", image_sha="ab" * 32)
    lb = write_reader_log(tmp_path / "r2" / "ct.clinlabel.jsonl", b, "bob", image_sha="12" * 32)
    assert main(["agreement", str(la), str(lb)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "logs of different images" in err


def test_unknown_items_subprocess_exit_code(tmp_path):
    pa = write_grades(tmp_path / "a.csv", [("c1", "1"), ("c2", "2")])
    pb = write_grades(tmp_path / "b.csv", [("c1", "1"), ("zz", "2")])
    proc = subprocess.run(
        [sys.executable, "-m", "napari_clinlabel.cli", "agreement", str(pa), str(pb), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("clinlabel agreement: error: 1 item(s) of")
    assert len(proc.stderr.strip().splitlines()) == 1
