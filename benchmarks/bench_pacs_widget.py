"""``pacs_widget_open``: the Open from PACS widget's *Open series* click to the layer displayed.

A 100-slice 512×512 int16 CT series (quick: 20) in a local Orthanc (started here on loopback, as
the tests do). Ours: the widget's click (search done before, the series selected) until its layer
is in the viewer and a frame rendered (``viewer.screenshot``): ``pull_series_volumes`` on the
worker thread, the volume opened from the bytes received, the layer added, its ``image.open``
and PHI scan. Anchor: the widget's earlier path, the same pull into the cache (``core.pacs.pull``)
then ``viewer.open`` of the folder with this plugin's reader, to the rendered frame. Each run
starts from an empty cache and a new viewer (made outside the timing), alternating, median of 3
(quick: 2). Needs a display: ``xvfb-run -a python benchmarks/run.py --only pacs_widget_open``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from bench_pacs import served_ct


def _wait(app: Any, done: Any, what: str, limit_s: float = 300.0) -> None:
    t = time.perf_counter()
    while not done():
        app.processEvents()
        time.sleep(0.002)
        if time.perf_counter() - t > limit_s:
            raise RuntimeError(f"{what} did not finish within {limit_s:g} s")


def bench_pacs_widget_open(quick: bool = False) -> dict[str, Any]:
    """Median seconds from Open series to the layer displayed, widget vs pull + reader."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RuntimeError("pacs_widget_open needs a display: run under xvfb-run -a")
    # GUI imports here: a viewer is only made when this benchmark runs
    import napari
    from napari.qt import get_qapp

    from napari_clinlabel._widgets.pacs import PacsWidget
    from napari_clinlabel.core.pacs import cache_root, pull

    nz, reps = (20, 2) if quick else (100, 3)
    tmp = Path(tempfile.mkdtemp(prefix="clinlabel-bench-pacsw-"))
    scratch = {"CLINLABEL_WORKSPACE": str(tmp / "ws"), "CLINLABEL_KEYS": str(tmp / "keys")}
    try:
        with mock.patch.dict(os.environ, scratch), served_ct(tmp, nz) as (server, s, conn):
            app = get_qapp()

            def widget_open() -> float:
                shutil.rmtree(cache_root(), ignore_errors=True)
                viewer = napari.Viewer(show=True)
                w = PacsWidget(viewer)
                w._url.setText(server.url)
                w._user.setText(server.username)
                w._secret.setText(server.password)
                w._search_btn.click()
                _wait(app, lambda: w._worker is None and w._results.topLevelItemCount(), "search")
                w._results.setCurrentItem(w._results.topLevelItem(0).child(0))
                t = time.perf_counter()
                w._open_btn.click()
                _wait(app, lambda: bool(w.opened) and w._worker is None, "the pull")
                viewer.screenshot(canvas_only=True)
                dt = time.perf_counter() - t
                assert np.array_equal(np.asarray(w.opened[0].data), s.array)
                viewer.close()
                return dt

            def pull_then_read() -> float:
                shutil.rmtree(cache_root(), ignore_errors=True)
                viewer = napari.Viewer(show=True)
                app.processEvents()
                t = time.perf_counter()
                pull(conn, cache_root(), series_uid=s.series_uid)
                (layer,) = viewer.open(str(cache_root() / s.series_uid), plugin="napari-clinlabel")
                viewer.screenshot(canvas_only=True)
                dt = time.perf_counter() - t
                assert np.array_equal(np.asarray(layer.data), s.array)
                viewer.close()
                return dt

            widget_open()  # warm-up: imports, the server's caches (not counted)
            ours, anchor = [], []
            for i in range(reps):
                pair = [(ours, widget_open), (anchor, pull_then_read)]
                for out, fn in pair if i % 2 == 0 else pair[::-1]:
                    out.append(fn())
            return {
                "name": "pacs_widget_open",
                "ours_s": statistics.median(ours),
                "anchor_s": statistics.median(anchor),
                "budget": 1.0,
                "slices": nz,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


BENCHMARKS = [bench_pacs_widget_open]
