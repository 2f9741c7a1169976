"""``clinlabel phi-scan`` / ``clinlabel deid``: exit codes, no PHI printed, scan clean after deid."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from support.dicom_factory import canaries, write_ct_series  # noqa: E402

from napari_clinlabel.cli import main
from napari_clinlabel.core.image.geometry import Geometry

G = Geometry((0.7, 0.8, 2.5), (-10.0, 20.0, 5.0), tuple(np.eye(3).ravel()))
PHI = canaries("CLIP")


def test_scan_then_deid_then_clean(tmp_path, capsys):
    src = tmp_path / "Doe^Jane"
    write_ct_series(src, np.zeros((3, 6, 6), np.int16), G, phi=PHI)
    assert main(["phi-scan", str(src)]) == 1
    out = capsys.readouterr().out
    assert "PatientName (0010,0010): 'C***' (8 chars)" in out
    assert "finding(s) in" in out
    for v in (*PHI.values(), "Doe", "Jane", "19610413"):
        assert v not in out
    assert main(["phi-scan", str(src), "--json"]) == 1
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {"file", "where", "hint", "kind"} == set(rows[0])
    assert (
        main(["deid", str(src), str(tmp_path / "clean"), "--uid-map", str(tmp_path / "m.json")])
        == 0
    )
    out = capsys.readouterr().out
    assert "3 of 3 DICOM file(s) de-identified" in out and "UID map" in out
    assert main(["phi-scan", str(tmp_path / "clean")]) == 0
    assert "no PHI found" in capsys.readouterr().out


def test_exit_codes_and_errors(tmp_path, capsys):
    write_ct_series(tmp_path / "ct", np.zeros((1, 4, 4), np.int16), G)
    assert main(["phi-scan", str(tmp_path / "ct")]) == 0
    assert main(["phi-scan", str(tmp_path / "x")]) == 2
    assert "no such file" in capsys.readouterr().err
    r = subprocess.run([sys.executable, "-m", "napari_clinlabel.cli", "deid", str(tmp_path / "ct"),
                        str(tmp_path / "ct" / "out")], capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 2 and "inside the input" in r.stderr and len(r.stderr.splitlines()) == 1


def test_unreadable_exit_3_refused_listed_exit_1_options_recorded(tmp_path, capsys):
    src = tmp_path / "in"
    paths = write_ct_series(src, np.zeros((2, 4, 4), np.int16), G, phi=PHI)
    raw = paths[0].read_bytes()
    (src / "cut.dcm").write_bytes(raw[: len(raw) - 10])  # truncated: never called clean
    assert main(["phi-scan", str(src)]) == 3
    out = capsys.readouterr().out
    assert "unreadable" in out and "not clean" in out
    clean_only = tmp_path / "ok"
    write_ct_series(clean_only, np.zeros((1, 4, 4), np.int16), G)
    (clean_only / "cut.dcm").write_bytes(raw[:400])
    assert main(["phi-scan", str(clean_only)]) == 3  # nothing else found, still not clean
    capsys.readouterr()
    code = main(["deid", str(src), str(tmp_path / "out"), "--retain-dates",
                 "--retain-patient-characteristics", "--retain-device"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "refused cut.dcm: unreadable" in out  # listed; the rest written
    assert "2 of 3 DICOM file(s) de-identified" in out
    report = json.loads((tmp_path / "out" / "deid-report.json").read_text())
    assert [c[0] for c in report["codes"]] == ["113100", "113107", "113108", "113109"]
    assert report["files_refused"] == 1 and report["files_written"] == 2
    for v in PHI.values():
        assert v not in out


def test_bad_blank_regions_file_is_one_line_exit_2(tmp_path):
    write_ct_series(tmp_path / "ct", np.zeros((1, 4, 4), np.int16), G)
    bad = tmp_path / "regions.json"
    bad.write_text('[{"manufacturer": "Acme"}]')
    r = subprocess.run([sys.executable, "-m", "napari_clinlabel.cli", "deid", str(tmp_path / "ct"),
                        str(tmp_path / "out"), "--clean-pixels", "--blank-regions", str(bad)],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 2 and "regions" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()
