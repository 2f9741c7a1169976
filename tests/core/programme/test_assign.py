"""Assignments by the design: the seeded draws (re-derived here from the documented rule: sha256
of the seed and the parts, joined by 0x1F), balance, blinding, the calibration gate per guideline
major version, and second reads that follow a first read's findings."""

from __future__ import annotations

import hashlib

import pytest
from support.programme_fixtures import make_programme, write_read

from napari_clinlabel.core.errors import InputError, PermissionRefused
from napari_clinlabel.core.programme.assign import assign
from napari_clinlabel.core.programme.dataset import Dataset, init_dataset
from napari_clinlabel.core.programme.manifest import read_design
from napari_clinlabel.core.programme.status import next_case, status


def _oracle_draw(seed: int, *parts: str) -> float:
    h = hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _calibrate(ds: Dataset, *readers: str, passed: bool = True) -> None:
    for r in readers:
        ds.record_calibration(r, {"passed": passed, "failures": [] if passed else ["kappa low"]})


def _setup(tmp_path, monkeypatch, n=30, design_text=None):
    root, cases, gold = make_programme(tmp_path, n_cases=n, n_honeypots=0)
    if design_text is not None:
        (tmp_path / "design.toml").write_text(design_text)
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    ds = init_dataset(root, read_design(tmp_path / "design.toml"))
    return ds, cases


def _pairs(new):
    return sorted((a["case"], a["reader"]) for a in new)


def test_reproducible_balanced_and_routine_rate_follows_the_seeded_draw(tmp_path, monkeypatch):
    runs = []
    for k in range(2):
        ds, cases = _setup(tmp_path / f"r{k}", monkeypatch)
        ds.add_cases(cases)
        _calibrate(ds, "ann", "ben", "cat")
        new, unfilled = assign(ds)
        assert not unfilled
        runs.append(_pairs(new))
    assert runs[0] == runs[1]  # same seed, same state: same assignments
    by_case: dict[str, list[str]] = {}
    for c, r in runs[0]:
        by_case.setdefault(c, []).append(r)
    for c, rs in by_case.items():
        expected = 2 if _oracle_draw(11, "double", c, "routine") < 0.1 else 1
        assert len(rs) == expected == len(set(rs)), c
    loads = [sum(r == u for _, r in runs[0]) for u in ("ann", "ben", "cat")]
    assert max(loads) - min(loads) <= 1
    assert assign(ds)[0] == []  # nothing more asked for: re-running adds nothing


def test_blinding_and_the_calibration_gate(tmp_path, monkeypatch):
    ds, cases = _setup(tmp_path, monkeypatch, n=12)
    ds.add_cases(cases[:6], exclude=["ann"])
    ds.add_cases(cases[6:])
    assert assign(ds)[0] == []  # nobody calibrated yet
    _calibrate(ds, "ann", "ben")
    _calibrate(ds, "cat", passed=False)
    new, _ = assign(ds)
    readers = {a["reader"] for a in new}
    assert readers == {"ann", "ben"}
    assert not any(
        a["reader"] == "ann" and a["case"] in {f"case{i:03d}" for i in range(6)} for a in new
    )
    with pytest.raises(PermissionRefused, match="not passed the gold panel for guideline 2.0"):
        next_case(ds, "cat")
    # a new major version: the old calibrations no longer count
    (tmp_path / "design.toml").write_text(
        (tmp_path / "design.toml").read_text().replace('version = "2.0"', 'version = "3.0"')
    )
    ds = init_dataset(ds.folder, read_design(tmp_path / "design.toml"), update=True)
    late = cases[0].with_name("late.nii.gz")
    late.write_bytes(b"late")
    ds.add_cases([late])
    assert assign(ds)[0] == []
    with pytest.raises(PermissionRefused, match="guideline 3.0"):
        next_case(ds, "ann")
    _calibrate(ds, "ben")
    assert [(a["case"], a["reader"]) for a in assign(ds)[0]] == [("late", "ben")]
    cal = status(ds)["calibration"]["ben"]
    assert [h["guideline"] for h in cal["history"]] == ["2.0", "3.0"] and cal["current"]


def test_a_finding_in_the_first_read_asks_for_a_second(tmp_path, monkeypatch):
    ds, cases = _setup(tmp_path, monkeypatch, n=8)
    ds.add_cases(cases)
    _calibrate(ds, "ann", "ben")
    first, _ = assign(ds)
    single = [a for a in first if sum(b["case"] == a["case"] for b in first) == 1]
    a4, a2 = single[0], single[1]
    write_read(ds.read_log(a4["case"], a4["reader"]), a4["reader"], a4["case"], (2, 2), "4B")
    write_read(ds.read_log(a2["case"], a2["reader"]), a2["reader"], a2["case"], (2, 2), "2")
    second, _ = assign(ds)
    assert [(a["case"], a["read"], a["why"]) for a in second] == [
        (a4["case"], 2, "double read (birads>=4)")
    ]
    assert second[0]["reader"] != a4["reader"]


def test_an_edited_log_or_roster_is_refused(tmp_path, monkeypatch):
    ds, cases = _setup(tmp_path, monkeypatch, n=2)
    roster = ds.folder / "clinlabel-roster.toml"
    roster.write_text(roster.read_text() + "\n")  # the owner's signature no longer matches
    with pytest.raises(PermissionRefused, match="not signed by its owner"):
        Dataset(ds.folder)


def test_next_case_tells_an_owner_named_only_under_owner_why_she_has_no_cases(
    tmp_path, monkeypatch
):
    ds, cases = _setup(tmp_path, monkeypatch, n=3)
    ds.add_cases(cases)
    ds.roster.users.pop("olga")  # as a roster naming her under [owner] only would read
    with pytest.raises(InputError, match="is the dataset's owner and holds no reading role"):
        next_case(ds, "olga")
    with pytest.raises(InputError, match="'nobody' is not in the roster"):
        next_case(ds, "nobody")
