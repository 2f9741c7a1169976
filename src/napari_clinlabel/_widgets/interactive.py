"""Interactive prompts widget: points and a box on an object → a model's mask → ONE proposal.

*Prompt layers* adds three layers on the image's grid: "prompts +" (green points inside the
object), "prompts −" (red points outside it) and "prompt box" (rectangles; the box spans the
slices its rectangles are on — draw one on the object's first and last slice for a 3D box; a single
rectangle spans ``BOX_HALF_DEPTH_MM`` above and below its slice). *Run* sends them to an
``interactive`` model (core :func:`~napari_clinlabel.core.models.interactive.propose`): the mask
is logged as one ``proposal.add`` record (source = the model, actor = the human, the prompts in its
data) and shown in the "interactive proposal" layer. Then, one key and one record each:
``Enter`` accepts it into the final labels, ``Esc`` rejects it, *Edit* makes the proposal layer
paintable and ``Enter`` accepts the edited mask (``proposal.edit``; an unchanged mask is recorded
as accepted). The prompts are cleared after each decision, ready for the next object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel._widgets._common import (
    KeyBinder,
    copy_transform,
    image_layers,
    image_named,
    refill_image_combo,
    volume_of,
)
from napari_clinlabel._widgets._model_picker import INTERACTIVE_TASKS, ModelPicker
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.models.interactive import Prompt, check_interactive, propose
from napari_clinlabel.core.models.loader import LoadedModel, load_model
from napari_clinlabel.core.proposals.lifecycle import Proposal, accept, edit, reject
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session

if TYPE_CHECKING:
    import napari

LABELS_NAME = "segmentation"
POSITIVE, NEGATIVE, BOX, RESULT = "prompts +", "prompts −", "prompt box", "interactive proposal"
BOX_HALF_DEPTH_MM = 20.0


class InteractiveWidget(QWidget):
    """Prompt an interactive model with points and a box; decide its one proposal by key."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = get_session(viewer)
        self._viewer = viewer = self._session.viewer
        self._keys = KeyBinder(viewer)
        self._keys.follow_visibility(self)
        self._models: dict[str, LoadedModel] = {}
        self._image: Any = None
        self._proposal: Proposal | None = None
        self._editing = False
        self._labels_name = LABELS_NAME

        self._image_combo = QComboBox()
        self._picker = ModelPicker(
            self, INTERACTIVE_TASKS, "Interactive TorchScript model (card beside it)", devices=False
        )
        self._model_combo = self._picker.model_combo
        self._label_combo = QComboBox()  # no default: the reader names the object prompted
        self._prompt_btn = QPushButton("Prompt layers")
        self._run_btn = QPushButton("Run")
        self._accept_btn = QPushButton("Accept (Enter)")
        self._edit_btn = QPushButton("Edit")
        self._reject_btn = QPushButton("Reject (Esc)")
        self._status = QLabel("Add prompt layers, click points on the object, then Run.")
        self._status.setWordWrap(True)
        self._status.setTextFormat(Qt.TextFormat.PlainText)
        self._build()
        self._wire()
        self._refresh_images()
        self._set_deciding(False)

    # -- layout --------------------------------------------------------------------------
    def _build(self) -> None:
        form = QFormLayout()
        form.addRow("Image", self._image_combo)
        self._picker.add_rows(form)
        form.addRow("Label", self._label_combo)
        run_row = QHBoxLayout()
        run_row.addWidget(self._prompt_btn)
        run_row.addWidget(self._run_btn)
        decide = QHBoxLayout()
        for b in (self._accept_btn, self._edit_btn, self._reject_btn):
            decide.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(run_row)
        lay.addLayout(decide)
        lay.addWidget(self._status)
        lay.addStretch(1)

    def _wire(self) -> None:
        self._image_combo.currentTextChanged.connect(lambda _name: self._refresh_labels())
        self._prompt_btn.clicked.connect(self.prompt_layers)
        self._run_btn.clicked.connect(self._on_run)
        self._accept_btn.clicked.connect(self._on_enter)
        self._edit_btn.clicked.connect(self._on_edit)
        self._reject_btn.clicked.connect(self._on_reject)
        self._viewer.layers.events.inserted.connect(self._refresh_images)
        self._viewer.layers.events.removed.connect(self._refresh_images)
        self.destroyed.connect(self._disconnect_viewer)

    def _refresh_images(self, _event: Any = None) -> None:
        names = [lay.name for lay in image_layers(self._viewer)]
        refill_image_combo(self._image_combo, names, self._image_combo.currentText(), self._session)
        self._refresh_labels()

    def _refresh_labels(self) -> None:
        """The schema's labels by name (values 1-255 when the image has no schema), after a
        first "choose…" entry: nothing is pre-selected for the reader."""
        image = self._current_image()
        ref = self._session.schema_for(image) if image is not None else None
        try:
            labels = [(lab.value, f"{lab.value} {lab.name}", lab.name)
                      for lab in load_schema(ref["id"]).labels] if ref and ref.get("id") else []  # fmt: skip
        except ClinlabelError:
            labels = []
        if not labels:
            labels = [(v, str(v), None) for v in range(1, 256)]
        current = self._label_combo.currentData()
        self._label_combo.blockSignals(True)
        self._label_combo.clear()
        self._label_combo.addItem("choose the label…", None)
        for value, text, name in labels:
            self._label_combo.addItem(text, (value, name))
        keep = next((i for i in range(1, self._label_combo.count())
                     if current is not None and self._label_combo.itemData(i) == current), 0)  # fmt: skip
        self._label_combo.setCurrentIndex(keep)
        self._label_combo.blockSignals(False)

    def set_label(self, value: int) -> None:
        """Choose the label value the next proposal is for (as the reader picks it)."""
        for i in range(1, self._label_combo.count()):
            if self._label_combo.itemData(i)[0] == value:
                self._label_combo.setCurrentIndex(i)
                return
        raise ValueError(f"label {value} is not offered")

    def _current_image(self) -> Any:
        return image_named(self._viewer, self._image_combo.currentText())

    def _disconnect_viewer(self, *_: Any) -> None:
        self._keys.release()
        for sig in (self._viewer.layers.events.inserted, self._viewer.layers.events.removed):
            try:
                sig.disconnect(self._refresh_images)
            except (TypeError, ValueError, RuntimeError):
                pass

    def _set_deciding(self, on: bool) -> None:
        for b in (self._accept_btn, self._edit_btn, self._reject_btn):
            b.setEnabled(on)
        self._run_btn.setEnabled(not on)
        if on:
            self._keys.bind({"Enter": self._on_enter, "Escape": self._on_reject},
                            layer=self._layer(RESULT))  # fmt: skip
        else:
            self._keys.release()

    # -- layers --------------------------------------------------------------------------
    def _layer(self, name: str) -> Any:
        return self._viewer.layers[name] if name in self._viewer.layers else None

    def prompt_layers(self) -> None:
        """Add (or reuse) the positive, negative and box prompt layers on the chosen image's grid."""
        image = image_named(self._viewer, self._image_combo.currentText())
        if image is None:
            self._session.report_error(ClinlabelError("Open an image first, then add prompts."))
            return
        self._image = image
        tr = copy_transform(image)
        ndim = image.data.ndim
        if self._layer(POSITIVE) is None:
            self._viewer.add_points(np.zeros((0, ndim)), name=POSITIVE, face_color="lime",
                                    size=4, **tr)  # fmt: skip
        if self._layer(NEGATIVE) is None:
            self._viewer.add_points(np.zeros((0, ndim)), name=NEGATIVE, face_color="red",
                                    size=4, **tr)  # fmt: skip
        if self._layer(BOX) is None:
            self._viewer.add_shapes(name=BOX, edge_color="cyan", face_color="transparent",
                                    ndim=ndim, **tr)  # fmt: skip
        pos = self._layer(POSITIVE)
        pos.mode = "add"
        self._viewer.layers.selection.active = pos

    def prompt(self, volume: Any) -> Prompt:
        """The prompts in the layers, in image voxel coordinates."""
        pos, neg, box = self._layer(POSITIVE), self._layer(NEGATIVE), self._layer(BOX)
        shape = tuple(volume.spatial_shape)
        b = None
        if box is not None and len(box.data):
            corners = np.concatenate([np.asarray(d, dtype=float) for d in box.data])
            lo, hi = corners.min(0), corners.max(0)
            if len(shape) == 3 and lo[0] == hi[0]:  # one slice: a slab around it
                half = BOX_HALF_DEPTH_MM / volume.geometry.spacing_zyx[0]
                lo[0], hi[0] = max(lo[0] - half, 0), min(hi[0] + half, shape[0] - 1)
            b = np.stack([lo, hi])
        return Prompt.make(
            pos.data if pos is not None else (), neg.data if neg is not None else (), b, shape
        )

    def _show_result(self, indices: np.ndarray, shape: tuple[int, ...]) -> Labels:
        data = np.zeros(shape, dtype=np.uint8)
        data.reshape(-1)[indices] = 1
        layer = self._layer(RESULT)
        if layer is None or layer.data.shape != data.shape:
            if layer is not None:
                self._viewer.layers.remove(layer)
            layer = self._viewer.add_labels(
                data, name=RESULT, opacity=0.6, **copy_transform(self._image),
                colormap=DirectLabelColormap(color_dict={None: "transparent", 0: "transparent",
                                                         1: "yellow"}),
            )  # fmt: skip
        else:
            layer.data = data
        layer.editable = False
        return layer

    # -- actions -------------------------------------------------------------------------
    def set_model(self, spec: str) -> None:
        """Choose ``builtin:NAME`` or a local interactive model file."""
        self._picker.set_model(spec)

    def _model(self) -> LoadedModel:
        spec = self._picker.spec
        if spec not in self._models:
            model = load_model(spec, device=self._picker.device)
            check_interactive(model)
            self._models = {spec: model}
        return self._models[spec]

    def _on_run(self) -> None:
        if self._proposal is not None:
            self._status.setText("Decide the proposal shown first: Enter, Edit or Esc.")
            return
        if self._image is None or self._layer(POSITIVE) is None:
            self.prompt_layers()
        image = self._image
        if image is None:
            return
        try:
            volume = volume_of(image)
            prompt = self.prompt(volume)
            log = self._session.log_for(image)
            model = self._model()
            self._refresh_labels()  # the schema may have changed since (kept when it has not)
            chosen = self._label_combo.currentData()
            if chosen is None:
                raise ClinlabelError(
                    "Choose the label of the object you prompted (Label), then Run."
                )
            label, name = chosen
            labels_name = self._session.reader_labels_name(image, LABELS_NAME)
            p = propose(log, volume, model, prompt, label, name, labels_name=labels_name)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            self._status.setText(f"No proposal: {exc}")
            return
        self._proposal, self._labels_name = p, labels_name
        idx = log.get_arrays(p.payload["mask"])["indices"]
        self._show_result(idx, tuple(volume.spatial_shape))
        self._viewer.layers.selection.active = self._layer(RESULT)
        self._set_deciding(True)
        ident = model.identity
        self._status.setText(
            f"{ident.name} {ident.version}: {idx.size} voxels, score {p.score:.2f}. "
            "Enter accepts, Esc rejects, Edit to change it first."
        )

    def _on_edit(self) -> None:
        layer = self._layer(RESULT)
        if self._proposal is None or layer is None:
            return
        self._editing = True
        layer.editable = True
        layer.selected_label = 1
        layer.mode = "paint"
        self._viewer.layers.selection.active = layer
        self._keys.bind({"Enter": self._on_enter, "Escape": self._on_reject}, layer=layer)
        self._status.setText("Paint / erase the proposal, then Enter to accept the edited mask.")

    def _on_enter(self) -> None:
        p = self._proposal
        if p is None:
            return
        log = self._session.log_for(self._image)
        labels_layer = self._session.labels_layer_for(self._image, self._labels_name)
        recorder = self._session.recorder_for(labels_layer)
        proposed = log.get_arrays(p.payload["mask"])["indices"]
        mask = self._layer(RESULT).data.reshape(-1) > 0
        changed = self._editing and not np.array_equal(np.flatnonzero(mask), proposed)
        touched = np.union1d(proposed, np.flatnonzero(mask)) if changed else proposed
        try:
            if changed:
                rec = edit(log, p, labels_layer.data, self._labels_name,
                           mask.reshape(labels_layer.data.shape))  # fmt: skip
            else:
                rec = accept(log, p, labels_layer.data, self._labels_name)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        # the record is written: the recorder's shadow (the log's view) follows it
        recorder.shadow.reshape(-1)[touched] = labels_layer.data.reshape(-1)[touched]
        labels_layer.refresh()
        self._finish(f"{'Edited and accepted' if changed else 'Accepted'} (record {rec['seq']}).")

    def _on_reject(self) -> None:
        p = self._proposal
        if p is None:
            return
        try:
            rec = reject(self._session.log_for(self._image), p)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._finish(f"Rejected (record {rec['seq']}).")

    def _finish(self, text: str) -> None:
        self._proposal, self._editing = None, False
        layer = self._layer(RESULT)
        if layer is not None:
            layer.data = np.zeros_like(layer.data)
            layer.editable = False
        for name in (POSITIVE, NEGATIVE, BOX):  # ready for the next object
            lay = self._layer(name)
            if lay is not None and len(lay.data):
                lay.data = np.zeros((0, lay.ndim)) if name != BOX else []
        self._set_deciding(False)
        if self._layer(POSITIVE) is not None:
            self._viewer.layers.selection.active = self._layer(POSITIVE)
        self._status.setText(text + " Click points on the next object, then Run.")

    # -- for tests and scripts -------------------------------------------------------------
    @property
    def proposal(self) -> Proposal | None:
        """The proposal waiting for a decision (None when there is none)."""
        return self._proposal
