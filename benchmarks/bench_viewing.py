"""window_preset: a window preset switch plus a crosshair move, to the frame rendered;
linked_view_stroke: a brush stroke in the sagittal linked view, to its one log record.

window_preset, an absolute figure (reported, never asserted; budget 30 ms): a napari viewer
(``napari.Viewer(show=False)``) holds a 300×512×512 int16 CT-like image (64×256×256 quick) and
the Reading aids widget. Each sample applies the next window preset (what keys 1-8 call), moves
the slice to another position (``dims.set_point`` on the slice axis, as a slider or crosshair
move does) and reports the voxel value under a new cursor position (the widget's mouse-move
callback); the clock stops after Qt processed the events and the canvas rendered a frame
(``viewer.screenshot``). Reported: the median (``value_ms``), the 90th percentile and the part
before rendering.

linked_view_stroke, an absolute figure (reported, never asserted; budget 50 ms): the same
viewer with a managed uint8 labels layer (the session's recorder) and the Linked views widget.
Each sample moves the crosshair to another sagittal plane (not timed), then drags a brush
(size 10) 24 voxels down and 24 across the sagittal plane through the side layer's own mouse
callbacks (press, 8 moves, release: what napari delivers from the canvas); every view was
drawn before the stroke, as on screen. The clock stops once the stroke is one ``label.paint``
record in the fsynced log and the other views show it (``flush_refresh``, what Qt's idle timer
runs). Reported: the median (``value_ms``), p90, its parts ``brush_ms`` (napari's brush over
the moves) and ``commit_ms`` (release: the record, the other views' partial redraw), and
separately the render of the sagittal canvas (``render_ms``, its ``screenshot``).

Needs a display and OpenGL: ``xvfb-run -a python benchmarks/run.py --only window_preset``.
"""

from __future__ import annotations

import statistics
import time
from functools import partial
from typing import Any

import numpy as np
from _frame_timing import FrameTimer, gui_workspace, ms_summary

SAMPLES = 40


def bench_window_preset(quick: bool) -> dict:
    """Preset switch + slice/cursor move → rendered; median over ``SAMPLES``."""
    shape = (64, 256, 256) if quick else (300, 512, 512)
    with gui_workspace("window_preset"):
        return _measure(shape)


class _Move:
    """What napari hands a mouse-move callback: the cursor's world position."""

    def __init__(self, position: Any) -> None:
        self.position = tuple(float(v) for v in position)


def _preset_and_move(viewer: Any, widget: Any, preset: str, world: Any) -> None:
    """The timed action: a window preset (what keys 1-8 call), the slice moved to ``world``'s
    and the value under the cursor there reported."""
    widget.apply_preset(preset)
    viewer.dims.set_point(0, float(world[0]))
    widget._on_mouse_move(viewer, _Move(world))


def _ct_layer_data(shape: tuple[int, int, int]) -> tuple[Any, dict]:
    """A CT-like int16 volume of ``shape`` (seeded) as an image layer's data and kwargs."""
    from napari_clinlabel.core.image.geometry import Geometry
    from napari_clinlabel.core.image.volume import Volume
    from napari_clinlabel.glue.layers import volume_to_layer_data

    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 1500, size=shape, dtype=np.int16)
    geom = Geometry((0.7, 0.7, 1.25), (-180.0, -180.0, -300.0), tuple(np.eye(3).ravel()))
    data, kwargs, _ = volume_to_layer_data(Volume(arr, geom, {"modality": "CT"}))
    return data, kwargs


def _measure(shape: tuple[int, int, int]) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_clinlabel._widgets.viewing import ReadingAidsWidget
    from napari_clinlabel.core.image.windowing import PRESETS

    app = QApplication.instance() or QApplication([])
    data, kwargs = _ct_layer_data(shape)
    viewer = napari.Viewer(show=False)
    try:
        image = viewer.add_image(data, **kwargs)
        widget = ReadingAidsWidget(viewer)
        app.processEvents()
        viewer.screenshot(canvas_only=True, flash=False)
        names = list(PRESETS)
        timer = FrameTimer(app, lambda: viewer.screenshot(canvas_only=True, flash=False))
        for i in range(SAMPLES):
            z = (i * 7) % shape[0]
            world = image.data_to_world((z, (i * 13) % shape[1], (i * 29) % shape[2]))
            timer.sample(partial(_preset_and_move, viewer, widget, names[i % len(names)], world))
        widget.close()
    finally:
        viewer.close()
    return {
        "name": "window_preset",
        **timer.summary(),
        "budget_ms": 30,
        "samples": SAMPLES,
        "size": "x".join(map(str, shape)),
    }


