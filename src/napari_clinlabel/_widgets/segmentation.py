"""Segmentation widget: schema labels, intensity-limited painting and the semi-automatic tools.

napari's brush, fill and erase stay the drawing tools (the session's labels recorder logs them).
This widget adds: the schema's label list (name, colour, code) driving ``selected_label`` and the
layer colours; an intensity window that limits painting; region growing from a clicked seed; fill
between slices; island removal and hole filling; and a live table of volumes in mL. Each tool
action is one ``label.paint`` record through :meth:`Session.edit_labels`. Another label is never
overwritten unless "Overwrite other labels" is ticked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._session import get_session
from ..core import seg_tools
from ..core.errors import ClinlabelError, InputError
from ..core.schema import Schema, builtin_schema_names, load_schema
from ._common import image_layers, volume_of

DEFAULT_SCHEMA = "abdomen-ct"
_VOLUME_REFRESH_MS = 150


def _swatch(color: str) -> QIcon:
    pix = QPixmap(14, 14)
    pix.fill(QColor(color))
    return QIcon(pix)


class SegmentationWidget(QWidget):
    """Dock widget: schema-driven labels and the semi-automatic segmentation tools."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._session = get_session(viewer)
        self._schema: Schema = load_schema(DEFAULT_SCHEMA)
        self._image: Image | None = None
        self._labels: Labels | None = None
        self._voxel_mm3: float = 1.0
        self._build()
        self._wire()
        self._refresh_images()
        self._show_schema()

    # -- construction --------------------------------------------------------------------------
    def _build(self) -> None:
        self._schema_combo = QComboBox()
        self._schema_combo.addItems(builtin_schema_names())
        self._schema_combo.setCurrentText(DEFAULT_SCHEMA)
        self._schema_file_btn = QPushButton("Schema file…")
        self._schema_info = QLabel()
        self._schema_info.setWordWrap(True)
        self._image_combo = QComboBox()
        self._start_btn = QPushButton("Segment this image")
        self._start_btn.setToolTip("Open (or restore from the log) the image's labels layer")
        self._labels_info = QLabel("No labels layer yet.")

        self._label_list = QListWidget()
        self._label_list.setMaximumHeight(150)
        self._overwrite = QCheckBox("Overwrite other labels")
        self._overwrite.setToolTip("Off: painting and tools change only unlabelled voxels")

        self._window_check = QCheckBox("Paint only within intensity window")
        self._low = QDoubleSpinBox()
        self._high = QDoubleSpinBox()
        for box, value in ((self._low, 0.0), (self._high, 200.0)):
            box.setRange(-100000.0, 100000.0)
            box.setDecimals(1)
            box.setValue(value)

        self._grow_btn = QPushButton("Grow region: click a seed")
        self._grow_btn.setCheckable(True)
        self._grow_method = QComboBox()
        self._grow_method.addItems(list(seg_tools.GROW_METHODS))
        self._grow_window = QCheckBox("use the intensity window")
        self._grow_window.setToolTip("Off: window = seed neighbourhood mean ± multiplier × std")
        self._multiplier = QDoubleSpinBox()
        self._multiplier.setRange(0.1, 10.0)
        self._multiplier.setValue(2.5)
        self._smoothing = QDoubleSpinBox()
        self._smoothing.setRange(0.0, 5.0)
        self._smoothing.setSingleStep(0.5)
        self._smoothing.setValue(1.0)
        self._smoothing.setSuffix(" vox")

        self._interp_btn = QPushButton("Fill between slices")
        self._islands = QSpinBox()
        self._islands.setRange(2, 10_000_000)
        self._islands.setValue(100)
        self._islands.setSuffix(" voxels")
        self._islands_btn = QPushButton("Remove islands smaller than")
        self._holes_btn = QPushButton("Fill holes")
        self._holes_per_slice = QCheckBox("slice by slice")

        self._volumes = QTableWidget(0, 3)
        self._volumes.setHorizontalHeaderLabels(["Label", "Voxels", "Volume (mL)"])
        self._volumes.verticalHeader().setVisible(False)
        self._volumes.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self._volumes.horizontalHeader().setStretchLastSection(True)
        self._status = QLabel()
        self._status.setWordWrap(True)
        self._volume_timer = QTimer(self)
        self._volume_timer.setSingleShot(True)
        self._volume_timer.setInterval(_VOLUME_REFRESH_MS)

        layout = QVBoxLayout(self)
        top = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self._schema_combo, 1)
        row.addWidget(self._schema_file_btn)
        top.addRow("Schema", row)
        top.addRow(self._schema_info)
        top.addRow("Image", self._image_combo)
        top.addRow(self._start_btn)
        top.addRow(self._labels_info)
        layout.addLayout(top)
        layout.addWidget(QLabel("Labels (schema)"))
        layout.addWidget(self._label_list)
        layout.addWidget(self._overwrite)

        paint = QGroupBox("Threshold paint")
        form = QFormLayout(paint)
        form.addRow(self._window_check)
        win = QHBoxLayout()
        win.addWidget(QLabel("low"))
        win.addWidget(self._low)
        win.addWidget(QLabel("high"))
        win.addWidget(self._high)
        form.addRow(win)
        layout.addWidget(paint)

        grow = QGroupBox("Region growing")
        form = QFormLayout(grow)
        form.addRow(self._grow_btn)
        form.addRow("Method", self._grow_method)
        form.addRow("Multiplier", self._multiplier)
        form.addRow("Smoothing σ", self._smoothing)
        form.addRow(self._grow_window)
        layout.addWidget(grow)

        tools = QGroupBox("Clean up")
        form = QFormLayout(tools)
        form.addRow(self._interp_btn)
        form.addRow(self._islands_btn, self._islands)
        form.addRow(self._holes_btn, self._holes_per_slice)
        layout.addWidget(tools)
        layout.addWidget(QLabel("Volumes"))
        layout.addWidget(self._volumes)
        layout.addWidget(self._status)

    def _wire(self) -> None:
        self._schema_combo.currentTextChanged.connect(self._on_schema_chosen)
        self._schema_file_btn.clicked.connect(self._on_schema_file)
        self._image_combo.currentIndexChanged.connect(self._on_image_chosen)
        self._start_btn.clicked.connect(self._on_start)
        self._label_list.currentRowChanged.connect(self._on_label_selected)
        self._overwrite.toggled.connect(self._on_overwrite_toggled)
        self._window_check.toggled.connect(self._on_window_toggled)
        self._grow_btn.toggled.connect(self._on_grow_toggled)
        self._interp_btn.clicked.connect(self._on_interpolate)
        self._islands_btn.clicked.connect(self._on_remove_islands)
        self._holes_btn.clicked.connect(self._on_fill_holes)
        self._volume_timer.timeout.connect(self._on_refresh_volumes)
        self._viewer.layers.events.inserted.connect(self._refresh_images)
        self._viewer.layers.events.removed.connect(self._on_layer_removed)
        self._session.record_appended.connect(self._on_record)

    # -- schema --------------------------------------------------------------------------------
    def load_schema_file(self, path: str | Path) -> None:
        """Use the schema file ``path`` (the Schema file… button's action)."""
        try:
            schema = load_schema(Path(path))
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._set_schema(schema)

    def _on_schema_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Label schema", "", "Schema (*.yaml *.yml)")
        if path:
            self.load_schema_file(path)

    def _on_schema_chosen(self, name: str) -> None:
        if name:
            try:
                self._set_schema(load_schema(name))
            except ClinlabelError as exc:
                self._session.report_error(exc)

    def _set_schema(self, schema: Schema) -> None:
        self._schema = schema
        if self._image is not None:
            self._session.set_schema(self._image, schema)
        self._show_schema()

    def _show_schema(self) -> None:
        s = self._schema
        self._schema_info.setText(
            f"{s.title} — {s.id} v{s.version}, signed off by {s.signed_off_by.name} "
            f"({s.signed_off_by.date}); sha256 {s.sha256[:12]}…"
        )
        self._label_list.blockSignals(True)
        self._label_list.clear()
        for lab in s.labels:
            text = (
                f"{lab.value}  {lab.name}    {lab.type.scheme} {lab.type.value} {lab.type.meaning}"
            )
            item = QListWidgetItem(_swatch(lab.color), text)
            item.setData(Qt.ItemDataRole.UserRole, lab.value)
            item.setToolTip(f"category: {lab.category.meaning} ({lab.category.value})")
            self._label_list.addItem(item)
        self._label_list.blockSignals(False)
        self._apply_colormap()
        if s.labels:
            self._label_list.setCurrentRow(0)
        self._on_refresh_volumes()

    def _apply_colormap(self) -> None:
        if self._labels is None or not self._schema.labels:
            return
        colors: dict[int | None, Any] = {None: "transparent", 0: "transparent"}
        colors.update({lab.value: lab.color for lab in self._schema.labels})
        self._labels.colormap = DirectLabelColormap(color_dict=colors)

    # -- image and labels layer ----------------------------------------------------------------
    def _refresh_images(self, *_: Any) -> None:
        current = self._image
        self._image_combo.blockSignals(True)
        self._image_combo.clear()
        images = [lay for lay in image_layers(self._viewer) if not lay.rgb]
        for lay in images:
            self._image_combo.addItem(lay.name, lay)
        self._image_combo.blockSignals(False)
        if current in images:
            self._image_combo.setCurrentIndex(images.index(current))
        elif images:
            self._image_combo.setCurrentIndex(len(images) - 1)
            self._on_image_chosen(len(images) - 1)

    def _on_image_chosen(self, index: int) -> None:
        image = self._image_combo.itemData(index) if index >= 0 else None
        if image is self._image:
            return
        self._detach_labels()
        self._image = image
        if image is not None:
            self._voxel_mm3 = volume_of(image).geometry.voxel_volume_mm3
            lo, hi = (float(c) for c in image.contrast_limits)
            self._low.setValue(lo)
            self._high.setValue(hi)

    def _on_start(self) -> None:
        if self._image is None:
            self._session.report_error(
                InputError("Open an image first (File ▸ Open, or a sample).")
            )
            return
        try:
            self._session.set_schema(self._image, self._schema)
            labels = self._session.labels_layer_for(self._image)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._attach_labels(labels)

    def _attach_labels(self, labels: Labels) -> None:
        self._detach_labels()
        self._labels = labels
        labels.events.paint.connect(self._schedule_volumes)
        labels.events.data.connect(self._schedule_volumes)
        labels.events.selected_label.connect(self._on_layer_label)
        labels.preserve_labels = not self._overwrite.isChecked()
        self._apply_colormap()
        self._on_label_selected(self._label_list.currentRow())
        self._on_window_toggled(self._window_check.isChecked())
        self._viewer.layers.selection.active = labels
        self._labels_info.setText(f"Labels layer: {labels.name} ({labels.data.dtype})")
        self._on_refresh_volumes()

    def _detach_labels(self) -> None:
        if self._labels is None:
            return
        self._grow_btn.setChecked(False)
        self._set_threshold_hook(False)
        for event, slot in (
            (self._labels.events.paint, self._schedule_volumes),
            (self._labels.events.data, self._schedule_volumes),
            (self._labels.events.selected_label, self._on_layer_label),
        ):
            event.disconnect(slot)
        self._labels = None
        self._labels_info.setText("No labels layer yet.")

    def _on_layer_removed(self, event: Any) -> None:
        if event.value is self._labels:
            self._detach_labels()
        if event.value is self._image:
            self._image = None
        self._refresh_images()

    # -- label selection -----------------------------------------------------------------------
    def _current_value(self) -> int | None:
        item = self._label_list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def _on_label_selected(self, row: int) -> None:
        value = self._current_value()
        if self._labels is not None and value is not None and self._labels.selected_label != value:
            self._labels.selected_label = value

    def _on_layer_label(self, event: Any = None) -> None:
        value = int(self._labels.selected_label) if self._labels is not None else None
        for row in range(self._label_list.count()):
            if self._label_list.item(row).data(Qt.ItemDataRole.UserRole) == value:
                if self._label_list.currentRow() != row:
                    self._label_list.setCurrentRow(row)
                return

    def _on_overwrite_toggled(self, checked: bool) -> None:
        if self._labels is not None:
            self._labels.preserve_labels = not checked

    # -- threshold paint -----------------------------------------------------------------------
    def _on_window_toggled(self, checked: bool) -> None:
        self._set_threshold_hook(checked and self._labels is not None)

    def _set_threshold_hook(self, on: bool) -> None:
        """Limit napari's brush/fill by wrapping the layer's mask-paint step (napari 0.9)."""
        labels = self._labels
        if labels is None:
            return
        vars(labels).pop("_apply_mask_to_data", None)
        if not on:
            return
        original = getattr(labels, "_apply_mask_to_data", None)
        if original is None:
            self._window_check.setChecked(False)
            self._session.report_error(
                ClinlabelError("This napari version cannot limit painting to a window.")
            )
            return
        widget = self

        def limited(data: Any, mask: Any, new_label: int, volume_slice: Any) -> Any:
            if new_label != labels.colormap.background_value and widget._image is not None:
                image = np.asarray(widget._image.data[volume_slice])
                mask = mask & seg_tools.in_window(image, widget._low.value(), widget._high.value())
                widget._note_tool(
                    "threshold_paint", {"window": [widget._low.value(), widget._high.value()]}
                )
            return original(data, mask, new_label, volume_slice)

        labels._apply_mask_to_data = limited

    def _note_tool(self, tool: str, params: dict[str, Any]) -> None:
        recorder = self._session.recorder_for(self._labels) if self._labels is not None else None
        if recorder is None:
            return
        if hasattr(recorder, "override_tool"):
            recorder.override_tool(tool, params)
        else:  # the recorder names the stroke by its first tool; this one is more precise
            recorder._tool = tool

    # -- region growing ------------------------------------------------------------------------
    def _on_grow_toggled(self, checked: bool) -> None:
        callbacks = self._viewer.mouse_drag_callbacks
        if checked:
            if self._labels is None:
                self._grow_btn.setChecked(False)
                self._session.report_error(InputError("Click 'Segment this image' first."))
                return
            self._labels.mode = "pan_zoom"
            if self._grow_click not in callbacks:
                callbacks.append(self._grow_click)
            self._status.setText("Click inside the structure to grow it (Esc: untick the button).")
        elif self._grow_click in callbacks:
            callbacks.remove(self._grow_click)

    def _grow_click(self, viewer: Any, event: Any) -> Any:
        """A click (press and release without dragging) grows from that voxel; drags still pan."""
        start = np.asarray(event.position)
        yield
        moved = False
        while event.type == "mouse_move":
            moved = moved or bool(np.any(np.abs(np.asarray(event.position) - start) > 1e-6))
            yield
        if not moved and self._image is not None:
            self.grow_at(tuple(self._image.world_to_data(start)))

    def grow_at(self, seed_zyx: tuple[float, ...]) -> dict[str, Any] | None:
        """Grow the selected label from voxel ``seed_zyx`` and log it; the record (or None)."""
        value = self._current_value()
        if self._labels is None or self._image is None or value is None:
            return None
        params: dict[str, Any] = {
            "seed": [int(round(float(c))) for c in seed_zyx],
            "method": self._grow_method.currentText(),
            "multiplier": self._multiplier.value(),
            "smoothing": self._smoothing.value(),
        }
        if self._grow_window.isChecked():
            params.update(lower=self._low.value(), upper=self._high.value())
        try:
            mask = seg_tools.region_grow(
                np.asarray(self._image.data),
                params["seed"],
                **{k: v for k, v in params.items() if k != "seed"},
            )
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return None
        return self._commit(mask, value, "region_grow", params)

    # -- clean-up tools ------------------------------------------------------------------------
    def _on_interpolate(self) -> None:
        value = self._ready()
        if value is None:
            return
        axis = self._slice_axis()
        try:
            mask = seg_tools.interpolate_slices(self._labels.data, value, axis, self._spacing())
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._commit(mask, value, "interpolate", {"axis": axis})

    def _on_remove_islands(self) -> None:
        value = self._ready()
        if value is None:
            return
        label_mask = self._labels.data == value
        kept = seg_tools.remove_small_islands(label_mask, self._islands.value())
        self._commit(
            label_mask & ~kept, 0, "remove_islands", {"min_voxels": self._islands.value()}, value
        )

    def _on_fill_holes(self) -> None:
        value = self._ready()
        if value is None:
            return
        per_slice = self._holes_per_slice.isChecked()
        axis = self._slice_axis() if per_slice else None
        filled = seg_tools.fill_holes(self._labels.data == value, per_slice_axis=axis)
        self._commit(filled, value, "fill_holes", {"per_slice_axis": axis})

    def _ready(self) -> int | None:
        value = self._current_value()
        if self._labels is None or value is None:
            self._session.report_error(InputError("Click 'Segment this image' and pick a label."))
            return None
        return value

    def _slice_axis(self) -> int:
        """The axis the user pages through in the 2D view (z unless the view was rolled)."""
        not_shown = list(self._viewer.dims.not_displayed)
        ndim = self._labels.data.ndim if self._labels is not None else 3
        return int(not_shown[0]) - (self._viewer.dims.ndim - ndim) if not_shown else 0

    def _spacing(self) -> tuple[float, ...]:
        geometry = volume_of(self._image).geometry if self._image is not None else None
        return geometry.spacing_zyx if geometry is not None else (1.0, 1.0, 1.0)

    def _commit(
        self,
        mask: np.ndarray,
        value: int,
        tool: str,
        params: dict[str, Any],
        from_value: int | None = None,
    ) -> dict[str, Any] | None:
        """Log the change a tool's mask makes (never over another label unless allowed)."""
        idx, _old, new = seg_tools.tool_change(
            self._labels.data,
            mask,
            value,
            overwrite_other_labels=self._overwrite.isChecked(),
            from_value=from_value,
        )
        if idx.size == 0:
            self._status.setText(f"{tool}: nothing to change.")
            return None
        params = {**params, "overwrite_other_labels": self._overwrite.isChecked()}
        try:
            rec = self._session.edit_labels(
                self._labels, idx, new, tool=tool, data={"params": params}
            )
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return None
        self._status.setText(f"{tool}: {idx.size} voxels changed (record {rec['seq']}).")
        self._schedule_volumes()
        return rec

    # -- volumes -------------------------------------------------------------------------------
    def _on_record(self, rec: dict[str, Any]) -> None:
        target = rec.get("target")
        if isinstance(target, dict) and "labels" in target:
            self._schedule_volumes()

    def _schedule_volumes(self, *_: Any) -> None:
        self._volume_timer.start()

    def _on_refresh_volumes(self) -> None:
        counts = (
            seg_tools.label_voxel_counts(self._labels.data)
            if self._labels is not None
            else np.zeros(1, np.int64)
        )
        rows = [(lab.value, lab.name, lab.color) for lab in self._schema.labels]
        known = {v for v, _, _ in rows}
        rows += [
            (int(v), f"label {v}", "#808080")
            for v in np.flatnonzero(counts)
            if v and v not in known
        ]
        self._volumes.setRowCount(len(rows))
        for r, (value, name, color) in enumerate(rows):
            n = int(counts[value]) if value < counts.size else 0
            cells = [
                QTableWidgetItem(_swatch(color), f"{value} {name}"),
                QTableWidgetItem(f"{n}"),
                QTableWidgetItem(f"{n * self._voxel_mm3 / 1000.0:.2f}"),
            ]
            for c, cell in enumerate(cells):
                if c:
                    cell.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self._volumes.setItem(r, c, cell)
        self._volumes.resizeColumnsToContents()

    def volumes_ml(self) -> dict[int, float]:
        """The volume table's values: label value → mL (as shown)."""
        out = {}
        for r in range(self._volumes.rowCount()):
            value = int(self._volumes.item(r, 0).text().split()[0])
            out[value] = float(self._volumes.item(r, 2).text())
        return out

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Leave the layer as napari made it: no hook, no seed callback."""
        self._detach_labels()
        super().closeEvent(event)
