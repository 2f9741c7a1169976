"""Segmentation widget: schema labels, intensity-limited painting and the semi-automatic tools.

napari's brush, fill and erase stay the drawing tools (the session's labels recorder logs them).
This widget adds: the schema's labels (colour, name, code) driving ``selected_label`` and the
layer colours; an intensity window that limits painting; the editing tools with preview → apply
(grow from seeds, local threshold, margin, hollow, smoothing incl. joint smoothing of all labels,
logical operators, scissors, per-label lock and hide: :class:`ToolsPanel`); fill between slices; island removal and hole filling; and live volumes in mL
(voxel or pixel counts only when the image states no pixel size: PNG, JPEG, a TIFF without
resolution tags). Each applied tool is one ``label.paint`` record through
:meth:`Session.edit_labels`. Another label is never overwritten unless "Overwrite other labels" is
ticked, and a locked label never.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from skimage import color

from napari_clinlabel._widgets._common import VerticalScroll, image_layers, volume_of
from napari_clinlabel._widgets._label_table import LabelTable
from napari_clinlabel._widgets._schema_picker import SchemaPicker
from napari_clinlabel._widgets._seg_hooks import SeedClick, WindowedBrush
from napari_clinlabel._widgets._seg_tools_panel import ToolsPanel
from napari_clinlabel.core.annotate import seg_tools
from napari_clinlabel.core.annotate.tools import ToolResult
from napari_clinlabel.core.errors import ClinlabelError, InputError
from napari_clinlabel.core.schema import Schema
from napari_clinlabel.glue.session import get_session

if TYPE_CHECKING:
    import napari

DEFAULT_SCHEMA = "abdomen-ct"
_VOLUME_REFRESH_MS = 150


def _spin(low: float, high: float, value: float, step: float = 1.0, suffix: str = "") -> Any:
    box = QSpinBox() if float(step).is_integer() and float(value).is_integer() else QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    return box


class SegmentationWidget(QWidget):
    """Dock widget: schema-driven labels and the semi-automatic segmentation tools."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # napari hands plugins a PublicOnlyProxy: work on (and share the session of) the viewer
        self._viewer = viewer = getattr(viewer, "__wrapped__", viewer)
        self._session = get_session(viewer)
        self._image: Image | None = None
        self._labels: Labels | None = None
        self._brush: WindowedBrush | None = None
        self._seed_click: SeedClick | None = None
        self._voxel_mm3: float | None = 1.0  # None: pixel size unknown, counts only
        self._luma: tuple[Image, np.ndarray] | None = None  # an RGB image's luminance, cached
        self._build()
        self._wire()
        self._refresh_images()
        self._show_schema()

    # -- construction --------------------------------------------------------------------------
    def _build(self) -> None:
        self._schema_picker = SchemaPicker(DEFAULT_SCHEMA, self._session.report_error)
        self._image_combo = QComboBox()
        self._start_btn = QPushButton("Segment this image")
        self._start_btn.setToolTip("Open (or restore from the log) the image's labels layer")
        self._labels_info = QLabel("No labels layer yet.")
        self._label_table = LabelTable()
        self._overwrite = QCheckBox("Overwrite other labels")
        self._overwrite.setToolTip("Off: painting and tools change only unlabelled voxels")
        self._window_check = QCheckBox("Paint only within intensity window")
        self._low = _spin(-1e5, 1e5, 0.0, 0.5)
        self._high = _spin(-1e5, 1e5, 200.0, 0.5)
        self.tools = ToolsPanel(self)
        self._interp_btn = QPushButton("Fill between slices")
        self._islands = _spin(2, 10_000_000, 100, 1, " voxels")
        self._islands_btn = QPushButton("Remove islands smaller than")
        self._holes_btn = QPushButton("Fill holes")
        self._holes_per_slice = QCheckBox("slice by slice")
        self._status = QLabel(wordWrap=True)
        self._volume_timer = QTimer(self, singleShot=True, interval=_VOLUME_REFRESH_MS)

        layout = QVBoxLayout(self)
        top = QFormLayout()
        top.addRow("Schema", self._schema_picker)
        top.addRow("Image", self._image_combo)
        top.addRow(self._start_btn)
        top.addRow(self._labels_info)
        layout.addLayout(top)
        layout.addWidget(self._label_table)  # always in view: it is as tall as its rows
        # the tools below scroll: together they need ~800 px, and a 1080p laptop has less
        body = QWidget()
        layout.addWidget(VerticalScroll(body), 1)
        layout.addWidget(self._status)  # below the scroll: a notice is seen wherever it scrolled
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._overwrite)
        window = QHBoxLayout()
        for text, box in (("low", self._low), ("high", self._high)):
            window.addWidget(QLabel(text))
            window.addWidget(box, 1)
        self._group(layout, "Threshold paint", [(self._window_check,), (window,)])
        layout.addWidget(self.tools)
        self._group(layout, "Clean up", [
            (self._interp_btn,), (self._islands_btn, self._islands),
            (self._holes_btn, self._holes_per_slice),
        ])  # fmt: skip
        layout.addStretch(1)  # spare height below the tools, not between them

    @staticmethod
    def _group(layout: QVBoxLayout, title: str, rows: list[tuple[Any, ...]]) -> None:
        box = QGroupBox(title)
        form = QFormLayout(box)
        for row in rows:
            form.addRow(*row)
        layout.addWidget(box)

    def _wire(self) -> None:
        self._schema_picker.schema_changed.connect(self._on_schema_changed)
        self._image_combo.currentIndexChanged.connect(self._on_image_chosen)
        self._start_btn.clicked.connect(self._on_start)
        self._label_table.value_selected.connect(self._on_label_selected)
        self._overwrite.toggled.connect(self._on_overwrite_toggled)
        self._window_check.toggled.connect(self._on_window_toggled)
        self._interp_btn.clicked.connect(self._on_interpolate)
        self._islands_btn.clicked.connect(self._on_remove_islands)
        self._holes_btn.clicked.connect(self._on_fill_holes)
        self._volume_timer.timeout.connect(self._on_refresh_volumes)
        self._viewer.layers.events.inserted.connect(self._refresh_images)
        self._viewer.layers.events.removed.connect(self._on_layer_removed)
        self._session.record_appended.connect(self._on_record)

    # -- schema --------------------------------------------------------------------------------
    @property
    def _schema(self) -> Schema:
        return self._schema_picker.schema

    def load_schema_file(self, path: str | Path) -> None:
        """Use the schema file ``path`` (the Schema file… button's action)."""
        self._schema_picker.load_file(path)

    def _on_schema_changed(self, schema: Schema) -> None:
        if self._image is not None and self._labels is not None:
            self._session.set_schema(self._image, schema)
        self._show_schema()

    def _show_schema(self) -> None:
        self._label_table.set_labels(self._schema.labels)
        self.tools.schema_changed()
        self._apply_colormap()
        self._on_refresh_volumes()

    def _apply_colormap(self) -> None:
        if self._labels is None or not self._schema.labels:
            return
        colors: dict[int | None, Any] = {None: "transparent", 0: "transparent"}
        colors.update({lab.value: lab.color for lab in self._schema.labels})
        colors.update({v: "transparent" for v in self.tools.hidden()})  # hidden: a view change
        self._labels.colormap = DirectLabelColormap(color_dict=colors)

    # -- image and labels layer ----------------------------------------------------------------
    def _refresh_images(self, *_: Any) -> None:
        current = self._image
        # RGB (fundus, photos) is segmented as 2D labels over the colour; a multiscale slide is
        # not (painting needs an in-memory labels array the size of its full resolution)
        images = [lay for lay in image_layers(self._viewer) if not lay.multiscale]
        self._image_combo.blockSignals(True)
        self._image_combo.clear()
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
            volume = volume_of(image)
            known = volume.spacing_known
            self._voxel_mm3 = volume.geometry.voxel_volume_mm3 if known else None
            flat = volume.geometry.ndim == 2
            self._label_table.set_count_title("Pixels" if flat else "Voxels")
            self._label_table.set_flat(flat)  # a 2D image's size is an area (mm²), not mL
            self._schedule_volumes()
            low, high = (float(c) for c in image.contrast_limits)
            self._low.setValue(low)
            self._high.setValue(high)
            self.tools._lt_low.setValue(low)
            self.tools._lt_high.setValue(high)

    def _on_start(self) -> None:
        if self._image is None:
            self._session.report_error(
                InputError("Open an image first (File ▸ Open, or a sample).")
            )
            return
        try:
            self._session.set_schema(self._image, self._schema)
            # the reader's own layer, from their own edits only (blinded to other reads)
            labels, notice = self._session.reader_labels_layer_for(self._image)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._attach_labels(labels)
        if notice:
            show_info(notice)
            self._status.setText(notice)

    def _attach_labels(self, labels: Labels) -> None:
        self._detach_labels()
        self._labels = labels
        labels.events.paint.connect(self._schedule_volumes)
        labels.events.data.connect(self._schedule_volumes)
        labels.events.selected_label.connect(self._on_layer_label)
        labels.preserve_labels = not self._overwrite.isChecked()
        # the window limits by the image's values: an RGB image's luminance (see _intensity)
        source = SimpleNamespace(data=self._intensity()) if self._image.rgb else self._image
        self._brush = WindowedBrush(
            labels, source, self._window, self._on_brush_limited, self.tools.locked
        )
        self._seed_click = SeedClick(
            self._viewer, self._image, self.tools.threshold_at,
            lambda: self._status.setText("Seeds are clicked in a 2D view (press ctrl+Y)."),
        )  # fmt: skip
        self._apply_colormap()
        self._on_label_selected(self._label_table.current_value())
        self._on_window_toggled(self._window_check.isChecked())
        self._viewer.layers.selection.active = labels
        self._labels_info.setText(f"Labels layer: {labels.name} ({labels.data.dtype})")
        self._on_refresh_volumes()

    def _detach_labels(self) -> None:
        if self._labels is None:
            return
        self.tools.detach()
        self._seed_click.remove()
        self._brush.remove()
        self._brush = self._seed_click = None
        events = self._labels.events
        events.paint.disconnect(self._schedule_volumes)
        events.data.disconnect(self._schedule_volumes)
        events.selected_label.disconnect(self._on_layer_label)
        self._labels = None
        self._labels_info.setText("No labels layer yet.")

    def _on_layer_removed(self, event: Any) -> None:
        if event.value is self._labels or event.value is self._image:
            self._detach_labels()
        if event.value is self._image:
            self._image = None
        self._refresh_images()

    # -- label selection -----------------------------------------------------------------------
    def _current_value(self) -> int | None:
        return self._label_table.current_value()

    def _on_label_selected(self, value: int | None) -> None:
        labels = self._labels
        if labels is None or value is None or labels.selected_label == value:
            return
        if value > np.iinfo(labels.data.dtype).max:
            self._session.report_error(InputError(
                f"Label value {value} does not fit the {labels.data.dtype} labels layer; give the "
                "schema values up to 255 or use a uint16 labels layer."
            ))  # fmt: skip
            return
        labels.selected_label = value
        self.tools.label_selected(value)

    def _on_layer_label(self, event: Any = None) -> None:
        if self._labels is not None:
            self._label_table.select_value(int(self._labels.selected_label))
            self.tools.label_selected(int(self._labels.selected_label))

    def _on_overwrite_toggled(self, checked: bool) -> None:
        if self._labels is not None:
            self._labels.preserve_labels = not checked

    # -- threshold paint and seed clicks ------------------------------------------------------
    def _on_window_toggled(self, checked: bool) -> None:
        if self._brush is None:
            return
        self._brush.limit_window = checked
        try:
            self._brush.install() if checked or self.tools.locked() else self._brush.remove()
        except ClinlabelError as exc:
            self._window_check.setChecked(False)
            self._session.report_error(exc)

    def _window(self) -> tuple[float, float]:
        return float(self._low.value()), float(self._high.value())

    def _on_brush_limited(self) -> None:
        """Name the stroke after the tool that shaped it (the recorder would say 'brush')."""
        recorder = self._session.recorder_for(self._labels) if self._labels is not None else None
        if recorder is None:
            return
        if hasattr(recorder, "override_tool"):
            recorder.override_tool("threshold_paint", {"window": list(self._window())})
        else:
            recorder._tool = "threshold_paint"

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
        minimum = int(self._islands.value())
        islands = seg_tools.island_voxels(self._labels.data, value, minimum)
        self._commit(islands, 0, "remove_islands", {"min_voxels": minimum}, value)

    def _on_fill_holes(self) -> None:
        value = self._ready()
        if value is None:
            return
        axis = self._slice_axis() if self._holes_per_slice.isChecked() else None
        holes = seg_tools.hole_voxels(self._labels.data, value, per_slice_axis=axis)
        self._commit(holes, value, "fill_holes", {"per_slice_axis": axis})

    def _ready(self) -> int | None:
        value = self._current_value()
        if self._labels is None or value is None:
            self._session.report_error(InputError("Click 'Segment this image' and pick a label."))
            return None
        return value

    def _slice_axis(self) -> int:
        """The axis the user pages through in the 2D view (z unless the view was rolled)."""
        not_shown = list(self._viewer.dims.not_displayed)
        offset = self._viewer.dims.ndim - self._labels.data.ndim
        return int(not_shown[0]) - offset if not_shown else 0

    def _intensity(self) -> np.ndarray:
        """The values the intensity tools (window, grow, local threshold) work on: the image's,
        or for RGB its luminance (ITU-R BT.709, scikit-image) on the image's own 0–255 range."""
        image = self._image
        if not image.rgb:
            return np.asarray(image.data)
        if self._luma is None or self._luma[0] is not image:
            rgb = np.asarray(image.data)[..., :3]
            top = float(np.iinfo(rgb.dtype).max) if rgb.dtype.kind in "ui" else 1.0
            self._luma = (image, (color.rgb2gray(rgb) * top).astype(np.float32))
        return self._luma[1]

    def _spacing(self) -> tuple[float, ...]:
        return volume_of(self._image).geometry.spacing_zyx

    def _commit(
        self,
        mask: np.ndarray,
        value: int,
        tool: str,
        params: dict[str, Any],
        from_value: int | None = None,
    ) -> None:
        """Preview the change a clean-up tool's mask makes; Apply (tools panel) logs it."""
        edits = frozenset({int(from_value if from_value is not None else value)})
        result = ToolResult(tool, np.asarray(mask, bool), int(value), edits, params)
        self.tools.preview.run_now(lambda: result)

    # -- volumes -------------------------------------------------------------------------------
    def _on_record(self, rec: dict[str, Any]) -> None:
        target = rec.get("target")
        if isinstance(target, dict) and "labels" in target:
            self._schedule_volumes()

    def _schedule_volumes(self, *_: Any) -> None:
        self._volume_timer.start()

    def _on_refresh_volumes(self) -> None:
        if self._labels is None:
            counts = np.zeros(1, np.int64)
        else:
            counts = seg_tools.label_voxel_counts(self._labels.data)
        self._label_table.set_counts(counts, self._voxel_mm3)

    def volumes_ml(self) -> dict[int, float]:
        """The volumes shown: label value → mL (empty when the pixel size is unknown)."""
        return self._label_table.volumes_ml()

    def counts(self) -> dict[int, int]:
        """The counts shown: label value → voxels (pixels on a 2D image)."""
        return self._label_table.counts()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Leave the layer as napari made it: no brush limit, no seed listener."""
        self._detach_labels()
        super().closeEvent(event)
