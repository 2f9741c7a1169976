"""Linked coronal and sagittal views beside napari's own (axial) view, with a crosshair.

napari core has one canvas per window (napari #662); ``napari-orthogonal-views`` copies the
layers in a way that bypasses the plugin's :class:`LabelRecorder`. Here each side view is a
napari ``QtViewer`` of its own ``ViewerModel`` whose layers are *linked copies*: they hold the
very same numpy array as the main viewer's layer, so there is one label array and one log.

Painting in a side view: napari's brush writes into the shared array through the side layer
and commits one history item; that item is handed to the main layer's ``paint`` event, which is
what the recorder listens to, so one stroke is one ``label.paint`` record, exactly as if it had
been painted in the main view. Undo/redo in a side view call the main layer's (the recorder's).

Crosshair: all views share one world point (``dims.point``). A click (no drag, in pan/zoom
mode) or a Shift+move in any view sets it; each view then shows the slice through it and two
lines crossing at it. napari 0.9 has no public way to draw lines on a canvas other than a layer
(no hidden layers: napari #3691, #5764; custom overlays need its private vispy mapping), so the
main view's crosshair is a Shapes layer named ``crosshair (linked views)`` that is inert: locked
against deletion (napari's ``LayerLock.DELETION``: the delete button refuses it, its lock shows
in the layer list), never editable (no shape tool can be chosen on it) and never made the
active layer by this widget. The side views' crosshairs live in their own viewer models, listed
nowhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.components import ViewerModel
from napari.components.overlays import TextOverlay
from napari.layers import Image, Labels, Layer, LayerLock, Shapes
from napari.qt import QtViewer
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from napari_clinlabel._widgets._common import OVERLAY, unwrap_viewer
from napari_clinlabel.core.image.orientation import edge_letters
from napari_clinlabel.glue.label_recorder import _regions_of  # the recorder's reading of an item
from napari_clinlabel.glue.layers import LABELS_META
from napari_clinlabel.glue.session import get_session

CROSSHAIR = "crosshair"
CROSSHAIR_NAME = f"{CROSSHAIR} (linked views)"  # what it is, in the layer list
LINKED = "clinlabel_linked"  # metadata key of a side view's linked copy: the view's name
# dims.order of each side view: its last two axes are shown (vertical, horizontal); world axes
# are LPS (z=S, y=P, x=L), shown superior up (camera "up"), patient's right on the screen's left
VIEWS: dict[str, tuple[int, int, int]] = {"coronal": (1, 0, 2), "sagittal": (2, 0, 1)}
_IMAGE_ATTRS = (
    "contrast_limits_range",
    "contrast_limits",
    "colormap",
    "gamma",
    "opacity",
    "visible",
)
_LABEL_ATTRS = ("mode", "selected_label", "brush_size", "n_edit_dimensions", "opacity", "visible")
_LABEL_BACK = ("mode", "selected_label", "brush_size")  # keys typed in a side view come back
_EDGES = {
    "left": "middle_left",
    "right": "middle_right",
    "top": "top_center",
    "bottom": "bottom_center",
}


class _Link:
    """A main-viewer layer and its copies in the side views (same data array)."""

    def __init__(self, main: Layer) -> None:
        self.main = main
        self.sides: dict[str, Layer] = {}
        self.hooks: list[tuple[Any, Any]] = []  # (emitter, callback) to disconnect on unlink

    def connect(self, emitter: Any, callback: Any) -> None:
        emitter.connect(callback)
        self.hooks.append((emitter, callback))

    def disconnect(self) -> None:
        for emitter, callback in self.hooks:
            emitter.disconnect(callback)
        self.hooks.clear()


class LinkedViewsWidget(QWidget):
    """Coronal and sagittal views linked to the main (axial) view by a shared crosshair."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self._viewer = unwrap_viewer(napari_viewer)
        self.models: dict[str, ViewerModel] = {}
        self.qt_viewers: dict[str, QtViewer] = {}
        self._links: dict[int, _Link] = {}  # id(main layer) -> link
        self._crosshairs: dict[int, Shapes] = {}  # id(viewer model) -> its crosshair layer
        self._syncing = False
        # id(layer) -> (layer, regions to redraw or None for all), redrawn when Qt is idle
        self._dirty_layers: dict[int, tuple[Layer, list[tuple[slice, ...]] | None]] = {}
        self._from_side = False
        self._refreshing = False
        self._adding = False
        self._point_hooks: list[tuple[Any, Any]] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush_refresh)
        layout = QVBoxLayout(self)
        hint = QLabel("Click (pan/zoom mode) or Shift+move: crosshair. Paint in any view.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        splitter = QSplitter()
        splitter.setOrientation(Qt.Orientation.Vertical)  # one view above the other in the dock
        layout.addWidget(splitter)
        for name in VIEWS:
            model = ViewerModel(title=name)
            qt_viewer = QtViewer(model)
            qt_viewer.setMinimumSize(260, 260)  # a readable view even in a crowded dock area
            self.models[name] = model
            self.qt_viewers[name] = qt_viewer
            splitter.addWidget(qt_viewer)
            self._hook_viewer(model)
        self._hook_viewer(self._viewer)
        for layer in list(self._viewer.layers):
            self._link(layer)
        for name, order in VIEWS.items():
            self._set_view(name, order)
        layers = self._viewer.layers
        for emitter, callback in (
            (get_session(self._viewer).record_appended, self._on_record),
            (layers.events.inserted, self._on_inserted),
            (layers.events.removed, self._on_removed),
            (layers.selection.events.active, self._follow_active),
        ):
            emitter.connect(callback)
            self._point_hooks.append((emitter, callback))
        self._sync_point(self._viewer)
        self._follow_active()
        # napari closes the window without closing its docks: unhook when Qt deletes this
        self.destroyed.connect(lambda *_, w=self: w._teardown(touch_layers=False))

    # -- public --------------------------------------------------------------------------------
    def viewers(self) -> list[Any]:
        """The main viewer and the side view models, main first."""
        return [self._viewer, *self.models.values()]

    def set_crosshair(self, world: Any) -> None:
        """Move the crosshair (every view's ``dims.point``) to world point ``world``."""
        dims = self._viewer.dims
        point = [float(v) for v in world][-dims.ndim :]
        dims.set_point(range(dims.ndim), point)  # the point event syncs the other views

    def side_layer(self, view: str, main_layer: Layer) -> Layer | None:
        """The copy of ``main_layer`` shown in side view ``view`` (None when not linked)."""
        link = self._links.get(id(main_layer))
        return None if link is None else link.sides.get(view)

    def flush_refresh(self) -> None:
        """Redraw the layers whose shared data changed elsewhere (queued until Qt is idle)."""
        self._timer.stop()
        queued, self._dirty_layers = list(self._dirty_layers.values()), {}
        self._refreshing = True
        try:
            for layer, regions in queued:
                if regions is None or not _redraw_regions(layer, regions):
                    layer.refresh()
        finally:
            self._refreshing = False

    # -- layers ----------------------------------------------------------------------------------
    def _linkable(self, layer: Layer) -> bool:
        if layer.metadata.get(OVERLAY) or layer.metadata.get(LINKED):
            return False
        if isinstance(layer, Labels):
            return layer.ndim == 3
        return isinstance(layer, Image) and not layer.rgb and layer.ndim == 3

    def _link(self, main: Layer) -> None:
        if not self._linkable(main) or id(main) in self._links:
            return
        link = _Link(main)
        data, kwargs, kind = main.as_layer_data_tuple()
        for name, model in self.models.items():
            meta = {k: v for k, v in kwargs.get("metadata", {}).items() if k != LABELS_META}
            meta[LINKED] = name
            side = Layer.create(data, {**kwargs, "metadata": meta}, kind)
            if isinstance(main, Labels) and side.data is not main.data:
                side.data = main.data  # one array: a side stroke is the main layer's change
            link.sides[name] = side
            model.layers.insert(min(self._viewer.layers.index(main), len(model.layers)), side)
            if isinstance(main, Labels):
                self._link_labels(link, name, side)
        attrs = _LABEL_ATTRS if isinstance(main, Labels) else _IMAGE_ATTRS
        for attr in attrs:
            link.connect(getattr(main.events, attr), self._copier(link, attr))
        if isinstance(main, Labels):
            # a napari tool's item names its region; the recorder's own writes (undo, redo,
            # tools) show as records with a bbox. Not set_data: it fires on every reslice too
            link.connect(main.events.paint, lambda e, lk=link: self._main_changed(lk, e))
            link.connect(main.events.data, lambda e, lk=link: self._main_replaced(lk))
        self._links[id(main)] = link
        self._adding = True  # a crosshair is added with the first link, never re-added behind
        try:  # the user's (or napari's close's) back: a removed crosshair stays removed
            self._draw_crosshairs()
        finally:
            self._adding = False
        self._keep_crosshair_on_top()

    def _link_labels(self, link: _Link, name: str, side: Labels) -> None:
        main = link.main
        link.connect(side.events.paint, lambda e, s=side: self._side_painted(link, s, e))
        for attr in _LABEL_BACK:
            link.connect(getattr(side.events, attr), self._copier_back(main, side, attr))
        # ctrl+z in a side view: the main layer's undo (the recorder's, which logs it)
        side.undo = lambda: main.undo()
        side.redo = lambda: main.redo()

    def _copier(self, link: _Link, attr: str) -> Any:
        def copy(_event: Any = None) -> None:
            value = getattr(link.main, attr)
            for side in link.sides.values():
                if not _same(getattr(side, attr), value):
                    setattr(side, attr, value)

        return copy

    def _copier_back(self, main: Layer, side: Layer, attr: str) -> Any:
        def copy(_event: Any = None) -> None:
            value = getattr(side, attr)
            if not _same(getattr(main, attr), value):
                setattr(main, attr, value)

        return copy

    def _side_painted(self, link: _Link, side: Labels, event: Any) -> None:
        """A stroke committed in a side view: the main layer's paint event logs it, once."""
        side._undo_history.clear()  # undo belongs to the recorder (through the main layer)
        side._redo_history.clear()
        self._from_side = True
        try:
            link.main.events.paint(value=event.value)
        finally:
            self._from_side = False
        regions = _regions_of(event.value, side.ndim)
        self._queue(link.main, regions)
        for other in link.sides.values():
            if other is not side:
                self._queue(other, regions)

    def _main_changed(self, link: _Link, event: Any = None) -> None:
        if self._refreshing or self._from_side:
            return
        value = getattr(event, "value", None) if event is not None else None
        regions = None if value is None else _regions_of(value, link.main.ndim)
        for side in link.sides.values():
            self._queue(side, regions)

    def _on_record(self, rec: dict[str, Any]) -> None:
        """A logged label change (undo/redo/a tool's write): redraw its box in the side views."""
        name = (rec.get("target") or {}).get("labels")
        box = (rec.get("data") or {}).get("bbox")
        if self._from_side or not name or not box or not rec.get("action", "").startswith("label"):
            return
        region = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(box[0], box[1], strict=True))
        for link in self._links.values():
            meta = link.main.metadata.get(LABELS_META) or {}
            if meta.get("name") == name and len(region) == link.main.ndim:
                for side in link.sides.values():
                    self._queue(side, [region])

    def _main_replaced(self, link: _Link) -> None:
        for side in link.sides.values():
            if side.data is not link.main.data:
                side.data = link.main.data

    def _queue(self, layer: Layer, regions: list[tuple[slice, ...]] | None = None) -> None:
        """Redraw ``layer`` when Qt is idle: only ``regions`` of it, or all (None)."""
        _, queued = self._dirty_layers.get(id(layer), (layer, []))
        merged = None if regions is None or queued is None else [*queued, *regions]
        self._dirty_layers[id(layer)] = (layer, merged)
        if not self._timer.isActive():
            self._timer.start(0)

    def _follow_active(self, _event: Any = None) -> None:
        """The side views' tool works on the copy of the layer active in the main viewer."""
        link = self._links.get(id(self._viewer.layers.selection.active))
        if link is None:
            return
        for name, side in link.sides.items():
            self.models[name].layers.selection.active = side

    def _on_inserted(self, event: Any) -> None:
        self._link(event.value)

    def _on_removed(self, event: Any) -> None:
        if event.value is self._crosshairs.get(id(self._viewer)):
            self._crosshairs.pop(id(self._viewer))
        link = self._links.pop(id(event.value), None)
        if link is None:
            return
        link.disconnect()
        for name, side in link.sides.items():
            if side in self.models[name].layers:
                self.models[name].layers.remove(side)
        if not self._links:
            self._remove_crosshairs()

    # -- views and crosshair -----------------------------------------------------------------------
    def _set_view(self, name: str, order: tuple[int, int, int]) -> None:
        model = self.models[name]
        if model.dims.ndim != 3:
            return
        model.dims.ndisplay = 2
        model.dims.order = order
        model.camera.orientation2d = ("up", "right")
        letters = edge_letters((order[1], order[2]), vertical_up=True)
        for edge, pos in _EDGES.items():
            key = "clinlabel_orient_" + edge
            if key not in model.canvas.overlays:
                model.canvas.overlays[key] = TextOverlay(position=pos, color="yellow", font_size=12)
            model.canvas.overlays[key].text = letters[edge]
            model.canvas.overlays[key].visible = True
        model.reset_view()

    def _hook_viewer(self, viewer: Any) -> None:
        callback = lambda _e, v=viewer: self._sync_point(v)  # noqa: E731 - kept to disconnect
        viewer.dims.events.point.connect(callback)
        self._point_hooks.append((viewer.dims.events.point, callback))
        viewer.mouse_drag_callbacks.append(self._on_click)
        viewer.mouse_move_callbacks.append(self._on_shift_move)

    def _on_click(self, viewer: Any, event: Any) -> Any:
        active = viewer.layers.selection.active
        if active is not None and str(getattr(active, "mode", "pan_zoom")) != "pan_zoom":
            return  # a painting/drawing tool owns the click
        yield
        moved = False
        while event.type == "mouse_move":
            moved = True
            yield
        if not moved:
            self._point_from(viewer, event.position)

    def _on_shift_move(self, viewer: Any, event: Any) -> None:
        if "Shift" in {str(getattr(m, "name", m)) for m in event.modifiers}:
            self._point_from(viewer, event.position)

    def _point_from(self, viewer: Any, position: Any) -> None:
        """Every view goes to the world point under the cursor in ``viewer``."""
        dims = viewer.dims
        dims.set_point(range(dims.ndim), [float(v) for v in position][-dims.ndim :])

    def _sync_point(self, source: Any) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            point = tuple(source.dims.point)
            for viewer in self.viewers():
                if viewer is not source and viewer.dims.ndim == len(point):
                    if not np.allclose(viewer.dims.point, point):
                        viewer.dims.set_point(range(len(point)), point)
            self._draw_crosshairs()
        finally:
            self._syncing = False

    def _extent(self) -> np.ndarray | None:
        """World bounds (2, 3) of the linked layers (the crosshair's own lines not counted)."""
        bounds = [
            np.asarray(link.main.extent.world, float)
            for link in self._links.values()
            if link.main in self._viewer.layers
        ]
        if not bounds:
            return None
        return np.stack([np.min([b[0] for b in bounds], 0), np.max([b[1] for b in bounds], 0)])

    def _draw_crosshairs(self) -> None:
        extent = self._extent()
        point = np.asarray(self._viewer.dims.point, float)
        if extent is None or extent.shape[1] != 3 or point.size != 3:
            self._remove_crosshairs()
            return
        for viewer in self.viewers():
            vert, horiz = (int(a) for a in viewer.dims.displayed[-2:])
            a, b = point.copy(), point.copy()
            a[vert], b[vert] = extent[0, vert], extent[1, vert]
            c, d = point.copy(), point.copy()
            c[horiz], d[horiz] = extent[0, horiz], extent[1, horiz]
            lines = [self._to_reference(np.stack([a, b])), self._to_reference(np.stack([c, d]))]
            layer = self._crosshairs.get(id(viewer))
            if layer is None and self._adding:
                self._add_crosshair(viewer, lines)
            elif layer is not None and layer in viewer.layers:
                layer.data = lines

    def _reference(self) -> Any:
        """The first linked image layer: the crosshair takes its transform, so the sliders keep
        the image's step (a unit-scale overlay would make napari step 1 mm through 2.5 mm slices)."""
        return next(iter(self._links.values())).main

    def _to_reference(self, world: np.ndarray) -> np.ndarray:
        ref = self._reference()
        return np.stack([np.asarray(ref.world_to_data(tuple(p)), float) for p in world])

    def _remove_crosshairs(self) -> None:
        for viewer in self.viewers():
            layer = self._crosshairs.pop(id(viewer), None)
            if layer is not None and layer in viewer.layers:
                viewer.layers.remove(layer)

    def _add_crosshair(self, viewer: Any, lines: list[np.ndarray]) -> Shapes:
        active = viewer.layers.selection.active
        layer = Shapes(
            lines,
            ndim=3,
            shape_type="line",
            edge_color="yellow",
            edge_width=0.5,
            opacity=0.7,
            name=CROSSHAIR_NAME,
            metadata={OVERLAY: True, LINKED: "crosshair"},
            units=self._reference().units,  # mixed units: no scale bar
            scale=self._reference().scale,
            translate=self._reference().translate,
            rotate=self._reference().rotate,
            shear=self._reference().shear,
            affine=self._reference().affine,
        )
        _make_inert(layer)
        self._crosshairs[id(viewer)] = layer  # before adding: the insert re-enters the sync
        viewer.add_layer(layer)
        if active is not None:
            viewer.layers.selection.active = active  # the crosshair takes no tool from the user
        return layer

    def _keep_crosshair_on_top(self) -> None:
        for viewer in self.viewers():
            layer = self._crosshairs.get(id(viewer))
            if layer is not None and layer in viewer.layers:
                index = viewer.layers.index(layer)
                if index != len(viewer.layers) - 1:
                    viewer.layers.move(index, len(viewer.layers))

    def _teardown(self, touch_layers: bool = True) -> None:
        """Unlink: the main viewer forgets the side views, their callbacks and its crosshair.

        ``touch_layers`` False (Qt deleting the window): only disconnect; the viewers' Qt
        widgets may be gone already, so no layer is removed.
        """
        for link in self._links.values():
            link.disconnect()
        self._links.clear()
        for emitter, callback in self._point_hooks:
            emitter.disconnect(callback)
        self._point_hooks.clear()
        for viewer in self.viewers():
            for cb_list, cb in (
                (viewer.mouse_drag_callbacks, self._on_click),
                (viewer.mouse_move_callbacks, self._on_shift_move),
            ):
                if cb in cb_list:
                    cb_list.remove(cb)
        if touch_layers:
            self._remove_crosshairs()
            for model in self.models.values():
                model.layers.clear()
        self._crosshairs.clear()
        for qt_viewer in self.qt_viewers.values():
            try:
                qt_viewer.close()
            except RuntimeError:  # Qt deleted it with this widget already
                pass
        self.qt_viewers.clear()
        self.models.clear()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Unlink the views (see :meth:`_teardown`)."""
        self._teardown()
        super().closeEvent(event)


def _make_inert(layer: Shapes) -> None:
    """Lock ``layer`` against deletion and editing, for good.

    napari makes a Shapes layer editable again whenever its data is set (each crosshair move)
    or the view turns 2D; the editable event puts it back, and napari refuses any tool but
    pan/zoom on a layer that is not editable.
    """
    layer.locked = LayerLock.DELETION

    def keep_read_only(_event: Any = None) -> None:
        if layer.editable:
            layer.editable = False

    layer.events.editable.connect(keep_read_only)
    keep_read_only()


def _redraw_regions(layer: Labels, regions: list[tuple[slice, ...]]) -> bool:
    """Redraw only where ``regions`` (data-index boxes) cross the slice ``layer`` shows.

    What napari does after its own brush (``_partial_labels_refresh``): a full ``refresh``
    re-slices and re-uploads the whole plane, several times the cost. Relies on napari 0.9
    internals; False (the caller refreshes fully) when they are not as expected.
    """
    try:
        displayed = list(layer._slice_input.displayed)
        if displayed != sorted(displayed) or not layer._slicing_state.loaded:
            return False
        if not regions:
            return True
        # one box around the stroke's atoms: one texture upload, not one per brush dab
        union = tuple(
            slice(min(r[d].start or 0 for r in regions), max(r[d].stop for r in regions))
            for d in range(layer.ndim)
        )
        for key in (union,):
            where = layer._get_update_slices(key)
            if where is None:
                continue  # the change does not cross the plane shown: nothing to draw
            region_slices, view_slices = where
            plane = np.asarray(layer.data[key][tuple(region_slices)])
            layer._slice.image.raw[tuple(view_slices)] = plane  # a view for numpy: same values
            layer._slice.image.view[tuple(view_slices)] = layer.colormap._data_to_texture(plane)
            layer._accumulate_updated_slice(key)
        layer._partial_labels_refresh()
        return True
    except (AttributeError, TypeError, ValueError, IndexError, KeyError):
        return False


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b)))
    except (TypeError, ValueError):
        return a is b
