"""Small helpers shared by the box, grading and tile-grading widgets (no domain logic here).

Keyboard policy (:class:`KeyBinder`): napari resolves a key through the selected layer's keymap
first, then the viewer's. A widget that grades by digit keys therefore binds its keys on the
viewer *and* on the image layer it works on (the image layer's own digit keys choose its
pan/transform modes, which would otherwise win). Each binding remembers what was bound before and
puts it back when the widget closes or switches image, so other widgets' and napari's keys keep
working; keys of a selected Labels/Shapes layer (its tools) are never taken over. The widget
itself forwards key presses it receives to the same handlers, so keys work while it has focus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from app_model.types import KeyBinding
from napari.layers import Image
from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import QDockWidget, QFrame, QScrollArea, QStyle, QWidget

from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.glue.layers import volume_from_layer, volume_to_layer_data

OVERLAY = "clinlabel_overlay"  # metadata key of display-only layers the widgets add


def unwrap_viewer(viewer: Any) -> Any:
    """The viewer itself when napari hands a widget a ``PublicOnlyProxy`` of it.

    Every widget must reach the same per-viewer session (keyed by the viewer object), and the
    proxy napari makes per widget is a different object each time.
    """
    return getattr(viewer, "__wrapped__", viewer)


def image_layers(viewer: Any) -> list[Image]:
    """Image layers of the viewer that hold images (not the widgets' own overlays), in order."""
    return [
        lay for lay in viewer.layers if isinstance(lay, Image) and not lay.metadata.get(OVERLAY)
    ]


def image_named(viewer: Any, name: str) -> Image | None:
    """The image layer called ``name`` (as an image chooser lists it), or None."""
    return next((lay for lay in image_layers(viewer) if lay.name == name), None)


def _meta(layer: Any) -> dict[str, Any]:
    return dict(layer.metadata.get("clinlabel") or {})


def volume_of(layer: Image) -> Volume:
    """The :class:`Volume` behind an image layer (geometry from its metadata or transform)."""
    try:
        return volume_from_layer(layer)
    except Exception:  # noqa: BLE001 - fall back to the layer's own transform
        pass
    meta = _meta(layer)
    base = layer.data[0] if layer.multiscale else layer.data
    ndim = base.ndim - (1 if layer.rgb else 0)
    geom = meta.get("geometry")
    if isinstance(geom, dict) and "spacing" in geom:
        geometry = Geometry.from_dict(geom)
    else:
        scale = [float(s) for s in layer.scale[-ndim:]]
        trans = [float(t) for t in layer.translate[-ndim:]]
        geometry = Geometry(
            tuple(reversed(scale)), tuple(reversed(trans)), tuple(np.eye(ndim).ravel().tolist())
        )
    info = {k: v for k, v in meta.items() if k in ("sample", "source_path", "series_uid", "sha256")}
    info["rgb"] = bool(layer.rgb)
    data = list(layer.data) if layer.multiscale else layer.data
    return Volume(data, geometry, info)


def add_volume(viewer: Any, volume: Volume, name: str | None = None) -> Image:
    """Add a Volume as an image layer with its geometry (as the plugin's reader would)."""
    data, kwargs, _kind = volume_to_layer_data(volume)
    if name:
        kwargs = {**kwargs, "name": name}
    return viewer.add_image(data, **kwargs)


def copy_transform(layer: Any) -> dict[str, Any]:
    """Keyword arguments that put a new layer on ``layer``'s world grid."""
    return {
        "affine": layer.affine,
        "scale": layer.scale,
        "translate": layer.translate,
        "rotate": layer.rotate,
        "shear": layer.shear,
    }


def camera_of(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def display_name(layer: Any) -> str:
    """A PHI-free name for messages (file name or layer name)."""
    src = _meta(layer).get("source_path")
    return Path(src).name if src else str(layer.name)


@contextmanager
def logging_under(session: Any, image: Any, schema: Any) -> Iterator[Any]:
    """The image's log with ``schema`` in force for the records written inside the block.

    Whatever schema another widget had set for the image is put back afterwards, so box records
    carry the lesion schema and label records keep the segmentation schema.
    """
    previous = session.schema_for(image)
    session.set_schema(image, schema)
    try:
        yield session.log_for(image)
    finally:
        session.set_schema(image, previous)


class KeyBinder:
    """Binds keys on the viewer and on one layer, restoring whatever was bound before."""

    def __init__(self, viewer: Any) -> None:
        self._viewer = viewer
        self._saved: list[tuple[Any, str, Any]] = []  # (provider, key, previous or None)
        self._wanted: tuple[dict[str, Callable[[], None]], Any] | None = None
        self._suspended = False
        self._filter: Any = None
        self._dock: Any = None  # the dock whose tab visibility the keys follow

    def follow_visibility(self, widget: Any) -> None:
        """Keys act only while ``widget``'s dock is the one shown: behind another tab, they go.

        A decision key pressed for one panel must never act in a panel the user cannot see
        (e.g. Review's ``R`` reject while drawing boxes in the Lesion-box tab). Qt tells a tab
        change through the dock's ``visibilityChanged``; the dock is found once it is shown.
        """
        binder = self

        def on_dock_visibility(visible: bool) -> None:
            if visible:
                binder.resume()
            else:
                binder.suspend()

        class _FindDock(QObject):
            def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
                if event.type() in (QEvent.Type.Show, QEvent.Type.ParentChange):
                    parent = obj.parentWidget()
                    while parent is not None and not isinstance(parent, QDockWidget):
                        parent = parent.parentWidget()
                    if parent is not None and binder._dock is not parent:
                        binder._dock = parent
                        parent.visibilityChanged.connect(on_dock_visibility)
                return False

        self._filter = _FindDock(widget)
        widget.installEventFilter(self._filter)

    def suspend(self) -> None:
        """Release the keys but remember them for :meth:`resume`."""
        self._suspended = True
        self._unbind()

    def resume(self) -> None:
        """Bind again what was bound before :meth:`suspend`."""
        self._suspended = False
        if self._wanted is not None and not self._saved:
            self.bind(*self._wanted)

    def bind(self, keys: dict[str, Callable[[], None]], layer: Any = None) -> None:
        """Bind ``keys`` (napari key strings → callbacks) on the viewer and on ``layer``."""
        self._unbind()
        self._wanted = (keys, layer)
        if self._suspended:
            return
        for provider in (self._viewer, layer):
            if provider is None:
                continue
            for key, fn in keys.items():
                previous = provider.keymap.get(_coerce(key))
                self._saved.append((provider, key, previous))
                provider.bind_key(key, _wrap(fn), overwrite=True)

    def release(self) -> None:
        """Remove our bindings, put back what was there before, and forget ours."""
        self._wanted = None
        self._unbind()

    def _unbind(self) -> None:
        for provider, key, previous in reversed(self._saved):
            try:
                provider.bind_key(key, None)
                if previous is not None:
                    provider.bind_key(key, previous, overwrite=True)
            except Exception:  # noqa: BLE001 - the layer may be gone already
                pass
        self._saved = []


def _coerce(key: str) -> Any:
    return KeyBinding.from_str(key)


def _wrap(fn: Callable[[], None]) -> Callable[[Any], None]:
    def handler(_provider: Any) -> None:
        fn()

    return handler


def refill_image_combo(
    combo: Any, names: list[str], current: str | None, session: Any
) -> str | None:
    """Fill an image chooser with ``names`` (no signals); keep ``current``, else the active
    image if listed, else the last. Returns the name now chosen (None when there is none)."""
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    choice = current if current in names else None
    if choice is None and names:
        active = session.active_image()
        choice = active.name if active is not None and active.name in names else names[-1]
    if choice is not None:
        combo.setCurrentText(choice)
    combo.blockSignals(False)
    return choice


class VerticalScroll(QScrollArea):
    """``body`` in a scroll area that scrolls up and down only (as magicgui's ``scrollable``
    containers do), so a tall widget never forces the window taller than the screen."""

    def __init__(self, body: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)  # grows with the dock when there is room
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setWidget(body)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        """As wide as the body needs plus the scroll bar: no control is clipped on the right."""
        hint = super().minimumSizeHint()
        body = self.widget()
        if body is not None:
            bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
            hint.setWidth(max(hint.width(), body.minimumSizeHint().width() + bar))
        return hint
