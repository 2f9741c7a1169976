"""A grade dispute to adjudicate: a programme whose case000 two readers outlined alike but graded
apart (BI-RADS 4A and 2), written as napari writes reads (``support.programme_fixtures``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from napari_clinlabel.core.programme.assign import assign
from napari_clinlabel.core.programme.dataset import init_dataset
from napari_clinlabel.core.programme.manifest import read_design
from support.programme_fixtures import make_programme, write_read

GRADES = {"ann": "4A", "ben": "2"}  # case000's BI-RADS assessment by each reader


class GradeDispute(NamedTuple):
    ds_dir: Path  # the dataset folder
    reads: Path  # its reads/ folder
    logs: list[Path]  # case000's reads: ann's, then ben's


def grade_dispute(
    tmp_path: Path, monkeypatch: Any, failed_calibration: tuple[str, ...] = ()
) -> GradeDispute:
    """Two high-risk cases, double read by the calibrated ann and ben; case000: same outline,
    BI-RADS 4A vs 2. The owner olga sets it up; ``failed_calibration`` readers failed theirs."""
    for var in ("CLINLABEL_ROLE", "CLINLABEL_ROSTER"):
        monkeypatch.delenv(var, raising=False)
    ds_dir, cases, gold = make_programme(tmp_path, n_cases=2, n_honeypots=1)
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    ds = init_dataset(ds_dir, read_design(tmp_path / "design.toml"))
    ds.add_cases(cases, cls="high-risk")
    ds.add_cases(gold, honeypot=True, gold_authors=["ann"])
    for r in GRADES:
        ds.record_calibration(r, {"passed": True, "grading": {"kappa": 0.95, "n": 8}})
    for r in failed_calibration:
        ds.record_calibration(r, {"passed": False, "failures": ["kappa low"]})
    assign(ds)
    reads = ds_dir / "reads"
    logs = []
    for reader, grade in GRADES.items():
        logs.append(reads / f"case000__{reader}.clinlabel.jsonl")
        write_read(logs[-1], reader, "case000", (2, 2), grade)
    return GradeDispute(ds_dir, reads, logs)
