"""Lesion-box widget: rectangles drawn on a slice (napari Shapes), extended over a slice range.

The Shapes layer "lesions" sits on the image's world grid (same transform). Each rectangle carries
its box id in the layer's ``box_id`` feature; after every ``events.data`` with action
``added`` / ``changed`` / ``removed`` (napari 0.9 emits these for drawing, moving, resizing,
deleting, pasting) the layer is reconciled with the boxes in force and each difference becomes
one record (core ``annotate.box_edits.reconcile_boxes``). A 3D box shows as its editable
rectangle on one slice plus thin outlines on the other slices of its range ("lesions 3D extent").

A 2D image (PNG, a mammogram, a single-frame DICOM opened as one slice) has no slices to extend
over: it gets the "lesions" layer only, and the slice controls and the table's 3D columns hide.
Switching images swaps the layers; the boxes come back from each image's log.

The lesion schema is chosen per image: ``breast-lesions`` (BI-RADS lexicon) for a mammogram
(modality MG), ``lesions`` otherwise, unless the image's log already has box records, whose schema
then stays in force so a reopened image keeps the schema its boxes were drawn with. An image whose file
states no pixel size (PNG, JPEG, a TIFF without resolution tags) shows sizes in pixels, not mm.

The widget follows the log: a box proposal accepted or edited elsewhere (Review's
``proposal.accept`` / ``proposal.edit`` with ``data["box"]``) on its image shows at once, as a
reload from the log would show it; the refresh itself records nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from napari.layers import Image
from napari.layers.base._base_constants import ActionType
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel._widgets._base import ImageWidget
from napari_clinlabel._widgets._box_form import BoxForm, lesion_table
from napari_clinlabel._widgets._box_layers import EXTENT_NAME, LAYER_NAME, BoxLayers
from napari_clinlabel._widgets._common import volume_of
from napari_clinlabel.core.annotate.box_edits import (
    DEFAULT_SCHEMA,
    Reconciled,
    box_schema_in_force,
    lesion_schema_for,
    moved_extent,
    reconcile_boxes,
)
from napari_clinlabel.core.annotate.box_view import (
    TABLE_3D_COLUMNS,
    TABLE_HEADER,
    box_centre,
    box_shapes,
    middle_slice,
    size_text,
    table_header,
    table_rows,
)
from napari_clinlabel.core.annotate.boxes import (
    LesionBox,
    boxes_from_records,
    edit_box,
    load_boxes,
    with_slices,
)
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.schema import builtin_lesion_schemas, load_schema

__all__ = ["EXTENT_NAME", "LAYER_NAME", "LesionBoxWidget"]

_DONE = {ActionType.ADDED, ActionType.CHANGED, ActionType.REMOVED}
_CONFIRMS_BOX = ("proposal.accept", "proposal.edit")  # records that put a model box in force


class LesionBoxWidget(ImageWidget):
    """Draw, attribute, size, list and edit lesion boxes; every change is one log record."""

    def __init__(self, napari_viewer: Any) -> None:
        # keys: R draws a new box from any selected layer (the lesions layer's own R needs it
        # selected first); follow_log: boxes confirmed in Review show here
        super().__init__(napari_viewer, keys=True, follow_log=True)
        self._schema = load_schema(DEFAULT_SCHEMA)
        self._volume: Any = None
        self._layers = BoxLayers(self._viewer)
        self._boxes: dict[str, LesionBox] = {}
        self._anchor: dict[str, int] = {}  # box id -> slice its editable rectangle sits on
        self._selected: str | None = None
        self._flat = False  # one slice only (2D image): no slice range, no 3D-extent layer

        self._schema_combo = QComboBox()
        self._schema_combo.addItems(builtin_lesion_schemas())
        self._schema_combo.setCurrentText(self._schema.id)
        self._draw_btn = QPushButton("Draw box (R)")
        self._form = BoxForm(
            self._schema, [("Image", self._image_combo), ("Schema", self._schema_combo)]
        )
        self._class = self._form.cls_combo
        self._confidence = self._form.confidence_combo
        self._attrs = self._form.attr_combos
        self._z_from, self._z_to = QSpinBox(), QSpinBox()
        self._apply_3d = QPushButton("Make 3D")
        self._slices_row = QWidget()  # hidden on 2D images
        self._size = QLabel("No box selected.")
        self._table = lesion_table(TABLE_HEADER)
        self._delete_btn = QPushButton("Delete box")
        self._build()
        self._wire()
        self._refresh_images()

    # -- layout and wiring ---------------------------------------------------------------
    def _build(self) -> None:
        slices = QHBoxLayout(self._slices_row)
        slices.setContentsMargins(0, 0, 0, 0)
        for w in (QLabel("3D: slices from"), self._z_from, QLabel("to"), self._z_to,
                  self._apply_3d):  # fmt: skip
            slices.addWidget(w)
        self._size.setWordWrap(True)
        lay = QVBoxLayout(self)
        for part in (self._form, self._draw_btn, self._slices_row, self._size, self._table,
                     self._delete_btn):  # fmt: skip
            lay.addWidget(part)

    def _wire(self) -> None:
        self._schema_combo.currentTextChanged.connect(self._on_schema_chosen)
        self._draw_btn.clicked.connect(self._on_draw)
        self._form.changed.connect(self._on_form_changed)
        self._apply_3d.clicked.connect(self._on_make_3d)
        self._table.cellClicked.connect(self._on_row_clicked)
        self._delete_btn.clicked.connect(self._on_delete)

    # -- log → boxes (proposals confirmed in Review) ---------------------------------------
    def _on_record(self, rec: dict[str, Any]) -> None:
        """A box proposal of this image accepted/edited elsewhere, or boxes imported from a DICOM
        SR (``box.import``): show them as a reload would."""
        if self._layers.layer is None or rec.get("action") not in (*_CONFIRMS_BOX, "box.import"):
            return
        data = rec.get("data") or {}
        if not isinstance(data.get("box"), dict) and not isinstance(data.get("boxes"), list):
            return
        if not self._is_about_image(rec):
            return
        confirmed = boxes_from_records([rec])  # core's replay of this one record
        if not confirmed:
            return
        self._boxes.update(confirmed)  # same order as the replay: new ids last, known in place
        self._anchor.update({bid: middle_slice(b) for bid, b in confirmed.items()})
        self._rebuild()

    # -- image choice and restore --------------------------------------------------------
    def _forget_image(self) -> None:
        """The image left the viewer: its boxes (kept in its log) leave with it."""
        self._image, self._volume, self._boxes, self._anchor = None, None, {}, {}
        self._selected = None
        if self._keys is not None:
            self._keys.release()
        self._layers.remove()
        self._table.setRowCount(0)
        self._show_size()

    def _use_image(self, image: Image) -> None:
        self._volume = volume_of(image)
        self._table.setHorizontalHeaderLabels(table_header(self._volume.geometry))
        log_path = self._session.log_path_for(image)
        self._boxes = load_boxes(log_path)
        in_force = box_schema_in_force(iter_records(log_path)) if self._boxes else None
        modality = (image.metadata.get("clinlabel") or {}).get("modality")
        self._use_schema(lesion_schema_for(modality, in_force, builtin_lesion_schemas()))
        self._form.offer_header(image.metadata.get("clinlabel") or {})  # offered, never set
        self._anchor = {bid: middle_slice(b) for bid, b in self._boxes.items()}
        self._selected = None
        shape = self._volume.spatial_shape
        nz = shape[0] if len(shape) == 3 else 1
        self._flat = nz <= 1
        for spin in (self._z_from, self._z_to):
            spin.setRange(0, nz - 1)
            spin.setEnabled(not self._flat)
        self._apply_3d.setEnabled(not self._flat)
        self._slices_row.setVisible(not self._flat)
        for col in TABLE_3D_COLUMNS:
            self._table.setColumnHidden(col, self._flat)
        self._layers.make(image, len(shape), self._flat, self._on_shapes_data,
                          lambda _e: self._show_size(), self._on_selection)  # fmt: skip
        if self._keys is not None:
            self._keys.bind({"r": self._on_draw}, image)
        self._rebuild()

    def _use_schema(self, name: str) -> None:
        """Put schema ``name`` in force: the combo shows it, the form offers its values."""
        if name != self._schema.id:
            self._schema = load_schema(name)
            self._form.set_schema(self._schema)
        busy, self._busy = self._busy, True
        try:
            self._schema_combo.setCurrentText(self._schema.id)
        finally:
            self._busy = busy

    def _on_schema_chosen(self, name: str) -> None:
        """The user picked a schema: new boxes and edits are recorded under it."""
        if self._busy or not name or name == self._schema.id:
            return
        try:
            self._use_schema(name)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            self._use_schema(self._schema.id)
            return
        self._selected = None  # the form now describes the next box, in the new schema's terms
        if self._layers.layer is not None:
            self._busy = True
            try:
                self._layers.select(None)
            finally:
                self._busy = False
        self._table.clearSelection()
        self._rebuild()

    # -- shapes layer → records ------------------------------------------------------------
    def _on_shapes_data(self, event: Any) -> None:
        if self._busy or getattr(event, "action", None) not in _DONE:
            return
        self._reconcile()

    def _reconcile(self) -> None:
        """Turn every difference between the Shapes layer and the boxes in force into records."""
        # the form describes the next box only while no box is selected; while it shows a box,
        # a new one starts "not set" (never the shown box's class, confidence or attributes)
        fields = self._form.values() if self._selected not in self._boxes else {}
        with self._open_log() as log:
            if log is not None:
                self._take(reconcile_boxes(log, self._boxes, self._layers.rects(), self._volume,
                                           self._schema, fields))  # fmt: skip
        self._schedule_rebuild()

    def _take(self, done: Reconciled) -> None:
        """Follow what core recorded: new ids on their rectangles, refused ones removed."""
        self._boxes = done.boxes
        for index, bid in done.added.items():
            self._anchor[bid] = middle_slice(self._boxes[bid])
            self._layers.tag(index, bid)
            self._selected = bid
        if done.added and self._selected in self._boxes:  # describe the new box at once, not on
            self._form.show_box(self._boxes[self._selected])  # the redraw: a pick is its alone
        for bid in done.deleted:
            self._anchor.pop(bid, None)
        for exc in done.errors:
            self._session.report_error(exc)
        if done.rejected:
            self._busy = True
            try:
                self._layers.drop(done.rejected)
            finally:
                self._busy = False

    def _edit(self, bid: str, changes: dict[str, Any]) -> bool:
        try:
            with self._logging(self._schema) as log:
                new, _rec = edit_box(log, self._boxes[bid], changes, self._volume, self._schema)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            self._schedule_rebuild()  # put the rectangle back where the log has it
            return False
        self._boxes[bid] = new
        return True

    @contextmanager
    def _open_log(self) -> Iterator[Any]:
        """The image's log with the lesion schema in force (None, reported, if it cannot open)."""
        if self._image is None:
            yield None
            return
        try:
            scope = self._logging(self._schema)
            log = scope.__enter__()
        except ClinlabelError as exc:
            self._session.report_error(exc)
            yield None
            return
        try:
            yield log
        finally:
            scope.__exit__(None, None, None)

    # -- form, 3D, table ------------------------------------------------------------------
    def _on_form_changed(self) -> None:
        if self._busy or self._selected not in self._boxes:
            return
        changes = self._form.changes_from(self._boxes[self._selected])
        if changes and self._edit(self._selected, changes):
            self._schedule_rebuild()

    def _on_make_3d(self) -> None:
        bid = self._selected
        if bid not in self._boxes:
            self._session.report_error(ClinlabelError("Select a box first, then set its slices."))
            return
        a, b = sorted((self._z_from.value(), self._z_to.value()))
        new = with_slices(self._boxes[bid], a, b)
        if self._edit(bid, {"zyx_min": new.zyx_min, "zyx_max": new.zyx_max}):
            self._anchor[bid] = min(max(self._anchor.get(bid, a), a), b)
            self._rebuild()

    def _on_delete(self) -> None:
        if self._selected is not None and self._layers.layer is not None:
            self._layers.delete(self._selected)  # → events.data removed → record

    def _on_draw(self) -> None:
        if self._layers.layer is None:
            return
        if self._selected is not None:  # the form shows that box: the new one starts unset
            self._selected = None
            self._form.clear()
            self._table.clearSelection()
            busy, self._busy = self._busy, True
            try:
                self._layers.select(None)
            finally:
                self._busy = busy
            self._show_size()
        self._layers.arm_drawing()

    def _on_row_clicked(self, row: int, _col: int) -> None:
        ids = list(self._boxes)
        if 0 <= row < len(ids):
            self.select_box(ids[row], jump=True)

    def select_box(self, bid: str, jump: bool = True) -> None:
        """Select box ``bid`` in the layer and the form; ``jump`` moves the view to it."""
        self._selected = bid
        if jump:
            self._layers.centre_view_on(box_centre(self._boxes[bid], self._anchor.get(bid)))
        self._layers.select(bid)
        self._show_box(bid)

    def _on_selection(self, _event: Any = None) -> None:
        if self._busy or self._layers.layer is None:
            return
        bid = self._layers.selected_id()
        if bid in self._boxes:
            if bid != self._selected:
                self._selected = bid
                self._show_box(bid)
        elif not self._layers.layer.selected_data and self._selected is not None:
            self._selected = None  # the form now sets the class etc. of the next box drawn
            self._form.clear()  # ...starting from "not set", not the last box's values
            self._table.clearSelection()
            self._show_size()

    def _show_box(self, bid: str) -> None:
        box = self._boxes[bid]
        self._busy = True
        try:
            self._form.show_box(box)
            rng = box.slice_range
            if rng is not None:
                self._z_from.setValue(rng[0])
                self._z_to.setValue(rng[1])
            self._table.selectRow(list(self._boxes).index(bid))
        finally:
            self._busy = False
        self._show_size()

    def _show_size(self) -> None:
        bid = self._selected
        if bid not in self._boxes or self._volume is None:
            self._size.setText("No box selected.")
            return
        box = self._boxes[bid]
        verts = None if self._busy else self._layers.verts_of(bid)
        if verts is not None:  # live: follow the rectangle while it is dragged
            box = LesionBox(*moved_extent(box, verts), id=box.id)
        self._size.setText(size_text(box, self._volume.geometry, flat=self._flat))

    # -- layer ← boxes ---------------------------------------------------------------------
    def _schedule_rebuild(self) -> None:
        QTimer.singleShot(0, self._rebuild)

    def _rebuild(self) -> None:
        """Redraw the shapes layers and the table from the boxes in force."""
        if self._layers.layer is None:
            return
        self._busy = True
        try:
            self._layers.draw(box_shapes(self._boxes, self._anchor, self._schema.lesion_classes),
                              self._selected)  # fmt: skip
        finally:
            self._busy = False
        rows = table_rows(self._boxes, self._volume.geometry)
        self._table.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                self._table.setItem(r, c, QTableWidgetItem(text))
        self._table.resizeColumnsToContents()
        if self._selected in self._boxes:
            self._show_box(self._selected)
        else:
            self._show_size()

    # -- for tests and scripts -------------------------------------------------------------
    @property
    def boxes(self) -> dict[str, LesionBox]:
        """The boxes in force (id → box), in drawing order."""
        return dict(self._boxes)

    @property
    def layer(self) -> Any:
        """The editable Shapes layer of boxes."""
        return self._layers.layer

    @property
    def _layer(self) -> Any:  # the name scripts and older tests reach for
        return self._layers.layer

    @property
    def _extent(self) -> Any:
        return self._layers.extent
