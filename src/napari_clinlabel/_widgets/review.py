"""Review widget: a human decides model proposals one at a time, one key and one log record each.

Keys (bound on the viewer and on the layer in use; the widget forwards its own key presses too):
``A`` accept as proposed, ``E`` edit, ``R`` reject, ``N`` / ``P`` next / previous undecided
proposal. What ``E`` does depends on the proposal:

- segment: the proposal is copied into the "proposal edit" layer and selected with the brush;
  change it with napari's tools, then ``E`` again or *Confirm edit*.
- box: the box under review is drawn in yellow and its layer is selected in select mode; drag or
  resize it on the slice in view (a 3D box keeps its slice range), then ``E`` accepts it as edited
  with the new ``zyx_min``/``zyx_max``. ``E`` on a box left as proposed records nothing and says
  to press ``A`` (an "edit" that changes nothing would misstate what the reviewer did). A change
  not confirmed is dropped when another proposal is shown.
- grade: the proposed grade is chosen in the grade chooser, which lists the scale's grades; pick
  another with ``Up``/``Down`` (or in the chooser, which passes A/E/R/N/P on), then ``E``. ``E``
  with the proposed grade still chosen records nothing and says to press ``A``.

Each decision is one core call
(:func:`~napari_clinlabel.core.proposals.lifecycle.accept`, ``edit`` or ``reject``) and so one record naming
the model. Segment decisions write into the managed final labels layer in place; the session's
recorder is told which voxels changed, so it never logs them a second time. After a decision the
next undecided proposal is shown at once: only the voxels of the two proposals concerned are
redrawn. There is deliberately no accept-all, no accept-by-score and no multi-select.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel._widgets._common import (
    KeyBinder,
    image_layers,
    image_named,
    refill_image_combo,
    volume_of,
)
from napari_clinlabel._widgets._proposal_layers import ProposalLayers, centre_of, edited_box
from napari_clinlabel._widgets._proposal_text import describe, grade_hint, grade_scale
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.proposals import lifecycle as core
from napari_clinlabel.core.proposals.lifecycle import Proposal
from napari_clinlabel.glue.session import get_session, image_sha256

if TYPE_CHECKING:
    import napari

LABELS_NAME = "segmentation"
RELOAD_DELAY_MS = 300
_KEYS = {
    Qt.Key.Key_A: "a",
    Qt.Key.Key_E: "e",
    Qt.Key.Key_R: "r",
    Qt.Key.Key_N: "n",
    Qt.Key.Key_P: "p",
    Qt.Key.Key_Up: "Up",
    Qt.Key.Key_Down: "Down",
}
_UNCHANGED = "{what} is as proposed: nothing to record as an edit. Press A to accept it as it is."


class _GradeChooser(QComboBox):
    """The grades of the scale; A/E/R/N/P pressed here still decide (never a keyboard search)."""

    def __init__(self, on_key: Any) -> None:
        super().__init__()
        self._on_key = on_key

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Decision keys go to the review; the rest (Up/Down, Home/End, …) choose a grade."""
        key = _KEYS.get(event.key())
        if key in ("a", "e", "r", "n", "p") and not event.modifiers():
            self._on_key(key)
            event.accept()
            return
        super().keyPressEvent(event)


