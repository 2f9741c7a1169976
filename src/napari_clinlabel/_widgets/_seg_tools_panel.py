"""The editing tools panel of the Segmentation widget: pick a tool, set it, preview, apply/cancel.

Thin translator: each ``_on_*`` builds one core call (``core.annotate.tools``) and hands it to
:class:`ToolPreview`, which previews it and, on Apply, logs one record.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from napari.layers import Labels, Shapes
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
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel._widgets._tool_preview import ToolPreview
from napari_clinlabel.core.annotate.tools import logical as logical_ops
from napari_clinlabel.core.annotate.tools import morphology, scissors
from napari_clinlabel.core.annotate.tools.grow_seeds import (
    METHODS,
    SeedGrower,
    background_seed_value,
)
from napari_clinlabel.core.errors import ClinlabelError, InputError

TOOLS = (
    "Grow from seeds", "Local threshold", "Margin", "Hollow", "Smoothing", "Logical", "Scissors",
)  # fmt: skip
SEEDS_NAME = "seeds"
SCISSORS_NAME = "scissors"
_SCISSORS_MODES = {"polygon": "add_polygon", "rectangle": "add_rectangle", "ellipse": "add_ellipse"}
_METHOD_TEXT = {
    "auto": "auto (by where the background seeds sit)",
    "watershed": "watershed, damped inside the seeds' range (CT)",
    "watershed_gradient": "watershed on the plain gradient",
}
_UPDATE_MS = 300


def _dspin(low: float, high: float, value: float, step: float, suffix: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    return box


class ToolsPanel(QGroupBox):
    """Editing tools with preview. ``host`` is the Segmentation widget (labels, image, label, …)."""

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__("Editing tools (preview, then apply)", parent)
        self._host = host
        self._viewer = host._viewer
        self._session = host._session
        self._locked: set[int] = set()
        self._hidden: set[int] = set()
        self._grower: SeedGrower | None = None
        self.shapes: Shapes | None = None
        self._grower_key: tuple | None = None
        self.seeds: Labels | None = None
        self.preview = ToolPreview(
            self._viewer, self._session, lambda: host._labels, self._options,
            self._colours, self._set_status,
        )  # fmt: skip
        self._update_timer = QTimer(self, singleShot=True, interval=_UPDATE_MS)
        self._build()
        self._wire()

    # -- construction --------------------------------------------------------------------------
    def _build(self) -> None:
        self._tool = QComboBox()
        self._tool.addItems(list(TOOLS))
        self._stack = QStackedWidget()
        self._seed_btn = QPushButton("Add seeds layer")
        self._bg_btn = QPushButton("Paint background seeds")
        self._fg_btn = QPushButton("Paint seeds of the selected label")
        self._auto = QCheckBox("update the preview when seeds change", checked=True)
        self._method = QComboBox()
        for m in METHODS:
            self._method.addItem(_METHOD_TEXT[m], m)
        self._locality = _dspin(0, 500, 20, 5, " mm")
        self._sigma = _dspin(0, 10, 1.0, 0.5, " mm")
        self._air = QCheckBox("CT: air (< -500 HU) is background", checked=True)
        self._lt_low = _dspin(-1e5, 1e5, 0, 10)
        self._lt_high = _dspin(-1e5, 1e5, 200, 10)
        self._lt_diam = _dspin(0, 100, 3, 1, " mm")
        self._lt_click = QPushButton("Click the structure", checkable=True)
        self._margin = _dspin(-100, 100, 3, 0.5, " mm")
        self._shell = _dspin(0.1, 100, 2, 0.5, " mm")
        self._shell_side = QComboBox()
        self._shell_side.addItems(list(morphology.HOLLOW_SIDES))
        self._smooth = QComboBox()
        self._smooth.addItems(list(morphology.SMOOTHING))
        self._smooth_radius = _dspin(0.1, 50, 2, 0.5, " mm")
        self._smooth_radius.setToolTip("joint: the Gaussian's sigma")
        self._op = QComboBox()
        self._op.addItems(list(logical_ops.OPERATIONS))
        self._operand = QComboBox()
        self._sc_shape = QComboBox()
        self._sc_shape.addItems(["polygon", "rectangle", "ellipse"])
        self._sc_side = QComboBox()
        self._sc_side.addItems(["erase inside", "erase outside", "fill inside", "fill outside"])
        self._sc_extent = QComboBox()
        self._sc_extent.addItems(["this slice", "through the volume"])
        self._sc_all = QCheckBox("all labels (not only the selected one)")
        self._sc_draw = QPushButton("Draw the shape")
        self._lock = QCheckBox("lock the selected label (never painted over)")
        self._hide = QCheckBox("hide the selected label (view only, not recorded)")
        self._locked_info = QLabel("Locked: none · Hidden: none")
        self._preview_btn = QPushButton("Preview")
        self._apply_btn = QPushButton("Apply")
        self._cancel_btn = QPushButton("Cancel")
        self._status = QLabel(wordWrap=True)

        forms = [
            [(self._seed_btn,), (self._fg_btn,), (self._bg_btn,), (self._auto,),
             ("Method", self._method), ("Seed locality", self._locality), ("Smoothing σ", self._sigma), (self._air,)],
            [("Low", self._lt_low), ("High", self._lt_high), ("Minimum diameter", self._lt_diam),
             (self._lt_click,)],
            [("Margin (− shrinks)", self._margin)],
            [("Shell thickness", self._shell), ("Shell side", self._shell_side)],
            [("Method", self._smooth), ("Radius", self._smooth_radius)],
            [("Operation", self._op), ("Other label", self._operand)],
            [("Shape", self._sc_shape), ("Cut", self._sc_side), ("Where", self._sc_extent),
             (self._sc_all,), (self._sc_draw,)],
        ]  # fmt: skip
        for rows in forms:
            page = QWidget()
            form = QFormLayout(page)
            for row in rows:
                form.addRow(*row)
            self._stack.addWidget(page)
        layout = QVBoxLayout(self)
        layout.addWidget(self._tool)
        layout.addWidget(self._stack)
        buttons = QHBoxLayout()
        for b in (self._preview_btn, self._apply_btn, self._cancel_btn):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        layout.addWidget(self._lock)
        layout.addWidget(self._hide)
        layout.addWidget(self._locked_info)
        layout.addWidget(self._status)

    def _wire(self) -> None:
        self._tool.currentIndexChanged.connect(self._stack.setCurrentIndex)
        self._tool.currentIndexChanged.connect(lambda *_: self.preview.cancel(quiet=True))
        self._seed_btn.clicked.connect(self.add_seeds_layer)
        self._bg_btn.clicked.connect(partial(self._seed_brush, True))
        self._fg_btn.clicked.connect(partial(self._seed_brush, False))
        self._lt_click.toggled.connect(self._on_click_toggled)
        self._preview_btn.clicked.connect(self.compute_preview)
        self._apply_btn.clicked.connect(self.preview.apply)
        self._cancel_btn.clicked.connect(lambda: self.preview.cancel())
        self._lock.toggled.connect(self._on_lock_toggled)
        self._hide.toggled.connect(self._on_hide_toggled)
        self._sc_draw.clicked.connect(self.add_scissors_layer)
        self._sc_shape.currentTextChanged.connect(self._scissors_mode)
        self._update_timer.timeout.connect(self._on_seeds_changed)

    # -- shared state --------------------------------------------------------------------------
    def _set_status(self, text: str) -> None:
        self._status.setText(text)

    def _options(self) -> tuple[bool, set[int]]:
        return bool(self._host._overwrite.isChecked()), set(self._locked)

    def locked(self) -> set[int]:
        """Label values the user locked (tools and the brush leave them alone)."""
        return set(self._locked)

    def _colours(self) -> dict[int, str]:
        return {lab.value: lab.color for lab in self._host._schema.labels}

    def schema_changed(self) -> None:
        """Refresh the label choices after a schema change."""
        self._operand.clear()
        for lab in self._host._schema.labels:
            self._operand.addItem(f"{lab.value}: {lab.name}", lab.value)

    def hidden(self) -> set[int]:
        """Label values the user hid (drawn transparent; a view change, never recorded)."""
        return set(self._hidden)

    def label_selected(self, value: int | None) -> None:
        """The selected label changed: show whether it is locked and hidden."""
        for box, held in ((self._lock, self._locked), (self._hide, self._hidden)):
            box.blockSignals(True)
            box.setChecked(value in held)
            box.blockSignals(False)

    def _show_states(self) -> None:
        self._locked_info.setText(
            f"Locked: {sorted(self._locked) or 'none'} · Hidden: {sorted(self._hidden) or 'none'}"
        )

    def _on_lock_toggled(self, checked: bool) -> None:
        value = self._host._current_value()
        if value is None:
            return
        (self._locked.add if checked else self._locked.discard)(value)
        self._show_states()
        self._host._on_window_toggled(self._host._window_check.isChecked())  # brush guard

    def _on_hide_toggled(self, checked: bool) -> None:
        value = self._host._current_value()
        if value is None:
            return
        (self._hidden.add if checked else self._hidden.discard)(value)
        self._show_states()
        self._host._apply_colormap()  # the layer's colours: hidden labels transparent

    def detach(self) -> None:
        """The labels layer goes: stop listening, drop the preview and the seeds layer hook."""
        self._lt_click.setChecked(False)
        self.preview.cancel(quiet=True)
        if self.shapes is not None:
            self.shapes.events.data.disconnect(self._on_shapes_changed)
            self.shapes = None
        if self.seeds is not None:
            self.seeds.events.labels_update.disconnect(self._schedule_update)
            self.seeds.events.paint.disconnect(self._schedule_update)
            self.seeds = None
        self._grower = self._grower_key = None

    # -- compute -------------------------------------------------------------------------------
    def compute_preview(self, *, sync: bool = False) -> None:
        """Compute the current tool's preview (off the GUI thread unless ``sync``)."""
        call = self._call()
        if call is None:
            return
        fn, args = call
        (self.preview.run_now if sync else self.preview.run)(fn, *args)

    def _call(self) -> tuple[Callable[..., Any], tuple] | None:
        host = self._host
        value = host._ready()
        if value is None:
            return None
        labels, tool = host._labels.data, self._tool.currentText()
        spacing = host._spacing()
        if tool == "Grow from seeds":
            if self.seeds is None:
                host._session.report_error(InputError("Add the seeds layer and paint seeds first."))
                return None
            grower = self._seed_grower()
            self.preview.extra_objects = {}
            seeds = np.array(self.seeds.data, copy=True)
            return self._grow_and_keep_seeds, (grower, seeds)
        if tool == "Local threshold":
            self._lt_click.setChecked(True)
            self._set_status("Click inside the structure in a 2D view.")
            return None
        if tool == "Margin":
            return morphology.margin, (labels, value, float(self._margin.value()), spacing)
        if tool == "Hollow":
            return morphology.hollow, (
                labels,
                value,
                float(self._shell.value()),
                spacing,
                self._shell_side.currentText(),
            )
        if tool == "Scissors":
            return self._scissors_call(labels, value)
        if tool == "Smoothing" and self._smooth.currentText() == "joint":
            return morphology.joint_smoothing, (
                labels, float(self._smooth_radius.value()), spacing, sorted(self._locked),
            )  # fmt: skip
        if tool == "Smoothing":
            return morphology.smoothing, (
                labels,
                value,
                self._smooth.currentText(),
                float(self._smooth_radius.value()),
                spacing,
            )
        operand = self._operand.currentData()
        return logical_ops.logical, (labels, value, self._op.currentText(), operand)

    def _grow_and_keep_seeds(self, grower: SeedGrower, seeds: np.ndarray) -> Any:
        result = grower.grow(seeds)

        def seed_arrays() -> dict[str, np.ndarray]:  # on Apply only: not on every seed stroke
            idx = np.flatnonzero(seeds.reshape(-1))
            return {"indices": idx, "values": seeds.reshape(-1)[idx],
                    "shape": np.asarray(seeds.shape)}  # fmt: skip

        self.preview.extra_objects = {"seeds": seed_arrays}
        return result

    def _seed_grower(self) -> SeedGrower:
        host = self._host
        key = (id(host._image), float(self._locality.value()), float(self._sigma.value()),
               self._air.isChecked(), self._method.currentData())  # fmt: skip
        if self._grower is None or self._grower_key != key:
            self._grower = SeedGrower(
                host._intensity(), host._spacing(), margin_mm=key[1], sigma_mm=key[2],
                air_below=-500.0 if key[3] else None, method=key[4],
            )  # fmt: skip
            self._grower_key = key
        return self._grower

    # -- grow from seeds -----------------------------------------------------------------------
    def add_seeds_layer(self) -> Labels | None:
        """Add (or reuse) the seeds labels layer on the image grid; the user paints seeds in it."""
        labels = self._host._labels
        if labels is None:
            self._session.report_error(InputError("Click 'Segment this image' first."))
            return None
        if self.seeds is None or self.seeds not in self._viewer.layers:
            self.seeds = self._viewer.add_labels(
                np.zeros(labels.data.shape, labels.data.dtype), name=SEEDS_NAME,
                affine=labels.affine, scale=labels.scale, translate=labels.translate,
            )  # fmt: skip
            self.seeds.events.labels_update.connect(self._schedule_update)
            self.seeds.events.paint.connect(self._schedule_update)
        self._seed_brush(False)
        return self.seeds

    def _seed_brush(self, background: bool) -> None:
        if self.seeds is None and self.add_seeds_layer() is None:
            return
        value = self._host._current_value()
        if background:
            value = background_seed_value(self.seeds.data.dtype)
        if value is None:
            return
        self.seeds.selected_label = value
        self.seeds.mode = "paint"
        self._viewer.layers.selection.active = self.seeds

    def _schedule_update(self, *_: Any) -> None:
        if self._auto.isChecked() and self._tool.currentText() == "Grow from seeds":
            self._update_timer.start()

    def _on_seeds_changed(self) -> None:
        if self._tool.currentText() == "Scissors":
            self.compute_preview()
            return
        if self.seeds is None or not np.any(self.seeds.data):
            return
        bg = background_seed_value(self.seeds.data.dtype)
        if not (self.seeds.data == bg).any():
            self._set_status("Now paint background seeds around the structure.")
            return
        self.compute_preview()

    # -- scissors ----------------------------------------------------------------------------
    def add_scissors_layer(self) -> Shapes | None:
        """Add (or reuse) the scissors Shapes layer on the labels' grid, ready to draw."""
        labels = self._host._labels
        if labels is None:
            self._session.report_error(InputError("Click 'Segment this image' first."))
            return None
        if self.shapes is None or self.shapes not in self._viewer.layers:
            self.shapes = self._viewer.add_shapes(
                name=SCISSORS_NAME, ndim=labels.ndim, edge_color="yellow",
                face_color="transparent", edge_width=1, affine=labels.affine,
                scale=labels.scale, translate=labels.translate,
            )  # fmt: skip
            self.shapes.events.data.connect(self._on_shapes_changed)
        self._viewer.layers.selection.active = self.shapes
        self._scissors_mode(self._sc_shape.currentText())
        return self.shapes

    def _scissors_mode(self, kind: str) -> None:
        if self.shapes is not None:
            self.shapes.mode = _SCISSORS_MODES[kind]

    def _on_shapes_changed(self, event: Any = None) -> None:
        """A shape drawn (or edited): preview the cut with the newest one."""
        if self._tool.currentText() == "Scissors" and self.shapes is not None:
            if len(self.shapes.data):
                self._update_timer.start()

    def _scissors_call(
        self, labels: np.ndarray, value: int
    ) -> tuple[Callable[..., Any], tuple] | None:
        if self.shapes is None or not len(self.shapes.data):
            self._session.report_error(
                InputError("Draw a polygon, rectangle or ellipse first ('Draw the shape').")
            )
            return None
        kind = self.shapes.shape_type[-1]
        if kind not in scissors.SHAPES:
            self._session.report_error(
                InputError(f"Scissors cut with a polygon, rectangle or ellipse, not a {kind}.")
            )
            return None
        vertices = np.asarray(self.shapes.data[-1], float)
        fn = partial(
            scissors.scissors,
            value=None if self._sc_all.isChecked() else value,
            side="outside" if self._sc_side.currentIndex() % 2 else "inside",
            operation="fill" if self._sc_side.currentIndex() >= 2 else "erase",
            extent="volume" if self._sc_extent.currentIndex() else "slice",
            axis=self._host._slice_axis() if labels.ndim == 3 else 0,
        )
        return fn, (labels, vertices, kind)

    # -- local threshold -----------------------------------------------------------------------
    def _on_click_toggled(self, checked: bool) -> None:
        click = self._host._seed_click
        if click is None:
            if checked:
                self._lt_click.setChecked(False)
                self._session.report_error(InputError("Click 'Segment this image' first."))
            return
        if checked:
            click.on_seed = self.threshold_at
            self._host._labels.mode = "pan_zoom"
            click.install()
        else:
            click.remove()

    def threshold_at(self, seed_zyx: tuple[float, ...], *, sync: bool = False) -> None:
        """Local threshold from a clicked voxel: preview the connected region in the window."""
        host = self._host
        value = host._ready()
        if value is None:
            return
        args = (host._intensity(), seed_zyx, value, float(self._lt_low.value()),
                float(self._lt_high.value()), host._spacing())  # fmt: skip
        fn = partial(morphology.local_threshold, min_diameter_mm=float(self._lt_diam.value()))
        (self.preview.run_now if sync else self.preview.run)(fn, *args)

    def select_tool(self, name: str) -> None:
        """Show tool ``name`` (one of :data:`TOOLS`)."""
        if name not in TOOLS:
            raise ClinlabelError(f"Unknown tool {name!r}; use one of {TOOLS}.")
        self._tool.setCurrentIndex(TOOLS.index(name))
