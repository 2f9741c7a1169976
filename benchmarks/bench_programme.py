"""dataset_status and next_case: the programme's two benchmarks (absolute figures, reported, never
asserted).

``dataset_status`` — ``clinlabel dataset status``'s work on 10 000 cases × 3 readers (1 000
quick); budget 2000 ms. Setup builds the dataset through the core calls the CLI makes
(owner-signed roster and manifest, ``case.add``, calibrations, ``case.assign``), with ``os.fsync``
skipped during setup only so building 40 000 records takes seconds; then a completed single read
(a small logged read with grades and ``image.done``) for one assignment in ten. Timed: :func:`status`
from opening the dataset (manifest signature, roster, folding the dataset log, the read states) to
the returned summary, median of 3, each as a fresh process would run it (in-process memory
cleared): ``value_ms`` with the on-disk caches in place (``.clinlabel-cache``: the dataset-log fold
and the read-state index, what every status after the first finds), ``no_cache_ms`` with the cache
folder removed first (the very first status: every read log parsed), ``warm_ms`` a long-lived
process (the Worklist widget) asking again.

``next_case`` — the Worklist widget's **Next case** to a displayed 512×512×300 int16 series
(64×256×256 quick): a NIfTI file as the case, the click's whole work (next_case over the dataset,
read the file, add the image layer, its ``image.open`` record in the reader's read log, the
reader's labels layer and its ``labels.create``) until the canvas rendered a frame
(``viewer.screenshot``); median of 3, each on a new case. Budget 3000 ms. Needs a display:
``xvfb-run -a python benchmarks/run.py --only next_case``.
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
        import shutil

        from napari_clinlabel.core.programme import design

        def fresh() -> None:  # what a new `clinlabel dataset status` process starts from
            ReadIndex._parsed.clear()
            design._SCALES.clear()

        times, warm, no_cache = [], [], []
        for _ in range(3):
            shutil.rmtree(ds_dir / ".clinlabel-cache", ignore_errors=True)
            fresh()
            t0 = time.perf_counter()
            status(Dataset(ds_dir))
            no_cache.append(time.perf_counter() - t0)
            fresh()
            t0 = time.perf_counter()
            s = status(Dataset(ds_dir))
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            status(Dataset(ds_dir))
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
        "no_cache_ms": statistics.median(no_cache) * 1000,
    }


def bench_next_case(quick: bool = False) -> dict[str, Any]:
    """Median ms from Next case to the series displayed, over 3 cases."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RuntimeError("next_case needs a display: run under xvfb-run -a")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    # setup-only and GUI imports: a viewer is only made when this benchmark runs
    import napari
    import numpy as np
    import SimpleITK as sitk
    from qtpy.QtWidgets import QApplication
    from support.programme_fixtures import USERS
    from support.trusted_roster import write_roster

    from napari_clinlabel._widgets.worklist import WorklistWidget
    from napari_clinlabel.core.programme.assign import assign
    from napari_clinlabel.core.programme.dataset import init_dataset
    from napari_clinlabel.core.programme.manifest import read_design

    shape = (64, 256, 256) if quick else (300, 512, 512)
    saved = {
        k: os.environ.get(k) for k in ("CLINLABEL_KEYS", "CLINLABEL_USER", "CLINLABEL_WORKSPACE")
    }
    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.update(CLINLABEL_KEYS=str(root / "keys"), CLINLABEL_USER="olga",
                          CLINLABEL_WORKSPACE=str(root / "ws"))  # fmt: skip
        try:
            ds_dir = root / "ds"
            write_roster(ds_dir, USERS, owner="olga")
            design = root / "design.toml"
            design.write_text('schemas = ["birads"]\n[guideline]\nversion = "1.0"\n')
            rng = np.random.default_rng(0)
            paths = []
            for i in range(3):
                arr = rng.integers(-1000, 1500, size=shape, dtype=np.int16)
                img = sitk.GetImageFromArray(arr)
                img.SetSpacing((0.7, 0.7, 1.25))
                paths.append(root / f"ct{i}.nii")
                sitk.WriteImage(img, str(paths[-1]))  # uncompressed: reading is disk speed
            ds = init_dataset(ds_dir, read_design(design))
            ds.add_cases(paths)
            ds.record_calibration("ann", {"passed": True})  # the only reader: all 3 cases
            assign(ds)
            os.environ["CLINLABEL_USER"] = "ann"
            viewer = napari.Viewer(show=False)
            try:
                w = WorklistWidget(viewer)
                w.open_dataset(ds_dir)
                times = []
                for _ in range(min(3, len(w.rows))):
                    t0 = time.perf_counter()
                    w._next.click()
                    app.processEvents()
                    viewer.screenshot(canvas_only=True, flash=False)
                    times.append(time.perf_counter() - t0)
                    assert w.image is not None and w.image.data.shape == shape
                    # the case counts as in progress (its log exists): the next click opens
                    # the following one only once this one is done or flagged
                    w._reason.setText("benchmark: move on")
                    w._cases.selectRow([r["case"] for r in w.rows].index(w.current["case"]))
                    w._flag.click()
                w.close()
            finally:
                viewer.close()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return {
        "name": "next_case",
        "value_ms": statistics.median(times) * 1000,
        "budget_ms": 3000,
        "samples": len(times),
        "size": "x".join(map(str, shape[::-1])),
    }


BENCHMARKS = [bench_dataset_status, bench_next_case]
