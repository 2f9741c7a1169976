"""Several processes adding cases and assigning at once keep one valid chain (checked with
``verify_log``) and never assign a case twice to one reader or beyond the design."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
from collections import Counter

from support.programme_fixtures import make_programme

from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.programme.assign import assign
from napari_clinlabel.core.programme.dataset import Dataset, init_dataset
from napari_clinlabel.core.programme.manifest import read_design
from napari_clinlabel.core.programme.reads import ReadIndex
from napari_clinlabel.core.programme.status import status


def _worker(folder: str, paths: list[str]) -> None:
    ds = Dataset(folder)
    ds.add_cases(paths)
    assign(ds)
    assign(ds)


def test_concurrent_add_and_assign_keep_one_chain(tmp_path, monkeypatch):
    root, cases, _ = make_programme(tmp_path, n_cases=24, n_honeypots=0)
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    ds = init_dataset(root, read_design(tmp_path / "design.toml"))
    for r in ("ann", "ben", "cat"):
        ds.record_calibration(r, {"passed": True})
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_worker, args=(str(root), [str(c) for c in cases[i::4]]))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    report = verify_log(root / "clinlabel-dataset.jsonl")
    assert report.ok, report.summary()
    st = Dataset(root).state()
    assert len(st.cases) == 24
    pairs = Counter((a["case"], a["reader"]) for a in st.assignments)
    assert max(pairs.values()) == 1
    per_case = Counter(a["case"] for a in st.assignments)
    assert set(per_case) == set(st.cases) and max(per_case.values()) <= 2


def _status_worker(folder: str, rounds: int) -> None:
    for _ in range(rounds):  # each status may write the caches while others append
        status(Dataset(folder))


def _flag_worker(folder: str, reader: str, cases: list[str]) -> None:
    os.environ["CLINLABEL_USER"] = reader
    ds = Dataset(folder)
    for c in cases:
        ds.flag(c, f"{reader} cannot read {c}")


def test_status_and_flags_from_several_processes(tmp_path, monkeypatch):
    """Readers flag cases and ask for status while the owner adds and assigns: one valid chain,
    every flag recorded once, and the caches the status runs wrote agree with the logs."""
    root, cases, _ = make_programme(tmp_path, n_cases=16, n_honeypots=0)
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    ds = init_dataset(root, read_design(tmp_path / "design.toml"))
    for r in ("ann", "ben"):
        ds.record_calibration(r, {"passed": True})
    ds.add_cases(cases[:8])
    assign(ds)
    st = ds.state()
    mine = {u: [a["case"] for a in st.assignments if a["reader"] == u] for u in ("ann", "ben")}
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_worker, args=(str(root), [str(c) for c in cases[8:]])),
        ctx.Process(target=_status_worker, args=(str(root), 4)),
        ctx.Process(target=_status_worker, args=(str(root), 4)),
        *[ctx.Process(target=_flag_worker, args=(str(root), u, cs)) for u, cs in mine.items()],
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    report = verify_log(root / "clinlabel-dataset.jsonl")
    assert report.ok, report.summary()
    flags = Counter(
        (r["actor"]["id"], r["target"]["case"])
        for r in iter_records(root / "clinlabel-dataset.jsonl")
        if r["action"] == "case.flag"
    )
    assert flags == Counter({(u, c): 1 for u, cs in mine.items() for c in cs})
    ReadIndex._parsed.clear()
    cached = status(Dataset(root))
    shutil.rmtree(root / ".clinlabel-cache")
    ReadIndex._parsed.clear()
    assert status(Dataset(root)) == cached  # the caches the processes left match the logs
    assert cached["cases"] == 16 and len(cached["flagged"]) == sum(map(len, mine.values()))
