"""dataset_status: ``clinlabel dataset status``'s work on 10 000 cases × 3 readers (1 000 quick).

An absolute figure (reported, never asserted; budget 2000 ms). Setup builds the dataset through
the core calls the CLI makes (owner-signed roster and manifest, ``case.add``, calibrations,
``case.assign``), with ``os.fsync`` skipped during setup only so building 40 000 records takes
seconds; then a completed single read (a small logged read with grades and ``image.done``) for one
assignment in ten. Timed: :func:`status` from opening the dataset (manifest signature, roster,
folding the dataset log, parsing every read log: cold, as a fresh CLI process) to the
returned summary, median of 3; ``warm_ms``: the same in a process that looked before (reads
unchanged since are not parsed again).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def bench_dataset_status(quick: bool = False) -> dict[str, Any]:
    """Median ms of a full status on n cases read by 3 readers each."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    # setup-only imports: the test helpers build the roster and reads the way the tests do
    from support.programme_fixtures import write_read
    from support.trusted_roster import write_roster

    from napari_clinlabel.core.programme.dataset import Dataset, init_dataset
    from napari_clinlabel.core.programme.manifest import read_design
    from napari_clinlabel.core.programme.reads import ReadIndex
    from napari_clinlabel.core.programme.status import status

    n = 1000 if quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["CLINLABEL_KEYS"] = str(root / "keys")
        os.environ["CLINLABEL_USER"] = "olga"
        users = {"olga": ["reviewer"], "ann": ["annotator"], "ben": ["annotator"],
                 "cat": ["annotator"], "adj": ["adjudicator"]}  # fmt: skip
        ds_dir = root / "ds"
        write_roster(ds_dir, users, owner="olga")
        design = root / "design.toml"
        design.write_text('schemas = ["birads"]\n[guideline]\nversion = "1.0"\n[reading]\n'
                          'readers_per_case = 3\n[[reading.double_read]]\nname = "birads>=4"\n'
                          'grade = "assessment"\nat_least = "4A"\nrate = 1.0\n')  # fmt: skip
        images = root / "images"
        images.mkdir()
        paths = []
        for i in range(n):
            p = images / f"c{i:05d}.nii.gz"
            p.write_bytes(b"x")
            paths.append(p)
        real_fsync = os.fsync
        os.fsync = lambda fd: None  # setup only: 40 000 records without waiting on the disk
        try:
            ds = init_dataset(ds_dir, read_design(design))
            ds.add_cases(paths)
            for r in ("ann", "ben", "cat"):
                ds.record_calibration(r, {"passed": True})
            from napari_clinlabel.core.programme.assign import assign

            assign(ds)
            for a in ds.state().assignments[::10]:
                write_read(ds.read_log(a["case"], a["reader"]), a["reader"], a["case"], (2, 2), "2")
        finally:
            os.fsync = real_fsync
        times, warm = [], []
        for _ in range(3):
            ReadIndex._parsed.clear()  # cold, as a fresh `clinlabel dataset status` process is
            t0 = time.perf_counter()
            s = status(Dataset(ds_dir))
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            status(Dataset(ds_dir))  # warm: a long-lived process (a widget) re-reading status
            warm.append(time.perf_counter() - t0)
        assert s["assignments"] == 3 * n
    return {
        "name": "dataset_status",
        "value_ms": statistics.median(times) * 1000,
        "budget_ms": 2000,
        "cases": n,
        "readers": 3,
        "completed_reads": len(range(0, 3 * n, 10)),
        "warm_ms": statistics.median(warm) * 1000,
    }


BENCHMARKS = [bench_dataset_status]