def bench_linked_view_stroke(quick: bool) -> dict:
    """A brush stroke in the sagittal linked view → one log record, views refreshed; median."""
    shape = (64, 256, 256) if quick else (300, 512, 512)
    with gui_workspace("linked_view_stroke"):
        return _measure_stroke(shape)


STROKES = 20


def _measure_stroke(shape: tuple[int, int, int]) -> dict:
    import napari
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )
    from qtpy.QtWidgets import QApplication

    from napari_clinlabel._widgets.linked_views import LinkedViewsWidget
    from napari_clinlabel.core.log.audit_log import iter_records
    from napari_clinlabel.glue.session import get_session

    app = QApplication.instance() or QApplication([])
    data, kwargs = _ct_layer_data(shape)
    viewer = napari.Viewer(show=False)
    try:
        image = viewer.add_image(data, **kwargs)
        session = get_session(viewer)
        labels = session.labels_layer_for(image)
        log = session.log_for(image)
        widget = LinkedViewsWidget(viewer)
        viewer.layers.selection.active = labels
        labels.mode = "paint"
        labels.brush_size = 10
        labels.selected_label = 1
        sag = widget.side_layer("sagittal", labels)
        model = widget.models["sagittal"]
        app.processEvents()
        widget.qt_viewers["sagittal"].screenshot(flash=False)

        def event(kind: str, index: tuple, dragging: bool) -> object:
            return read_only_mouse_event(
                type=kind,
                is_dragging=dragging,
                position=tuple(float(v) for v in image.data_to_world(index)),
                dims_displayed=list(model.dims.displayed),
                view_direction=None,
            )

        total, brush, render = [], [], []
        for i in range(STROKES):
            x = 20 + (i * 23) % (shape[2] - 40)
            widget.set_crosshair(image.data_to_world((shape[0] // 2, shape[1] // 2, x)))
            app.processEvents()
            for qt_viewer in widget.qt_viewers.values():  # drawn before the stroke, as on screen
                qt_viewer.screenshot(flash=False)
            viewer.screenshot(canvas_only=True, flash=False)
            z0, y0 = shape[0] // 2 - 12, shape[1] // 2 - 12  # a 24×24-voxel diagonal drag
            z1, y1 = z0 + 24, y0 + 24
            path = [
                (int(z0 + t * (z1 - z0)), int(y0 + t * (y1 - y0)), x) for t in np.linspace(0, 1, 8)
            ]
            t0 = time.perf_counter()
            mouse_press_callbacks(sag, event("mouse_press", path[0], False))
            for p in path:
                mouse_move_callbacks(sag, event("mouse_move", p, True))
            tm = time.perf_counter()
            mouse_release_callbacks(sag, event("mouse_release", path[-1], True))
            widget.flush_refresh()
            t1 = time.perf_counter()
            widget.qt_viewers["sagittal"].screenshot(flash=False)
            t2 = time.perf_counter()
            total.append((t1 - t0) * 1e3)
            brush.append((tm - t0) * 1e3)
            render.append((t2 - t1) * 1e3)
        records = sum(1 for r in iter_records(log.path) if r["action"] == "label.paint")
        widget.close()
    finally:
        viewer.close()
    return {
        "name": "linked_view_stroke",
        **ms_summary(total),
        "budget_ms": 50,
        "brush_ms": statistics.median(brush),
        "commit_ms": statistics.median(np.subtract(total, brush).tolist()),
        "render_ms": statistics.median(render),
        "records": records,
        "strokes": STROKES,
        "size": "x".join(map(str, shape)),
    }


BENCHMARKS = [bench_window_preset, bench_linked_view_stroke]
