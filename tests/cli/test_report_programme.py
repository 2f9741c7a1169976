"""``clinlabel report`` on a dataset folder gains the programme view: throughput per reader,
agreement with honeypots, double-read rates achieved per class against the design, adjudication
outcomes and each reader's calibration history with the guideline versions. A scripted programme
(owner, 3 annotators, reviewer, adjudicator; 54 cases + 6 honeypots; a 100 % double-read class);
the figures expected are counted by hand from what the script wrote, and read back from the HTML
with the standard library's parser."""

from __future__ import annotations

import hashlib
from html.parser import HTMLParser

import numpy as np
from support.programme_fixtures import make_programme, write_read

from napari_clinlabel.cli import main
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.image_open import image_open_data, record_image_open
from napari_clinlabel.core.programme.assign import assign
from napari_clinlabel.core.programme.dataset import Dataset, init_dataset
from napari_clinlabel.core.programme.manifest import read_design
from napari_clinlabel.core.quality.adjudication import adjudicate, load_reads


class _Tables(HTMLParser):
    """Every table after <h2>Programme</h2> until the next <h2>, as lists of row texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.h2 = ""
        self._in_h2 = self._on = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "h2":
            self._in_h2, self.h2 = True, ""
        elif self._on and tag == "table":
            self.tables.append([])
        elif self._on and tag == "tr":
            self.tables[-1].append([])
        elif self._on and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
            self._on = self.h2 == "Programme"
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._in_h2:
            self.h2 += data
        elif self._cell is not None:
            self._cell.append(data)


def _tables(html: str) -> list[list[dict[str, str]]]:
    p = _Tables()
    p.feed(html)
    return [[dict(zip(t[0], row, strict=True)) for row in t[1:]] for t in p.tables]


def _with(tables, column):
    """The rows of the one table that has ``column``."""
    (rows,) = [t for t in tables if t and column in t[0]]
    return rows


def test_report_programme_view(tmp_path, monkeypatch, capsys):
    ds_dir, cases, gold = make_programme(tmp_path, n_cases=54, n_honeypots=6)
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    ds = init_dataset(ds_dir, read_design(tmp_path / "design.toml"))
    ds.add_cases(cases[:44])
    ds.add_cases(cases[44:], cls="high-risk")
    ds.add_cases(gold, honeypot=True, gold_authors=["ann"])
    for r in ("ann", "ben"):
        ds.record_calibration(r, {"passed": True, "grading": {"kappa": 0.95, "n": 8}})
    ds.record_calibration("cat", {"passed": False, "failures": ["kappa low"]})
    new, _ = assign(ds)
    by_case: dict[str, list[str]] = {}
    for a in new:
        by_case.setdefault(a["case"], []).append(a["reader"])
    reads = ds_dir / "reads"
    # case044/045 (high-risk, read by ann and ben): 044 disagrees, 045 agrees
    write_read(reads / "case044__ann.clinlabel.jsonl", "ann", "case044", (2, 2), "4A")
    write_read(reads / "case044__ben.clinlabel.jsonl", "ben", "case044", (8, 8), "2")
    write_read(reads / "case045__ann.clinlabel.jsonl", "ann", "case045", (2, 2), "3")
    write_read(reads / "case045__ben.clinlabel.jsonl", "ben", "case045", (2, 2), "3")
    ben_hp = sorted(c for c, rs in by_case.items() if c.startswith("gold") and "ben" in rs)
    assert ben_hp
    for c in ben_hp:  # ann's gold answer; ben agrees on the first only
        write_read(reads / f"{c}__ann.clinlabel.jsonl", "ann", c, (2, 2), "3")
    write_read(reads / f"{ben_hp[0]}__ben.clinlabel.jsonl", "ben", ben_hp[0], (2, 2), "3")
    for c in ben_hp[1:]:
        write_read(reads / f"{c}__ben.clinlabel.jsonl", "ben", c, (2, 2), "1")
    # adj settles case044 with ann's labels
    rd = load_reads(
        [reads / "case044__ann.clinlabel.jsonl", reads / "case044__ben.clinlabel.jsonl"]
    )
    image = {"uid": None, "sha256": hashlib.sha256(b"case044").hexdigest()}
    log = AuditLog(
        reads / "case044__adj.clinlabel.jsonl", image, Actor("adj", "adj", "adjudicator")
    )
    record_image_open(log, image_open_data((16, 16), np.uint8, geometry=Geometry.identity(2),
                                           modality="MG", source="case044.nii.gz"))  # fmt: skip
    adjudicate(log, rd, rd[0].labels, "ann's outline matches the lesion", grades_from="ann")
    log.close()
    # guideline 3.0: ann re-calibrates
    design = (tmp_path / "design.toml").read_text().replace('version = "2.0"', 'version = "3.0"')
    (tmp_path / "design.toml").write_text(design)
    ds = init_dataset(ds_dir, read_design(tmp_path / "design.toml"), update=True)
    Dataset(ds_dir).record_calibration("ann", {"passed": True})

    out = tmp_path / "report.html"
    main(["report", str(ds_dir), "-o", str(out)])
    assert "programme view: 60 case(s), 1 adjudication(s)" in capsys.readouterr().out
    t = _tables(out.read_text())

    done = {"ann": 2, "ben": 2 + len(ben_hp), "cat": 0}  # ann's gold answers are not assignments
    thr = {r["reader"]: r for r in _with(t, "completed")}
    assert {u: int(r["completed"]) for u, r in thr.items()} == done
    assigned = {u: sum(u in rs for rs in by_case.values()) for u in ("ann", "ben", "cat")}
    assert {u: int(r["assigned"]) for u, r in thr.items()} == assigned
    hp = {r["reader"]: r for r in _with(t, "accuracy")}
    assert hp["ben"]["honeypot reads scored"] == str(len(ben_hp))
    assert hp["ben"]["agreed with gold"] == "1"
    assert hp["ben"]["accuracy"] == f"{100 / len(ben_hp):.0f} %"
    classes = {r["class"]: r for r in _with(t, "design rate")}
    assert classes["high-risk"]["design rate"] == "100 %"
    assert classes["high-risk"]["double-read rate achieved"] == "100 %"
    assert classes["high-risk"]["double reads completed"] == "2"
    routine_cases = [f"case{i:03d}" for i in range(44)]
    doubled = sum(len(by_case[c]) >= 2 for c in routine_cases)
    assert classes["routine"]["double-read rate achieved"] == f"{100 * doubled / 44:.0f} %"
    outcomes = {r["outcome"]: r["cases"] for r in _with(t, "outcome")}
    assert outcomes == {"accept": "1", "reader upheld: ann": "1", "still open": "0"}
    (adj,) = _with(t, "adjudicator")
    assert (adj["case"], adj["adjudicator"], adj["decision"], adj["reader upheld"]) == (
        "case044", "adj", "accept", "ann")  # fmt: skip
    assert adj["final grade"] == "assessment 4A"  # ann's grade, taken with her read
    cal = [(r["reader"], r["guideline"], r["result"]) for r in _with(t, "guideline")]
    assert cal == [("ann", "2.0", "passed"), ("ann", "3.0", "passed"), ("ben", "2.0", "passed"),
                   ("cat", "2.0", "failed")]  # fmt: skip
    # the dataset log names the same calibrations (the report adds nothing of its own)
    logged = [(r["target"]["reader"], r["data"]["guideline"]) for r in
              iter_records(ds_dir / "clinlabel-dataset.jsonl") if r["action"] == "calibration.result"]  # fmt: skip
    assert sorted(logged) == sorted((u, g) for u, g, _ in cal)
