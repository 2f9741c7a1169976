"""The wiring every image widget repeats (grading, tile grading, lesion boxes), written once.

:class:`ImageWidget` holds the viewer (unwrapped from napari's proxy), the per-viewer session, an
image chooser kept in step with the viewer's image layers, optionally a :class:`KeyBinder` that
follows the dock's visibility and a subscription to the session's new records for as long as the
widget lives. A subclass says which images it takes (:meth:`_accepts`), what choosing one means
(:meth:`_use_image`) and, if it follows the log, what a record means to it (:meth:`_on_record`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from napari.layers import Image
from qtpy.QtWidgets import QComboBox, QWidget

from napari_clinlabel._widgets._common import (
    KeyBinder,
    image_layers,
    image_named,
    logging_under,
    refill_image_combo,
    unwrap_viewer,
)
from napari_clinlabel._widgets.session import connect_while_alive
from napari_clinlabel.glue.session import get_session, image_sha256


class ImageWidget(QWidget):
    """A dock widget working on one image layer of the viewer, chosen in ``_image_combo``.

    ``keys``: the widget binds keys (on the viewer and the image) while its dock is shown.
    ``follow_log``: :meth:`_on_record` hears every record the session appends.
    """

    def __init__(self, napari_viewer: Any, *, keys: bool = False, follow_log: bool = False) -> None:
        super().__init__()
        viewer = unwrap_viewer(napari_viewer)  # napari passes a proxy; the session needs the viewer
        self._viewer = viewer
        self._session = get_session(viewer)
        self._keys: KeyBinder | None = None
        if keys:
            self._keys = KeyBinder(viewer)
            self._keys.follow_visibility(self)
        self._image: Image | None = None
        self._busy = False  # True while the widget itself changes its controls or layers
        self._image_combo = QComboBox()
        self._image_combo.currentIndexChanged.connect(self._on_image_chosen)
        viewer.layers.events.inserted.connect(self._refresh_images)
        viewer.layers.events.removed.connect(self._refresh_images)
        if follow_log:
            connect_while_alive(self, [(self._session.record_appended, self._on_record)])

    # -- for subclasses ----------------------------------------------------------------------
    def _accepts(self, layer: Image) -> bool:
        """Whether ``layer`` is listed in the image chooser (default: every image)."""
        return True

    def _use_image(self, image: Image) -> None:
        """``image`` was chosen (``self._image`` is set already)."""

    def _forget_image(self) -> None:
        """The image chosen left the viewer and no other is listed (default: keep it)."""

    def _on_record(self, rec: dict[str, Any]) -> None:
        """A record the session appended (only with ``follow_log``)."""

    # -- shared ------------------------------------------------------------------------------
    def _refresh_images(self, _event: Any = None) -> None:
        images = [lay for lay in image_layers(self._viewer) if self._accepts(lay)]
        keep = self._image.name if self._image in images else None
        names = [lay.name for lay in images]
        if refill_image_combo(self._image_combo, names, keep, self._session) is not None:
            self._on_image_chosen()
        elif self._image is not None:
            self._forget_image()

    def _on_image_chosen(self, _index: int = 0) -> None:
        if self._busy:
            return
        image = image_named(self._viewer, self._image_combo.currentText())
        if image is None or image is self._image:
            return
        self._image = image
        self._use_image(image)

    def _is_about_image(self, rec: dict[str, Any]) -> bool:
        """True when ``rec`` was written about the image chosen here."""
        if self._image is None:
            return False
        return (rec.get("image") or {}).get("sha256") == image_sha256(self._image)

    def _logging(self, schema: Any) -> AbstractContextManager[Any]:
        """The chosen image's log with ``schema`` in force for the records written inside."""
        return logging_under(self._session, self._image, schema)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Give the keys back and stop listening to the viewer."""
        if self._keys is not None:
            self._keys.release()
        self._viewer.layers.events.inserted.disconnect(self._refresh_images)
        self._viewer.layers.events.removed.disconnect(self._refresh_images)
        super().closeEvent(event)
