"""Lesion-box widget: rectangles drawn on a slice (napari Shapes), extended over a slice range.

The Shapes layer "lesions" sits on the image's world grid (same transform). Each rectangle carries
its box id in the layer's ``box_id`` feature; after every ``events.data`` with action
``added`` / ``changed`` / ``removed`` (napari 0.9 emits these for drawing, moving, resizing,
deleting, pasting) the layer is reconciled with the boxes in force and each difference becomes
one record through :mod:`napari_clinlabel.core.annotate.boxes`. A 3D box shows as its editable rectangle
on one slice plus thin outlines on the other slices of its range ("lesions 3D extent").

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

import numpy as np
from napari.layers import Image, Shapes
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

from napari_clinlabel._widgets._box_form import BoxForm, lesion_table
from napari_clinlabel._widgets._box_view import (
    TABLE_3D_COLUMNS,
    TABLE_HEADER,
    box_shapes,
    middle_slice,
    size_text,
    table_header,
    table_rows,
)
from napari_clinlabel._widgets._common import (
    camera_of,
    copy_transform,
    image_layers,
    image_named,
    logging_under,
    refill_image_combo,
    unwrap_viewer,
    volume_of,
)
from napari_clinlabel._widgets.session import connect_while_alive
from napari_clinlabel.core.annotate.boxes import (
    LesionBox,
    add_box,
    boxes_from_records,
    delete_box,
    edit_box,
    load_boxes,
    with_slices,
)
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.schema import builtin_lesion_schemas, load_schema
from napari_clinlabel.glue.session import get_session, image_sha256

LAYER_NAME = "lesions"
EXTENT_NAME = "lesions 3D extent"
_DONE = {ActionType.ADDED, ActionType.CHANGED, ActionType.REMOVED}
_CONFIRMS_BOX = ("proposal.accept", "proposal.edit")  # records that put a model box in force
_BOX_ACTIONS = ("box.add", "box.edit", "box.delete")
DEFAULT_SCHEMA = "lesions"
MAMMOGRAPHY_SCHEMA = "breast-lesions"


def boxes_schema_id(log_path: Any) -> str | None:
    """Id of the schema in force on the latest box record of a log, or None (no box records)."""
    found = None
    for rec in iter_records(log_path):
        if rec.get("action") in _BOX_ACTIONS and (rec.get("schema") or {}).get("id"):
            found = rec["schema"]["id"]
    return found


def default_schema_for(image: Image) -> str:
    """``breast-lesions`` for a mammogram (modality MG), ``lesions`` for any other image."""
    modality = (image.metadata.get("clinlabel") or {}).get("modality")
    return MAMMOGRAPHY_SCHEMA if str(modality or "").upper() == "MG" else DEFAULT_SCHEMA


class LesionBoxWidget(QWidget):
    """Draw, attribute, size, list and edit lesion boxes; every change is one log record."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        viewer = unwrap_viewer(napari_viewer)  # napari passes a proxy; the session needs the viewer
        self._viewer = viewer
        self._session = get_session(viewer)
        self._schema = load_schema(DEFAULT_SCHEMA)
        self._image: Image | None = None
        self._volume: Any = None
        self._layer: Shapes | None = None
        self._extent: Shapes | None = None
        self._boxes: dict[str, LesionBox] = {}
        self._anchor: dict[str, int] = {}  # box id -> slice its editable rectangle sits on
        self._selected: str | None = None
        self._flat = False  # one slice only (2D image): no slice range, no 3D-extent layer
        self._busy = False  # True while this widget itself changes the layer or the form

        self._image_combo = QComboBox()
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
        for w in (
            QLabel("3D: slices from"),
            self._z_from,
            QLabel("to"),
            self._z_to,
            self._apply_3d,
        ):
            slices.addWidget(w)
        self._size.setWordWrap(True)
        lay = QVBoxLayout(self)
        for part in (
            self._form,
            self._draw_btn,
            self._slices_row,
            self._size,
            self._table,
            self._delete_btn,
        ):
            lay.addWidget(part)

    def _wire(self) -> None:
        self._image_combo.currentIndexChanged.connect(self._on_image_chosen)
        self._schema_combo.currentTextChanged.connect(self._on_schema_chosen)
        self._draw_btn.clicked.connect(self._on_draw)
        self._form.changed.connect(self._on_form_changed)
        self._apply_3d.clicked.connect(self._on_make_3d)
        self._table.cellClicked.connect(self._on_row_clicked)
        self._delete_btn.clicked.connect(self._on_delete)
        self._viewer.layers.events.inserted.connect(self._refresh_images)
        self._viewer.layers.events.removed.connect(self._refresh_images)
        connect_while_alive(self, [(self._session.record_appended, self._on_record)])

    # -- log → boxes (proposals confirmed in Review) ---------------------------------------
    def _on_record(self, rec: dict[str, Any]) -> None:
        """A box proposal of this image accepted/edited elsewhere: show it as a reload would."""
        if self._image is None or self._layer is None or rec.get("action") not in _CONFIRMS_BOX:
            return
        if not isinstance((rec.get("data") or {}).get("box"), dict):
            return
        if (rec.get("image") or {}).get("sha256") != image_sha256(self._image):
            return
        confirmed = boxes_from_records([rec])  # core's replay of this one record
        if not confirmed:
            return
        self._boxes.update(confirmed)  # same order as the replay: new ids last, known in place
        self._anchor.update({bid: middle_slice(b) for bid, b in confirmed.items()})
        self._rebuild()

    # -- image choice and restore --------------------------------------------------------
    def _refresh_images(self, _event: Any = None) -> None:
        images = image_layers(self._viewer)
        current = self._image.name if self._image in images else None
        names = [lay.name for lay in images]
        if refill_image_combo(self._image_combo, names, current, self._session) is not None:
            self._on_image_chosen()
        elif self._image is not None:
            self._forget_image()

    def _forget_image(self) -> None:
        """The image left the viewer: its boxes (kept in its log) leave with it."""
        self._image, self._volume, self._boxes, self._anchor = None, None, {}, {}
        self._selected = None
        old, self._layer, self._extent = (self._layer, self._extent), None, None
        for layer in old:
            if layer is not None and layer in self._viewer.layers:
                self._viewer.layers.remove(layer)
        self._table.setRowCount(0)
        self._show_size()

    def _on_image_chosen(self, _index: int = 0) -> None:
        if self._busy:
            return
        name = self._image_combo.currentText()
        image = image_named(self._viewer, name)
        if image is None or image is self._image:
            return
        self._image = image
        self._volume = volume_of(image)
        self._table.setHorizontalHeaderLabels(table_header(self._volume.geometry))
        log_path = self._session.log_path_for(image)
        self._boxes = load_boxes(log_path)
        in_force = boxes_schema_id(log_path) if self._boxes else None
        known = builtin_lesion_schemas()
        self._use_schema(in_force if in_force in known else default_schema_for(image))
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
        self._ensure_layers()
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
        if self._layer is not None:
            self._busy = True
            try:
                self._layer.selected_data = set()
            finally:
                self._busy = False
        self._table.clearSelection()
        self._rebuild()

    def _ensure_layers(self) -> None:
        """Put "lesions" (and, on a volume, "lesions 3D extent") on the chosen image's grid."""
        ndim = len(self._volume.spatial_shape)
        for old in (self._extent, self._layer):
            if old is not None and old in self._viewer.layers:
                self._viewer.layers.remove(old)
        self._extent = None
        wanted = (
            ((LAYER_NAME, "_layer"),)
            if self._flat
            else ((EXTENT_NAME, "_extent"), (LAYER_NAME, "_layer"))
        )
        for name, attr in wanted:
            layer = Shapes(
                ndim=ndim,
                name=name,
                features={
                    "box_id": np.array([], dtype=object),
                    "label": np.array([], dtype=object),
                },
                shape_type="rectangle",
                face_color="transparent",
                edge_width=2 if name == LAYER_NAME else 1,
                opacity=1.0 if name == LAYER_NAME else 0.6,
                **copy_transform(self._image),
            )
            layer.feature_defaults["box_id"] = ""
            layer.feature_defaults["label"] = ""
            setattr(self, attr, layer)
            self._viewer.add_layer(layer)
        if self._extent is not None:
            self._extent.editable = False
        self._layer.events.data.connect(self._on_shapes_data)
        self._layer.events.set_data.connect(lambda _e: self._show_size())
        self._layer.events.highlight.connect(self._on_selection)

    # -- shapes layer → records ------------------------------------------------------------
    def _on_shapes_data(self, event: Any) -> None:
        if self._busy or getattr(event, "action", None) not in _DONE:
            return
        self._reconcile()

    def _reconcile(self) -> None:
        """Turn every difference between the Shapes layer and the boxes in force into records."""
        with self._logging() as log:
            if log is not None:
                self._reconcile_into(log)
        self._schedule_rebuild()

    def _reconcile_into(self, log: Any) -> None:
        layer = self._layer
        ids = [str(v) for v in layer.features["box_id"]]
        seen: set[str] = set()
        rejected: list[int] = []
        for i, bid in enumerate(ids):
            lo, hi = self._extent_of(np.asarray(layer.data[i]))
            if not bid or bid in seen or bid not in self._boxes:
                box = LesionBox(lo, hi, created_by=log.actor.id, **self._form.values())
                try:
                    add_box(log, box, self._volume, self._schema)
                except ClinlabelError as exc:
                    self._session.report_error(exc)
                    rejected.append(i)
                    continue
                self._boxes[box.id] = box
                self._anchor[box.id] = int(round(lo[0])) if len(lo) == 3 else 0
                if layer.features["box_id"].dtype != object:
                    layer.features["box_id"] = layer.features["box_id"].astype(object)
                layer.features.loc[i, "box_id"] = box.id
                seen.add(box.id)
                self._selected = box.id
                continue
            seen.add(bid)
            old = self._boxes[bid]
            if old.is_3d:  # a rectangle edits the in-plane extent; the slice range stays
                lo, hi = (old.zyx_min[0], *lo[1:]), (old.zyx_max[0], *hi[1:])
            if np.allclose(lo, old.zyx_min) and np.allclose(hi, old.zyx_max):
                continue
            self._edit(bid, {"zyx_min": lo, "zyx_max": hi})
        for bid in [b for b in self._boxes if b not in seen]:
            try:
                delete_box(log, bid)
            except ClinlabelError as exc:
                self._session.report_error(exc)
                continue
            del self._boxes[bid]
            self._anchor.pop(bid, None)
        if rejected:
            self._busy = True
            try:
                layer.remove(rejected)
            finally:
                self._busy = False

    def _extent_of(self, verts: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        if verts.shape[1] == 3:  # a rectangle drawn on one slice: snap to that slice
            z = float(np.round(verts[:, 0].mean()))
            lo[0] = hi[0] = z
        return tuple(float(v) for v in lo), tuple(float(v) for v in hi)

    def _edit(self, bid: str, changes: dict[str, Any]) -> bool:
        try:
            with logging_under(self._session, self._image, self._schema) as log:
                new, _rec = edit_box(log, self._boxes[bid], changes, self._volume, self._schema)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            self._schedule_rebuild()  # put the rectangle back where the log has it
            return False
        self._boxes[bid] = new
        return True

    @contextmanager
    def _logging(self) -> Iterator[Any]:
        """The image's log with the lesion schema in force (None, reported, if it cannot open)."""
        if self._image is None:
            yield None
            return
        try:
            scope = logging_under(self._session, self._image, self._schema)
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
        if self._selected is None or self._layer is None:
            return
        ids = list(self._layer.features["box_id"])
        if self._selected in ids:
            self._layer.remove([ids.index(self._selected)])  # → events.data removed → record

    def _on_draw(self) -> None:
        if self._layer is None:
            return
        self._viewer.layers.selection.active = self._layer
        self._layer.mode = "add_rectangle"

    def _on_row_clicked(self, row: int, _col: int) -> None:
        ids = list(self._boxes)
        if 0 <= row < len(ids):
            self.select_box(ids[row], jump=True)

    def select_box(self, bid: str, jump: bool = True) -> None:
        """Select box ``bid`` in the layer and the form; ``jump`` moves the view to it."""
        self._selected = bid
        box = self._boxes[bid]
        ids = list(self._layer.features["box_id"])
        if jump:
            centre = (np.asarray(box.zyx_min) + np.asarray(box.zyx_max)) / 2
            if len(centre) == 3:
                centre[0] = self._anchor.get(bid, round(centre[0]))
            world = np.asarray(self._layer.data_to_world(centre), dtype=float)
            dims = self._viewer.dims
            # a layer's axes are the viewer's last ones (a 2D image beside a CT has 2 of 3)
            axes = list(range(dims.ndim - len(world), dims.ndim))
            dims.set_point(axes, world)
            point = np.asarray(dims.point, dtype=float)
            point[axes] = world
            camera_of(self._viewer).center = tuple(point[list(dims.displayed)[-2:]])
        if bid in ids:
            self._layer.selected_data = {ids.index(bid)}
        self._show_box(bid)

    def _on_selection(self, _event: Any = None) -> None:
        if self._busy or self._layer is None:
            return
        sel = sorted(self._layer.selected_data)
        ids = list(self._layer.features["box_id"])
        if len(sel) == 1 and sel[0] < len(ids) and ids[sel[0]] in self._boxes:
            if ids[sel[0]] != self._selected:
                self._selected = ids[sel[0]]
                self._show_box(self._selected)
        elif not sel and self._selected is not None:
            self._selected = None  # the form now sets the class etc. of the next box drawn
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
            row = list(self._boxes).index(bid)
            self._table.selectRow(row)
        finally:
            self._busy = False
        self._show_size()

    def _show_size(self) -> None:
        bid = self._selected
        if bid not in self._boxes or self._volume is None:
            self._size.setText("No box selected.")
            return
        box = self._boxes[bid]
        ids = list(self._layer.features["box_id"]) if self._layer is not None else []
        if bid in ids and not self._busy:  # live: follow the rectangle while it is dragged
            lo, hi = self._extent_of(np.asarray(self._layer.data[ids.index(bid)]))
            if box.is_3d:
                lo, hi = (box.zyx_min[0], *lo[1:]), (box.zyx_max[0], *hi[1:])
            box = LesionBox(lo, hi, id=box.id)
        self._size.setText(size_text(box, self._volume.geometry, flat=self._flat))

    # -- layer ← boxes ---------------------------------------------------------------------
    def _schedule_rebuild(self) -> None:
        QTimer.singleShot(0, self._rebuild)

    def _rebuild(self) -> None:
        """Redraw the shapes layers and the table from the boxes in force."""
        if self._layer is None:
            return
        shapes = box_shapes(self._boxes, self._anchor, self._schema.lesion_classes)
        self._busy = True
        try:
            for layer, data, cols in (
                (self._layer, shapes.rects, shapes.colors),
                (self._extent, shapes.extent, shapes.extent_colors),
            ):
                if layer is None:  # a 2D image has no 3D-extent layer
                    continue
                layer.selected_data = set()
                layer.data = []
                if data:
                    layer.add_rectangles(data, edge_color=cols, face_color="transparent")
            self._layer.features = {
                "box_id": np.array(shapes.ids, dtype=object),
                "label": np.array(shapes.labels, dtype=object),
            }
            self._layer.feature_defaults["box_id"] = ""
            self._layer.feature_defaults["label"] = ""
            self._layer.text = {"string": "{label}", "color": "yellow", "anchor": "upper_left"}
            if self._selected in shapes.ids:
                self._layer.selected_data = {shapes.ids.index(self._selected)}
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
    def layer(self) -> Shapes | None:
        """The editable Shapes layer of boxes."""
        return self._layer

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Stop listening to the viewer."""
        self._viewer.layers.events.inserted.disconnect(self._refresh_images)
        self._viewer.layers.events.removed.disconnect(self._refresh_images)
        super().closeEvent(event)
