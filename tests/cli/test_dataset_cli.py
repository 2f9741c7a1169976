"""A scripted programme through ``clinlabel dataset``: owner, 3 annotators, a reviewer, an
adjudicator, 60 cases (6 honeypots = 10 %, a class read twice at 100 %). Checked: the manifest's
signature (cryptography, over the documented statement), the calibration gate, assignments per
design (counts derived by hand from the design), blinding, a trigger filling the adjudication
queue, the adjudicator's next case, and the dataset log verifying with ``clinlabel log verify``."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from support.programme_fixtures import DESIGN, make_programme, write_read
from support.trusted_roster import write_roster

from napari_clinlabel.cli import main
from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.image_open import image_open_data, record_image_open
from napari_clinlabel.core.log.signing import keys_folder
from napari_clinlabel.core.quality.adjudication import adjudicate, load_reads


def _grades(path, rows):
    path.write_text("item,grade\n" + "".join(f"{i},{g}\n" for i, g in rows))
    return path


def _json(capsys, argv):
    assert main(argv) in (0, 1)
    return json.loads(capsys.readouterr().out)


def test_programme_end_to_end(tmp_path, monkeypatch, capsys):
    ds, cases, gold = make_programme(tmp_path, n_cases=54, n_honeypots=6)
    d = str(ds)
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    assert main(["dataset", "init", d, "--design", str(tmp_path / "design.toml")]) == 0
    manifest = ds / "clinlabel-dataset.json"
    owner_key = json.loads(manifest.read_text())["roster"]["owner"]["public_key"]
    sig = base64.b64decode((ds / "clinlabel-dataset.json.sig").read_text())
    Ed25519PublicKey.from_public_bytes(base64.b64decode(owner_key)).verify(
        sig, b"clinlabel-dataset/1\n" + manifest.read_bytes()
    )
    assert main(["dataset", "add", d, *map(str, cases[:44])]) == 0
    assert main(["dataset", "add", d, "--class", "high-risk", *map(str, cases[44:])]) == 0
    assert main(["dataset", "add", d, "--honeypot", "--gold-author", "ann", *map(str, gold)]) == 0
    capsys.readouterr()

    # calibration gate: nobody calibrated -> nothing assigned, and next is refused
    assert main(["dataset", "assign", d]) == 0
    assert "0 assignment(s)" in capsys.readouterr().out
    assert main(["dataset", "next", d, "--reader", "ann"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gold panel for guideline 2.0" in err

    rows = [(f"g{i}", v) for i, v in enumerate(["1", "2", "3", "4A", "5", "2", "1", "3"])]
    gold_csv = _grades(tmp_path / "gold.csv", rows)
    good = _grades(tmp_path / "good.csv", rows)
    bad = _grades(tmp_path / "bad.csv", [(i, "1") for i, _ in rows])
    for reader, table, code in (("ann", good, 0), ("ben", good, 0), ("cat", bad, 1)):
        assert main(["dataset", "calibrate", d, "--reader", reader, "--gold-grades", str(gold_csv),
                     "--reader-grades", str(table), "--schema", "birads", "--scale", "assessment"]) == code  # fmt: skip
    monkeypatch.setenv("CLINLABEL_USER", "ann")  # a reader cannot record calibrations or assign
    assert main(["dataset", "assign", d]) == 2
    assert "only the dataset owner 'olga'" in capsys.readouterr().err
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    assert main(["dataset", "assign", d]) == 0
    capsys.readouterr()

    records = list(iter_records(ds / "clinlabel-dataset.jsonl"))
    assigned = [r for r in records if r["action"] == "case.assign"]
    assert all(r["actor"]["id"] == "olga" for r in assigned)
    by_case: dict[str, list[str]] = {}
    for r in assigned:
        by_case.setdefault(r["target"]["case"], []).append(r["data"]["reader"])
    assert "cat" not in {r for rs in by_case.values() for r in rs}  # failed calibration
    for i in range(44, 54):  # the 100 % class: two different readers each
        assert sorted(by_case[f"case{i:03d}"]) == ["ann", "ben"]
    for i in range(44):
        assert 1 <= len(by_case[f"case{i:03d}"]) <= 2
    # honeypots: never to their gold answer's author; ben gets round(0.1 * prod / 0.9)
    hp = {c: rs for c, rs in by_case.items() if c.startswith("gold")}
    assert all("ann" not in rs for rs in hp.values())
    ben_prod = sum("ben" in rs for c, rs in by_case.items() if c.startswith("case"))
    assert sum("ben" in rs for rs in hp.values()) == round(0.1 * ben_prod / 0.9)
    load = Counter(r for c, rs in by_case.items() if c.startswith("case") for r in rs)
    assert abs(load["ann"] - load["ben"]) <= 1  # balanced

    # reads of one high-risk case disagree on BI-RADS and barely overlap: the trigger trips
    write_read(ds / "reads" / "case050__ann.clinlabel.jsonl", "ann", "case050", (2, 2), "4A")
    write_read(ds / "reads" / "case050__ben.clinlabel.jsonl", "ben", "case050", (6, 6), "2")
    # two reads that agree exactly: no trigger
    write_read(ds / "reads" / "case051__ann.clinlabel.jsonl", "ann", "case051", (2, 2), "3")
    write_read(ds / "reads" / "case051__ben.clinlabel.jsonl", "ben", "case051", (2, 2), "3")
    # honeypots: ann wrote the gold answers; ben's reads of his two disagree with gold on BI-RADS
    ben_hp = sorted(c for c, rs in hp.items() if "ben" in rs)
    for c in ben_hp:
        write_read(ds / "reads" / f"{c}__ann.clinlabel.jsonl", "ann", c, (2, 2), "4C")
        write_read(ds / "reads" / f"{c}__ben.clinlabel.jsonl", "ben", c, (2, 2), "1")
    s = _json(capsys, ["dataset", "status", d, "--json"])
    assert s["honeypot_accuracy"]["ben"] == {"reads": len(ben_hp), "agreed": 0, "accuracy": 0.0}
    assert s["flags"] == [f"ben: honeypot accuracy 0% over {len(ben_hp)} gold case(s) is below 80%"]
    assert [q["case"] for q in s["adjudication_queue"]] == ["case050"]
    why = " ".join(s["adjudication_queue"][0]["why"])
    # Dice of two 6x6 squares offset by (4, 4): overlap 2x2 -> 2*4/(36+36)
    assert "assessment: ann 4A vs ben 2" in why and f"Dice {2 * 4 / 72:.3f}" in why
    assert s["classes"]["high-risk"]["achieved_rate"] == 1.0
    assert s["classes"]["high-risk"]["design_rate"] == 1.0
    assert s["classes"]["high-risk"]["double_completed"] == 2
    assert (
        s["calibration"]["cat"]["current"] is False and s["calibration"]["ann"]["current"] is True
    )
    assert s["readers"]["ann"]["completed"] == 2
    assert s["honeypots"] == 6 and s["cases"] == 60

    e = _json(capsys, ["dataset", "next", d, "--reader", "adj", "--json"])
    assert e["case"] == "case050" and e["task"] == "adjudicate" and len(e["reads"]) == 2
    e = _json(capsys, ["dataset", "next", d, "--reader", "rev", "--json"])
    assert (
        e["task"] == "review"
        and e["case"] in {"case050", "case051"}
        and e["read"].endswith(".jsonl")
    )
    e = _json(capsys, ["dataset", "next", d, "--reader", "ann", "--json"])
    assert e["task"] == "read" and e["status"] == "not started" and "honeypot" not in json.dumps(e)
    assert e["case"] in {c for c, rs in by_case.items() if "ann" in rs} - {"case050", "case051"}

    # the adjudicator settles case050 (signed adjudicate record in her log): the queue empties
    reads = load_reads(
        [
            ds / "reads" / "case050__ann.clinlabel.jsonl",
            ds / "reads" / "case050__ben.clinlabel.jsonl",
        ]
    )
    image = {"uid": None, "sha256": hashlib.sha256(b"case050").hexdigest()}
    log = AuditLog(
        ds / "reads" / "case050__adj.clinlabel.jsonl", image, Actor("adj", "adj", "adjudicator")
    )
    record_image_open(
        log,
        image_open_data(
            (16, 16),
            np.uint8,
            geometry=Geometry.identity(2),
            modality="MG",
            source="case050.nii.gz",
        ),
    )
    # the reads disagree on a high-stakes grade: a labels-only decision is refused
    with pytest.raises(InputError, match="disagree on grade assessment"):
        adjudicate(log, reads, reads[0].labels, "ann's outline matches the lesion")
    assert [q["case"] for q in _json(capsys, ["dataset", "status", d, "--json"])[
        "adjudication_queue"]] == ["case050"]  # fmt: skip
    adjudicate(log, reads, reads[0].labels, "ann's outline matches the lesion",
               grades={"assessment": "4A"})  # fmt: skip
    log.close()
    s = _json(capsys, ["dataset", "status", d, "--json"])
    assert s["adjudication_queue"] == []
    assert main(["dataset", "next", d, "--reader", "adj"]) == 1
    capsys.readouterr()

    assert main(["log", "verify", str(ds / "clinlabel-dataset.jsonl")]) == 0
    assert "signed by its owner 'olga'" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    ds, cases, _ = make_programme(tmp_path, n_cases=2, n_honeypots=0)
    d = str(ds)
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    bad = tmp_path / "bad.toml"
    checks = []
    bad.write_text("[reading]\nhoneypot_rate = 10\n")
    checks.append(
        (["dataset", "init", d, "--design", str(bad)], "a rate must be a number from 0 to 1")
    )
    checks.append((["dataset", "status", d], "not a dataset (no manifest)"))
    for argv, message in checks:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    assert main(["dataset", "init", d]) == 2
    assert "only the roster's owner 'olga'" in capsys.readouterr().err
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    assert main(["dataset", "init", d]) == 0
    checks = [
        (["dataset", "init", d], "is a dataset already"),
        (["dataset", "add", d, str(tmp_path / "nope.nii")], "no such file or folder"),
        (["dataset", "add", d, "--honeypot", str(cases[0])], "needs its gold answer's author"),
        (["dataset", "next", d, "--reader", "zed"], "'zed' is not in the roster"),
    ]
    for argv, message in checks:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert main(["dataset", "add", d, str(cases[0])]) == 0
    series = tmp_path / "images" / "CT series 1"  # a DICOM folder is one case
    series.mkdir()
    assert main(["dataset", "add", d, str(series)]) == 0
    assert "1 case(s) added (CT-series-1)" in capsys.readouterr().out
    assert main(["dataset", "add", d, str(cases[0])]) == 2
    assert "is already case 'case000'" in capsys.readouterr().err
    # a manifest edited after the owner signed it is refused
    m = ds / "clinlabel-dataset.json"
    m.write_text(m.read_text().replace('"readers_per_case": 1', '"readers_per_case": 3'))
    assert main(["dataset", "status", d]) == 2
    assert "not signed by the roster's owner" in capsys.readouterr().err


def test_owner_only_under_owner_table_runs_the_programme(tmp_path, monkeypatch, capsys):
    """README's roster: the owner appears only in [owner]. She initialises, adds and assigns; the
    dataset log verifies against the roster (her records carry the owner role); a reader does not
    get to init."""
    ds = tmp_path / "ds"
    write_roster(ds, {"ann": ["annotator"], "rev": ["reviewer"]}, owner="olga")
    (tmp_path / "design.toml").write_text(
        DESIGN.replace("honeypot_rate = 0.1", "honeypot_rate = 0")
    )
    case = tmp_path / "case000.nii.gz"
    case.write_bytes(b"synthetic")
    d = str(ds)
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    assert main(["dataset", "init", d, "--design", str(tmp_path / "design.toml")]) == 2
    assert "only the roster's owner 'olga'" in capsys.readouterr().err
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    assert main(["dataset", "init", d, "--design", str(tmp_path / "design.toml")]) == 0
    assert main(["dataset", "add", d, str(case)]) == 0
    assert main(["dataset", "assign", d]) == 0
    capsys.readouterr()
    recs = list(iter_records(ds / "clinlabel-dataset.jsonl"))
    assert {r["actor"]["role"] for r in recs} == {"owner"}
    assert main(["log", "verify", str(ds / "clinlabel-dataset.jsonl")]) == 0, capsys.readouterr()


def test_a_refused_init_leaves_no_debris(tmp_path, monkeypatch, capsys):
    """``dataset init`` refused (no roster in a new folder; the owner's private key missing) leaves
    the file system as it was: no empty DS/, no manifest without a log; one line each."""
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    ds = tmp_path / "DS"
    assert main(["dataset", "init", str(ds)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "clinlabel-roster.toml" in err, err
    assert not ds.exists()
    write_roster(ds, {"ann": ["annotator"]}, owner="olga")
    before = sorted(p.name for p in ds.iterdir())
    (keys_folder() / "olga.ed25519.pem").unlink()  # the owner's key is not on this machine
    assert main(["dataset", "init", str(ds)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert sorted(p.name for p in ds.rglob("*")) == before
