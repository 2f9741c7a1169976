"""Reading aids: CT window presets on keys 1-8, orientation letters on the canvas, slice position
in mm and the voxel value under the cursor, and a logged distance/RECIST ruler.

Thin translator: the presets, letters and measurement records come from ``core``; the widget only
maps them onto napari (contrast limits, canvas text overlays, a Shapes layer of lines) and appends
each finished measurement to the image's log through the session.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.components.overlays import TextOverlay
from napari.layers import Image, Shapes
from qtpy.QtWidgets import QComboBox, QGridLayout, QLabel, QPushButton, QVBoxLayout

from napari_clinlabel._widgets._base import ImageWidget
from napari_clinlabel._widgets._common import OVERLAY
from napari_clinlabel.core.annotate.measurements import (
    distance_data,
    recist_data,
    record_measurement,
)
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.image.orientation import edge_letters
from napari_clinlabel.core.image.windowing import PRESETS, preset_limits

MEASURE_LAYER = "measurements"
_EDGES = {
    "left": "middle_left",
    "right": "middle_right",
    "top": "top_center",
    "bottom": "bottom_center",
}
_OVERLAY_KEY = "clinlabel_orient_"
CURSOR_OVERLAY = "clinlabel_cursor"
VIEW_OVERLAY = "clinlabel_mg_view"  # mammography: laterality and view from the header, "L CC"
KINDS = ("distance", "recist")
# napari world axes of the plugin's layers are LPS (z, y, x): named by the direction they grow to
_AXIS_NAMES = ("z (I→S)", "y (A→P)", "x (R→L)")


class ReadingAidsWidget(ImageWidget):
    """Window presets (keys 1-8 while this dock is in front), orientation letters, cursor HU, ruler."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer, keys=True)
        self._preset: str | None = None
        self._measure: Shapes | None = None
        self._pending: np.ndarray | None = None  # RECIST: the first line, waiting for its pair
        self.cursor_text = ""
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Image"))
        layout.addWidget(self._image_combo)
        grid = QGridLayout()
        for i, name in enumerate(PRESETS):
            level, width = PRESETS[name]
            btn = QPushButton(f"{i + 1} {name}")
            btn.setToolTip(f"L {level:g} / W {width:g} HU")
            btn.clicked.connect(lambda _=False, n=name: self.apply_preset(n))
            grid.addWidget(btn, i // 4, i % 4)
        layout.addLayout(grid)
        self._kind = QComboBox()
        self._kind.addItems(KINDS)
        self._kind.setToolTip(
            "distance: one line; recist: long axis, then perpendicular short axis"
        )
        ruler = QPushButton("Draw measurement")
        ruler.clicked.connect(self.start_measuring)
        layout.addWidget(self._kind)
        layout.addWidget(ruler)
        self._position = QLabel("")
        self._position.setWordWrap(True)
        layout.addWidget(self._position)
        self._viewer.dims.events.displayed.connect(self._update_letters)
        self._viewer.dims.events.point.connect(self._update_position)
        self._viewer.mouse_move_callbacks.append(self._on_mouse_move)
        self._viewer.layers.events.inserted.connect(self._update_units)
        self._refresh_images()
        self._update_units()

    # -- image ------------------------------------------------------------------------------
    def _accepts(self, layer: Image) -> bool:
        return not layer.rgb

    def _use_image(self, image: Image) -> None:
        keys = {str(i + 1): (lambda n=name: self.apply_preset(n)) for i, name in enumerate(PRESETS)}
        if self._keys is not None:
            self._keys.bind(keys, image)
        if self._viewer.dims.ndim == 3:  # sliders labelled by patient axis
            self._viewer.dims.axis_labels = _AXIS_NAMES
        self._update_letters()
        self._update_position()
        self._update_view_label()

    # -- header labels, scale bar ------------------------------------------------------------
    def view_label(self) -> str:
        """Laterality and view from the chosen image's header ("L CC"); empty when it has none."""
        meta = (self._image.metadata.get("clinlabel") or {}) if self._image is not None else {}
        return " ".join(str(meta[k]) for k in ("laterality", "view_position") if meta.get(k))

    def _update_view_label(self) -> None:
        overlays = self._viewer.canvas.overlays
        if VIEW_OVERLAY not in overlays:
            overlays[VIEW_OVERLAY] = TextOverlay(position="top_right", color="yellow", font_size=18)
        text = self.view_label()
        overlays[VIEW_OVERLAY].text = text
        overlays[VIEW_OVERLAY].visible = bool(text)

    def _update_units(self, _event: Any = None) -> None:
        """World units in mm when the images know their pixel size: napari's scale bar then
        reads mm on a CT and µm on a slide (it picks the prefix). Pixel grids stay in pixels."""
        images = [
            lay
            for lay in self._viewer.layers
            if isinstance(lay, Image) and (lay.metadata.get("clinlabel") or {}).get("geometry")
        ]
        if not images:
            return
        known = all(
            (lay.metadata.get("clinlabel") or {}).get("spacing_known", True) is not False
            for lay in images
        )
        if not known:
            return  # a pixel grid: napari's own pixel scale bar, no unit claimed
        for layer in self._viewer.layers:
            if any(str(u) != "millimeter" for u in layer.units):
                layer.units = ("mm",) * layer.ndim
        self._viewer.scale_bar.visible = True

    # -- window presets --------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        """Show the chosen image with the window ``name`` (display only: nothing is logged)."""
        if self._image is None:
            return
        lo, hi = preset_limits(name)
        rng = self._image.contrast_limits_range
        if lo < rng[0] or hi > rng[1]:  # widen only when needed: each set redraws the layer
            self._image.contrast_limits_range = (min(rng[0], lo), max(rng[1], hi))
        self._image.contrast_limits = (lo, hi)
        self._preset = name
        self._update_position()

    # -- orientation letters -----------------------------------------------------------------
    def letters(self) -> dict[str, str]:
        """Letters at the canvas edges for the axes displayed now (empty in 3D or without image)."""
        if self._image is None or self._viewer.dims.ndisplay != 2 or self._viewer.dims.ndim != 3:
            return {}
        displayed = tuple(self._viewer.dims.displayed[-2:])
        # the plugin's layers carry the geometry's direction in their affine, so napari's world
        # axes (z, y, x) are LPS (S, P, L) and the canvas edges are named from them
        return edge_letters((int(displayed[0]), int(displayed[1])))

    def _update_letters(self, _event: Any = None) -> None:
        overlays = self._viewer.canvas.overlays
        letters = self.letters()
        for edge, pos in _EDGES.items():
            key = _OVERLAY_KEY + edge
            if key not in overlays:
                overlays[key] = TextOverlay(position=pos, color="yellow", font_size=14)
            overlays[key].text = letters.get(edge, "")
            overlays[key].visible = bool(letters)

    # -- position and value ------------------------------------------------------------------
    def _update_position(self, _event: Any = None) -> None:
        dims = self._viewer.dims
        names = _AXIS_NAMES if dims.ndim == 3 else tuple(dims.axis_labels)
        parts = [f"{names[a]} {dims.point[a]:.1f} mm" for a in dims.not_displayed]
        if self._preset:
            level, width = PRESETS[self._preset]
            parts.append(f"window {self._preset} L{level:g} W{width:g}")
        if self.cursor_text:
            parts.append(self.cursor_text)
        text = " | ".join(parts)
        self._position.setText(text)
        overlays = self._viewer.canvas.overlays
        if CURSOR_OVERLAY not in overlays:
            overlays[CURSOR_OVERLAY] = TextOverlay(
                position="top_left", color="white", font_size=10, visible=True
            )
        overlays[CURSOR_OVERLAY].text = "\n".join(parts)  # short lines: clear of the "A"

    def value_at(self, world: Any) -> float | None:
        """The chosen image's voxel value at world point ``world`` (None outside the image)."""
        if self._image is None:
            return None
        data = self._image.data[0] if self._image.multiscale else self._image.data
        idx = np.round(np.asarray(self._image.world_to_data(world), float)).astype(int)
        if idx.shape[0] != data.ndim or np.any(idx < 0) or np.any(idx >= data.shape):
            return None
        return float(np.asarray(data[tuple(idx)]))

    def _on_mouse_move(self, viewer: Any, event: Any) -> None:
        """Whatever layer is active (labels too): the image's value under the cursor."""
        value = self.value_at(event.position)
        self.cursor_text = "" if value is None else f"{value:.0f} HU"
        self._update_position()

    # -- measurements -------------------------------------------------------------------------
    def start_measuring(self) -> Shapes:
        """Select (creating once) the measurements layer in line mode."""
        layer = self._measure
        if layer is None or layer not in self._viewer.layers:
            ndim = max(self._viewer.dims.ndim, 2)
            layer = Shapes(
                ndim=ndim,
                name=MEASURE_LAYER,
                shape_type="line",
                edge_color="cyan",
                edge_width=1.0,
                metadata={OVERLAY: True},
                units=self._image.units if self._image is not None else None,
            )
            layer.events.data.connect(self._on_shapes_data)
            self._viewer.add_layer(layer)
            self._measure = layer
        self._viewer.layers.selection.active = layer
        layer.mode = "add_line"
        return layer

    def _slice(self) -> dict[str, int] | None:
        dims = self._viewer.dims
        if self._image is None or not dims.not_displayed:
            return None
        axis = int(dims.not_displayed[-1])
        idx = np.asarray(self._image.world_to_data(dims.point), float)
        return {"axis": axis, "index": int(np.round(idx[axis]))}

    def _on_shapes_data(self, event: Any) -> None:
        if getattr(event, "action", None) != "added" or self._image is None:
            return
        layer = self._measure
        line = np.asarray(layer.data[-1], float)
        if line.shape[0] != 2:
            return
        known = (self._image.metadata.get("clinlabel") or {}).get(
            "spacing_known", True
        ) is not False
        try:
            if self._kind.currentText() == "recist":
                if self._pending is None:
                    self._pending = line
                    return
                first, self._pending = self._pending, None
                data = recist_data(first, line, known, self._slice())
            else:
                data = distance_data(line, known, self._slice())
            record_measurement(self._session.log_for(self._image), data)
        except ClinlabelError as exc:
            layer.selected_data = {len(layer.data) - 1}
            layer.remove_selected()
            self._session.report_error(exc)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Stop following the mouse and the dims."""
        if self._on_mouse_move in self._viewer.mouse_move_callbacks:
            self._viewer.mouse_move_callbacks.remove(self._on_mouse_move)
        self._viewer.dims.events.displayed.disconnect(self._update_letters)
        self._viewer.dims.events.point.disconnect(self._update_position)
        self._viewer.layers.events.inserted.disconnect(self._update_units)
        super().closeEvent(event)
