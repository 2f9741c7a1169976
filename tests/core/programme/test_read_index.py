"""The on-disk caches behind ``dataset status`` are caches, never the source of truth: a fresh
process parses only logs that changed, a stale or forged entry is parsed again from its log, a
garbage cache file is ignored; a corrupt read log is reported on one line and counted while the
rest of the status proceeds."""

from __future__ import annotations

import json

from support.programme_fixtures import make_programme, write_read

from napari_clinlabel.cli import main
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.programme.assign import assign
from napari_clinlabel.core.programme.dataset import Dataset, init_dataset, state_from_records
from napari_clinlabel.core.programme.manifest import read_design
from napari_clinlabel.core.programme.reads import COMPLETED, ReadIndex
from napari_clinlabel.core.programme.status import status


def _programme(tmp_path, monkeypatch, n=6):
    root, cases, _ = make_programme(tmp_path, n_cases=n, n_honeypots=0)
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    ds = init_dataset(root, read_design(tmp_path / "design.toml"))
    ds.add_cases(cases)
    for r in ("ann", "ben"):
        ds.record_calibration(r, {"passed": True})
    new, _ = assign(ds)
    for a in new[:3]:
        write_read(ds.read_log(a["case"], a["reader"]), a["reader"], a["case"], (2, 2), "2")
    return ds, new


def _fresh_index(ds):
    ReadIndex._parsed.clear()  # as a new process
    return ReadIndex(ds.folder / "reads")


def test_read_index_parses_only_changed_logs(tmp_path, monkeypatch):
    ds, new = _programme(tmp_path, monkeypatch)
    first = status(ds)
    cache = ds.folder / ".clinlabel-cache" / "reads.json"
    assert cache.is_file()
    idx = _fresh_index(ds)
    names = [ds.read_name(a["case"], a["reader"]) for a in new[:3]]
    assert [idx.state(n).status for n in names] == [COMPLETED] * 3
    assert idx.parsed == 0  # all three from the on-disk index
    # one read changes (a later grade reopens it): only that log is parsed again
    a = new[0]
    write_read(ds.read_log(a["case"], a["reader"]), a["reader"], a["case"], (2, 2), "3", done=False)
    idx = _fresh_index(ds)
    assert [idx.state(n).status for n in names] == ["in progress", COMPLETED, COMPLETED]
    assert idx.parsed == 1
    idx.save()
    # a forged entry (right size and mtime, wrong tail digest) is not believed
    raw = json.loads(cache.read_text())
    raw["entries"][names[1]][2] = "0" * 64
    raw["entries"][names[1]][3][0] = "not started"
    cache.write_text(json.dumps(raw))
    idx = _fresh_index(ds)
    assert idx.state(names[1]).status == COMPLETED and idx.parsed == 1
    cache.write_bytes(b"\x00garbage")  # an unreadable cache is ignored
    idx = _fresh_index(ds)
    assert [idx.state(n).status for n in names] == ["in progress", COMPLETED, COMPLETED]
    assert idx.parsed == 3
    ReadIndex._parsed.clear()
    again = status(Dataset(ds.folder))
    assert again["readers"]["ann"]["assigned"] == first["readers"]["ann"]["assigned"]


def test_dataset_state_cache_follows_the_log(tmp_path, monkeypatch):
    ds, _ = _programme(tmp_path, monkeypatch)
    full = state_from_records(iter_records(ds.log_path))  # the log itself, no cache
    assert Dataset(ds.folder).state().to_json() == full.to_json()
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    Dataset(ds.folder).flag(next(iter(full.assignments))["case"], "wrong side marker")
    full = state_from_records(iter_records(ds.log_path))
    cached = Dataset(ds.folder).state()  # continues the cached fold with the one new record
    assert cached.to_json() == full.to_json() and len(cached.flags) == 1
    (ds.folder / ".clinlabel-cache" / "state.json").write_text('{"format": "x"}')
    assert Dataset(ds.folder).state().to_json() == full.to_json()
    blob = json.loads((ds.folder / ".clinlabel-cache" / "state.json").read_text())
    blob["offset"] = 10  # a cache that does not match the log's bytes: folded from the start
    (ds.folder / ".clinlabel-cache" / "state.json").write_text(json.dumps(blob))
    assert Dataset(ds.folder).state().to_json() == full.to_json()


def test_a_corrupt_read_log_is_one_line_and_counted(tmp_path, monkeypatch, capsys):
    ds, new = _programme(tmp_path, monkeypatch)
    bad = new[1]
    path = ds.read_log(bad["case"], bad["reader"])
    path.write_bytes(path.read_bytes()[:40] + b"\n{not json\n")
    ReadIndex._parsed.clear()
    s = status(Dataset(ds.folder))
    assert [(u["case"], u["reader"]) for u in s["unreadable"]] == [(bad["case"], bad["reader"])]
    assert s["readers"][bad["reader"]]["unreadable"] == 1
    assert sum(r["completed"] for r in s["readers"].values()) == 2  # the other two still count
    ReadIndex._parsed.clear()
    assert main(["dataset", "status", str(ds.folder)]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "UNREADABLE" in ln]
    assert len(lines) == 1 and f"{bad['case']}__{bad['reader']}" in lines[0]
    assert "1 read log(s) unreadable" in out


def test_a_forged_state_cache_never_decides_an_assignment(tmp_path, monkeypatch):
    ds, new = _programme(tmp_path, monkeypatch)
    Dataset(ds.folder).state()  # the cache is written
    cache = ds.folder / ".clinlabel-cache" / "state.json"
    blob = json.loads(cache.read_text())
    blob["state"]["assignments"] = []  # matches the log's bytes (offset, tail) but lies
    cache.write_text(json.dumps(blob))
    assert Dataset(ds.folder).state().assignments == []  # a display may be misled …
    assert assign(Dataset(ds.folder)) == ([], [])  # … what is recorded is decided on the log
    logged = [r for r in iter_records(ds.log_path) if r["action"] == "case.assign"]
    assert len(logged) == len(new)
