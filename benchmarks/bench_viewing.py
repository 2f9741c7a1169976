"""window_preset: a window preset switch plus a crosshair move, to the frame rendered.

One benchmark, an absolute figure (reported, never asserted; budget 30 ms): a napari viewer
(``napari.Viewer(show=False)``) holds a 300×512×512 int16 CT-like image (64×256×256 quick) and
the Reading aids widget. Each sample applies the next window preset (what keys 1-8 call), moves
the slice to another position (``dims.set_point`` on the slice axis, as a slider or crosshair
move does) and reports the voxel value under a new cursor position (the widget's mouse-move
callback); the clock stops after Qt processed the events and the canvas rendered a frame
(``viewer.screenshot``). Reported: the median (``value_ms``), the 90th percentile and the part
before rendering.

Needs a display and OpenGL: ``xvfb-run -a python benchmarks/run.py --only window_preset``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

import numpy as np

SAMPLES = 40


def bench_window_preset(quick: bool) -> dict:
    """Preset switch + slice/cursor move → rendered; median over ``SAMPLES``."""
    shape = (64, 256, 256) if quick else (300, 512, 512)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RuntimeError("window_preset needs a display: run under xvfb-run -a")
    old_ws = os.environ.get("CLINLABEL_WORKSPACE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CLINLABEL_WORKSPACE"] = tmp
        try:
            return _measure(shape)
        finally:
            if old_ws is None:
                os.environ.pop("CLINLABEL_WORKSPACE", None)
            else:
                os.environ["CLINLABEL_WORKSPACE"] = old_ws


class _Move:
    """What napari hands a mouse-move callback: the cursor's world position."""

    def __init__(self, position: Any) -> None:
        self.position = tuple(float(v) for v in position)


def _measure(shape: tuple[int, int, int]) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_clinlabel._widgets.viewing import ReadingAidsWidget
    from napari_clinlabel.core.image.geometry import Geometry
    from napari_clinlabel.core.image.volume import Volume
    from napari_clinlabel.core.image.windowing import PRESETS
    from napari_clinlabel.glue.layers import volume_to_layer_data

    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 1500, size=shape, dtype=np.int16)
    geom = Geometry((0.7, 0.7, 1.25), (-180.0, -180.0, -300.0), tuple(np.eye(3).ravel()))
    viewer = napari.Viewer(show=False)
    try:
        data, kwargs, _ = volume_to_layer_data(Volume(arr, geom, {"modality": "CT"}))
        image = viewer.add_image(data, **kwargs)
        widget = ReadingAidsWidget(viewer)
        app.processEvents()
        viewer.screenshot(canvas_only=True, flash=False)
        names = list(PRESETS)
        total, before = [], []
        for i in range(SAMPLES):
            z = (i * 7) % shape[0]
            world = image.data_to_world((z, (i * 13) % shape[1], (i * 29) % shape[2]))
            t0 = time.perf_counter()
            widget.apply_preset(names[i % len(names)])
            viewer.dims.set_point(0, float(world[0]))
            widget._on_mouse_move(viewer, _Move(world))
            app.processEvents()
            t1 = time.perf_counter()
            viewer.screenshot(canvas_only=True, flash=False)
            t2 = time.perf_counter()
            total.append((t2 - t0) * 1e3)
            before.append((t1 - t0) * 1e3)
        widget.close()
    finally:
        viewer.close()
    return {
        "name": "window_preset",
        "value_ms": statistics.median(total),
        "budget_ms": 30,
        "p90_ms": float(np.percentile(total, 90)),
        "update_ms": statistics.median(before),
        "samples": SAMPLES,
        "size": "x".join(map(str, shape)),
    }


BENCHMARKS = [bench_window_preset]
