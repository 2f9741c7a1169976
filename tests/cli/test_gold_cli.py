"""`clinlabel gold-panel`: a reader who matches the gold passes (exit 0), one who does not fails."""

from __future__ import annotations

import json

import numpy as np
from support.agreement_fixtures import reader_maps, write_grades, write_map  # noqa: E402

from napari_clinlabel.cli import main


def _panel(tmp_path, reader_map):
    gold_map, _ = reader_maps()
    for who, arr in (("gold", gold_map), ("reader", reader_map)):
        (tmp_path / who).mkdir()
        write_map(tmp_path / who / "case1.nii.gz", arr)
    return ["--gold-maps", str(tmp_path / "gold"), "--reader-maps", str(tmp_path / "reader")]


def test_identical_reader_passes(tmp_path, capsys):
    gold_map, _ = reader_maps()
    grades = [(f"img{i}", str(i % 5)) for i in range(20)]
    write_grades(tmp_path / "g.csv", grades)
    write_grades(tmp_path / "r.csv", grades)
    args = _panel(tmp_path, gold_map) + [
        "--gold-grades", str(tmp_path / "g.csv"), "--reader-grades", str(tmp_path / "r.csv"),
        "--schema", "icdr", "--scale", "dr",
    ]  # fmt: skip
    assert main(["gold-panel", *args]) == 0
    assert capsys.readouterr().out.strip().endswith("PASS")
    assert main(["gold-panel", *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


def test_reader_far_from_gold_fails_and_says_why(tmp_path, capsys):
    gold_map, _ = reader_maps()
    poor = np.zeros_like(gold_map)
    poor[gold_map > 0] = 1  # every structure drawn as label 1
    assert main(["gold-panel", *_panel(tmp_path, poor)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "fail:" in out


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["gold-panel", "--gold-maps", str(tmp_path)]) == 2
    assert "gold AND the reader" in capsys.readouterr().err