class ReviewWidget(QWidget):
    """Walk the undecided proposals of one image: accept, edit or reject each, by one key."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = get_session(viewer)
        self._viewer = viewer = self._session.viewer  # the viewer itself, not napari's proxy
        self._keys = KeyBinder(viewer)
        self._keys.follow_visibility(self)
        self._image: Any = None
        self._volume: Any = None
        self._log: Any = None
        self._layers: ProposalLayers | None = None
        self._proposals: list[Proposal] = []
        self._pos: int | None = None  # index into self._proposals of the one shown
        self._editing: Proposal | None = None
        self._reload_due = False
        self._bound: tuple[Any, bool] | None = None  # (layer the keys are on, grade keys too)

        self._image_combo = QComboBox()
        self._reload_btn = QPushButton("Load proposals")
        self._count = QLabel("No proposals loaded.")
        self._info = QLabel("")
        self._info.setWordWrap(True)
        self._info.setTextFormat(Qt.TextFormat.PlainText)
        self._info.setMinimumHeight(8 * self._info.fontMetrics().lineSpacing())
        self._grade_combo = _GradeChooser(lambda key: self._handlers()[key]())
        self._grade_row = QWidget()
        self._info.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self._accept_btn = QPushButton("Accept (A)")
        self._edit_btn = QPushButton("Edit (E)")
        self._reject_btn = QPushButton("Reject (R)")
        self._prev_btn = QPushButton("Previous (P)")
        self._next_btn = QPushButton("Next (N)")
        self._confirm_btn = QPushButton("Confirm edit (E)")
        self._discard_btn = QPushButton("Discard edit")
        self._build()
        self._wire()
        self._refresh_images()

    # -- layout and wiring ---------------------------------------------------------------
    def _build(self) -> None:
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self._image_combo, 1)
        row.addWidget(self._reload_btn)
        form.addRow("Image", row)
        grid = QGridLayout()
        grid.addWidget(self._accept_btn, 0, 0)
        grid.addWidget(self._edit_btn, 0, 1)
        grid.addWidget(self._reject_btn, 0, 2)
        grid.addWidget(self._prev_btn, 1, 0)
        grid.addWidget(self._next_btn, 1, 2)
        grid.addWidget(self._confirm_btn, 2, 0, 1, 2)
        grid.addWidget(self._discard_btn, 2, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self._count)
        lay.addWidget(self._info)
        grade = QFormLayout(self._grade_row)
        grade.setContentsMargins(0, 0, 0, 0)
        grade.addRow("Grade", self._grade_combo)
        self._grade_row.setVisible(False)
        lay.addWidget(self._grade_row)
        lay.addLayout(grid)
        lay.addStretch(1)
        self._show_edit_buttons(False)
        self._edit_btn.setToolTip(
            "Segment: edit it in the 'proposal edit' layer, then E again. Box: drag or resize the "
            "yellow box, then E. Grade: choose another grade (Up/Down), then E. Unchanged: use A."
        )
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def _wire(self) -> None:
        self._image_combo.activated.connect(lambda _i: self._on_load())
        self._reload_btn.clicked.connect(self._on_load)
        self._accept_btn.clicked.connect(self._on_accept)
        self._edit_btn.clicked.connect(self._on_edit)
        self._reject_btn.clicked.connect(self._on_reject)
        self._prev_btn.clicked.connect(self._on_previous)
        self._next_btn.clicked.connect(self._on_next)
        self._confirm_btn.clicked.connect(self._on_confirm_edit)
        self._discard_btn.clicked.connect(self._on_discard_edit)
        self._viewer.layers.events.inserted.connect(self._refresh_images)
        self._viewer.layers.events.removed.connect(self._refresh_images)
        self._session.record_appended.connect(self._on_record)
        self.destroyed.connect(self._disconnect_viewer)

    def _handlers(self) -> dict[str, Any]:
        return {
            "a": self._on_accept,
            "e": self._on_e_key,
            "r": self._on_reject,
            "n": self._on_next,
            "p": self._on_previous,
        }

    def _bind_keys(self, layer: Any, grade: bool = False) -> None:
        """A/E/R/N/P on the viewer and ``layer`` (plus Up/Down while a grade is shown)."""
        if self._bound == (layer, grade):
            return
        keys = self._handlers()
        if grade:
            keys.update(Up=lambda: self._step_grade(-1), Down=lambda: self._step_grade(+1))
        self._keys.bind(keys, layer=layer)
        self._bound = (layer, grade)

    def _refresh_images(self, _event: Any = None) -> None:
        names = [lay.name for lay in image_layers(self._viewer)]
        current = self._image.name if self._image is not None else self._image_combo.currentText()
        refill_image_combo(self._image_combo, names, current, self._session)
        if self._image is None and names:
            self._on_load()

    def _disconnect_viewer(self, *_: Any) -> None:
        self._keys.release()
        self._session.record_appended.disconnect(self._on_record)
        for sig in (self._viewer.layers.events.inserted, self._viewer.layers.events.removed):
            try:
                sig.disconnect(self._refresh_images)
            except (TypeError, ValueError, RuntimeError):
                pass

    # -- loading -------------------------------------------------------------------------
    def _on_record(self, rec: dict[str, Any]) -> None:
        """New proposals for the image under review (e.g. from Pre-label): reload once, soon."""
        if rec.get("action") != "proposal.add" or self._image is None or self._reload_due:
            return
        if (rec.get("image") or {}).get("sha256") != image_sha256(self._image):
            return
        self._reload_due = True  # a model's proposals arrive in a burst: reload once it settles
        QTimer.singleShot(RELOAD_DELAY_MS, self._reload_when_idle)

    def _reload_when_idle(self) -> None:
        if self._editing is not None:  # never pull the edited proposal away: try again later
            QTimer.singleShot(500, self._reload_when_idle)
            return
        self._reload_due = False
        shown = self.current
        self._on_load()
        ids = [p.id for p in self._proposals]
        if shown is not None and shown.id in ids and self._proposals[ids.index(shown.id)].pending:
            self._show(ids.index(shown.id))

    def _on_load(self) -> None:
        """(Re)load the chosen image's proposals from its log and show the first undecided one."""
        name = self._image_combo.currentText()
        image = image_named(self._viewer, name)
        if image is None:
            return
        try:
            log = self._session.log_for(image)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._image, self._log = image, log
        self._volume = volume_of(image)
        self._proposals = core.load_proposals(log.path)
        self._layers = ProposalLayers(
            self._viewer, image, log, image_sha256(image), self._volume.spatial_shape
        )
        self._layers.show_all(self._proposals)
        if any(p.pending and p.kind == "segment" for p in self._proposals):
            try:  # the final labels layer decisions go into, shown beside the pending ones
                self._session.labels_layer_for(image, LABELS_NAME)
            except ClinlabelError as exc:
                self._session.report_error(exc)
        self._viewer.layers.selection.active = image
        self._bound = None
        self._bind_keys(image)
        self._pos = None
        self._show(self._step_from(-1, +1))

    # -- decisions -----------------------------------------------------------------------
    def _on_accept(self) -> None:
        p = self._decidable()
        if p is None:
            return
        self._decide(p, lambda labels: core.accept(self._log, p, *labels))

    def _on_reject(self) -> None:
        p = self._decidable()
        if p is None:
            return
        self._decide(p, lambda _labels: core.reject(self._log, p), needs_labels=False)

    def _on_e_key(self) -> None:
        if self._editing is not None:
            self._on_confirm_edit()
        else:
            self._on_edit()

    def _on_edit(self) -> None:
        p = self._decidable()
        if p is None:
            return
        if p.kind == "box":
            self._edit_box(p)
            return
        if p.kind == "grade":
            self._edit_grade(p)
            return
        self._editing = p
        edit_layer = self._layers.start_edit(p)
        self._bind_keys(edit_layer)  # E on the edit layer confirms
        self._show_edit_buttons(True)
        self._info.setText(
            describe(p, self._volume.geometry)
            + "\nEditing: change the cyan mask, then E / Confirm."
        )

    def _edit_box(self, p: Proposal) -> None:
        """Accept a box proposal as the reviewer left it on the layer (one ``proposal.edit``)."""
        try:
            box = edited_box(
                self._layers.box_rects(p), p.payload, self._volume.spatial_shape, self._shown_z()
            )
        except ClinlabelError as exc:
            self._session.report_error(exc)
            self._warn(str(exc))
            return
        if box is None:
            self._warn(_UNCHANGED.format(what="The box"))
            return
        new = {**p.payload, "zyx_min": box[0], "zyx_max": box[1]}
        self._decide(p, lambda labels: core.edit(self._log, p, *labels, edited=new))

    def _edit_grade(self, p: Proposal) -> None:
        """Accept a grade proposal with the grade chosen in the chooser (one ``proposal.edit``)."""
        chosen = self._grade_combo.currentData() if not self._grade_row.isHidden() else None
        if chosen is None:
            self._warn(grade_hint(None, p))
            return
        if chosen == str(p.payload.get("value")):
            self._warn(_UNCHANGED.format(what="The grade"))
            return
        new = {**p.payload, "value": chosen}
        self._decide(p, lambda labels: core.edit(self._log, p, *labels, edited=new))

    def _step_grade(self, step: int) -> None:
        """Up/Down: the previous/next grade of the scale in the chooser (nothing is logged)."""
        combo = self._grade_combo
        if self._editing is None and not self._grade_row.isHidden() and combo.count():
            combo.setCurrentIndex(min(max(combo.currentIndex() + step, 0), combo.count() - 1))

    def _show_grades(self, p: Proposal | None) -> None:
        """Fill the chooser with the scale of grade proposal ``p`` (hidden for other kinds)."""
        scale = grade_scale(p, self._session.schema_for(self._image)) if _is_grade(p) else None
        combo = self._grade_combo
        combo.blockSignals(True)
        combo.clear()
        if scale is not None:
            proposed = str(p.payload.get("value"))
            for v in scale.values:
                mark = "  (proposed)" if v.value == proposed else ""
                combo.addItem(f"{v.value} — {v.label}{mark}", v.value)
            combo.setCurrentIndex(max(combo.findData(proposed), 0))
        combo.blockSignals(False)
        self._grade_row.setVisible(scale is not None)
        if _is_grade(p):
            self._info.setText(self._info.text() + "\n" + grade_hint(scale, p))

    def _shown_z(self) -> int | None:
        """The image slice in view (data index), for a 3D image shown in 2D."""
        if len(self._volume.spatial_shape) != 3 or self._viewer.dims.ndisplay != 2:
            return None
        return int(round(float(self._image.world_to_data(self._viewer.dims.point)[-3])))

    def _warn(self, text: str) -> None:
        self._info.setText(self._info.text().split("\n⚠")[0] + "\n⚠ " + text)

    def _on_confirm_edit(self) -> None:
        p = self._editing
        if p is None:
            return
        new_idx = self._layers.edited_indices()
        self._editing = None  # the decision below is the edit's end (kept on a refused write)
        if self._decide(
            p,
            lambda labels: core.edit(self._log, p, *labels, edited_mask=new_idx),
            extra_idx=new_idx,
        ):
            self._finish_edit(new_idx)
        else:
            self._editing = p

    def _on_discard_edit(self) -> None:
        if self._editing is None:
            return
        self._finish_edit(self._layers.edited_indices())
        self._show(self._pos)

    def _finish_edit(self, idx: np.ndarray) -> None:
        self._editing = None
        self._layers.end_edit(idx)
        self._bind_keys(self._image)
        self._show_edit_buttons(False)

    def _decidable(self) -> Proposal | None:
        if self._editing is not None:
            self._warn("Finish the edit first: E / Confirm edit, or Discard edit.")
            return None
        if self._pos is None or not self._proposals[self._pos].pending:
            return None
        return self._proposals[self._pos]

    def _decide(
        self, p: Proposal, call: Any, needs_labels: bool = True, extra_idx: np.ndarray | None = None
    ) -> bool:
        """Run one core decision; keep the labels recorder in step; show the next proposal."""
        labels_layer, recorder, touched = None, None, None
        try:
            if needs_labels and p.kind == "segment":
                labels_layer = self._session.labels_layer_for(self._image, LABELS_NAME)
                recorder = self._session.recorder_for(labels_layer)
                touched = self._layers.indices(p) if extra_idx is None else extra_idx
                call((labels_layer.data, LABELS_NAME))
            else:
                call((None, LABELS_NAME if p.kind != "grade" else None))
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return False
        if labels_layer is not None and recorder is not None:
            # the record is written: the recorder's shadow (the log's view) follows it
            recorder.shadow.reshape(-1)[touched] = labels_layer.data.reshape(-1)[touched]
        self._layers.drop(p, self._proposals)
        self._show(self._step_from(self._pos, +1), labels_layer)
        return True

    # -- navigation ----------------------------------------------------------------------
    def _on_next(self) -> None:
        if self._editing is None and self._pos is not None:
            self._show(self._step_from(self._pos, +1, wrap=True))

    def _on_previous(self) -> None:
        if self._editing is None and self._pos is not None:
            self._show(self._step_from(self._pos, -1, wrap=True))

    def _step_from(self, pos: int | None, step: int, wrap: bool = True) -> int | None:
        """The next undecided proposal after ``pos`` in direction ``step`` (None when all decided)."""
        n = len(self._proposals)
        start = -1 if pos is None else pos
        for k in range(1, n + 1):
            i = start + step * k
            if not wrap and not 0 <= i < n:
                return None
            i %= n
            if self._proposals[i].pending:
                return i
        return None

    def _show(self, pos: int | None, changed_labels: Any = None) -> None:
        """Centre the view on proposal ``pos``, highlight it and describe it.

        The layers' arrays are already up to date; a move to another slice re-slices every layer,
        so the changed layers are refreshed here only when the view stays on the same slice.
        """
        self._pos = pos
        p = None if pos is None else self._proposals[pos]
        self._layers.highlight(p)
        if p is not None and p.kind == "box":
            self._bind_keys(self._layers.arm_box())  # the box can be dragged at once
        else:
            self._layers.disarm_box()
            self._bind_keys(self._image, grade=_is_grade(p))
        self._show_counts()
        moved = False
        if p is None:
            done = bool(self._proposals)
            self._info.setText("All proposals decided." if done else "No proposals for this image.")
            self._set_buttons(False)
        else:
            self._set_buttons(True)
            self._info.setText(describe(p, self._volume.geometry))
            idx = self._layers.indices(p)
            if idx.size:
                moved = self._centre_on(centre_of(idx, self._volume.spatial_shape))
        self._show_grades(p)
        if not moved:
            self._layers.refresh()
            if changed_labels is not None:
                changed_labels.refresh()

    def _centre_on(self, centre_zyx: np.ndarray) -> bool:
        """Show the slice through ``centre_zyx`` centred; True when the slice changed."""
        world = np.asarray(self._image.data_to_world(centre_zyx), dtype=float)
        dims = self._viewer.dims
        shown = list(dims.displayed)
        before = tuple(dims.current_step)
        if len(world) == 3 and dims.ndisplay == 2:
            not_shown = [d for d in range(len(world)) if d not in shown]
            dims.set_point(not_shown, world[not_shown])
        scene = getattr(self._viewer, "scene", None)  # napari ≥ 0.9: viewer.scene.camera
        camera = scene.camera if scene is not None else self._viewer.camera
        camera.center = tuple(world[shown[-2:]])
        return tuple(dims.current_step) != before

    # -- text ----------------------------------------------------------------------------
    def _show_counts(self) -> None:
        n = len(self._proposals)
        k = sum(not p.pending for p in self._proposals)
        at = "" if self._pos is None else f" — showing #{self._pos + 1}"
        self._count.setText(f"{k} of {n} decided{at}")

    def _set_buttons(self, enabled: bool) -> None:
        for b in (
            self._accept_btn,
            self._edit_btn,
            self._reject_btn,
            self._prev_btn,
            self._next_btn,
        ):
            b.setEnabled(enabled)

    def _show_edit_buttons(self, editing: bool) -> None:
        self._confirm_btn.setVisible(editing)
        self._discard_btn.setVisible(editing)
        self._set_buttons(not editing and self._pos is not None)
        self._edit_btn.setEnabled(self._pos is not None)

    # -- keys on the widget itself ---------------------------------------------------------
    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """A/E/R/N/P (and Up/Down on a grade) work while the widget has focus, too."""
        key = _KEYS.get(event.key())
        if key is not None and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            if key in ("Up", "Down"):
                self._step_grade(-1 if key == "Up" else +1)
            else:
                self._handlers()[key]()
            event.accept()
            return
        super().keyPressEvent(event)

    # -- for tests and scripts -------------------------------------------------------------
    @property
    def proposals(self) -> list[Proposal]:
        """The image's proposals (all states, in order added)."""
        return list(self._proposals)

    @property
    def current(self) -> Proposal | None:
        """The proposal shown now (None when all are decided)."""
        return None if self._pos is None else self._proposals[self._pos]

    @property
    def grade_choice(self) -> str | None:
        """The grade chosen in the chooser (None when no grade proposal is shown)."""
        return self._grade_combo.currentData() if not self._grade_row.isHidden() else None

    @property
    def edit_layer(self) -> Any:
        """The layer an edit happens in (None until the first edit)."""
        return None if self._layers is None else self._layers.edit


def _is_grade(p: Proposal | None) -> bool:
    return p is not None and p.kind == "grade"
