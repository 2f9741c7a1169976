"""Several processes adding cases and assigning at once keep one valid chain (checked with
``verify_log``) and never assign a case twice to one reader or beyond the design."""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter

from support.programme_fixtures import make_programme

from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.programme.assign import assign
from napari_clinlabel.core.programme.dataset import Dataset, init_dataset
from napari_clinlabel.core.programme.manifest import read_design


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
