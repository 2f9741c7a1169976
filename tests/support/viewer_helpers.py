"""Helpers for widget tests: a CT phantom image layer and real mouse drags through the canvas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from vispy.app.canvas import MouseEvent

from napari_clinlabel.core.image.samples import ct_phantom

SHAPE = (12, 64, 64)


def add_ct(viewer: Any, folder: Path | None, shape: tuple[int, int, int] = SHAPE) -> Any:
    """Add a small CT phantom as the reader would (clinlabel metadata, geometry affine)."""
    vol = ct_phantom(shape=shape)
    if folder is not None:
        vol.meta["source_path"] = str(folder / "ct.nii.gz")
    try:
        from napari_clinlabel.glue.layers import volume_to_layer_data

        data, kwargs, _ = volume_to_layer_data(vol)
        kwargs.pop("name")
    except ImportError:  # engineer A's module not there yet: the same contract by hand
        meta = {
            "geometry": vol.geometry.to_dict(),
            "shape": list(vol.array.shape),
            "dtype": vol.array.dtype.name,
            "modality": vol.meta.get("modality"),
            "series_uid": vol.series_uid,
            "sha256": vol.sha256,
            "source_path": vol.meta.get("source_path"),
        }
        data = vol.array
        kwargs = {"affine": vol.geometry.napari_affine(), "metadata": {"clinlabel": meta}}
    return viewer.add_image(data, name="CT", **kwargs)


def canvas_pos(viewer: Any, layer: Any, index_zyx: tuple[float, float, float]) -> np.ndarray:
    """Canvas pixel of a layer voxel on the displayed slice (2D view)."""
    world = np.asarray(layer.data_to_world(index_zyx))
    dims = list(viewer.dims.displayed)
    scene = viewer.window._qt_viewer.canvas.view.scene.transform
    return np.round(scene.map([world[dims[1]], world[dims[0]]])[:2]).astype(int)


def show_slice(viewer: Any, layer: Any, z: int) -> None:
    """Show slice ``z`` of ``layer`` (through its affine) in a 2D view."""
    viewer.dims.ndisplay = 2
    viewer.dims.set_point(0, float(np.asarray(layer.data_to_world((z, 0, 0)))[0]))


def canvas_drag(qtbot: Any, canvas: Any, p0: np.ndarray, p1: np.ndarray, steps: int = 6) -> None:
    """Press at canvas pixel ``p0``, move in ``steps`` to ``p1``, release: one stroke through a
    vispy scene canvas (``qt_viewer.canvas._scene_canvas``), as a user's mouse makes it."""
    press = MouseEvent(pos=p0, type="mouse_press", button=1)
    canvas.events.mouse_press(pos=p0, modifiers=(), button=1)
    for t in np.linspace(0.0, 1.0, steps):
        qtbot.wait(8)  # napari throttles mouse moves (5 ms)
        pos = np.round(p0 + t * (p1 - p0)).astype(int)
        canvas.events.mouse_move(pos=pos, modifiers=(), button=1, press_event=press)
    qtbot.wait(8)
    canvas.events.mouse_release(pos=p1, modifiers=(), button=1)


def drag(
    qtbot: Any, viewer: Any, layer: Any, z: int, start: tuple, end: tuple, steps: int = 6
) -> None:
    """Press at voxel ``(z, *start)``, move to ``(z, *end)``, release: one stroke, as a user does."""
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    p0 = canvas_pos(viewer, layer, (z, *start))
    p1 = canvas_pos(viewer, layer, (z, *end))
    canvas_drag(qtbot, canvas, p0, p1, steps)


def click(qtbot: Any, viewer: Any, layer: Any, z: int, at: tuple) -> None:
    """One click (press and release) at voxel ``(z, *at)``."""
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    p = canvas_pos(viewer, layer, (z, *at))
    canvas.events.mouse_press(pos=p, modifiers=(), button=1)
    qtbot.wait(8)
    canvas.events.mouse_release(pos=p, modifiers=(), button=1)


def layer_drag(viewer: Any, layer: Any, start: tuple, end: tuple) -> None:
    """Press at ``start``, move to ``end``, release (layer data coordinates) through the layer's
    own mouse callbacks, as napari delivers a drag; a 2D layer beside a volume sits on the
    viewer's last axes."""
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    lead = viewer.dims.ndim - layer.ndim

    def ev(kind: str, pos: Any, dragging: bool) -> Any:
        world = tuple(viewer.dims.point[:lead]) + tuple(float(v) for v in layer.data_to_world(pos))
        return read_only_mouse_event(
            type=kind, is_dragging=dragging, position=world,
            dims_displayed=list(viewer.dims.displayed),
        )  # fmt: skip

    mid = tuple((np.asarray(start) + np.asarray(end)) / 2)
    mouse_press_callbacks(layer, ev("mouse_press", start, False))
    mouse_move_callbacks(layer, ev("mouse_move", start, True))
    mouse_move_callbacks(layer, ev("mouse_move", mid, True))
    mouse_move_callbacks(layer, ev("mouse_move", end, True))
    mouse_release_callbacks(layer, ev("mouse_release", end, True))


def box_records(log_path: Path) -> list[dict]:
    """The ``box.*`` records of a log, in order."""
    from napari_clinlabel.core.log.audit_log import iter_records

    return [r for r in iter_records(log_path) if r["action"].startswith("box.")]
